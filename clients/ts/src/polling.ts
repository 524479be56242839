// The polling fallback's round for one wallet: while no stream is live, the batch balance route
// (`POST /{chain_id}/balances/{owner}`) reads the balances the wallet's state shows — or, before
// any snapshot, every token of its session — and each value that differs becomes a `polled`
// event, applied and shared like the stream's own. Allowances and orders are not read.
import type { Address } from "./address.js";
import type { ApiClient, BalanceReading, WalletRef } from "./api.js";
import type { AllBalancesEvent, BalanceEvent, BalanceUpdateEvent, WalletPair } from "./events.js";
import type { WalletState } from "./wallet-state.js";
import type { TokenMetadata } from "./wire.js";

/** Tokens per request: the service's default `BATCH_MAX_TOKENS`. */
const BATCH = 500;

export async function pollWallet(
  client: ApiClient,
  wallet: WalletRef,
  state: WalletState,
  signal: AbortSignal,
  pair?: WalletPair,
): Promise<BalanceEvent[]> {
  let tokens = state.tokens();
  let metadata: Record<string, TokenMetadata> = {};
  if (tokens.length === 0) {
    const session = await client.getSession(wallet, { signal });
    tokens = session.tokens as Address[];
    metadata = session.metadata;
  }
  const readings = new Map<Address, BalanceReading>();
  for (let i = 0; i < tokens.length; i += BATCH) {
    const batch = await client.getBalances({ ...wallet, tokens: tokens.slice(i, i + BATCH) }, { signal });
    for (const [token, reading] of batch) readings.set(token, reading);
  }
  const now = state.current();
  if (now === null) return readings.size > 0 ? [firstSnapshot(readings, metadata, pair)] : [];
  const events: BalanceEvent[] = [];
  for (const [address, reading] of readings) {
    const previous = now.balances.get(address) ?? null;
    if (reading.balance === null || reading.balance === previous) continue;
    const event: BalanceUpdateEvent = {
      type: "balance_update",
      lastEventId: "",
      polled: true,
      address,
      balance: reading.balance,
      previousBalance: previous,
      blockNumber: reading.blockNumber,
      txHash: null,
      data: {
        address,
        balance: reading.balance.toString(),
        previousBalance: previous?.toString() ?? null,
        blockNumber: reading.blockNumber,
        txHash: null,
      },
    };
    if (pair) event.pair = pair;
    events.push(event);
  }
  return events;
}

/** Before the stream's first snapshot: one made of the readings, without allowances. */
function firstSnapshot(
  readings: Map<Address, BalanceReading>,
  metadata: Record<string, TokenMetadata>,
  pair: WalletPair | undefined,
): AllBalancesEvent {
  const balances = new Map<Address, bigint>();
  const errors = new Map<Address, string>();
  const tokens = new Map<Address, TokenMetadata>();
  let blockNumber = 0;
  for (const [token, reading] of readings) {
    if (reading.balance === null) errors.set(token, "the token's balanceOf failed");
    else balances.set(token, reading.balance);
    blockNumber = Math.max(blockNumber, reading.blockNumber);
    const meta = metadata[token];
    if (meta) tokens.set(token, meta);
  }
  const record = <T>(entries: Iterable<[string, T]>): Record<string, T> =>
    Object.assign(Object.create(null) as Record<string, T>, Object.fromEntries(entries));
  const event: AllBalancesEvent = {
    type: "all_balances",
    lastEventId: "",
    polled: true,
    blockNumber,
    balances,
    allowances: new Map(),
    permit2: new Map(),
    errors,
    tokens,
    orders: new Map(),
    data: {
      balances: record([...balances].map(([t, b]) => [t, b.toString()])),
      allowances: {},
      errors: record(errors),
      tokens: record(tokens),
      blockNumber,
    },
  };
  if (pair) event.pair = pair;
  return event;
}
