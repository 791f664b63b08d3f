#!/usr/bin/env bash
# Runs every Sightline test: formatting, lints, Rust unit/integration tests (cargo-nextest), and the
# end-to-end suite in which real OpenTelemetry Python clients talk to the real binary.
# Installs what the tests need (Python packages into tests/e2e/.venv) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are cached outside the clone so repeated runs (and CI on the same machine) stay fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sightline/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build"
cargo build --workspace --all-targets --locked

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "end-to-end tests (real OpenTelemetry Python SDKs against the sightline binary)"
SIGHTLINE_BIN="$CARGO_TARGET_DIR/debug/sightline" \
  tests/e2e/.venv/bin/python -m pytest tests/e2e -q
