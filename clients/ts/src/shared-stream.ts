// One balance stream shared by every tab of the origin that watches the same thing: the tab
// holding the leader lock runs the one EventSource and posts each event on a BroadcastChannel;
// the others render what it posts. Every tab folds the events into its own state, so a tab
// that joins gets the state as of now from the leader, and the tab that takes over when the
// leader closes resumes the stream from the last position it saw. The same machinery serves
// `watchBalances` (one wallet) and `watchManyBalances` (several pairs on one stream): what
// differs — the stream's URL, the state, the sessions — is a `StreamSubject`.
import {
  browserEnvironment,
  type BroadcastChannelLike,
  type Environment,
} from "./environment.js";
import type { AllBalancesEvent, BalanceEvent } from "./events.js";
import { LeaderLock } from "./leader-lock.js";
import { StreamConnection, type StreamStatus } from "./stream.js";

/** `leader`: this tab holds the stream; `follower`: another tab does and shares its events. */
export type TabRole = "leader" | "follower";

/** Your own polling while no stream can be had: start it, and return how to stop it. */
export type FallbackHook = () => (() => void) | void;

/**
 * The client's own polling while no stream can be had: the tab holding the stream reads the
 * balances it shows with `getBalances` (the batch route) every `pollEveryMs` and shares them
 * with the other tabs as `balance_update` events marked `polled` (an `all_balances` if no
 * snapshot came yet, from the session's tokens). Allowances and orders keep their last values.
 */
export interface PollingFallback {
  /** Default 10 s. */
  pollEveryMs?: number;
}

/** What every watch takes, one wallet or several. */
export interface SharedStreamOptions {
  /** Every event, amounts as bigint; `all_balances` first (also for a tab joining late). */
  onEvent?: (event: BalanceEvent) => void;
  onStatus?: (status: StreamStatus) => void;
  /** Called when this tab takes the stream (`leader`); a tab starts as a `follower`. */
  onRole?: (role: TabRole) => void;
  /** Non-fatal trouble: an unreadable event (dropped), a failed session request. */
  onError?: (error: unknown) => void;
  /**
   * What to do while the stream cannot be had — no live stream (or no first snapshot) for
   * `fallbackAfterMs`; reconnecting goes on meanwhile. `{ pollEveryMs }`: the client polls the
   * batch balance route itself (`PollingFallback`). A function: your own polling, started in
   * every tab; return a function that stops it, called as soon as the stream is live again.
   */
  fallback?: FallbackHook | PollingFallback;
  /** Down this long (ms) means `fallback`. Default 20 s. */
  fallbackAfterMs?: number;
  /** A stream silent this long (ms) is replaced. Default: twice the ping period seen. */
  pingTimeoutMs?: number;
  /** Longest wait between retries of a refused stream (ms). Default 30 s. */
  maxRetryMs?: number;
  /**
   * Close the stream when every tab of it has been hidden this long (ms); it resumes when one
   * is shown. `null`: never. Default 60 s.
   */
  pauseWhenHiddenMs?: number | null;
  /** One stream for all tabs of the origin (Web Locks + BroadcastChannel). Default true. */
  share?: boolean;
  /** The browser APIs to use (tests). Default: the page's. */
  environment?: Environment;
}

/** The values a tab folds the stream's events into (`WalletState`, or one per pair). */
export interface TabState {
  /** Where a stream resumes: the last event applied (`""` before any). */
  readonly lastEventId: string;
  /** Whether any snapshot came, so a stream may resume instead of starting over. */
  readonly hasSnapshot: boolean;
  /** Whether the snapshot `event` applies to has come (a follower drops updates before it). */
  covers(event: BalanceEvent): boolean;
  /** Applies `event`; `false` (nothing changes) for an update already applied. */
  apply(event: BalanceEvent): boolean;
  /** The state as of now, for a tab that joins: one `all_balances` per snapshot held. */
  snapshots(): AllBalancesEvent[];
}

/** The watch's guards around the caller's code, for a subject's session answers. */
export interface CallerHooks {
  callback(run: () => void): void;
  /** Non-fatal trouble, to `onError` (or the console). */
  problem(error: unknown): void;
}

