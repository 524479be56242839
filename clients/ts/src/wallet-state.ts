// A wallet's current values: the last `all_balances` with every later update applied. Each tab
// keeps one, so whichever tab leads can hand a joining tab the state as of now, and resume the
// stream from the last position it saw when it takes over. `current()` is computed once per
// change and then given out as is, so callers can compare snapshots by identity.
import type { Address } from "./address.js";
import type { AllBalancesEvent, BalanceEvent } from "./events.js";
import type { TabState } from "./shared-stream.js";
import type { Permit2Terms } from "./wire.js";

/** How many update ids a state remembers to recognise a repeat. */
const REMEMBERED_UPDATES = 1024;

export class WalletState implements TabState {
  #snapshot: AllBalancesEvent | null = null;
  /** `current()` as of the last change (`undefined`: not computed since). */
  #current: AllBalancesEvent | null | undefined = undefined;
  #lastEventId = "";
  /** Ids of the latest updates applied, oldest first. */
  readonly #applied = new Set<string>();

  /** The stream position after the last event applied (`""` before any). */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  get hasSnapshot(): boolean {
    return this.#snapshot !== null;
  }

  /** Every event is about this one wallet: its snapshot covers them all once it came. */
  covers(_event: BalanceEvent): boolean {
    return this.hasSnapshot;
  }

  /**
   * Applies `event`; `false` (and nothing changes) for an update already applied. A tab that
   * takes the stream over replays from the last id it had *processed*, while an event the old
   * leader posted just before closing may still be on its way to the other tabs: they see it
   * twice, and must count it once. `updateId` names the update: on a single-wallet stream its
   * id, its own feed position (unique); on a multi-wallet stream the pair's part of it.
   */
  apply(event: BalanceEvent, updateId = event.lastEventId): boolean {
    const update =
      event.type === "balance_update" ||
      event.type === "allowance_update" ||
      event.type === "permit2_allowance_update" ||
      event.type === "order_status";
    if (update && updateId) {
      if (this.#applied.has(updateId)) return false;
      this.#applied.add(updateId);
      if (this.#applied.size > REMEMBERED_UPDATES) {
        this.#applied.delete(this.#applied.values().next().value as string);
      }
    }
    const moved = event.lastEventId !== "" && event.lastEventId !== this.#lastEventId;
    if (event.lastEventId) this.#lastEventId = event.lastEventId;
    // A ping (or a notice) changes no value: the snapshot stays the same object unless the
    // position it carries moved.
    const valuesChange = event.type !== "ping" && event.type !== "resync" && event.type !== "error";
    if (moved || valuesChange) this.#current = undefined;
    if (event.type === "all_balances") {
      this.#snapshot = copy(event);
      return true;
    }
    const s = this.#snapshot;
    if (s === null) return true;
    switch (event.type) {
      case "balance_update":
        s.balances.set(event.address, event.balance);
        s.errors.delete(event.address);
        s.blockNumber = Math.max(s.blockNumber, event.blockNumber);
        break;
      case "allowance_update": {
        let bySpender = s.allowances.get(event.address);
        if (!bySpender) s.allowances.set(event.address, (bySpender = new Map()));
        bySpender.set(event.spender, event.allowance);
        s.blockNumber = Math.max(s.blockNumber, event.blockNumber);
        break;
      }
      case "permit2_allowance_update": {
        let bySpender = s.permit2.get(event.address);
        if (!bySpender) s.permit2.set(event.address, (bySpender = new Map()));
        const { amount, expiration, nonce, expired } = event;
        bySpender.set(event.spender, { amount, expiration, nonce, expired });
        s.blockNumber = Math.max(s.blockNumber, event.blockNumber);
        break;
      }
      case "order_status": {
        const { type: _type, lastEventId: _id, pair: _pair, data: _data, ...status } = event;
        s.orders.set(event.orderId, status);
        break;
      }
      default:
        break;
    }
    return true;
  }

  /**
   * The current values as one `all_balances`, positioned at the last event applied; `null`
   * before the first snapshot. The same object until the next change: never mutate it. Its
   * `data` is the last snapshot's JSON (fields this client does not know kept) with the values
   * brought up to date.
   */
  current(): AllBalancesEvent | null {
    if (this.#current === undefined) this.#current = this.#compute();
    return this.#current;
  }

  /** The tokens whose balances the state holds (what a polling fallback reads). */
  tokens(): Address[] {
    return this.#snapshot ? [...this.#snapshot.balances.keys()] : [];
  }

  #compute(): AllBalancesEvent | null {
    const s = this.#snapshot;
    if (s === null) return null;
    const event = copy(s);
    event.lastEventId = this.#lastEventId;
    const balances = record<string>();
    for (const [token, value] of s.balances) balances[token] = value.toString();
    const allowances = record<Record<string, string>>();
    for (const [token, bySpender] of s.allowances) {
      const values = record<string>();
      for (const [spender, value] of bySpender) values[spender] = value.toString();
      allowances[token] = values;
    }
    const errors = record<string>();
    for (const [token, reason] of s.errors) errors[token] = reason;
    event.data = { ...s.data, balances, allowances, blockNumber: s.blockNumber };
    if (s.permit2.size > 0 || s.data.permit2 !== undefined) {
      const permit2 = record<Record<string, Permit2Terms>>();
      for (const [token, bySpender] of s.permit2) {
        const terms = record<Permit2Terms>();
        for (const [spender, p] of bySpender) terms[spender] = { ...p, amount: p.amount.toString() };
        permit2[token] = terms;
      }
      event.data.permit2 = permit2;
    }
    if (s.orders.size > 0 || s.data.orders !== undefined) {
      event.data.orders = [...s.orders.values()].map((o) => ({
        ...o,
        sellAmount: o.sellAmount.toString(),
        balanceShortfall: o.balanceShortfall.toString(),
        allowanceShortfall: o.allowanceShortfall.toString(),
      }));
    }
    if (s.errors.size > 0 || s.data.errors !== undefined) event.data.errors = errors;
    return event;
  }

  /** The state as of now for a tab that joins: `current()`, if any. */
  snapshots(): AllBalancesEvent[] {
    const now = this.current();
    return now ? [now] : [];
  }
}

function copy(event: AllBalancesEvent): AllBalancesEvent {
  return {
    ...event,
    balances: new Map(event.balances),
    allowances: new Map([...event.allowances].map(([token, bySpender]) => [token, new Map(bySpender)])),
    permit2: new Map([...event.permit2].map(([token, bySpender]) => [token, new Map(bySpender)])),
    errors: new Map(event.errors),
    tokens: new Map(event.tokens),
    orders: new Map(event.orders),
  };
}

/** An object without a prototype: keys from the wire can never reach `Object.prototype`. */
function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}
