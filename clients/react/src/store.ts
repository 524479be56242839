// The one store behind every hook of a tab: a wallet's watch (`watchBalances`) per (chain,
// owner), opened by the first component that subscribes and closed a moment after the last
// one leaves, so components on one wallet share one stream, a double mount (StrictMode) or a
// route change opens nothing twice, and each wallet's state is an immutable snapshot that
// changes identity only when its values, status or error do (`useSyncExternalStore`).
import type {
  Address,
  BalanceWatch,
  BalancesClient,
  SessionRequest,
  StreamStatus,
  WalletSnapshot,
  WatchOptions,
} from "@live-balances/client";

/** `idle`: nothing to follow (no wallet connected, or `enabled: false`, or on the server). */
export type LiveStatus = StreamStatus | "idle";

/** What every hook returns. */
export interface LiveResult<T> {
  /** `undefined` until the first snapshot (and while idle). */
  readonly data: T | undefined;
  readonly status: LiveStatus;
  /** The last trouble (a refused session, an unreadable event); cleared once live again. */
  readonly error: Error | undefined;
}

/** The wallet a hook follows; `undefined` chain or owner (nothing connected) means idle. */
export interface WalletParams {
  chainId: number | undefined;
  owner: Address | undefined;
  /** What the wallet's session should track; several components' requests add up. */
  session?: SessionRequest | undefined;
  /** `false`: stay idle. Default true. */
  enabled?: boolean | undefined;
}

/** How the store watches every wallet. */
export interface StoreOptions {
  /**
   * Options of every wallet's watch: `fallback` (e.g. `{ pollEveryMs: 10_000 }`),
   * `pauseWhenHiddenMs`, `share`, timings, `environment`. Callbacks are the store's.
   */
  watch?: Omit<WatchOptions, "session" | "onSession" | "onEvent" | "onStatus" | "onError" | "onRole">;
  /** How long a wallet's stream stays open after its last component left (ms). Default 1 s. */
  lingerMs?: number;
}

export const IDLE: LiveResult<never> = Object.freeze({ data: undefined, status: "idle", error: undefined });
/** A wallet no component has subscribed to yet (and the server's view of an enabled hook). */
export const PENDING: LiveResult<never> = Object.freeze({ data: undefined, status: "connecting", error: undefined });

/** The store's key of a wallet, or `null` when the hook is idle. */
export function walletKey(params: WalletParams): string | null {
  if (params.enabled === false || params.chainId === undefined || !params.owner) return null;
  return `${params.chainId}:${params.owner.toLowerCase()}`;
}

interface Entry {
  watch: BalanceWatch;
  listeners: Set<() => void>;
  sessions: Set<string>;
  result: LiveResult<WalletSnapshot>;
  error: Error | undefined;
  closeTimer: ReturnType<typeof setTimeout> | null;
}

export class BalancesStore {
  readonly client: BalancesClient;
  readonly #options: StoreOptions;
  readonly #entries = new Map<string, Entry>();

  constructor(client: BalancesClient, options: StoreOptions = {}) {
    this.client = client;
    this.#options = options;
  }

  /** The wallet's result now: the same object until it changes. */
  snapshot(key: string | null): LiveResult<WalletSnapshot> {
    if (key === null) return IDLE;
    return this.#entries.get(key)?.result ?? PENDING;
  }

  /**
   * Follows the wallet for `listener` (called after each change) until the returned function
   * is called. The first subscriber opens the watch; later ones with a session request it
   * has not sent yet add it to the session.
   */
  subscribe(params: WalletParams, listener: () => void): () => void {
    const key = walletKey(params);
    if (key === null) return () => {};
    const entry = this.#entries.get(key) ?? this.#open(key, params);
    if (entry.closeTimer !== null) clearTimeout(entry.closeTimer);
    entry.closeTimer = null;
    const listen = (): void => listener();
    entry.listeners.add(listen);
    const session = params.session;
    if (session && !entry.sessions.has(JSON.stringify(session))) {
      entry.sessions.add(JSON.stringify(session));
      entry.watch.addSession(session).catch((error: unknown) => this.#failed(entry, error));
    }
    return () => {
      entry.listeners.delete(listen);
      if (entry.listeners.size > 0 || entry.closeTimer !== null) return;
      entry.closeTimer = setTimeout(() => {
        if (entry.listeners.size > 0) return;
        this.#entries.delete(key);
        entry.watch.close();
      }, this.#options.lingerMs ?? 1000);
    };
  }

  #open(key: string, params: WalletParams): Entry {
    const session = params.session;
    let entry: Entry | undefined = undefined;
    const watch = this.client.watchBalances({
      ...this.#options.watch,
      chainId: params.chainId as number,
      owner: params.owner as Address,
      ...(session ? { session } : {}),
      onError: (error) => {
        if (entry) this.#failed(entry, error);
      },
    });
    entry = {
      watch,
      listeners: new Set(),
      sessions: new Set(session ? [JSON.stringify(session)] : []),
      result: PENDING,
      error: undefined,
      closeTimer: null,
    };
    const opened = entry;
    watch.subscribe(() => this.#refresh(opened));
    this.#entries.set(key, entry);
    this.#refresh(entry);
    return entry;
  }

  #failed(entry: Entry, error: unknown): void {
    entry.error = error instanceof Error ? error : new Error(String(error));
    this.#refresh(entry);
  }

  #refresh(entry: Entry): void {
    const status = entry.watch.status;
    // Trouble is forgotten when the stream comes (back) live, not by every change while live.
    if (status === "live" && entry.result.status !== "live") entry.error = undefined;
    const data = entry.watch.current() ?? undefined;
    const { result } = entry;
    if (result.data === data && result.status === status && result.error === entry.error) return;
    entry.result = Object.freeze({ data, status, error: entry.error });
    for (const listener of [...entry.listeners]) listener();
  }
}

const stores = new WeakMap<BalancesClient, BalancesStore>();

/** The tab's store of `client` (made on first use, with these options). */
export function storeOf(client: BalancesClient, options?: StoreOptions): BalancesStore {
  let store = stores.get(client);
  if (!store) stores.set(client, (store = new BalancesStore(client, options)));
  return store;
}