/** What differs between the watches: what is streamed, folded and asked for. */
export interface StreamSubject<Request> {
  /** Tabs whose subjects have the same name share one stream. */
  readonly name: string;
  /** The stream's URL, resuming after `lastEventId` (`""`: from a fresh snapshot). */
  url(lastEventId: string): string;
  readonly state: TabState;
  /** This tab's session request, sent to the leader (for `recreateSessions`). */
  readonly request: Request;
  /** Creates (or adds to) this tab's sessions before the stream opens. */
  createSessions(hooks: CallerHooks): Promise<void>;
  /** The stream was refused: create again what is gone, with every tab's request. */
  recreateSessions(own: Request, others: readonly Request[], hooks: CallerHooks): Promise<void>;
  /**
   * The polling fallback's one round: the values the batch route reads now, as `polled`
   * events to apply (none for a value the state already holds).
   */
  poll(signal: AbortSignal): Promise<BalanceEvent[]>;
}

/** What a caller holds: the stream's status and role, the state's `current`, `close`. */
export interface SharedWatch<Current> {
  readonly status: StreamStatus;
  readonly role: TabRole;
  current: Current;
  /**
   * Calls `listener` after every change this tab sees — an event applied, the status or the
   * role — until the returned function is called. With `current`, a store for
   * `useSyncExternalStore`.
   */
  subscribe(listener: () => void): () => void;
  close(): void;
}

/** Bumped when the messages between tabs change: tabs of different versions never mix. */
const PROTOCOL = "live-balances/2";
const DEFAULT_POLL_MS = 10_000;

type TabMessage<Request> =
  | { kind: "hello"; from: string; visible: boolean; session: Request }
  | { kind: "leader"; from: string }
  | { kind: "snapshot"; to: string; event: AllBalancesEvent }
  | { kind: "event"; event: BalanceEvent }
  | { kind: "status"; status: StreamStatus }
  | { kind: "visibility"; from: string; visible: boolean }
  | { kind: "sessions"; from: string; session: Request }
  | { kind: "bye"; from: string };

interface OtherTab<Request> {
  visible: boolean;
  session: Request | null;
}

export class SharedStream<Request> implements CallerHooks {
  readonly #subject: StreamSubject<Request>;
  readonly #options: SharedStreamOptions;
  readonly #environment: Environment;
  readonly #tabId = Math.random().toString(36).slice(2) + Date.now().toString(36);
  readonly #sessionReady: Promise<void>;
  /** The other tabs, as the leader knows them. */
  readonly #tabs = new Map<string, OtherTab<Request>>();
  #status: StreamStatus = "connecting";
  #role: TabRole = "follower";
  #stream: StreamConnection | null = null;
  #channel: BroadcastChannelLike | null = null;
  #lock: LeaderLock | null = null;
  #pauseTimer: ReturnType<typeof setTimeout> | null = null;
  #stopFallback: (() => void) | null = null;
  readonly #listeners = new Set<() => void>();
  #closed = false;

