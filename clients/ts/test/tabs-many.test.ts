// `watchManyBalances` shares its stream the way `watchBalances` does: tabs of one origin
// watching the same set of pairs (in any order) elect one leader that holds the multi-wallet
// EventSource; a tab joining gets every pair's snapshot; the next tab takes over from the last
// composite id it saw; the pause, the fallback hook and the sessions are the group's.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import {
  createClient,
  type BalanceEvent,
  type ManyBalanceWatch,
  type ManyWatchOptions,
  type WalletPair,
  type WatchedPair,
} from "../src/index.js";
import { FakeDocument, FakeEventSource, FakeLocks, OWNER, TOKEN, snapshotData, tab, until, updateData } from "./fakes.js";

interface Tab {
  watch: ManyBalanceWatch;
  events: BalanceEvent[];
  document: FakeDocument;
}

/** Two pairs on two chains, canonical order (chain, then owner): A's position comes first in ids. */
const A: WalletPair = { chainId: 31337, owner: OWNER };
const B: WalletPair = { chainId: 31338, owner: OWNER };
const OTHER: WalletPair = { chainId: 31337, owner: "0x0000000000000000000000000000000000000001" };

const client = createClient({
  baseUrl: "http://127.0.0.1:9000/lambda-url/api/",
  fetch: (() => Promise.reject(new Error("no requests in these tests"))) as typeof fetch,
});
let open: Tab[] = [];

function openTab(locks: FakeLocks, pairs: readonly WatchedPair[] = [A, B], options: ManyWatchOptions = {}, api = client): Tab {
  const environment = tab(locks);
  const events: BalanceEvent[] = [];
  const watch = api.watchManyBalances(pairs, { environment, onEvent: (e) => events.push(e), ...options });
  const t = { watch, events, document: environment.document };
  open.push(t);
  return t;
}

/** The id of a stream standing at `a` for pair A and `b` for pair B. */
const id = (a: number, b: number): string => `m1.3fa09c21.${a.toString(36)}.${b.toString(36)}`;

function snapshot(source: FakeEventSource, pair: WalletPair, balance: string, at: string): void {
  source.send("all_balances", { ...snapshotData(balance), chainId: pair.chainId, owner: pair.owner }, at);
}

function update(source: FakeEventSource, pair: WalletPair, balance: string, previous: string, at: string): void {
  source.send("balance_update", { ...updateData(balance, previous, 11), chainId: pair.chainId, owner: pair.owner }, at);
}

/** The one stream the tabs opened, open, with A's snapshot at 100 and B's at 700. */
async function streamWithSnapshots(): Promise<FakeEventSource> {
  await until("a stream", () => FakeEventSource.all.length === 1);
  const source = FakeEventSource.latest();
  source.open();
  snapshot(source, A, "100", id(5, 0));
  snapshot(source, B, "700", id(5, 7));
  return source;
}

/** A tab's balance updates of `pair`, in order: each change once. */
function updates(t: Tab, pair: WalletPair): string[] {
  return t.events
    .filter((e) => e.type === "balance_update" && e.pair?.chainId === pair.chainId && e.pair.owner === pair.owner)
    .map((e) => (e.type === "balance_update" ? e.balance.toString() : ""));
}

function snapshotsOf(t: Tab): string[] {
  return t.events.filter((e) => e.type === "all_balances").map((e) => `${e.pair?.chainId}`);
}

beforeEach(() => FakeEventSource.reset());
afterEach(() => {
  for (const t of open) t.watch.close();
  open = [];
});

