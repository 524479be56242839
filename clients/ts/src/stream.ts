// One wallet's SSE stream over EventSource, kept alive: resume by Last-Event-ID, a watchdog
// that replaces a stream gone silent, retries with backoff after the server refused one, a
// pause on request, and the "fallback" status once the stream has been down for too long.
import type { Environment, EventSourceLike } from "./environment.js";
import { EVENT_NAMES, parseEvent, type BalanceEvent } from "./events.js";

/**
 * - `connecting`: the first stream is opening.
 * - `live`: events flow.
 * - `reconnecting`: the stream dropped and is being reopened (the next one resumes).
 * - `fallback`: no live stream for `fallbackAfterMs`; reopening goes on meanwhile.
 * - `paused`: closed on purpose (every tab hidden); reopens, resuming, on `resume`.
 * - `closed`: ended by the caller.
 */
export type StreamStatus = "connecting" | "live" | "reconnecting" | "fallback" | "paused" | "closed";

export interface StreamTiming {
  /**
   * How long a stream may stay silent before it is replaced. Default: twice the ping period
   * seen on the stream (15 s assumed until two pings came).
   */
  pingTimeoutMs?: number | undefined;
  /** How long the stream may be down (or the first snapshot missing) before `fallback`. */
  fallbackAfterMs: number;
  /** Longest wait between two attempts after the server refused a stream. */
  maxRetryMs: number;
}

export interface StreamHandlers {
  event(event: BalanceEvent): void;
  status(status: StreamStatus): void;
  /** An event that could not be read (dropped), or a failing `refused` hook. */
  problem(error: unknown): void;
  /** Before reopening a stream the server refused (an HTTP error): e.g. recreate the session. */
  refused(): Promise<void>;
}

/** The service's default ping period, assumed until the stream shows its own. */
const DEFAULT_PING_MS = 15_000;
const FIRST_RETRY_MS = 1_000;
const WATCHDOG_TICK_MS = 1_000;
const CLOSED = 2;
const OPEN = 1;

export class StreamConnection {
  readonly #environment: Environment;
  readonly #url: (lastEventId: string) => string;
  readonly #timing: StreamTiming;
  readonly #handlers: StreamHandlers;
  #source: EventSourceLike | null = null;
  #status: StreamStatus = "connecting";
  /** Where the next stream resumes from; `""` for a fresh snapshot. */
  #lastEventId = "";
  /** Whether the caller holds a snapshot, so a stream may resume instead of starting over. */
  #resumable = false;
  #lastSign = 0;
  #lastPing = 0;
  #pingGap = DEFAULT_PING_MS;
  /** When the stream last stopped being live (`null` while live or paused). */
  #downSince: number | null = null;
  #refusals = 0;
  #watchdog: ReturnType<typeof setInterval> | null = null;
  #retry: ReturnType<typeof setTimeout> | null = null;

  constructor(
    environment: Environment,
    url: (lastEventId: string) => string,
    timing: StreamTiming,
    handlers: StreamHandlers,
  ) {
    this.#environment = environment;
    this.#url = url;
    this.#timing = timing;
    this.#handlers = handlers;
  }

  get status(): StreamStatus {
    return this.#status;
  }

  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** Opens the stream, resuming after `lastEventId` when the caller holds a snapshot. */
  start(lastEventId: string, resumable: boolean): void {
    this.#lastEventId = lastEventId;
    this.#resumable = resumable && lastEventId !== "";
    this.#downSince = Date.now();
    this.#watchdog = setInterval(() => this.#tick(), WATCHDOG_TICK_MS);
    this.#open(this.#resumable ? "reconnecting" : "connecting");
  }

