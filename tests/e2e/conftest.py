"""End-to-end fixtures: one real `sightline serve` process for the whole run, and the mock OpenAI
endpoint the instrumented clients call.

Nothing is built here. The binary comes from ``SIGHTLINE_BIN`` (default ``target/debug/sightline``
under the repository root); build it first with ``cargo build -p sightline-cli``. The server gets
free ports on 127.0.0.1 and a fresh data directory, and is stopped with SIGTERM (graceful
shutdown) when the run ends. Its log is printed when it fails to start and kept in the pytest
temporary directory otherwise.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "record"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mock_openai import MockOpenAI  # noqa: E402

STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiError(AssertionError):
    pass


class Sightline:
    """A running server and a small client for its JSON API."""

    def __init__(self, proc: subprocess.Popen, http_port: int, grpc_port: int, log_path: Path):
        self.proc = proc
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.log_path = log_path
        self.http = requests.Session()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_http(self) -> str:
        """Base of the OTLP/HTTP receiver (append /v1/traces, /v1/logs)."""
        return self.base_url

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def get(self, path: str, **params) -> requests.Response:
        return self.http.get(self.base_url + path, params=params, timeout=10)

    def api(self, path: str, **params) -> dict:
        """GET an API path and return its JSON, failing with the response body on non-200."""
        r = self.get(path, **params)
        if r.status_code != 200:
            raise ApiError(f"GET {path} {params} -> {r.status_code}: {r.text[:2000]}")
        return r.json()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_until(check, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    """Polls ``check()`` until it returns a truthy value and returns it; on timeout fails with the
    last value or exception, so the failure says what was seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, KeyError, IndexError, TypeError) as e:  # not there yet
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last saw: {last!r}")
        time.sleep(interval)


def _binary() -> Path:
    raw = os.environ.get("SIGHTLINE_BIN")
    path = Path(raw) if raw else REPO / "target" / "debug" / "sightline"
    if not path.is_absolute():
        path = REPO / path
    return path


def _start(binary: Path, workdir: Path, extra_args: tuple = ()) -> Sightline:
    data_dir = workdir / "data"
    log_path = workdir / "sightline.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGHTLINE_")}
    env.setdefault("RUST_LOG", "info")
    for _attempt in range(3):
        http_port, grpc_port = free_port(), free_port()
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [str(binary), "serve",
             "--http-addr", f"127.0.0.1:{http_port}",
             "--grpc-addr", f"127.0.0.1:{grpc_port}",
             "--data-dir", str(data_dir), *extra_args],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env,
        )
        log.close()
        server = Sightline(proc, http_port, grpc_port, log_path)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if server.get("/readyz").status_code == 200:
                    return server
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail(f"sightline did not become ready within {STARTUP_TIMEOUT_S}s:\n"
                        f"{server.log_tail()}")
        if "in use" not in server.log_tail(10).lower():
            pytest.fail(f"sightline exited with code {proc.returncode} at startup:\n{server.log_tail()}")
    pytest.fail(f"sightline could not bind free ports after 3 attempts:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def sightline(tmp_path_factory) -> Sightline:
    binary = _binary()
    if not binary.is_file():
        pytest.fail(f"no sightline binary at {binary}: run `cargo build -p sightline-cli` "
                    "or set SIGHTLINE_BIN")
    server = _start(binary, tmp_path_factory.mktemp("sightline"))
    yield server
    # Graceful shutdown flushes everything and exits 0; anything else is a failure of the run.
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        pytest.fail(f"sightline did not exit within 30s of SIGTERM:\n{server.log_tail()}")
    if code != 0:
        pytest.fail(f"sightline exited with code {code} after SIGTERM:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def mock_openai() -> MockOpenAI:
    with MockOpenAI() as mock:
        yield mock


@pytest.fixture()
def run_id() -> str:
    """A short unique tag, so every test's sessions, users and services are its own."""
    return uuid.uuid4().hex[:10]