test("three tabs on one set of pairs, one stream: a late tab gets every pair's snapshot", async () => {
  const locks = new FakeLocks();
  // The same set in another order is the same stream.
  const [a, b] = [openTab(locks, [A, B]), openTab(locks, [B, A])];
  await until("a stream", () => FakeEventSource.all.length === 1);
  const source = FakeEventSource.latest();
  assert.equal(new URL(source.url).pathname, "/lambda-url/api/sse/balances");
  source.open();
  snapshot(source, A, "100", id(5, 0));
  snapshot(source, B, "700", id(5, 7));
  update(source, A, "150", "100", id(6, 7));
  await until("b has all three", () => b.events.length === 3);
  const c = openTab(locks, [A, B]);
  await until("c has both snapshots", () => c.events.length === 2);
  update(source, B, "750", "700", id(6, 8));
  await until("every tab has B's update", () => [a, b, c].every((t) => updates(t, B).includes("750")));
  assert.equal(FakeEventSource.all.length, 1, "one stream for three tabs");
  assert.deepEqual(
    [a, b, c].map((t) => t.watch.role),
    ["leader", "follower", "follower"],
  );
  assert.deepEqual(snapshotsOf(c), ["31337", "31338"], "one all_balances per pair");
  const joined = c.events.find((e) => e.type === "all_balances" && e.pair?.chainId === A.chainId);
  assert.ok(joined?.type === "all_balances");
  assert.equal(joined.balances.get(TOKEN), 150n, "A as of now");
  assert.deepEqual(
    c.events.filter((e) => e.type === "all_balances").map((e) => e.lastEventId),
    [id(6, 7), id(6, 7)],
    "each pair's snapshot positioned at the stream's last id (B's own last event was earlier)",
  );
  for (const t of [a, b, c]) {
    assert.equal(t.watch.current(A)?.balances.get(TOKEN), 150n);
    assert.equal(t.watch.current(B)?.balances.get(TOKEN), 750n);
    assert.equal(t.watch.status, "live");
  }
  assert.deepEqual(updates(c, A), []);
  assert.deepEqual(updates(c, B), ["750"]);
});

test("the leader closes: the next tab resumes every pair from the last id, missing nothing", async () => {
  const locks = new FakeLocks();
  const [a, b, c] = [openTab(locks), openTab(locks), openTab(locks)];
  const first = await streamWithSnapshots();
  update(first, A, "150", "100", id(6, 7));
  update(first, B, "750", "700", id(6, 8));
  first.idOnly(id(9, 8)); // A's old news skipped: the position moves past it
  first.send("ping", { time: 1 });
  await until("followers at the last id", () => [b, c].every((t) => t.events.at(-1)?.lastEventId === id(9, 8)));

  a.watch.close();
  assert.equal(first.closed, true);
  await until("a new leader's stream", () => FakeEventSource.all.length === 2);
  const second = FakeEventSource.latest();
  assert.equal(new URL(second.url).searchParams.get("lastEventId"), id(9, 8), second.url);
  assert.equal(b.watch.role, "leader", "the next tab in line");
  assert.equal(c.watch.role, "follower");
  second.open();
  update(second, B, "775", "750", id(9, 10));
  update(second, A, "175", "150", id(11, 10));
  await until("c has both", () => updates(c, A).length === 2 && updates(c, B).length === 2);
  for (const t of [b, c]) {
    assert.deepEqual(updates(t, A), ["150", "175"]);
    assert.deepEqual(updates(t, B), ["750", "775"]);
    assert.equal(snapshotsOf(t).length, 2, "no fresh snapshot: resumed");
  }
  assert.equal(FakeEventSource.open().length, 1);
  b.watch.close();
  await until("a third stream", () => FakeEventSource.all.length === 3);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("lastEventId"), id(11, 10));
  assert.equal(c.watch.role, "leader");
  assert.equal(c.watch.current(A)?.balances.get(TOKEN), 175n);
});

test("an update posted by the closing leader and replayed under another id counts once", async () => {
  const locks = new FakeLocks();
  const [a, b, c] = [openTab(locks), openTab(locks), openTab(locks)];
  const first = await streamWithSnapshots();
  await until("followers have both snapshots", () => [b, c].every((t) => t.events.length === 2));
  // The leader sends B's update, then A's, and closes before b has processed them (c does).
  update(first, B, "750", "700", id(5, 8));
  update(first, A, "150", "100", id(6, 8));
  a.watch.close();
  await until("b leads", () => FakeEventSource.all.length === 2);
  const second = FakeEventSource.latest();
  second.open();
  // The server replays what each pair missed after b's position, pair by pair: the same
  // updates, framed with the positions of the moment — ids the first stream never sent.
  const from = new URL(second.url).searchParams.get("lastEventId");
  if (from === id(5, 7)) {
    update(second, A, "150", "100", id(6, 7));
    update(second, B, "750", "700", id(6, 8));
  } else if (from === id(5, 8)) {
    update(second, A, "150", "100", id(6, 8));
  } else {
    assert.equal(from, id(6, 8));
  }
  update(second, A, "175", "150", id(7, 8));
  await until("c has A's next", () => updates(c, A).includes("175"));
  for (const t of [b, c]) {
    assert.deepEqual(updates(t, A), ["150", "175"]);
    assert.deepEqual(updates(t, B), ["750"]);
  }
});

