// One tab's stream: snapshot and updates, the ping watchdog, resume by id, retries after a
// refusal with the session created again, the polling fallback, and the pause when hidden.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";

import { createClient, type BalanceEvent, type StreamStatus, type WatchOptions } from "../src/index.js";
import { FakeEventSource, OWNER, TOKEN, snapshotData, tab, updateData } from "./fakes.js";

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Recorded {
  events: BalanceEvent[];
  statuses: StreamStatus[];
  requests: string[];
}

/**
 * A scripted fetch: the session exists until `sessionGone`, then GET answers 404; the batch
 * balance route answers `balance`.
 */
function service(): { fetch: typeof fetch; requests: string[]; bodies: string[]; sessionGone: boolean; balance: string } {
  const state = {
    requests: [] as string[],
    bodies: [] as string[],
    sessionGone: false,
    balance: "0",
    fetch: (async (input: URL | RequestInfo, init?: RequestInit) => {
      const method = init?.method ?? "GET";
      const path = new URL(String(input)).pathname;
      state.requests.push(`${method} ${path}`);
      state.bodies.push(typeof init?.body === "string" ? init.body : "");
      if (method === "GET" && state.sessionGone) {
        return new Response('{"code":"session_not_found","message":"none"}', { status: 404 });
      }
      if (path.includes("/balances/")) {
        const balances = { [TOKEN]: { balance: state.balance, blockNumber: 40, source: "table" } };
        return new Response(JSON.stringify({ chainId: 31337, owner: OWNER, balances }), { status: 200 });
      }
      if (method === "POST") state.sessionGone = false;
      const metadata = { [TOKEN]: { symbol: "TT", name: "Test", decimals: 6 } };
      return new Response(JSON.stringify({ tokens: [TOKEN], spenders: [], metadata }), { status: 200 });
    }) as typeof fetch,
  };
  return state;
}

function watch(options: WatchOptions = {}) {
  const api = service();
  const recorded: Recorded = { events: [], statuses: [], requests: api.requests };
  const environment = tab(undefined);
  const client = createClient({ baseUrl: "http://127.0.0.1:9000/lambda-url/api/", fetch: api.fetch });
  const watch = client.watchBalances({
    chainId: 31337,
    owner: OWNER,
    environment,
    onEvent: (e) => recorded.events.push(e),
    onStatus: (s) => recorded.statuses.push(s),
    ...options,
  });
  return { watch, recorded, api, document: environment.document };
}

beforeEach(() => {
  FakeEventSource.reset();
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 1_000_000 });
});
afterEach(() => mock.timers.reset());

test("a snapshot, then updates in order, with amounts as bigint", async () => {
  const { watch, recorded } = watch0();
  await flush();
  const source = FakeEventSource.latest();
  assert.equal(source.url, `http://127.0.0.1:9000/lambda-url/api/sse/31337/balances/${OWNER}`);
  source.open();
  assert.equal(watch.status, "connecting", "live only once the snapshot came");
  source.send("all_balances", snapshotData("1500000"), "5");
  source.send("balance_update", updateData("1750000", "1500000", 11), "6");
  source.send("something_new", { a: 1 }, "7");
  assert.equal(watch.status, "live");
  assert.deepEqual(
    recorded.events.map((e) => [e.type, e.lastEventId]),
    [
      ["all_balances", "5"],
      ["balance_update", "6"],
    ],
  );
  const update = recorded.events[1];
  assert.ok(update?.type === "balance_update");
  assert.equal(update.balance, 1_750_000n);
  assert.equal(watch.current()?.balances.get(TOKEN), 1_750_000n);
  assert.equal(watch.role, "leader", "alone, a tab leads");
  watch.close();
  assert.equal(source.closed, true);
  assert.equal(watch.status, "closed");
});

function watch0(options: WatchOptions = {}) {
  return watch({ share: false, ...options });
}

test("a silent stream is replaced after two ping periods, resuming after the last id seen", async () => {
  const { watch, recorded } = watch0();
  await flush();
  const first = FakeEventSource.latest();
  first.open();
  first.send("all_balances", snapshotData("1"), "5");
  first.send("ping", { time: 1 });
  mock.timers.tick(2_000);
  first.send("ping", { time: 3 });
  // Old news skipped by the server moves the id with an id-only frame; the next ping shows it.
  first.idOnly("9");
  mock.timers.tick(2_000);
  first.send("ping", { time: 5 });
  mock.timers.tick(4_000);
  assert.equal(FakeEventSource.all.length, 1, "not yet: four seconds of silence is the limit");
  mock.timers.tick(1_000);
  assert.equal(first.closed, true);
  const second = FakeEventSource.latest();
  assert.notEqual(second, first);
  assert.ok(second.url.endsWith("?lastEventId=9"), second.url);
  assert.equal(watch.status, "reconnecting");
  second.open();
  assert.equal(watch.status, "live", "a resumed stream is live once open");
  second.send("balance_update", updateData("2", "1", 12), "10");
  assert.deepEqual(recorded.statuses, ["live", "reconnecting", "live"]);
  watch.close();
});

