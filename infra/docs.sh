#!/usr/bin/env bash
# The book under docs/: built with mdBook (installed by infra/install.sh), then every link of
# the built pages checked and the error table checked against the api's codes
# (infra/docs_links.py). The configuration page is held to the code by a unit test of core
# (core/src/config/page.rs), which `cargo test` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
mdbook="$PWD/.tools/cargo/bin/mdbook"
[ -x "$mdbook" ] || { echo "docs: no $mdbook — run 'make install'" >&2; exit 1; }
out="$PWD/target/book"
rm -rf "$out"
log="$(mktemp)"
if ! "$mdbook" build docs --dest-dir "$out" >"$log" 2>&1; then cat "$log" >&2; exit 1; fi
python3 infra/docs_links.py "$out" docs/src
echo "docs: the book builds and every link resolves ($out)"