  /** Closes the stream until `resume`; no fallback meanwhile. */
  pause(): void {
    if (this.#status === "paused" || this.#status === "closed") return;
    this.#drop();
    this.#downSince = null;
    this.#setStatus("paused");
  }

  resume(): void {
    if (this.#status !== "paused") return;
    this.#downSince = Date.now();
    this.#open("reconnecting");
  }

  close(): void {
    this.#drop();
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    this.#watchdog = null;
    this.#setStatus("closed");
  }

  #drop(): void {
    this.#source?.close();
    this.#source = null;
    if (this.#retry !== null) clearTimeout(this.#retry);
    this.#retry = null;
  }

  #open(status: StreamStatus): void {
    this.#drop();
    const source = new this.#environment.EventSource(this.#url(this.#resumable ? this.#lastEventId : ""));
    this.#source = source;
    this.#lastSign = Date.now();
    this.#lastPing = 0;
    if (this.#status !== "fallback") this.#setStatus(status);
    source.addEventListener("open", () => {
      if (this.#source !== source) return;
      this.#lastSign = Date.now();
      // A resumed stream is live once it is open; a fresh one once its snapshot came.
      if (this.#resumable) this.#live();
    });
    for (const name of EVENT_NAMES) {
      // `error` is both a server event (with data) and EventSource's connection error.
      if (name === "error") continue;
      source.addEventListener(name, (event) => this.#message(source, name, event));
    }
    source.addEventListener("error", (event) => {
      if (typeof (event as MessageEvent).data === "string") this.#message(source, "error", event);
      else this.#connectionError(source);
    });
  }

  #message(source: EventSourceLike, name: string, event: Event): void {
    if (this.#source !== source) return;
    const message = event as MessageEvent<string>;
    const now = Date.now();
    this.#lastSign = now;
    // Every event carries the stream's position, ids set by id-only frames included.
    if (message.lastEventId) this.#lastEventId = message.lastEventId;
    let parsed: BalanceEvent | null;
    try {
      parsed = parseEvent(name, message.data, this.#lastEventId);
    } catch (error) {
      this.#handlers.problem(error);
      return;
    }
    if (parsed === null) return;
    if (parsed.type === "ping") {
      if (this.#lastPing) this.#pingGap = Math.min(this.#pingGap, now - this.#lastPing);
      this.#lastPing = now;
    }
    if (parsed.type === "all_balances") {
      this.#resumable = true;
      this.#live();
    }
    this.#handlers.event(parsed);
  }

  #connectionError(source: EventSourceLike): void {
    if (this.#source !== source) return;
    this.#down();
    if (source.readyState !== CLOSED) return; // EventSource reconnects by itself, resuming.
    // Refused (an HTTP error or not an event stream): EventSource has given up. Try again
    // later, after the caller's hook (the session may have expired).
    source.close();
    const delay = Math.min(FIRST_RETRY_MS * 2 ** this.#refusals, this.#timing.maxRetryMs);
    this.#refusals += 1;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      this.#handlers
        .refused()
        .catch((error: unknown) => this.#handlers.problem(error))
        .finally(() => {
          if (this.#source === source) this.#open("reconnecting");
        });
    }, delay);
  }

  #live(): void {
    this.#downSince = null;
    this.#refusals = 0;
    this.#setStatus("live");
  }

  #down(): void {
    if (this.#downSince === null) this.#downSince = Date.now();
    if (this.#status === "live" || this.#status === "connecting") this.#setStatus("reconnecting");
  }

  #tick(): void {
    if (this.#status === "paused" || this.#status === "closed") return;
    const now = Date.now();
    if (this.#downSince !== null && now - this.#downSince >= this.#timing.fallbackAfterMs) {
      this.#setStatus("fallback");
    }
    const timeout = this.#timing.pingTimeoutMs ?? 2 * this.#pingGap;
    const source = this.#source;
    // Open but silent: the connection died without EventSource noticing. Replace it.
    if (source !== null && source.readyState === OPEN && now - this.#lastSign > timeout) {
      this.#down();
      this.#open("reconnecting");
    }
  }

  #setStatus(status: StreamStatus): void {
    if (this.#status === status) return;
    this.#status = status;
    this.#handlers.status(status);
  }
}
