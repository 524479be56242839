import assert from "node:assert/strict";
import { test } from "node:test";

import { EVENT_NAMES, EventDataError, parseEvent } from "../src/events.js";
import { SPENDER, TOKEN, snapshotData, updateData } from "./fakes.js";

test("every documented event has a parser", () => {
  assert.deepEqual(
    [...EVENT_NAMES].sort(),
    ["all_balances", "allowance_update", "balance_update", "error", "order_status", "ping", "resync"],
  );
});

test("all_balances: maps of bigints, metadata, errors, and the raw JSON kept", () => {
  const bad = "0x00000000000000000000000000000000000000BA";
  const data = { ...snapshotData("1500000"), errors: { [bad]: "read_failed" }, addedLater: [1, 2] };
  const event = parseEvent("all_balances", JSON.stringify(data), "0000042");
  assert.ok(event && event.type === "all_balances");
  assert.equal(event.lastEventId, "0000042");
  assert.equal(event.balances.get(TOKEN), 1_500_000n);
  assert.equal(event.allowances.get(TOKEN)?.get(SPENDER), 5n);
  assert.equal(event.errors.get("0x00000000000000000000000000000000000000ba"), "read_failed", "keys lowercased");
  assert.deepEqual(event.tokens.get(TOKEN), { symbol: "TT", name: "Test", decimals: 6 });
  assert.equal(event.blockNumber, 10);
  // A field this client does not know yet reaches the caller.
  assert.deepEqual((event.data as unknown as { addedLater: number[] }).addedLater, [1, 2]);
});

test("updates: bigint amounts, null previous values, tx hash", () => {
  const balance = parseEvent("balance_update", JSON.stringify(updateData("7", null, 11)), "9");
  assert.ok(balance && balance.type === "balance_update");
  assert.equal(balance.balance, 7n);
  assert.equal(balance.previousBalance, null);
  assert.equal(balance.txHash, "0xabc");
  const allowance = parseEvent(
    "allowance_update",
    JSON.stringify({ address: TOKEN, spender: SPENDER, allowance: "0", previousAllowance: "5", blockNumber: 12 }),
    "10",
  );
  assert.ok(allowance && allowance.type === "allowance_update");
  assert.equal(allowance.previousAllowance, 5n);
  assert.equal(allowance.txHash, null);
});

test("order_status and all_balances orders: bigint amounts, the short side, bad sides refused", () => {
  const status = {
    orderId: "0xab",
    sellToken: TOKEN,
    sellAmount: "200",
    spender: SPENDER,
    validTo: 1900000000,
    fillable: false,
    short: "balance",
    balanceShortfall: "100",
    allowanceShortfall: "0",
    blockNumber: 13,
  };
  const event = parseEvent("order_status", JSON.stringify(status), "11");
  assert.ok(event && event.type === "order_status");
  assert.equal(event.orderId, "0xab");
  assert.equal(event.sellAmount, 200n);
  assert.equal(event.short, "balance");
  assert.equal(event.balanceShortfall, 100n);
  assert.equal(event.fillable, false);
  const snapshot = parseEvent("all_balances", JSON.stringify({ ...snapshotData("1"), orders: [status] }), "12");
  assert.ok(snapshot && snapshot.type === "all_balances");
  assert.equal(snapshot.orders.get("0xab")?.allowanceShortfall, 0n);
  assert.equal(parseEvent("all_balances", JSON.stringify(snapshotData("1")), "12")?.type, "all_balances");
  assert.throws(() => parseEvent("order_status", JSON.stringify({ ...status, short: "price" }), "1"), EventDataError);
  assert.throws(() => parseEvent("order_status", JSON.stringify({ ...status, fillable: "no" }), "1"), EventDataError);
});

test("ping, resync and error", () => {
  assert.deepEqual(parseEvent("ping", '{"time":1700000000}', "3"), {
    type: "ping",
    lastEventId: "3",
    time: 1700000000,
    data: { time: 1700000000 },
  });
  const resync = parseEvent("resync", '{"code":"position_expired","message":"m"}', "");
  assert.equal(resync?.type === "resync" && resync.code, "position_expired");
  const error = parseEvent("error", '{"code":"session_expired","message":"m"}', "");
  assert.equal(error?.type === "error" && error.code, "session_expired");
});

test("an event name this client does not know is skipped, bad data refused", () => {
  assert.equal(parseEvent("something_new", "{}", "1"), null);
  assert.equal(parseEvent("__proto__", "{}", "1"), null);
  assert.throws(() => parseEvent("balance_update", "not json", "1"), EventDataError);
  assert.throws(() => parseEvent("balance_update", JSON.stringify(updateData("1.5", null, 1)), "1"), EventDataError);
  assert.throws(() => parseEvent("all_balances", '{"balances":[],"allowances":{},"blockNumber":1}', "1"), EventDataError);
  const badDecimals = { ...snapshotData("1"), tokens: { [TOKEN]: { symbol: "X", name: "X", decimals: 300 } } };
  assert.throws(() => parseEvent("balance_update", JSON.stringify({ ...updateData("1", null, 1), address: "0xabc" }), "1"), EventDataError);
  assert.throws(() => parseEvent("all_balances", JSON.stringify(badDecimals), "1"), EventDataError);
});

test("an event of a multi-wallet stream names its pair", () => {
  const data = { ...updateData("7", "5", 11), chainId: 42161, owner: "0x00000000000000000000000000000000000000AB" };
  const event = parseEvent("balance_update", JSON.stringify(data), "m1.0badf00d.1");
  assert.deepEqual(event?.pair, { chainId: 42161, owner: "0x00000000000000000000000000000000000000ab" });
  assert.equal(parseEvent("balance_update", JSON.stringify(updateData("7", "5", 11)), "9")?.pair, undefined);
  assert.throws(
    () => parseEvent("resync", JSON.stringify({ code: "x", message: "y", chainId: "1", owner: "0xabc" }), ""),
    EventDataError,
  );
});
