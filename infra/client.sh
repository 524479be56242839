#!/usr/bin/env bash
# `make client`: the client packages (clients/: the npm workspace of @live-balances/client,
# @live-balances/react and the React example) brought up to date with the api. The OpenAPI
# document is printed by the api's `openapi` binary, validated against the OpenAPI 3.1 schema,
# turned into TypeScript types (openapi-typescript), the packages compiled (tsc) and the client
# bundled for the demo page (esbuild, into functions/api/static/, embedded in the api at compile
# time). Run it after changing a route, a wire type or an error code, and commit what it changed.
# `--check` (from `make test`): the same, then fails if any of it differs from what is
# committed, and checks the packages as their users get them: both packages' unit tests,
# publint, are-the-types-wrong, the size budgets, and the packed tarballs installed into a fresh
# project (infra/client-consumer.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
client=clients/ts
generated=("$client/openapi.json" "$client/src/schema.ts" functions/api/static/live-balances.js)

echo "== client: the OpenAPI document (cargo run -p api --bin openapi)"
cargo run -q -p api --bin openapi >"$client/openapi.json"
echo "== client: validated against the OpenAPI 3.1 schema (@seriousme/openapi-schema-validator)"
if ! (cd "$client" && npm run -s validate); then
  echo "the api's OpenAPI document is invalid (see above): fix the #[utoipa::path] or schema derive" >&2
  exit 1
fi
echo "== client: types (openapi-typescript), build (tsc), demo bundle (esbuild)"
(cd "$client" && npm run -s generate >/dev/null && npm run -s build && npm run -s bundle)

if [ "${1:-}" = --check ]; then
  if ! git diff --quiet -- "${generated[@]}" || [ -n "$(git ls-files --others --exclude-standard -- "${generated[@]}")" ]; then
    git --no-pager diff --stat -- "${generated[@]}" >&2
    echo "the TypeScript client is out of date with the api: run 'make client' and commit the result" >&2
    exit 1
  fi
  echo "== clients: unit tests (node --test; Vitest)"
  (cd clients && npm test --silent)
  echo "== clients: the packages as published (publint, are-the-types-wrong, size budgets)"
  (cd clients && npm run -s build -w @live-balances/react && npm run -s check:packages)
  ./infra/client-consumer.sh
fi
