// `watchManyBalances`: several (chain, wallet) pairs on one stream (`GET /sse/balances`) — an
// EOA and a Safe, or one wallet on two chains — within the browser's six connections per
// origin. One EventSource carries every pair; its ids resume every pair exactly, so the
// reconnects, the watchdog and the backoff are `watchBalances`'s own (`StreamConnection`).
// Each event names its pair (`event.pair`); a pair whose session is gone gets an `error` of
// its own and the others go on. Unlike `watchBalances`, tabs do not share the stream: each
// tab that calls this holds one.
import { ApiError, type ApiClient } from "./api.js";
import { browserEnvironment, type Environment } from "./environment.js";
import type { AllBalancesEvent, BalanceEvent, WalletPair } from "./events.js";
import { StreamConnection, type StreamStatus } from "./stream.js";
import { WalletState } from "./wallet-state.js";
import type { PairResult, SessionRequest } from "./wire.js";

/** A pair to watch, with the session it needs (created or added to before the stream opens). */
export interface WatchedPair extends WalletPair {
  session?: SessionRequest;
}

export interface ManyWatchOptions {
  /** Every event, amounts as bigint; each but `ping` names its pair in `pair`. */
  onEvent?: (event: BalanceEvent) => void;
  onStatus?: (status: StreamStatus) => void;
  /** Non-fatal trouble: an unreadable event, a failed session request (per pair too). */
  onError?: (error: unknown) => void;
  /** The answer to the sessions request: one result per pair with a `session`. */
  onSessions?: (results: PairResult[]) => void;
  /** See `WatchOptions`. */
  pingTimeoutMs?: number;
  fallbackAfterMs?: number;
  maxRetryMs?: number;
  environment?: Environment;
}

export interface ManyBalanceWatch {
  readonly status: StreamStatus;
  /** The pair's values now (its last snapshot with every update applied), or `null`. */
  current(pair: WalletPair): AllBalancesEvent | null;
  close(): void;
}

export function watchManyBalances(
  client: ApiClient,
  pairs: readonly WatchedPair[],
  options: ManyWatchOptions = {},
): ManyBalanceWatch {
  return new ManyWatch(client, pairs, options);
}

function key(pair: WalletPair): string {
  return `${pair.chainId}:${pair.owner.toLowerCase()}`;
}

class ManyWatch implements ManyBalanceWatch {
  readonly #client: ApiClient;
  readonly #pairs: readonly WatchedPair[];
  readonly #options: ManyWatchOptions;
  readonly #states = new Map<string, WalletState>();
  readonly #stream: StreamConnection;
  #status: StreamStatus = "connecting";
  #closed = false;

  constructor(client: ApiClient, pairs: readonly WatchedPair[], options: ManyWatchOptions) {
    this.#client = client;
    this.#pairs = pairs.map((p) => ({ ...p, owner: p.owner.toLowerCase() }));
    this.#options = options;
    for (const pair of this.#pairs) this.#states.set(key(pair), new WalletState());
    this.#stream = new StreamConnection(
      options.environment ?? browserEnvironment(),
      (lastEventId) => this.#client.manyStreamUrl(this.#pairs, lastEventId || undefined),
      {
        pingTimeoutMs: options.pingTimeoutMs,
        fallbackAfterMs: options.fallbackAfterMs ?? 20_000,
        maxRetryMs: options.maxRetryMs ?? 30_000,
      },
      {
        event: (event) => this.#deliver(event),
        status: (status) => {
          this.#status = status;
          this.#callback(() => this.#options.onStatus?.(status));
        },
        problem: (error) => this.#problem(error),
        // Refused (every session gone, say): ask for them again before the next attempt.
        refused: () => this.#createSessions(),
      },
    );
    void this.#createSessions().then(() => {
      if (!this.#closed) this.#stream.start("", false);
    });
  }

  get status(): StreamStatus {
    return this.#status;
  }

  current(pair: WalletPair): AllBalancesEvent | null {
    return this.#states.get(key(pair))?.current() ?? null;
  }

  close(): void {
    this.#closed = true;
    this.#stream.close();
  }

  async #createSessions(): Promise<void> {
    const wanted = this.#pairs.filter((p) => p.session !== undefined);
    if (wanted.length === 0) return;
    try {
      const results = await this.#client.createSessions(
        wanted.map((p) => ({ ...p.session, chainId: p.chainId, owner: p.owner })),
      );
      this.#callback(() => this.#options.onSessions?.(results));
      for (const r of results) {
        if (r.error) this.#problem(new ApiError(r.status ?? 500, r.error.code, `${r.chainId}:${r.owner}: ${r.error.message}`));
      }
    } catch (error) {
      this.#problem(error);
    }
  }

  #deliver(event: BalanceEvent): void {
    const state = event.pair ? this.#states.get(key(event.pair)) : undefined;
    // An update already applied (a resumed stream restating it) is not news.
    if (state && !state.apply(event)) return;
    this.#callback(() => this.#options.onEvent?.(event));
  }

  #problem(error: unknown): void {
    try {
      this.#options.onError?.(error);
    } catch {
      // The caller's error hook failing has nowhere left to go.
    }
  }

  #callback(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.#problem(error);
    }
  }
}
