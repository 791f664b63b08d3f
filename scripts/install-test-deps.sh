#!/usr/bin/env bash
# Installs what the end-to-end tests and the fixture recorder need: a Python virtual environment at
# tests/e2e/.venv holding exactly the pinned packages of tests/e2e/requirements.txt.
#
# Idempotent and quick to re-run: the venv remembers the hash of the requirements file (and of the
# interpreter) it was built from, and nothing is done while both still match; otherwise it is
# rebuilt. Downloads are cached
# outside the clone (PIP_CACHE_DIR, default ~/.cache/sightline/pip). PYTHON picks the interpreter
# (default python3, 3.9 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=tests/e2e/.venv
REQUIREMENTS=tests/e2e/requirements.txt
STAMP="$VENV/.requirements.sha256"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "install-test-deps: $PYTHON not found; install Python 3.9+ or set PYTHON" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
  echo "install-test-deps: $PYTHON is $("$PYTHON" --version 2>&1); Python 3.9+ is required" >&2
  exit 1
fi

# `cargo build` builds the web UI (crates/ui/build.rs), which needs Node.js 18+ and npm.
if ! command -v npm >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: installing nodejs and npm (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "install-test-deps: npm is missing; install Node.js 18+ and npm (as root: apt-get install nodejs npm)" >&2
    exit 1
  fi
fi

# The web UI tests drive Debian's Chromium with Playwright (Playwright's own browser download is
# never used). Installed with apt when missing; needs root, as in CI.
if [[ ! -x /usr/bin/chromium ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: installing chromium (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "install-test-deps: /usr/bin/chromium is missing; install Debian's chromium package (as root: apt-get install chromium)" >&2
    exit 1
  fi
fi

# Prometheus (Debian package) for tests/e2e/test_prometheus.py, which starts it on loopback to
# scrape Sightline. Skipped when a `prometheus` binary is already on PATH.
if ! command -v prometheus >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: installing prometheus (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "install-test-deps: prometheus not found; install the Debian package 'prometheus' as root" >&2
  fi
fi

want="$({ cat "$REQUIREMENTS"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
  && "$VENV/bin/python" -c 'import pytest, opentelemetry.sdk' 2>/dev/null; then
  echo "install-test-deps: $VENV is up to date"
  exit 0
fi

# Anything else (first run, changed pins, another interpreter, a broken venv) rebuilds from
# scratch, so packages dropped from the requirements do not linger.
rm -rf "$VENV"
if ! "$PYTHON" -m venv "$VENV"; then
  echo "install-test-deps: '$PYTHON -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
  exit 1
fi

export PIP_CACHE_DIR="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sightline/pip}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
echo "install-test-deps: installing $REQUIREMENTS into $VENV"
"$VENV/bin/python" -m pip install --quiet --require-virtualenv -r "$REQUIREMENTS"
"$VENV/bin/python" -m pip check
echo "$want" > "$STAMP"
echo "install-test-deps: done"
