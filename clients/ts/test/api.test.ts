// The browser's REST calls against a loopback server: named parameters, paths and bodies,
// errors with the service's codes, retries of 429/503 honouring Retry-After, timeouts and
// aborts, and health answered whatever its status.
import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";

import { ApiError, createClient, type ErrorCode } from "../src/index.js";
import { retryAfter } from "../src/rest.js";
import { OWNER, TOKEN } from "./fakes.js";
import { LoopbackService } from "./server.js";

const service = new LoopbackService();
before(() => service.start());
after(() => service.stop());
beforeEach(() => (service.seen.length = 0));

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
const ok = (body: unknown) => ({ status: 200, body: JSON.stringify(body) });

test("createSession posts the request as JSON under the base URL's path", async () => {
  service.answer = () => ok(session);
  // No trailing slash on the base: the last segment is kept all the same.
  const client = createClient({ baseUrl: service.base });
  const view = await client.createSession({ chainId: 31337, owner: OWNER, customTokens: [TOKEN] });
  assert.equal(view.tokenCount, 1);
  assert.deepEqual(service.seen[0], {
    method: "POST",
    url: `/lambda-url/api/31337/sessions/${OWNER}`,
    contentType: "application/json",
    authorization: undefined,
    body: JSON.stringify({ customTokens: [TOKEN] }),
  });
  await client.addToSession({ chainId: 31337, owner: OWNER, customTokens: [TOKEN] });
  await client.getSession({ chainId: 31337, owner: OWNER });
  assert.deepEqual(
    service.seen.map((r) => r.method),
    ["POST", "PUT", "GET"],
  );
});

test("an error answer is an ApiError with the service's code, typed as the documented union", async () => {
  service.answer = () => ({ status: 404, body: '{"code":"session_not_found","message":"no live session"}' });
  const client = createClient({ baseUrl: service.base + "/" });
  await assert.rejects(client.getSession({ chainId: 1, owner: OWNER }), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 404);
    const code: ErrorCode = e.code;
    assert.equal(code, "session_not_found");
    return true;
  });
  service.answer = () => ({ status: 502, body: "<html>bad gateway</html>" });
  await assert.rejects(client.getSession({ chainId: 1, owner: OWNER }), (e: unknown) => e instanceof ApiError && e.code === "http_502");
});

test("getBalances reads many balances at once as bigints", async () => {
  const big = ((1n << 256n) - 1n).toString();
  const dead = "0x000000000000000000000000000000000000dead";
  service.answer = () =>
    ok({
      chainId: 1,
      owner: OWNER,
      balances: {
        [TOKEN]: { balance: big, blockNumber: 5, source: "table" },
        [dead]: { balance: null, blockNumber: 5, source: "chain" },
      },
    });
  const client = createClient({ baseUrl: service.base });
  const readings = await client.getBalances({ chainId: 1, owner: OWNER, tokens: [TOKEN, dead] });
  assert.equal(readings.get(TOKEN)?.balance, (1n << 256n) - 1n);
  assert.deepEqual(readings.get(dead), { balance: null, blockNumber: 5, source: "chain" });
  assert.equal(service.seen[0]?.url, `/lambda-url/api/1/balances/${OWNER}`);
  assert.deepEqual(JSON.parse(service.seen[0]?.body ?? ""), { tokens: [TOKEN, dead] });

  service.answer = () => ok({ address: TOKEN, owner: OWNER, balance: "12", blockNumber: 6, source: "chain" });
  assert.deepEqual(await client.getBalance({ chainId: 1, owner: OWNER, token: TOKEN }), {
    balance: 12n,
    blockNumber: 6,
    source: "chain",
  });
  assert.equal(service.seen[1]?.url, `/lambda-url/api/1/balance/${OWNER}/${TOKEN}`);
});

test("path parameters are encoded; the stream URL carries the resume position", () => {
  const client = createClient({ baseUrl: "https://example.test/prod/" });
  assert.equal(client.streamUrl({ chainId: 1, owner: OWNER }), `https://example.test/prod/sse/1/balances/${OWNER}`);
  assert.equal(
    client.streamUrl({ chainId: 1, owner: OWNER }, "000123"),
    `https://example.test/prod/sse/1/balances/${OWNER}?lastEventId=000123`,
  );
  assert.equal(client.streamUrl({ chainId: 1, owner: "0xa/b?c" }), "https://example.test/prod/sse/1/balances/0xa%2Fb%3Fc");
});

