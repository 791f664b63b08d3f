#!/usr/bin/env python3
"""A stand-in for recording: CPU work in proportion to the calls a plain proxy forwards.

`benches/gateway_peers.sh` runs it beside nginx (peer `nginx+US`) to answer one question: what
does background work of US µs of CPU per proxied call do to a proxy's added latency on this
machine, when that proxy itself costs nearly nothing? It is what recording does in Sightline,
reduced to its CPU: every 2 ms (the interval at which Sightline's recorder looks at its queue)
it reads how many calls nginx has logged since the last look (the access log has one 2-byte
line per call) and burns US µs of CPU for each, on one thread, at the priority it is started
with (the script starts it with `nice -n 19`, the recorder's).

Its own cost (waking 500 times a second, one `stat` each) is counted in the proxy's CPU by the
script, as the burn is.

Usage: benches/recording_standin.py ACCESS_LOG US_PER_CALL
"""

import os
import sys
import time

LINE_BYTES = 2  # nginx's `log_format calls "1";` writes "1\n" per request
INTERVAL_S = 0.002


def main():
    path, us = sys.argv[1], float(sys.argv[2])
    seen = 0
    while True:
        time.sleep(INTERVAL_S)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            continue
        calls = (size - seen) // LINE_BYTES
        if calls <= 0:
            continue
        seen += calls * LINE_BYTES
        # CPU time, not wall time: a burn that is preempted resumes where it stopped.
        end = time.thread_time() + calls * us / 1e6
        while time.thread_time() < end:
            pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
