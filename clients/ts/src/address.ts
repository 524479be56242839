// Addresses as the client takes and gives them: `0x${string}`, the type viem and wagmi use, so
// a connected account passes straight in. Every address the client sends or keys a map by is
// lowercase, as the service answers them; `toAddress` checks and lowercases one from outside.

/** A 20-byte address: `0x` and 40 hex digits (the client hands them out lowercase). */
export type Address = `0x${string}`;

/** The native currency's pseudo-token: balances of ETH (or the chain's coin) are keyed by it. */
export const NATIVE_TOKEN: Address = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

/**
 * Uniswap's Permit2, at the same address on every chain. A session naming `permit2Spenders`
 * also tracks each token's allowance to it: `snapshot.allowances.get(token)?.get(PERMIT2)`.
 */
export const PERMIT2: Address = "0x000000000022d473030f116ddee9f6b43ac78ba3";

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** Whether `value` is `0x` and 40 hex digits (any case). */
export function isAddress(value: unknown): value is Address {
  return typeof value === "string" && ADDRESS.test(value);
}

/** `value` as a lowercase `Address`; throws a `TypeError` for anything else. */
export function toAddress(value: unknown): Address {
  if (!isAddress(value)) throw new TypeError(`not an address: ${JSON.stringify(value)}`);
  return value.toLowerCase() as Address;
}
