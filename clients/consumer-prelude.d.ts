// The names the READMEs' snippets take for granted, declared for their type-check in a fresh
// project (infra/client-consumer.sh): a wallet and a token of the reader's, the reader's own
// render functions, and wagmi's `useAccount` (not installed there).
import type { Address } from "@live-balances/client";

declare global {
  const owner: Address;
  const token: Address;
  function render(balances: ReadonlyMap<Address, bigint>): void;
  function update(token: Address, balance: bigint, previous: bigint | null): void;
  function useAccount(): { address: Address | undefined; chainId: number | undefined };
}
