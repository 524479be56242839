// Amounts travel as decimal strings (uint256 does not fit a JavaScript number); the client
// hands them out as bigint, parsed strictly so a malformed value is refused, never guessed.

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** A wire amount as bigint; throws on anything but a plain non-negative decimal. */
export function parseAmount(text: unknown): bigint {
  if (typeof text !== "string" || !DECIMAL.test(text)) {
    throw new TypeError(`not a decimal amount: ${JSON.stringify(text)}`);
  }
  return BigInt(text);
}

/** `parseAmount`, with `null` and absence passed through as `null`. */
export function parseOptionalAmount(text: unknown): bigint | null {
  return text === null || text === undefined ? null : parseAmount(text);
}

/**
 * `amount` scaled down by `decimals`, exactly: `formatUnits(1500000n, 6)` is `"1.5"`. No
 * thousands separators and no rounding; trailing zeros of the fraction are dropped.
 */
export function formatUnits(amount: bigint, decimals: number): string {
  if (!Number.isInteger(decimals) || decimals < 0) throw new RangeError(`decimals: ${decimals}`);
  const negative = amount < 0n;
  const value = negative ? -amount : amount;
  const unit = 10n ** BigInt(decimals);
  const whole = (value / unit).toString();
  const fraction = decimals === 0 ? "" : (value % unit).toString().padStart(decimals, "0").replace(/0+$/, "");
  return (negative ? "-" : "") + whole + (fraction ? "." + fraction : "");
}
