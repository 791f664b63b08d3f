#!/usr/bin/env python3
"""Which tables and indexes the store's commits write: the pages in sightline.db-wal, by B-tree.

Every commit appends each page it changed to the write-ahead log, whole (8 KB), and a checkpoint
writes it again into the database. So the frames still in the log after a load say where the
writer's I/O goes. Stop the server with SIGKILL right after the load (a clean stop checkpoints and
empties the log), then:

    benches/wal_pages.py DATA_DIR

The log is parsed before the database is opened (opening it would replay the log). Pages are
named with SQLite's dbstat table; a page the log has but the database does not (freed, or past
its end) counts as "(unmapped)".
"""

import collections
import os
import shutil
import sqlite3
import struct
import sys
import tempfile

WAL_HEADER = 32
FRAME_HEADER = 24


def frames(wal: bytes):
    """(page number, is-commit) of every frame in a WAL file."""
    if len(wal) < WAL_HEADER:
        return []
    page_size = struct.unpack(">I", wal[8:12])[0]
    out, off = [], WAL_HEADER
    while off + FRAME_HEADER + page_size <= len(wal):
        page, db_size = struct.unpack(">II", wal[off : off + 8])
        out.append((page, db_size != 0))
        off += FRAME_HEADER + page_size
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    data_dir = sys.argv[1]
    db = os.path.join(data_dir, "sightline.db")
    with open(db + "-wal", "rb") as f:
        log = frames(f.read())
    if not log:
        print("the write-ahead log is empty: stop the server with SIGKILL right after the load")
        return 1
    # A copy, so that the data directory is left as it was (opening replays the log).
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal"):
            shutil.copy(db + suffix, os.path.join(tmp, "db" + suffix))
        conn = sqlite3.connect(os.path.join(tmp, "db"))
        owner = dict((p, n) for n, p in conn.execute("SELECT name, pageno FROM dbstat"))
        conn.close()
    counts = collections.Counter(owner.get(page, "(unmapped)") for page, _ in log)
    commits = sum(1 for _, commit in log if commit)
    print(f"{len(log)} frames in {commits} commits ({len(log) / max(commits, 1):.0f} pages each)")
    print(f"{'b-tree':32} {'frames':>7} {'share':>6}")
    for name, n in counts.most_common():
        print(f"{name:32} {n:7} {100 * n / len(log):5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
