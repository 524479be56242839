#!/usr/bin/env bash
# The client packages as a user installs them: `npm pack` of @live-balances/client and
# @live-balances/react, both tarballs installed into a fresh project (target/client-consumer,
# made anew each run) beside React and Vite, then, there: the React example builds (tsc, vite
# build), every TypeScript snippet of the READMEs and the book's client page type-checks (README.md,
# docs/src/client.md, clients/*/README.md;
# ambient names they use are declared in clients/consumer-prelude.d.ts), and Node.js imports
# every entry point as ESM, renders a hook on the server, and verifies a signed delivery.
# Run by `infra/client.sh --check` (so by `make test`); the registry packages come from npm's
# cache once fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pack=$root/target/client-pack
project=$root/target/client-consumer
rm -rf "$pack" "$project"
mkdir -p "$pack" "$project"

echo "== consumer: npm pack"
(cd clients && npm pack --silent --pack-destination "$pack" -w @live-balances/client -w @live-balances/react >/dev/null)
tarballs=("$pack"/*.tgz)
[ "${#tarballs[@]}" -eq 2 ] || { echo "expected two tarballs in $pack" >&2; exit 1; }

echo "== consumer: a fresh project installs both tarballs"
cp -r clients/example/index.html clients/example/src clients/example/vite.config.ts \
  clients/example/tsconfig.json clients/example/package.json "$project/"
# The snippets also use TanStack Query and Node's types; the versions the workspace locks.
query=$(node -p 'require("./clients/node_modules/@tanstack/query-core/package.json").version')
node_types=$(node -p 'require("./clients/node_modules/@types/node/package.json").version')
(cd "$project" && npm install --no-audit --no-fund --prefer-offline --loglevel=error \
  "${tarballs[@]}" "@tanstack/react-query@$query" "@types/node@$node_types")

echo "== consumer: the README snippets type-check"
mkdir -p "$project/snippets"
cp clients/consumer-prelude.d.ts "$project/snippets/prelude.d.ts"
node - "$project/snippets" README.md docs/src/client.md clients/ts/README.md clients/react/README.md <<'JS'
// Every ```ts / ```tsx block of the given Markdown files, one module each.
const fs = require("node:fs");
const [dir, ...files] = process.argv.slice(2);
let n = 0;
for (const file of files) {
  const text = fs.readFileSync(file, "utf8");
  for (const match of text.matchAll(/^```(ts|tsx)\n([\s\S]*?)^```$/gm)) {
    n += 1;
    const name = `${String(n).padStart(2, "0")}-${file.replace(/[^a-z]+/gi, "-")}.tsx`;
    fs.writeFileSync(`${dir}/${name}`, `// from ${file}\n${match[2]}\nexport {};\n`);
  }
}
if (n === 0) throw new Error("no TypeScript snippets found");
console.log(`${n} snippets`);
JS
cat >"$project/tsconfig.snippets.json" <<'JSON'
{
  "extends": "./tsconfig.json",
  "compilerOptions": { "types": ["node"], "noUnusedLocals": false },
  "include": ["snippets"]
}
JSON
(cd "$project" && npx tsc -p tsconfig.snippets.json)

echo "== consumer: the React example builds from the tarballs"
(cd "$project" && npx tsc --noEmit && npx vite build --logLevel warn)

echo "== consumer: Node.js imports every entry as ESM, renders on the server, verifies a delivery"
(cd "$project" && node --input-type=module - <<'JS'
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createElement } from "react";
import { renderToString } from "react-dom/server";
import { createClient, NATIVE_TOKEN } from "@live-balances/client";
import { createBackendClient, DeliveryVerifier } from "@live-balances/client/backend";
import { LiveBalancesProvider, useBalance } from "@live-balances/react";
import { liveBalancesKeys } from "@live-balances/react/query";

const owner = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const client = createClient({ baseUrl: "https://api.example.com/" });
function Balance() {
  const { data, status } = useBalance({ chainId: 1, owner, token: NATIVE_TOKEN });
  return createElement("p", null, `${status}:${data ?? "-"}`);
}
const html = renderToString(createElement(LiveBalancesProvider, { client }, createElement(Balance)));
assert.equal(html, "<p>connecting:-</p>");
assert.ok(createBackendClient({ baseUrl: "https://api.example.com/", apiKey: "k" }));
assert.deepEqual(liveBalancesKeys.wallet({ chainId: 1, owner }), ["live-balances", 1, owner]);

const key = Buffer.from("consumer-test-secret-key-32bytes");
const body = JSON.stringify({ id: "1", type: "balance_update", subscriptionId: "s", chainId: 1, owner,
  data: { address: NATIVE_TOKEN, balance: "2", previousBalance: "1", blockNumber: 3, txHash: null } });
const ts = Math.floor(Date.now() / 1000);
const signature = "v1," + createHmac("sha256", key).update(`1.${ts}.${body}`).digest("base64");
const delivery = new DeliveryVerifier("whsec_" + key.toString("base64"))
  .verify(body, { "webhook-id": "1", "webhook-timestamp": String(ts), "webhook-signature": signature });
assert.equal(delivery.event?.type === "balance_update" && delivery.event.balance, 2n);
console.log("ESM entries, server rendering and delivery verification: ok");
JS
)
