#!/usr/bin/env bash
# Regenerates the web UI's TypeScript types (ui/src/api/generated/) from the Rust response structs
# with ts-rs. `cargo test -p sightline-ui` fails while the committed files are out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
SIGHTLINE_UPDATE_UI_TYPES=1 cargo test -p sightline-serve --features ts --test ts_bindings --locked -q
echo "gen-ui-types: ui/src/api/generated is current"
