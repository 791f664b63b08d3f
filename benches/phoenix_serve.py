"""Runs `phoenix serve` with its OTLP/gRPC listener on 127.0.0.1 instead of every interface.

Phoenix binds its HTTP server to PHOENIX_HOST but its gRPC collector to `[::]` unconditionally;
the benchmark keeps every listener on loopback, so this wraps grpc.aio's add_insecure_port to
rewrite that one address before handing over to Phoenix's own entry point.
"""

import sys

import grpc.aio._server as grpc_aio_server

_add_insecure_port = grpc_aio_server.Server.add_insecure_port


def _loopback_only(self, address):
    if address.startswith("[::]:"):
        address = "127.0.0.1:" + address[len("[::]:"):]
    return _add_insecure_port(self, address)


grpc_aio_server.Server.add_insecure_port = _loopback_only

from phoenix.server.main import main  # noqa: E402  (after the patch on purpose)

if __name__ == "__main__":
    sys.argv = ["phoenix", "serve"]
    sys.exit(main())
