// Stand-ins for the browser APIs Node lacks (EventSource, Web Locks, document visibility),
// behaving as the specifications say, so the client's logic can be tested without a browser.
// The real ones are exercised by the headless Chromium test (tests/e2e/browser.rs).
import type { Address } from "../src/address.js";
import type {
  Environment,
  EventSourceLike,
  LockManagerLike,
  PageLifecycle,
  VisibilitySource,
} from "../src/environment.js";

/** An EventSource the test drives: `open`, `send` events, `idOnly` frames, `fail`. */
export class FakeEventSource implements EventSourceLike {
  static all: FakeEventSource[] = [];
  readyState = 0;
  closed = false;
  #lastEventId = "";
  readonly #listeners = new Map<string, ((event: Event) => void)[]>();

  constructor(readonly url: string) {
    FakeEventSource.all.push(this);
  }

  static reset(): void {
    FakeEventSource.all = [];
  }

  static open(): FakeEventSource[] {
    return FakeEventSource.all.filter((s) => !s.closed);
  }

  static latest(): FakeEventSource {
    const source = FakeEventSource.all.at(-1);
    if (!source) throw new Error("no EventSource was created");
    return source;
  }

  addEventListener(type: string, listener: (event: Event) => void): void {
    const list = this.#listeners.get(type) ?? [];
    list.push(listener);
    this.#listeners.set(type, list);
  }

  close(): void {
    this.closed = true;
    this.readyState = 2;
  }

  open(): void {
    this.readyState = 1;
    this.#dispatch(new Event("open"));
  }

  /** An event; like EventSource, the id persists for later events until another is set. */
  send(name: string, data: unknown, id?: string): void {
    if (id !== undefined) this.#lastEventId = id;
    const text = typeof data === "string" ? data : JSON.stringify(data);
    this.#dispatch(new MessageEvent(name, { data: text, lastEventId: this.#lastEventId }));
  }

  /** A frame with only `id:`: no event, but later events carry the id. */
  idOnly(id: string): void {
    this.#lastEventId = id;
  }

  /** A connection error: `closed` when the browser gives up (HTTP error), else it retries. */
  fail(closed: boolean): void {
    this.readyState = closed ? 2 : 0;
    this.#dispatch(new Event("error"));
  }

  #dispatch(event: Event): void {
    if (this.closed) return;
    for (const listener of this.#listeners.get(event.type) ?? []) listener(event);
  }
}

/** Web Locks' exclusive mode: one holder per name, waiters granted in request order. */
export class FakeLocks implements LockManagerLike {
  readonly #held = new Set<string>();
  readonly #queues = new Map<string, (() => void)[]>();

  request(name: string, options: { signal?: AbortSignal }, callback: () => Promise<void>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const grant = (): void => {
        this.#held.add(name);
        callback()
          .then(resolve, reject)
          .finally(() => {
            this.#held.delete(name);
            this.#queues.get(name)?.shift()?.();
          });
      };
      if (!this.#held.has(name)) {
        grant();
        return;
      }
      const queue = this.#queues.get(name) ?? [];
      queue.push(grant);
      this.#queues.set(name, queue);
      options.signal?.addEventListener("abort", () => {
        const i = queue.indexOf(grant);
        if (i >= 0) queue.splice(i, 1);
        reject(new DOMException("aborted", "AbortError"));
      });
    });
  }
}

/** `document.visibilityState` and its change event. */
export class FakeDocument implements VisibilitySource {
  visibilityState: "visible" | "hidden" = "visible";
  readonly #listeners = new Set<() => void>();

  addEventListener(_type: "visibilitychange", listener: () => void): void {
    this.#listeners.add(listener);
  }

  removeEventListener(_type: "visibilitychange", listener: () => void): void {
    this.#listeners.delete(listener);
  }

  set(state: "visible" | "hidden"): void {
    this.visibilityState = state;
    for (const listener of this.#listeners) listener();
  }
}

export class FakeWindow implements PageLifecycle {
  addEventListener(): void {}
  removeEventListener(): void {}
}

/** One tab's environment: its own document, the origin's locks and channels. */
export function tab(locks: FakeLocks | undefined, document = new FakeDocument()): Environment & { document: FakeDocument } {
  return {
    EventSource: FakeEventSource,
    locks,
    BroadcastChannel: locks ? BroadcastChannel : undefined,
    document,
    window: new FakeWindow(),
  };
}

/** Waits (real time) until `check` holds, failing after `ms`. */
export async function until(what: string, check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const OWNER: Address = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
export const TOKEN: Address = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
export const SPENDER: Address = "0xc92e8bdf79f0507f65a392b0ab4667716bfe0110";

/** A router that spends through Permit2 (its allowance lives inside Permit2). */
export const PERMIT2_SPENDER: Address = "0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad";

export function snapshotData(balance: string, blockNumber = 10): Record<string, unknown> {
  return {
    balances: { [TOKEN]: balance },
    allowances: { [TOKEN]: { [SPENDER]: "5" } },
    blockNumber,
    tokens: { [TOKEN]: { symbol: "TT", name: "Test", decimals: 6 } },
  };
}

export function updateData(balance: string, previous: string | null, blockNumber: number): Record<string, unknown> {
  return { address: TOKEN, balance, previousBalance: previous, blockNumber, txHash: "0xabc" };
}

/** A `permit2_allowance_update`'s data: by default an expiry (same terms, now expired, no tx). */
export function permit2UpdateData(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const terms = { amount: "1000000000000000000000", expiration: 1_900_000_000, nonce: 1 };
  return {
    address: TOKEN,
    spender: PERMIT2_SPENDER.toUpperCase().replace("0X", "0x"),
    ...terms,
    expired: true,
    previous: { ...terms, expired: false },
    blockNumber: 21,
    ...overrides,
  };
}
