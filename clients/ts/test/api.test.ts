import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";

import { ApiError, createClient } from "../src/index.js";
import { OWNER, TOKEN } from "./fakes.js";

// A real HTTP server on loopback answering as the service would, so requests go through the
// real fetch: methods, paths, headers and bodies are what the service receives.
interface Seen {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}
const seen: Seen[] = [];
let answer: (req: Seen) => { status: number; body: string } = () => ({ status: 500, body: "" });
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  let body = "";
  req.on("data", (chunk: Buffer) => (body += chunk.toString()));
  req.on("end", () => {
    const request = { method: req.method ?? "", url: req.url ?? "", contentType: req.headers["content-type"], body };
    seen.push(request);
    const { status, body: reply } = answer(request);
    res.writeHead(status, { "content-type": "application/json" }).end(reply);
  });
});
let base = "";

before(async () => {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/lambda-url/api`;
});
after(() => server.close());

const session = {
  chainId: 31337,
  owner: OWNER,
  tokens: [TOKEN],
  tokenCount: 1,
  spenders: [],
  tokensListsUrls: [],
  expiresAt: 1,
  blockNumber: 3,
  metadata: {},
};

test("createSession posts the request as JSON under the base URL's path", async () => {
  seen.length = 0;
  answer = () => ({ status: 200, body: JSON.stringify(session) });
  // No trailing slash on the base: the last segment is kept all the same.
  const client = createClient({ baseUrl: base });
  const view = await client.createSession(31337, OWNER, { customTokens: [TOKEN] });
  assert.equal(view.tokenCount, 1);
  assert.deepEqual(seen[0], {
    method: "POST",
    url: `/lambda-url/api/31337/sessions/${OWNER}`,
    contentType: "application/json",
    body: JSON.stringify({ customTokens: [TOKEN] }),
  });
  await client.addToSession(31337, OWNER, { customTokens: [TOKEN] });
  await client.getSession(31337, OWNER);
  assert.deepEqual(
    seen.map((r) => r.method),
    ["POST", "PUT", "GET"],
  );
});

test("an error answer is an ApiError with the service's code", async () => {
  answer = () => ({ status: 404, body: '{"code":"session_not_found","message":"no live session"}' });
  const client = createClient({ baseUrl: base + "/" });
  await assert.rejects(client.getSession(1, OWNER), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 404);
    assert.equal(e.code, "session_not_found");
    return true;
  });
  answer = () => ({ status: 502, body: "<html>bad gateway</html>" });
  await assert.rejects(client.getSession(1, OWNER), (e: unknown) => e instanceof ApiError && e.code === "http_502");
});

test("getBalances reads many balances at once as bigints", async () => {
  seen.length = 0;
  const big = ((1n << 256n) - 1n).toString();
  answer = () => ({
    status: 200,
    body: JSON.stringify({
      chainId: 1,
      owner: OWNER,
      balances: {
        [TOKEN]: { balance: big, blockNumber: 5, source: "table" },
        "0xdead": { balance: null, blockNumber: 5, source: "chain" },
      },
    }),
  });
  const client = createClient({ baseUrl: base });
  const readings = await client.getBalances(1, OWNER, [TOKEN, "0xdead"]);
  assert.equal(readings.get(TOKEN)?.balance, (1n << 256n) - 1n);
  assert.deepEqual(readings.get("0xdead"), { balance: null, blockNumber: 5, source: "chain" });
  assert.equal(seen[0]?.url, `/lambda-url/api/1/balances/${OWNER}`);
  assert.deepEqual(JSON.parse(seen[0]?.body ?? ""), { tokens: [TOKEN, "0xdead"] });

  answer = () => ({ status: 200, body: JSON.stringify({ address: TOKEN, owner: OWNER, balance: "12", blockNumber: 6, source: "chain" }) });
  assert.deepEqual(await client.getBalance(1, OWNER, TOKEN), { balance: 12n, blockNumber: 6, source: "chain" });
  assert.equal(seen[1]?.url, `/lambda-url/api/1/balance/${OWNER}/${TOKEN}`);
});

test("path parameters are encoded; the stream URL carries the resume position", () => {
  const client = createClient({ baseUrl: "https://example.test/prod/" });
  assert.equal(client.streamUrl(1, OWNER), `https://example.test/prod/sse/1/balances/${OWNER}`);
  assert.equal(client.streamUrl(1, OWNER, "000123"), `https://example.test/prod/sse/1/balances/${OWNER}?lastEventId=000123`);
  assert.equal(client.streamUrl(1, "a/b?c"), "https://example.test/prod/sse/1/balances/a%2Fb%3Fc");
});

test("createSessions posts every pair to /sessions; the multi-wallet stream URL lists them", async () => {
  seen.length = 0;
  const result = { chainId: 31337, owner: OWNER, status: 503, error: { code: "session_busy", message: "try again" } };
  answer = () => ({ status: 200, body: JSON.stringify({ wallets: [{ chainId: 1, owner: OWNER, session }, result] }) });
  const client = createClient({ baseUrl: base });
  const results = await client.createSessions([
    { chainId: 1, owner: OWNER, customTokens: [TOKEN] },
    { chainId: 31337, owner: OWNER, customTokens: [TOKEN] },
  ]);
  assert.equal(results[0]?.session?.tokenCount, 1);
  assert.equal(results[1]?.error?.code, "session_busy");
  assert.equal(seen[0]?.url, "/lambda-url/api/sessions");
  assert.equal(JSON.parse(seen[0]?.body ?? "").wallets[1].chainId, 31337);

  const remote = createClient({ baseUrl: "https://example.test/prod/" });
  const pairs = [
    { chainId: 1, owner: OWNER },
    { chainId: 42161, owner: OWNER },
  ];
  const url = new URL(remote.manyStreamUrl(pairs, "m1.0badf00d.1.2"));
  assert.equal(url.pathname, "/prod/sse/balances");
  assert.equal(url.searchParams.get("wallets"), `1:${OWNER},42161:${OWNER}`);
  assert.equal(url.searchParams.get("lastEventId"), "m1.0badf00d.1.2");
});
