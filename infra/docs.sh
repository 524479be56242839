#!/usr/bin/env bash
# The book under docs/: built with mdBook (installed by infra/install.sh), then every link of
# the built pages checked (infra/docs_links.py) and the configuration page checked against the
# variables the code reads (`cargo run -p live-balances --bin config-variables`).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/target/book"
rm -rf "$out"
log="$(mktemp)"
if ! "$PWD/.tools/cargo/bin/mdbook" build docs --dest-dir "$out" >"$log" 2>&1; then cat "$log" >&2; exit 1; fi
python3 infra/docs_links.py "$out" docs/src
echo "docs: the book builds and every link resolves ($out)"