test("a refused stream is retried with backoff, and the session created again when it is gone", async () => {
  const { watch, recorded, api } = watch0({ session: { customTokens: [TOKEN] } });
  await flush();
  assert.deepEqual(recorded.requests, [`POST /lambda-url/api/31337/sessions/${OWNER}`]);
  const first = FakeEventSource.latest();
  first.open();
  first.send("all_balances", snapshotData("1"), "5");
  // The session expired (say, the page slept): the stream answers 404, EventSource gives up.
  api.sessionGone = true;
  first.fail(true);
  assert.equal(watch.status, "reconnecting");
  mock.timers.tick(999);
  await flush();
  assert.equal(FakeEventSource.all.length, 1);
  mock.timers.tick(1);
  for (let i = 0; i < 5; i++) await flush();
  assert.deepEqual(recorded.requests.slice(1), [
    `GET /lambda-url/api/31337/sessions/${OWNER}`,
    `POST /lambda-url/api/31337/sessions/${OWNER}`,
  ]);
  const second = FakeEventSource.latest();
  assert.notEqual(second, first);
  assert.ok(second.url.endsWith("?lastEventId=5"));
  // Refused again: the next try waits twice as long.
  second.fail(true);
  mock.timers.tick(1_999);
  for (let i = 0; i < 5; i++) await flush();
  assert.equal(FakeEventSource.latest(), second);
  mock.timers.tick(1);
  for (let i = 0; i < 5; i++) await flush();
  assert.notEqual(FakeEventSource.latest(), second);
  watch.close();
});

test("no snapshot within 20 s: the fallback runs until the stream is live", async () => {
  let started = 0;
  let stopped = 0;
  const { watch } = watch0({
    fallback: () => {
      started += 1;
      return () => (stopped += 1);
    },
  });
  await flush();
  const source = FakeEventSource.latest();
  source.open();
  mock.timers.tick(19_000);
  assert.equal(started, 0);
  mock.timers.tick(1_000);
  assert.equal(watch.status, "fallback");
  assert.equal(started, 1);
  mock.timers.tick(10_000);
  assert.equal(started, 1, "started once");
  source.send("all_balances", snapshotData("1"), "5");
  assert.equal(watch.status, "live");
  assert.equal(stopped, 1);
  watch.close();
});

test("hidden for pauseWhenHiddenMs closes the stream; shown again it resumes", async () => {
  const { watch, document } = watch0({ pauseWhenHiddenMs: 30_000, pingTimeoutMs: 3_600_000 });
  await flush();
  const first = FakeEventSource.latest();
  first.open();
  first.send("all_balances", snapshotData("1"), "5");
  document.set("hidden");
  mock.timers.tick(29_000);
  assert.equal(first.closed, false);
  document.set("visible");
  document.set("hidden");
  mock.timers.tick(29_000);
  assert.equal(first.closed, false, "the clock restarts when the page is shown");
  mock.timers.tick(1_000);
  assert.equal(first.closed, true);
  assert.equal(watch.status, "paused");
  mock.timers.tick(600_000);
  assert.equal(FakeEventSource.all.length, 1, "no reconnect, no fallback while paused");
  document.set("visible");
  const second = FakeEventSource.latest();
  assert.ok(second.url.endsWith("?lastEventId=5"));
  watch.close();
});

test("server error events reach the caller; a throwing callback breaks nothing", async () => {
  const errors: unknown[] = [];
  const { watch, recorded } = watch0({
    onEvent: (e) => {
      recorded.events.push(e);
      throw new Error("caller bug");
    },
    onError: (e) => errors.push(e),
  });
  await flush();
  const source = FakeEventSource.latest();
  source.open();
  source.send("all_balances", snapshotData("1"), "5");
  source.send("balance_update", "not json", "6");
  source.send("error", { code: "session_expired", message: "create it again" });
  assert.deepEqual(
    recorded.events.map((e) => e.type),
    ["all_balances", "error"],
  );
  assert.equal(errors.length, 3, "two callback errors and the unreadable event");
  watch.close();
});

