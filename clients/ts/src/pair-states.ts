// The values of every pair of a multi-wallet stream: a `WalletState` per (chain, wallet), and
// the stream's position — one composite id resumes every pair, so the last event's id, of
// whichever pair (or a `ping`), is where a tab taking over resumes.
import type { AllBalancesEvent, BalanceEvent, WalletPair } from "./events.js";
import type { TabState } from "./shared-stream.js";
import { WalletState } from "./wallet-state.js";

/** A pair as the client names it: `chainId:owner`, owner lowercase. */
export function pairKey(pair: { chainId: number; owner: string }): string {
  return `${pair.chainId}:${pair.owner.toLowerCase()}`;
}

/** The pairs in the service's canonical order (by chain, then owner): its ids' order. */
export function canonicalOrder<P extends WalletPair>(pairs: readonly P[]): P[] {
  return [...pairs].sort((a, b) => a.chainId - b.chainId || compare(a.owner.toLowerCase(), b.owner.toLowerCase()));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class PairStates implements TabState {
  readonly #states = new Map<string, WalletState>();
  /** Each pair's place in the canonical order: which part of a composite id is its position. */
  readonly #parts = new Map<string, number>();
  #lastEventId = "";

  constructor(pairs: readonly WalletPair[]) {
    for (const pair of canonicalOrder(pairs)) {
      const key = pairKey(pair);
      if (this.#states.has(key)) continue;
      this.#parts.set(key, this.#states.size);
      this.#states.set(key, new WalletState());
    }
  }

  get lastEventId(): string {
    return this.#lastEventId;
  }

  get hasSnapshot(): boolean {
    return [...this.#states.values()].some((state) => state.hasSnapshot);
  }

  /** An event of a pair needs that pair's snapshot; a `ping` any. */
  covers(event: BalanceEvent): boolean {
    if (!event.pair) return this.hasSnapshot;
    return this.#states.get(pairKey(event.pair))?.hasSnapshot ?? false;
  }

  apply(event: BalanceEvent): boolean {
    const key = event.pair ? pairKey(event.pair) : null;
    const state = key === null ? undefined : this.#states.get(key);
    if (state && key !== null && !state.apply(event, this.#updateId(key, event.lastEventId))) return false;
    if (event.lastEventId) this.#lastEventId = event.lastEventId;
    return true;
  }

  /** The pair's values now, or `null` (no snapshot yet, or not one of the pairs). */
  current(pair: WalletPair): AllBalancesEvent | null {
    return this.#states.get(pairKey(pair))?.current() ?? null;
  }

  /** The pair's own state (one of the pairs watched). */
  stateOf(pair: WalletPair): WalletState {
    const state = this.#states.get(pairKey(pair));
    if (!state) throw new RangeError(`not a watched pair: ${pairKey(pair)}`);
    return state;
  }

  /** Every pair's state as of now, each positioned at the stream's last id (it resumes all). */
  snapshots(): AllBalancesEvent[] {
    const snapshots: AllBalancesEvent[] = [];
    for (const state of this.#states.values()) {
      const now = state.current();
      if (now) snapshots.push({ ...now, lastEventId: this.#lastEventId });
    }
    return snapshots;
  }

  /**
   * What names an update of the pair `key`: its own position, the pair's part of the composite
   * id (`m1.<fingerprint>.<position>…`, canonical order). The whole id would not do: it holds
   * every pair's position at the moment it was sent, so the same update replayed to a tab that
   * took over — the pairs interleaved differently — comes with another id. An id that does not
   * read so names itself.
   */
  #updateId(key: string, id: string): string {
    const parts = id.split(".");
    const part = this.#parts.get(key);
    if (parts[0] !== "m1" || part === undefined || parts.length !== 2 + this.#states.size) return id;
    return `${parts[1]}.${parts[2 + part]}`;
  }
}