  constructor(subject: StreamSubject<Request>, options: SharedStreamOptions) {
    this.#subject = subject;
    this.#options = options;
    const environment = options.environment ?? browserEnvironment();
    this.#environment = environment;
    this.#sessionReady = subject.createSessions(this).catch((error: unknown) => this.#problem(error));
    environment.document?.addEventListener("visibilitychange", this.#onVisibility);
    environment.window?.addEventListener("pagehide", this.#onPageHide);

    const { locks, BroadcastChannel } = environment;
    if (options.share === false || !locks || !BroadcastChannel) {
      this.#lead();
      return;
    }
    const name = `${PROTOCOL} ${subject.name}`;
    const channel = new BroadcastChannel(name);
    this.#channel = channel;
    channel.addEventListener("message", (event) => this.#receive(event.data as TabMessage<Request>));
    this.#post(this.#hello());
    this.#lock = new LeaderLock(locks, name);
    this.#lock.acquire(
      () => this.#lead(),
      (error) => {
        // No lock to be had (e.g. refused by the browser): lead alone rather than not at all.
        this.#problem(error);
        this.#lead();
      },
    );
  }

  get status(): StreamStatus {
    return this.#status;
  }

  get role(): TabRole {
    return this.#role;
  }

  /** The watch a caller holds, reading its values with `current`. */
  watch<Current>(current: Current): SharedWatch<Current> {
    const shared = this;
    return {
      get status() {
        return shared.status;
      },
      get role() {
        return shared.role;
      },
      current,
      subscribe: (listener) => shared.subscribe(listener),
      close: () => shared.close(),
    };
  }

  subscribe(listener: () => void): () => void {
    // Each subscription is its own entry, so the same function subscribed twice is called
    // twice and unsubscribed once per call.
    const entry = (): void => listener();
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  /** This tab's session request changed: the leader keeps it for `recreateSessions`. */
  sessionsChanged(): void {
    if (this.#role !== "leader") this.#post({ kind: "sessions", from: this.#tabId, session: this.#subject.request });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const stream = this.#stream;
    this.#stream = null;
    stream?.close();
    this.#lock?.release();
    this.#post({ kind: "bye", from: this.#tabId });
    this.#channel?.close();
    this.#channel = null;
    if (this.#pauseTimer !== null) clearTimeout(this.#pauseTimer);
    this.#environment.document?.removeEventListener("visibilitychange", this.#onVisibility);
    this.#environment.window?.removeEventListener("pagehide", this.#onPageHide);
    this.#setStatus("closed");
    this.#listeners.clear();
  }

  callback(run: () => void): void {
    try {
      run();
    } catch (error) {
      if (this.#options.onError) this.#options.onError(error);
      else console.error("live-balances: a callback threw", error);
    }
  }

  problem(error: unknown): void {
    this.#problem(error);
  }

  #lead(): void {
    if (this.#closed || this.#role === "leader") return;
    this.#role = "leader";
    this.callback(() => this.#options.onRole?.("leader"));
    this.#notify();
    // The other tabs answer with their visibility and session request.
    this.#post({ kind: "leader", from: this.#tabId });
    const state = this.#subject.state;
    const stream = new StreamConnection(
      this.#environment,
      (lastEventId) => this.#subject.url(lastEventId),
      {
        pingTimeoutMs: this.#options.pingTimeoutMs,
        fallbackAfterMs: this.#options.fallbackAfterMs ?? 20_000,
        maxRetryMs: this.#options.maxRetryMs ?? 30_000,
      },
      {
        event: (event) => {
          if (this.#stream !== stream) return;
          this.#deliver(event);
          this.#post({ kind: "event", event });
        },
        status: (status) => {
          if (this.#stream !== stream) return;
          this.#setStatus(status);
          this.#post({ kind: "status", status });
        },
        problem: (error) => this.#problem(error),
        refused: () => this.#subject.recreateSessions(this.#subject.request, this.#otherRequests(), this),
      },
    );
    this.#stream = stream;
    void this.#sessionReady.then(() => {
      if (this.#stream !== stream) return;
      // A tab taking over resumes where the stream it followed stood.
      stream.start(state.lastEventId, state.hasSnapshot);
      this.#setStatus(stream.status);
      this.#post({ kind: "status", status: stream.status });
      this.#judgeVisibility();
    });
  }

  #otherRequests(): Request[] {
    const requests: Request[] = [];
    for (const tab of this.#tabs.values()) if (tab.session !== null) requests.push(tab.session);
    return requests;
  }

  #receive(message: TabMessage<Request>): void {
    if (this.#closed || typeof message !== "object" || message === null) return;
    const leading = this.#role === "leader";
    const state = this.#subject.state;
    switch (message.kind) {
      case "event":
        // Before its first snapshot a follower has nothing to apply updates to; the leader's
        // answer to its hello brings the state.
        if (!leading && (message.event.type === "all_balances" || state.covers(message.event))) {
          this.#deliver(message.event);
        }
        break;
      case "snapshot":
        if (!leading && message.to === this.#tabId && !state.covers(message.event)) this.#deliver(message.event);
        break;
      case "status":
        if (!leading) this.#setStatus(message.status);
        break;
      case "leader":
        if (!leading) this.#post(this.#hello());
        break;
      case "hello": {
        if (!leading) break;
        this.#tabs.set(message.from, { visible: message.visible, session: message.session });
        for (const snapshot of state.snapshots()) this.#post({ kind: "snapshot", to: message.from, event: snapshot });
        this.#post({ kind: "status", status: this.#status });
        this.#judgeVisibility();
        break;
      }
      case "visibility": {
        if (!leading) break;
        const tab = this.#tabs.get(message.from);
        if (tab) tab.visible = message.visible;
        else this.#tabs.set(message.from, { visible: message.visible, session: null });
        this.#judgeVisibility();
        break;
      }
      case "sessions": {
        if (!leading) break;
        const tab = this.#tabs.get(message.from);
        if (tab) tab.session = message.session;
        else this.#tabs.set(message.from, { visible: true, session: message.session });
        break;
      }
      case "bye":
        if (!leading) break;
        this.#tabs.delete(message.from);
        this.#judgeVisibility();
        break;
    }
  }

  #hello(): TabMessage<Request> {
    return { kind: "hello", from: this.#tabId, visible: this.#visible(), session: this.#subject.request };
  }

  #deliver(event: BalanceEvent): void {
    if (!this.#subject.state.apply(event)) return;
    this.callback(() => this.#options.onEvent?.(event));
    this.#notify();
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) this.callback(listener);
  }

  #post(message: TabMessage<Request>): void {
    this.#channel?.postMessage(message);
  }

  #setStatus(status: StreamStatus): void {
    if (this.#status === status || (this.#closed && status !== "closed")) return;
    this.#status = status;
    this.callback(() => this.#options.onStatus?.(status));
    if (status === "fallback" && this.#stopFallback === null) {
      const fallback = this.#options.fallback;
      if (typeof fallback === "function") {
        let stop: (() => void) | void = undefined;
        this.callback(() => (stop = fallback()));
        this.#stopFallback = typeof stop === "function" ? stop : () => {};
      } else if (fallback && this.#role === "leader") {
        this.#stopFallback = this.#poll(fallback.pollEveryMs ?? DEFAULT_POLL_MS);
      }
    } else if (status !== "fallback" && this.#stopFallback !== null) {
      const stop = this.#stopFallback;
      this.#stopFallback = null;
      this.callback(stop);
    }
    this.#notify();
  }

  /** The polling fallback: a round now, then one every `everyMs` after the last ended. */
  #poll(everyMs: number): () => void {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const round = async (): Promise<void> => {
      try {
        const events = await this.#subject.poll(controller.signal);
        if (controller.signal.aborted) return;
        for (const event of events) {
          this.#deliver(event);
          this.#post({ kind: "event", event });
        }
      } catch (error) {
        if (!controller.signal.aborted) this.#problem(error);
      }
      if (!controller.signal.aborted) timer = setTimeout(() => void round(), everyMs);
    };
    void round();
    return () => {
      controller.abort();
      if (timer !== null) clearTimeout(timer);
    };
  }

  #visible(): boolean {
    return this.#environment.document?.visibilityState !== "hidden";
  }

  /** The leader pauses the stream once every tab has been hidden for `pauseWhenHiddenMs`. */
  #judgeVisibility(): void {
    const stream = this.#stream;
    const after = this.#options.pauseWhenHiddenMs === undefined ? 60_000 : this.#options.pauseWhenHiddenMs;
    if (stream === null || after === null) return;
    const anyVisible = this.#visible() || [...this.#tabs.values()].some((tab) => tab.visible);
    if (anyVisible) {
      if (this.#pauseTimer !== null) clearTimeout(this.#pauseTimer);
      this.#pauseTimer = null;
      stream.resume();
    } else if (this.#pauseTimer === null && stream.status !== "paused") {
      this.#pauseTimer = setTimeout(() => {
        this.#pauseTimer = null;
        if (this.#stream === stream) stream.pause();
      }, after);
    }
  }

  readonly #onVisibility = (): void => {
    if (this.#role === "leader") this.#judgeVisibility();
    else this.#post({ kind: "visibility", from: this.#tabId, visible: this.#visible() });
  };

  readonly #onPageHide = (): void => {
    this.#post({ kind: "bye", from: this.#tabId });
  };

  #problem(error: unknown): void {
    const report = this.#options.onError;
    if (report) report(error);
    else console.warn("live-balances:", error);
  }
}
