#!/usr/bin/env bash
# Web UI timings in Debian's headless Chromium (benches/ui_bench.py): opening a 5,000-span trace
# against a 10-span baseline, and the traces page, on a store of any size.
#
# Environment:
#   DATA_DIR       serve this data directory; it is COPIED first (the bench adds two traces), so
#                  a store filled by `SPANS=… benches/query.sh` can be reused untouched
#                  (default: an empty store)
#   IN_PLACE=1     serve DATA_DIR itself instead of a copy (for stores too big to copy; the two
#                  bench traces stay in it)
#   RUNS           page loads per view                           (default 5)
#   SIGHTLINE_BIN  use this binary instead of building the release one
#
# Needs tests/e2e/.venv (scripts/install-test-deps.sh) and /usr/bin/chromium.
# Usage: DATA_DIR=/tmp/sightline-bench-query-1000000 benches/ui.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

RUNS="${RUNS:-5}"
sightline_bin
machine_notes
bench_tmpdir ui
work="$BENCH_TMP"
data="$work/data"
if [ -n "${DATA_DIR:-}" ] && [ -n "${IN_PLACE:-}" ]; then
    data="$DATA_DIR"
elif [ -n "${DATA_DIR:-}" ]; then
    log "copying $DATA_DIR ($(dir_size "$DATA_DIR"))"
    cp -r "$DATA_DIR" "$data"
fi
mkdir -p "$data"
start_sightline "$data" "$work/serve.log"
echo "store: $(dir_size "$data")"
if [ -n "${DATA_DIR:-}" ] && [ -f "$DATA_DIR.fill.json" ]; then
    echo "filled with: $(jq -r '"\(.spans.acked) spans in \(.traces_acked) traces"' "$DATA_DIR.fill.json")"
fi
"$REPO_ROOT/tests/e2e/.venv/bin/python" "$REPO_ROOT/benches/ui_bench.py" "$SL_HTTP" "$RUNS"
stop_sightline