test("another set of pairs has its own stream; share: false leads alone", async () => {
  const locks = new FakeLocks();
  openTab(locks, [A, B]);
  openTab(locks, [B, A]);
  openTab(locks, [A, OTHER]);
  openTab(locks, [A]);
  const alone = openTab(locks, [A, B], { share: false });
  await until("four streams", () => FakeEventSource.all.length === 4);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(FakeEventSource.all.length, 4);
  assert.equal(alone.watch.role, "leader");
  const sets = FakeEventSource.all.map((s) => new URL(s.url).searchParams.get("wallets")).sort();
  assert.deepEqual(sets, [
    `31337:${OWNER}`,
    `31337:${OWNER},31337:${OTHER.owner}`,
    `31337:${OWNER},31338:${OWNER}`,
    `31337:${OWNER},31338:${OWNER}`,
  ]);
});

test("the stream pauses once every tab is hidden, and resumes from the last id when one is shown", async () => {
  const locks = new FakeLocks();
  const options = { pauseWhenHiddenMs: 50 };
  const [a, b] = [openTab(locks, [A, B], options), openTab(locks, [A, B], options)];
  const first = await streamWithSnapshots();
  await until("b has both snapshots", () => b.events.length === 2);
  a.document.set("hidden");
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(first.closed, false, "a visible follower keeps the stream");
  b.document.set("hidden");
  await until("paused", () => first.closed && a.watch.status === "paused");
  await until("the follower shows it", () => b.watch.status === "paused");
  b.document.set("visible");
  await until("resumed", () => FakeEventSource.all.length === 2);
  assert.equal(new URL(FakeEventSource.latest().url).searchParams.get("lastEventId"), id(5, 7));
});

test("every tab runs its own fallback while the shared stream is down, stopped once it is live", async () => {
  const locks = new FakeLocks();
  const running = new Set<string>();
  const fallback = (name: string): ManyWatchOptions => ({
    fallbackAfterMs: 100,
    fallback: () => {
      running.add(name);
      return () => running.delete(name);
    },
  });
  const a = openTab(locks, [A, B], fallback("a"));
  const b = openTab(locks, [A, B], fallback("b"));
  await until("a stream", () => FakeEventSource.all.length === 1);
  const source = FakeEventSource.latest();
  source.open(); // but no snapshot comes
  await until("both tabs poll", () => running.size === 2, 3000);
  assert.equal(a.watch.status, "fallback");
  assert.equal(b.watch.status, "fallback");
  snapshot(source, A, "100", id(5, 0));
  await until("both stopped", () => running.size === 0);
  assert.equal(b.watch.status, "live");
});

test("a refused stream creates the sessions again with every tab's requests, one pair once per POST", async () => {
  const posts: unknown[] = [];
  const api = createClient({
    baseUrl: "http://127.0.0.1:9000/lambda-url/api/",
    fetch: (async (_input: URL | RequestInfo, init?: RequestInit) => {
      const body = JSON.parse(String(init?.body)) as { wallets: { chainId: number; owner: string }[] };
      posts.push(body);
      const wallets = body.wallets.map((w) => ({
        chainId: w.chainId,
        owner: w.owner,
        session: { tokens: [TOKEN], spenders: [], metadata: {} },
      }));
      return new Response(JSON.stringify({ wallets }), { status: 200 });
    }) as typeof fetch,
  });
  const locks = new FakeLocks();
  const answered: string[][] = [];
  const session = (token: string) => ({ customTokens: [token] });
  const record = { onSessions: (results: { chainId: number }[]) => answered.push(results.map((r) => `${r.chainId}`)) };
  openTab(locks, [{ ...A, session: session("0x01") }, { ...B, session: session("0x02") }], record, api);
  // Another tab of the same pairs asks A for another token, and B for the same.
  openTab(locks, [{ ...B, session: session("0x02") }, { ...A, session: session("0x03") }], {}, api);
  await until("a stream", () => FakeEventSource.all.length === 1);
  await until("each tab's own request", () => posts.length === 2);
  const first = FakeEventSource.latest();
  first.fail(true); // refused: the sessions expired while nobody watched
  await until("the sessions asked for again", () => posts.length === 4, 3000);
  await until("the stream reopened", () => FakeEventSource.all.length === 2);
  const tokens = (post: unknown) =>
    (post as { wallets: { chainId: number; customTokens: string[] }[] }).wallets.map((w) => `${w.chainId}:${w.customTokens.join()}`);
  assert.deepEqual(tokens(posts[2]), ["31337:0x01", "31338:0x02"], "the leader's own first");
  assert.deepEqual(tokens(posts[3]), ["31337:0x03"], "then what only the other tab asks");
  assert.deepEqual(answered, [["31337", "31338"], ["31337", "31338"]], "the leader hears its own answers");
});
