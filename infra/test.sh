#!/usr/bin/env bash
# `make test`: every check, cheapest first. Tools come from infra/install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"

echo "== contracts: committed artifacts match their Solidity sources"
SOLC_MODULE="$PWD/.tools/npm/node_modules/solc" node infra/contracts/compile.js >/dev/null
if ! git diff --quiet -- infra/contracts/build 2>/dev/null; then
  echo "infra/contracts/build is stale: run 'make contracts' and commit it" >&2
  exit 1
fi

echo "== template: cfn-lint and sam validate --lint"
./infra/template-check.sh

echo "== docs: the book builds, every link resolves, the error table matches the api's codes"
./infra/docs.sh

./infra/client.sh --check

echo "== cargo test: unit tests and end-to-end tests on the real local stack"
cargo test --workspace
