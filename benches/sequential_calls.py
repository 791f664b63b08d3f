#!/usr/bin/env python3
"""One chat call after another over one keep-alive connection, and what each cost the server.

Sends N identical non-streaming chat completions (`gpt-4o-mini`, `max_tokens` 16) to BASE_URL
(a Sightline server's `/gateway/openai`, or any proxy or mock answering `/v1/chat/completions`
below it) and prints the median round trip. With `--pid` it also reads the CPU time of every
thread of that process from /proc before and after, and prints it per call, summed by thread
name (async workers, recorder, store writer, search indexer…), with the bytes the process had
written to disk per call. Only the Python standard library is used.

Usage:
  benches/sequential_calls.py http://127.0.0.1:4318/gateway/openai 5000 --pid "$(pgrep -f 'sightline serve')"
  benches/sequential_calls.py http://127.0.0.1:8090 5000
"""

import argparse
import os
import socket
import statistics
import sys
import time
from urllib.parse import urlparse

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'


def thread_cpu(pid):
    """CPU seconds (user + system) by thread name."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                # Fields after the parenthesised name; utime and stime are the 14th and 15th.
                rest = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        out[name] = out.get(name, 0.0) + (int(rest[11]) + int(rest[12])) / ticks
    return out


def written(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def read_response(sock):
    """Reads one HTTP/1.1 response with a Content-Length; returns its status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        sys.exit("the response has no Content-Length (this client reads only such responses)")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection mid-body")
        body += chunk
    return int(lines[0].split()[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base_url", help="base URL whose /v1/chat/completions answers")
    ap.add_argument("count", type=int, help="calls to send")
    ap.add_argument("--pid", type=int, help="server process whose CPU to report per call")
    ap.add_argument("--warmup", type=int, default=500, help="calls sent before measuring")
    args = ap.parse_args()

    url = urlparse(args.base_url)
    path = url.path.rstrip("/") + "/v1/chat/completions"
    request = (
        f"POST {path} HTTP/1.1\r\nhost: {url.netloc}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer sk-bench\r\ncontent-length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    sock = socket.create_connection((url.hostname, url.port or 80))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call():
        sock.sendall(request)
        status = read_response(sock)
        if status != 200:
            sys.exit(f"the server answered {status}")

    for _ in range(args.warmup):
        call()
    if args.pid:
        time.sleep(1)  # let the warm-up's recording settle
        cpu0, io0 = thread_cpu(args.pid), written(args.pid)
    times = []
    for _ in range(args.count):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    print(f"{args.count} calls, p50 {statistics.median(times) * 1e6:.1f} µs")
    if args.pid:
        time.sleep(1)  # recording is asynchronous: let it finish before the second reading
        cpu1, io1 = thread_cpu(args.pid), written(args.pid)
        for name in sorted(cpu1):
            spent = cpu1[name] - cpu0.get(name, 0.0)
            if spent > 0:
                print(f"  {name:<16} {spent / args.count * 1e6:6.1f} µs CPU per call")
        print(f"  written to disk  {(io1 - io0) / args.count / 1024:6.1f} KB per call")


if __name__ == "__main__":
    main()