test("createSessions posts every pair to /sessions; the multi-wallet stream URL lists them", async () => {
  const result = { chainId: 31337, owner: OWNER, status: 503, error: { code: "session_busy", message: "try again" } };
  service.answer = () => ok({ wallets: [{ chainId: 1, owner: OWNER, session }, result] });
  const client = createClient({ baseUrl: service.base });
  const results = await client.createSessions([
    { chainId: 1, owner: OWNER, customTokens: [TOKEN] },
    { chainId: 31337, owner: OWNER, customTokens: [TOKEN] },
  ]);
  assert.equal(results[0]?.session?.tokenCount, 1);
  assert.equal(results[1]?.error?.code, "session_busy");
  assert.equal(service.seen[0]?.url, "/lambda-url/api/sessions");
  assert.equal(JSON.parse(service.seen[0]?.body ?? "").wallets[1].chainId, 31337);

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

test("429 and 503 are retried after the answer's Retry-After, up to the attempts allowed", async () => {
  const client = createClient({ baseUrl: service.base, retry: { attempts: 3, maxDelayMs: 2_000 } });
  const busy = { status: 503, body: '{"code":"session_busy","message":"again"}', headers: { "retry-after": "1" } };
  const limited = { status: 429, body: '{"code":"rate_limited","message":"slow down"}', headers: { "retry-after": "0" } };
  service.sequence(limited, busy, ok(session));
  const started = Date.now();
  const view = await client.createSession({ chainId: 31337, owner: OWNER, customTokens: [TOKEN] });
  assert.equal(view.tokenCount, 1);
  assert.equal(service.seen.length, 3, "two retries");
  assert.ok(Date.now() - started >= 1_000, "waited the second answer's Retry-After");

  // The last attempt's refusal is what the caller gets, with its Retry-After.
  service.seen.length = 0;
  service.sequence(limited);
  await assert.rejects(client.getSession({ chainId: 1, owner: OWNER }), (e: unknown) => {
    assert.ok(e instanceof ApiError && e.code === "rate_limited");
    assert.equal(e.retryAfterMs, 0);
    return true;
  });
  assert.equal(service.seen.length, 3);

  // A pause longer than the client allows is not waited for; other errors are never retried.
  service.seen.length = 0;
  service.sequence({ ...busy, headers: { "retry-after": "60" } });
  await assert.rejects(client.getSession({ chainId: 1, owner: OWNER }), (e: unknown) => e instanceof ApiError && e.retryAfterMs === 60_000);
  assert.equal(service.seen.length, 1);
  service.sequence({ status: 400, body: '{"code":"invalid_owner","message":"no"}' });
  await assert.rejects(client.getSession({ chainId: 1, owner: OWNER }));
  assert.equal(service.seen.length, 2);

  const once = createClient({ baseUrl: service.base, retry: false });
  service.seen.length = 0;
  service.sequence(limited, ok(session));
  await assert.rejects(once.getSession({ chainId: 1, owner: OWNER }));
  assert.equal(service.seen.length, 1, "retry: false never retries");
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  assert.equal(retryAfter("3"), 3_000);
  assert.equal(retryAfter(null), null);
  assert.equal(retryAfter("soon"), null);
  const now = Date.parse("2030-01-01T00:00:00Z");
  assert.equal(retryAfter("Tue, 01 Jan 2030 00:00:05 GMT", now), 5_000);
});

test("a call past its timeout rejects with a TimeoutError; an aborted one with the signal's reason", async () => {
  const client = createClient({ baseUrl: service.base, timeoutMs: 100 });
  service.answer = () => ({ ...ok(session), delayMs: 1_000 });
  await assert.rejects(client.getSession({ chainId: 1, owner: OWNER }), (e: unknown) => {
    assert.ok(e instanceof DOMException);
    assert.equal(e.name, "TimeoutError");
    return true;
  });
  // The call's own timeout wins over the client's.
  service.answer = () => ({ ...ok(session), delayMs: 200 });
  assert.equal((await client.getSession({ chainId: 1, owner: OWNER }, { timeoutMs: 2_000 })).tokenCount, 1);

  const controller = new AbortController();
  service.answer = () => ({ ...ok(session), delayMs: 1_000 });
  const call = client.getSession({ chainId: 1, owner: OWNER }, { signal: controller.signal, timeoutMs: 5_000 });
  setTimeout(() => controller.abort(new Error("user left")), 50);
  await assert.rejects(call, /user left/);
  await assert.rejects(
    client.getSession({ chainId: 1, owner: OWNER }, { signal: AbortSignal.abort() }),
    (e: unknown) => e instanceof DOMException && e.name === "AbortError",
  );

  // An abort also ends the pause before a retry.
  const retrying = createClient({ baseUrl: service.base, retry: { attempts: 5, maxDelayMs: 10_000 } });
  service.sequence({ status: 503, body: '{"code":"at_capacity","message":"full"}', headers: { "retry-after": "5" } });
  const waiting = new AbortController();
  const started = Date.now();
  const paused = retrying.getSession({ chainId: 1, owner: OWNER }, { signal: waiting.signal });
  setTimeout(() => waiting.abort(new Error("gave up")), 100);
  await assert.rejects(paused, /gave up/);
  assert.ok(Date.now() - started < 2_000, "the pause ended with the abort");
});

test("health answers its 503 as a report, not an error", async () => {
  const client = createClient({ baseUrl: service.base });
  const report = { ok: false, table: true, chains: [{ chainId: 1, ok: false, processedBlock: 5, heartbeatAgeSecs: 120 }] };
  service.answer = () => ({ status: 503, body: JSON.stringify(report) });
  assert.deepEqual(await client.health(), report);
  assert.equal(service.seen.length, 1, "not retried");
  assert.equal(service.seen[0]?.url, "/lambda-url/api/health");
});