test("subscribe hears every change; current() is one object until the values change", async () => {
  const { watch } = watch0();
  let calls = 0;
  const unsubscribe = watch.subscribe(() => (calls += 1));
  await flush();
  const source = FakeEventSource.latest();
  source.open();
  source.send("all_balances", snapshotData("1"), "5");
  assert.ok(calls >= 2, "the snapshot and the status");
  const first = watch.current();
  assert.ok(first);
  source.send("ping", { time: 1 });
  assert.equal(watch.current(), first, "a ping changes nothing");
  const before = calls;
  source.send("balance_update", updateData("2", "1", 12), "6");
  assert.equal(calls, before + 1);
  const second = watch.current();
  assert.notEqual(second, first);
  assert.equal(second?.balances.get(TOKEN), 2n);
  assert.equal(first.balances.get(TOKEN), 1n, "a snapshot given out never changes");
  unsubscribe();
  source.send("balance_update", updateData("3", "2", 13), "7");
  assert.equal(calls, before + 1, "unsubscribed");
  watch.close();
});

test("addSession adds to the session, and a recreated session carries every request", async () => {
  const { watch, api } = watch0({ session: { customTokens: [TOKEN] } });
  await flush();
  const other = "0x00000000000000000000000000000000000000aa";
  await watch.addSession({ customTokens: [other] });
  await watch.addSession({ customTokens: [other] });
  const posts = api.requests.filter((r) => r.startsWith("POST"));
  assert.equal(posts.length, 3, "the first request, then one per addSession call");
  const first = FakeEventSource.latest();
  first.open();
  first.send("all_balances", snapshotData("1"), "5");
  api.sessionGone = true;
  api.requests.length = 0;
  api.bodies.length = 0;
  first.fail(true);
  mock.timers.tick(1_000);
  for (let i = 0; i < 8; i++) await flush();
  assert.deepEqual(api.requests, [
    `GET /lambda-url/api/31337/sessions/${OWNER}`,
    `POST /lambda-url/api/31337/sessions/${OWNER}`,
    `POST /lambda-url/api/31337/sessions/${OWNER}`,
  ]);
  assert.deepEqual(api.bodies.slice(1).map((b) => JSON.parse(b)), [{ customTokens: [TOKEN] }, { customTokens: [other] }]);
  watch.close();
});

test("the polling fallback reads the batch route while no stream is live, and stops once one is", async () => {
  const { watch, recorded, api } = watch0({ session: { customTokens: [TOKEN] }, fallback: { pollEveryMs: 5_000 } });
  api.balance = "1500000";
  await flush();
  const source = FakeEventSource.latest();
  source.open();
  mock.timers.tick(20_000);
  for (let i = 0; i < 8; i++) await flush();
  assert.equal(watch.status, "fallback");
  // No snapshot yet: the session's tokens are read, and the first reading is a snapshot.
  assert.deepEqual(api.requests.slice(1), [
    `GET /lambda-url/api/31337/sessions/${OWNER}`,
    `POST /lambda-url/api/31337/balances/${OWNER}`,
  ]);
  const polled = recorded.events.at(-1);
  assert.ok(polled?.type === "all_balances" && polled.polled === true);
  assert.equal(polled.lastEventId, "", "a polled value has no stream position");
  assert.equal(watch.current()?.balances.get(TOKEN), 1_500_000n);
  assert.equal(watch.current()?.tokens.get(TOKEN)?.decimals, 6, "metadata from the session");

  // The next round finds a change: an update, marked polled.
  api.balance = "1750000";
  mock.timers.tick(5_000);
  for (let i = 0; i < 8; i++) await flush();
  const update = recorded.events.at(-1);
  assert.ok(update?.type === "balance_update" && update.polled === true);
  assert.equal(update.balance, 1_750_000n);
  assert.equal(update.previousBalance, 1_500_000n);
  // Unchanged: no event.
  mock.timers.tick(5_000);
  for (let i = 0; i < 8; i++) await flush();
  assert.equal(recorded.events.at(-1), update);

  // The stream is back: its snapshot wins, and polling stops.
  source.send("all_balances", snapshotData("1800000"), "9");
  assert.equal(watch.status, "live");
  const requests = api.requests.length;
  mock.timers.tick(60_000);
  for (let i = 0; i < 8; i++) await flush();
  assert.equal(api.requests.length, requests, "no polling while live");
  assert.equal(watch.current()?.balances.get(TOKEN), 1_800_000n);
  watch.close();
});
