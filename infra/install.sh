#!/usr/bin/env bash
# Installs every tool the local stack and the tests need into .tools/ (git-ignored).
# Idempotent: each step checks for its result first, so a second run costs seconds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

# npm: DynamoDB Local (jar inside amplify-dynamodb-simulator), anvil, solc-js.
npm_dir="$tools/npm"
if [ ! -x "$npm_dir/node_modules/.bin/solcjs" ] \
  || [ ! -f "$npm_dir/node_modules/amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar" ] \
  || ! ls "$npm_dir"/node_modules/@foundry-rs/anvil-linux-*/bin/anvil >/dev/null 2>&1; then
  echo "install: npm packages -> $npm_dir"
  mkdir -p "$npm_dir"
  cp "$root/infra/npm/package.json" "$npm_dir/package.json"
  [ -f "$root/infra/npm/package-lock.json" ] && cp "$root/infra/npm/package-lock.json" "$npm_dir/"
  (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error)
fi

# PyPI: cargo-lambda (brings zig), cfn-lint and aws-sam-cli for offline template checks.
venv="$tools/venv"
if [ ! -x "$venv/bin/cargo-lambda" ] || [ ! -x "$venv/bin/cfn-lint" ] || [ ! -x "$venv/bin/sam" ]; then
  echo "install: PyPI packages -> $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/infra/requirements.txt"
fi

# Debian: Chromium and ChromeDriver for the browser test.
if [ "${SKIP_CHROMIUM:-0}" != 1 ] && { ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; }; then
  echo "install: chromium chromium-driver (apt)"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# The arm64 standard library, for `sam build` (cargo-lambda cross-compiles with zig).
if ! rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  echo "install: rust target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi
# npm: the client packages' toolchains (tsc, openapi-typescript, the OpenAPI validator, esbuild,
# publint, are-the-types-wrong, Vitest, React, Vite) — one npm workspace (clients/: the client,
# the React package, the example) installed from its lock file into the git-ignored
# clients/node_modules; a stamp of the lock file it was installed from makes a rerun free, and
# offline.
clients="$root/clients"
# Before the workspace the client had its own node_modules (or a link to one): left there, it
# would shadow the workspace's packages.
if [ -e "$clients/ts/node_modules" ] || [ -L "$clients/ts/node_modules" ]; then
  echo "install: removing clients/ts/node_modules (the workspace installs into clients/node_modules)"
  rm -rf "$clients/ts/node_modules"
fi
if ! cmp -s "$clients/package-lock.json" "$clients/node_modules/.installed-from-lock" 2>/dev/null; then
  echo "install: client toolchains -> clients/node_modules"
  (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$clients/package-lock.json" "$clients/node_modules/.installed-from-lock"
fi
# crates.io: mdBook for the book under docs/ (only the HTML renderer: no server, watcher or
# search index, so it compiles in about two minutes of CPU).
mdbook_version="0.5.4"
if [ "$("$tools/cargo/bin/mdbook" --version 2>/dev/null)" != "mdbook v$mdbook_version" ]; then
  echo "install: mdbook $mdbook_version -> $tools/cargo"
  cargo install --quiet --locked --no-default-features --root "$tools/cargo" "mdbook@$mdbook_version"
fi
echo "install: tools ready in $tools"
