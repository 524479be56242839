import assert from "node:assert/strict";
import { test } from "node:test";

import { formatUnits, parseAmount, parseOptionalAmount } from "../src/amount.js";

test("amounts are exact bigints, uint256 max included", () => {
  const max = (1n << 256n) - 1n;
  assert.equal(parseAmount(max.toString()), max);
  assert.equal(parseAmount("0"), 0n);
  assert.equal(parseOptionalAmount(null), null);
  assert.equal(parseOptionalAmount(undefined), null);
});

test("anything but a plain decimal is refused", () => {
  for (const bad of ["", "-1", "1.5", "0x10", " 1", "1e3", "01", 5, null, {}]) {
    assert.throws(() => parseAmount(bad), TypeError, String(bad));
  }
});

test("formatUnits scales exactly without rounding", () => {
  assert.equal(formatUnits(1_500_000n, 6), "1.5");
  assert.equal(formatUnits(1n, 18), "0.000000000000000001");
  assert.equal(formatUnits(1000n, 0), "1000");
  assert.equal(formatUnits(-2500n, 3), "-2.5");
  assert.equal(formatUnits(10n ** 30n, 18), "1000000000000");
  assert.throws(() => formatUnits(1n, -1), RangeError);
});
