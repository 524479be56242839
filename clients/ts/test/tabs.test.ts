// Tabs of one origin share one stream: Web Locks elect the leader that holds the EventSource,
// BroadcastChannel (Node's, the real one) carries its events to the other tabs. When the
// leader closes, the next tab takes over and resumes after the last id it saw.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import { createClient, type BalanceEvent, type BalanceWatch, type WatchOptions } from "../src/index.js";
import { FakeDocument, FakeEventSource, FakeLocks, OWNER, TOKEN, snapshotData, tab, until, updateData } from "./fakes.js";

interface Tab {
  watch: BalanceWatch;
  events: BalanceEvent[];
  document: FakeDocument;
}

const client = createClient({
  baseUrl: "http://127.0.0.1:9000/lambda-url/api/",
  fetch: (() => Promise.reject(new Error("no requests in these tests"))) as typeof fetch,
});
let open: Tab[] = [];

function openTab(locks: FakeLocks, options: WatchOptions = {}, owner = OWNER): Tab {
  const environment = tab(locks);
  const events: BalanceEvent[] = [];
  const watch = client.watchBalances({ chainId: 31337, owner, environment, onEvent: (e) => events.push(e), ...options });
  const t = { watch, events, document: environment.document };
  open.push(t);
  return t;
}

/** The `lastEventId`s of a tab's updates: one per change, in order, nothing twice. */
function updates(t: Tab): string[] {
  return t.events.filter((e) => e.type === "balance_update").map((e) => e.lastEventId);
}

beforeEach(() => FakeEventSource.reset());
afterEach(() => {
  for (const t of open) t.watch.close();
  open = [];
});

test("three tabs, one stream: each gets the snapshot and every update", async () => {
  const locks = new FakeLocks();
  const [a, b] = [openTab(locks), openTab(locks)];
  await until("a stream", () => FakeEventSource.all.length === 1);
  const source = FakeEventSource.latest();
  source.open();
  source.send("all_balances", snapshotData("100"), "5");
  source.send("balance_update", updateData("150", "100", 11), "6");
  await until("b has both", () => b.events.length === 2);
  // A tab opened later gets the state as of now from the leader, then the live updates.
  const c = openTab(locks);
  await until("c has the state", () => c.events.length === 1);
  source.send("balance_update", updateData("175", "150", 12), "7");
  await until("every tab has the update", () => [a, b, c].every((t) => updates(t).includes("7")));
  assert.equal(FakeEventSource.all.length, 1, "one stream for three tabs");
  assert.deepEqual(
    [a, b, c].map((t) => t.watch.role),
    ["leader", "follower", "follower"],
  );
  const joined = c.events[0];
  assert.ok(joined?.type === "all_balances");
  assert.equal(joined.balances.get(TOKEN), 150n, "the snapshot as of now");
  assert.equal(joined.lastEventId, "6");
  assert.deepEqual(updates(a), ["6", "7"]);
  assert.deepEqual(updates(b), ["6", "7"]);
  assert.deepEqual(updates(c), ["7"]);
  for (const t of [a, b, c]) {
    assert.equal(t.watch.current()?.balances.get(TOKEN), 175n);
    assert.equal(t.watch.status, "live");
  }
});

test("the leader closes: the next tab takes over, resumes after the last id, misses nothing", async () => {
  const locks = new FakeLocks();
  const [a, b, c] = [openTab(locks), openTab(locks), openTab(locks)];
  await until("a stream", () => FakeEventSource.all.length === 1);
  const first = FakeEventSource.latest();
  first.open();
  first.send("all_balances", snapshotData("100"), "5");
  first.send("balance_update", updateData("150", "100", 11), "6");
  first.idOnly("8"); // old news skipped: the position moves past it
  first.send("ping", { time: 1 });
  await until("followers at 8", () => [b, c].every((t) => t.events.at(-1)?.lastEventId === "8"));

  a.watch.close();
  assert.equal(first.closed, true);
  await until("a new leader's stream", () => FakeEventSource.all.length === 2);
  const second = FakeEventSource.latest();
  assert.ok(second.url.endsWith("?lastEventId=8"), second.url);
  assert.equal(b.watch.role, "leader", "the next tab in line");
  assert.equal(c.watch.role, "follower");
  // The server replays what came after 8, then goes on live.
  second.open();
  second.send("balance_update", updateData("175", "150", 12), "9");
  second.send("balance_update", updateData("200", "175", 13), "10");
  await until("c has both", () => updates(c).length === 3);
  assert.deepEqual(updates(b), ["6", "9", "10"]);
  assert.deepEqual(updates(c), ["6", "9", "10"]);
  assert.equal(FakeEventSource.open().length, 1);
  // And again: the last tab standing takes over from where it stood.
  b.watch.close();
  await until("a third stream", () => FakeEventSource.all.length === 3);
  assert.ok(FakeEventSource.latest().url.endsWith("?lastEventId=10"));
  assert.equal(c.watch.role, "leader");
  assert.equal(c.watch.current()?.balances.get(TOKEN), 200n);
});

