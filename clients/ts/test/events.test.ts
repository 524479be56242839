import assert from "node:assert/strict";
import { test } from "node:test";

import { EVENT_NAMES, EventDataError, parseEvent } from "../src/events.js";
import { OWNER, PERMIT2_SPENDER, SPENDER, TOKEN, permit2UpdateData, snapshotData, updateData } from "./fakes.js";

test("every documented event has a parser", () => {
  assert.deepEqual(
    [...EVENT_NAMES].sort(),
    [
      "all_balances",
      "allowance_update",
      "balance_update",
      "error",
      "order_status",
      "permit2_allowance_update",
      "ping",
      "resync",
    ],
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
    approval: "erc20",
    blockNumber: 13,
  };
  const event = parseEvent("order_status", JSON.stringify(status), "11");
  assert.ok(event && event.type === "order_status");
  assert.equal(event.orderId, "0xab");
  assert.equal(event.approval, "erc20");
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

test("order_status names how the spender spends: permit2, erc20 when a stored delivery predates the field", () => {
  const status = {
    orderId: "0xab",
    sellToken: TOKEN,
    sellAmount: "200",
    spender: PERMIT2_SPENDER,
    approval: "permit2",
    validTo: 1900000000,
    fillable: false,
    short: "allowance",
    balanceShortfall: "0",
    allowanceShortfall: "200",
    blockNumber: 13,
  };
  const event = parseEvent("order_status", JSON.stringify(status), "11");
  assert.ok(event && event.type === "order_status");
  assert.equal(event.approval, "permit2");
  assert.equal(event.short, "allowance");
  const { approval: _approval, ...older } = status;
  const before = parseEvent("order_status", JSON.stringify(older), "11");
  assert.equal(before?.type === "order_status" && before.approval, "erc20");
  assert.throws(() => parseEvent("order_status", JSON.stringify({ ...status, approval: "eip2612" }), "1"), EventDataError);
});

test("permit2_allowance_update: the amount as bigint, expiration, nonce, expired, and the terms before", () => {
  const event = parseEvent("permit2_allowance_update", JSON.stringify(permit2UpdateData()), "14");
  assert.ok(event && event.type === "permit2_allowance_update");
  assert.equal(event.lastEventId, "14");
  assert.equal(event.address, TOKEN);
  assert.equal(event.spender, PERMIT2_SPENDER, "lowercased");
  assert.equal(event.amount, 1_000_000_000_000_000_000_000n);
  assert.equal(event.expiration, 1_900_000_000);
  assert.equal(event.nonce, 1);
  assert.equal(event.expired, true);
  assert.deepEqual(event.previous, { amount: 1_000_000_000_000_000_000_000n, expiration: 1_900_000_000, nonce: 1, expired: false });
  assert.equal(event.blockNumber, 21);
  assert.equal(event.txHash, null, "an expiry has no transaction");
  const first = parseEvent("permit2_allowance_update", JSON.stringify(permit2UpdateData({ previous: null, txHash: "0xdef" })), "15");
  assert.ok(first && first.type === "permit2_allowance_update");
  assert.equal(first.previous, null);
  assert.equal(first.txHash, "0xdef");

  for (const bad of [
    { amount: "-1" },
    { amount: 5 },
    { expiration: -1 },
    { expiration: "1900000000" },
    { nonce: 1.5 },
    { expired: "yes" },
    { spender: "0x12" },
    { previous: { amount: "1", expiration: 1, nonce: 0 } },
    { previous: "none" },
  ]) {
    assert.throws(
      () => parseEvent("permit2_allowance_update", JSON.stringify(permit2UpdateData(bad)), "1"),
      EventDataError,
      JSON.stringify(bad),
    );
  }
});

test("all_balances: Permit2 allowances by token and spender; none when the wallet tracks none", () => {
  const terms = { amount: "700", expiration: 1_900_000_000, nonce: 4, expired: false };
  const data = { ...snapshotData("1"), permit2: { [TOKEN]: { [PERMIT2_SPENDER.toUpperCase().replace("0X", "0x")]: terms } } };
  const event = parseEvent("all_balances", JSON.stringify(data), "20");
  assert.ok(event && event.type === "all_balances");
  assert.deepEqual(event.permit2.get(TOKEN)?.get(PERMIT2_SPENDER), { ...terms, amount: 700n });
  const without = parseEvent("all_balances", JSON.stringify(snapshotData("1")), "21");
  assert.equal(without?.type === "all_balances" && without.permit2.size, 0);
  const bad = { ...snapshotData("1"), permit2: { [TOKEN]: { [PERMIT2_SPENDER]: { ...terms, expired: 0 } } } };
  assert.throws(() => parseEvent("all_balances", JSON.stringify(bad), "22"), EventDataError);
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
  const permit2 = parseEvent("permit2_allowance_update", JSON.stringify({ ...permit2UpdateData(), chainId: 1, owner: OWNER }), "m1.0badf00d.2");
  assert.deepEqual(permit2?.pair, { chainId: 1, owner: OWNER });
  assert.throws(
    () => parseEvent("resync", JSON.stringify({ code: "x", message: "y", chainId: "1", owner: "0xabc" }), ""),
    EventDataError,
  );
});
