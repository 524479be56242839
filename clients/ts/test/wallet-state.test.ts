import assert from "node:assert/strict";
import { test } from "node:test";

import { parseEvent, type BalanceEvent } from "../src/events.js";
import { WalletState } from "../src/wallet-state.js";
import { PERMIT2_SPENDER, SPENDER, TOKEN, permit2UpdateData, snapshotData, updateData } from "./fakes.js";

function event(name: string, data: unknown, id: string): BalanceEvent {
  const parsed = parseEvent(name, JSON.stringify(data), id);
  assert.ok(parsed);
  return parsed;
}

test("updates fold into the snapshot; current() is positioned at the last event, one object per change", () => {
  const state = new WalletState();
  assert.equal(state.current(), null);
  // Updates before a snapshot have nothing to apply to, but move the position.
  state.apply(event("balance_update", updateData("1", null, 1), "1"));
  assert.equal(state.hasSnapshot, false);
  state.apply(event("all_balances", { ...snapshotData("100"), extra: "kept" }, "5"));
  state.apply(event("balance_update", updateData("150", "100", 12), "6"));
  state.apply(
    event("allowance_update", { address: TOKEN, spender: SPENDER, allowance: "0", previousAllowance: "5", blockNumber: 13 }, "7"),
  );
  state.apply(event("ping", { time: 1 }, "8")); // an id-only frame moved the position
  const now = state.current();
  assert.ok(now);
  assert.equal(now.lastEventId, "8");
  assert.equal(now.balances.get(TOKEN), 150n);
  assert.equal(now.allowances.get(TOKEN)?.get(SPENDER), 0n);
  assert.equal(now.blockNumber, 13);
  assert.deepEqual(
    JSON.parse(JSON.stringify(now.data)),
    { ...snapshotData("150", 13), allowances: { [TOKEN]: { [SPENDER]: "0" } }, extra: "kept" },
  );
  assert.equal(state.current(), now, "the same object until the next change");
  state.apply(event("balance_update", updateData("175", "150", 14), "9"));
  const next = state.current();
  assert.notEqual(next, now, "a new object after a change");
  assert.equal(next?.balances.get(TOKEN), 175n);
  assert.equal(now.balances.get(TOKEN), 150n, "an earlier snapshot never changes");
});

test("a new snapshot replaces the state; wire keys never reach Object.prototype", () => {
  const state = new WalletState();
  state.apply(event("all_balances", snapshotData("100"), "5"));
  // JSON.parse makes "__proto__" an own key; copied into a plain object it would set the
  // object's prototype instead.
  // A key that is no address is refused outright.
  assert.throws(() => parseEvent("all_balances", '{"balances":{"__proto__":"2"},"allowances":{},"blockNumber":20}', "9"));
  const other = "0x00000000000000000000000000000000000000aa";
  state.apply(parseEvent("all_balances", `{"balances":{"${other}":"2"},"allowances":{},"blockNumber":20}`, "9")!);
  const now = state.current();
  assert.ok(now);
  assert.equal(now.balances.has(TOKEN), false);
  assert.equal(now.balances.get(other), 2n);
  assert.deepEqual(Object.keys(now.data.balances), [other]);
  assert.equal(Object.getPrototypeOf(now.data.balances), null);
});

test("an update seen twice (a takeover's replay racing the old leader's post) counts once", () => {
  const state = new WalletState();
  assert.equal(state.apply(event("all_balances", snapshotData("100"), "5")), true);
  assert.equal(state.apply(event("balance_update", updateData("150", "100", 11), "6")), true);
  assert.equal(state.apply(event("balance_update", updateData("150", "100", 11), "6")), false);
  assert.equal(state.apply(event("balance_update", updateData("175", "150", 12), "7")), true);
  assert.equal(state.current()?.balances.get(TOKEN), 175n);
  assert.equal(state.lastEventId, "7");
  // Pings and snapshots are never "repeats": they carry the position, not a change.
  assert.equal(state.apply(event("ping", { time: 1 }, "7")), true);
});

test("an order_status folds into the snapshot's orders and current() carries them", () => {
  const state = new WalletState();
  const order = {
    orderId: "o1",
    sellToken: TOKEN,
    sellAmount: "200",
    spender: SPENDER,
    validTo: 1900000000,
    fillable: true,
    short: null,
    balanceShortfall: "0",
    allowanceShortfall: "0",
    approval: "erc20",
    blockNumber: 10,
  };
  state.apply(event("all_balances", { ...snapshotData("100"), orders: [order] }, "5"));
  const short = { ...order, fillable: false, short: "balance", balanceShortfall: "100", blockNumber: 12 };
  assert.equal(state.apply(event("order_status", short, "6")), true);
  assert.equal(state.apply(event("order_status", short, "6")), false, "a repeat counts once");
  const now = state.current();
  assert.ok(now);
  assert.equal(now.orders.get("o1")?.short, "balance");
  assert.deepEqual((now.data as { orders?: unknown }).orders, [short]);
});

test("a permit2_allowance_update folds into the snapshot's Permit2 allowances and current() carries them", () => {
  const state = new WalletState();
  const live = { amount: "700", expiration: 1_900_000_000, nonce: 4, expired: false };
  state.apply(event("all_balances", { ...snapshotData("100"), permit2: { [TOKEN]: { [PERMIT2_SPENDER]: live } } }, "5"));
  const before = state.current();
  assert.ok(before);
  assert.equal(before.permit2.get(TOKEN)?.get(PERMIT2_SPENDER)?.expired, false);

  // The expiration passed: same amount, expiration and nonce, now expired.
  const expiry = permit2UpdateData({ ...live, expired: true, previous: live, blockNumber: 30 });
  assert.equal(state.apply(event("permit2_allowance_update", expiry, "6")), true);
  assert.equal(state.apply(event("permit2_allowance_update", expiry, "6")), false, "a repeat counts once");
  const now = state.current();
  assert.ok(now);
  assert.notEqual(now, before, "a new object after a change");
  assert.deepEqual(now.permit2.get(TOKEN)?.get(PERMIT2_SPENDER), { amount: 700n, expiration: 1_900_000_000, nonce: 4, expired: true });
  assert.equal(before.permit2.get(TOKEN)?.get(PERMIT2_SPENDER)?.expired, false, "an earlier snapshot never changes");
  assert.equal(now.blockNumber, 30);
  assert.deepEqual(JSON.parse(JSON.stringify(now.data)).permit2, { [TOKEN]: { [PERMIT2_SPENDER]: { ...live, expired: true } } });
  assert.equal(now.allowances.get(TOKEN)?.get(SPENDER), 5n, "ERC-20 allowances untouched");

  // A spender first seen by an update (the session added it) joins the snapshot.
  const other = "0x00000000000000000000000000000000000000cc";
  state.apply(event("permit2_allowance_update", permit2UpdateData({ spender: other, expired: false, previous: null }), "7"));
  assert.equal(state.current()?.permit2.get(TOKEN)?.get(other)?.amount, 1_000_000_000_000_000_000_000n);
  assert.equal(state.current()?.permit2.get(TOKEN)?.get(PERMIT2_SPENDER)?.expired, true);
});