test("an update both posted by the closing leader and replayed by the next counts once", async () => {
  const locks = new FakeLocks();
  const [a, b, c] = [openTab(locks), openTab(locks), openTab(locks)];
  await until("a stream", () => FakeEventSource.all.length === 1);
  const first = FakeEventSource.latest();
  first.open();
  first.send("all_balances", snapshotData("100"), "5");
  await until("followers have the snapshot", () => [b, c].every((t) => t.events.length === 1));
  // b takes over before it has processed the leader's last post (c has): b's stream replays it.
  first.send("balance_update", updateData("150", "100", 11), "6");
  a.watch.close();
  await until("b leads", () => FakeEventSource.all.length === 2);
  const second = FakeEventSource.latest();
  second.open();
  if (!second.url.endsWith("?lastEventId=6")) {
    second.send("balance_update", updateData("150", "100", 11), "6");
  }
  second.send("balance_update", updateData("175", "150", 12), "7");
  await until("c has 7", () => updates(c).includes("7"));
  assert.deepEqual(updates(b), ["6", "7"]);
  assert.deepEqual(updates(c), ["6", "7"]);
});

test("the stream pauses only once every tab is hidden, and resumes when one is shown", async () => {
  const locks = new FakeLocks();
  const options = { pauseWhenHiddenMs: 50 };
  const [a, b] = [openTab(locks, options), openTab(locks, options)];
  await until("a stream", () => FakeEventSource.all.length === 1);
  const first = FakeEventSource.latest();
  first.open();
  first.send("all_balances", snapshotData("100"), "5");
  await until("b has the snapshot", () => b.events.length === 1);
  a.document.set("hidden"); // the leader's tab is in the background, b is in front
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(first.closed, false, "a visible follower keeps the stream");
  b.document.set("hidden");
  await until("paused", () => first.closed && a.watch.status === "paused");
  await until("the follower shows it", () => b.watch.status === "paused");
  b.document.set("visible");
  await until("resumed", () => FakeEventSource.all.length === 2);
  assert.ok(FakeEventSource.latest().url.endsWith("?lastEventId=5"));
});

test("every tab runs its own fallback while the shared stream is down", async () => {
  const locks = new FakeLocks();
  const running = new Set<string>();
  const fallback = (name: string) => ({
    fallbackAfterMs: 100,
    fallback: () => {
      running.add(name);
      return () => running.delete(name);
    },
  });
  openTab(locks, fallback("a"));
  const b = openTab(locks, fallback("b"));
  await until("a stream", () => FakeEventSource.all.length === 1);
  const source = FakeEventSource.latest();
  source.open(); // but no snapshot comes
  await until("both tabs poll", () => running.size === 2, 3000);
  assert.equal(b.watch.status, "fallback");
  source.send("all_balances", snapshotData("100"), "5");
  await until("both stopped", () => running.size === 0);
  assert.equal(b.watch.status, "live");
});

test("each wallet has its own stream; share: false opts a tab out", async () => {
  const locks = new FakeLocks();
  openTab(locks);
  openTab(locks, {}, "0x0000000000000000000000000000000000000001");
  openTab(locks, { share: false });
  await until("three streams", () => FakeEventSource.all.length === 3);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(FakeEventSource.all.length, 3);
});
