// The one way the client calls a REST route: the URL built from the OpenAPI document's path
// template (a renamed route or a changed answer fails the client's build, not a user's page),
// a timeout per attempt and the caller's `AbortSignal`, retries of `429` / `503` answers
// honouring `Retry-After`, and every other failure as an `ApiError` with the service's code.
import { ApiError, type ErrorCode } from "./errors.js";
import type { paths } from "./schema.js";

/** Per call: cancel it, or bound its wait. */
export interface RequestOptions {
  /** Aborts the call and any pause before a retry; the call rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Longest wait for each attempt's answer (ms); past it the call rejects with a `TimeoutError`. */
  timeoutMs?: number | undefined;
}

/** Retries of answers that say "not now": `429` (rate limited) and `503` (busy, at capacity). */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 3; 1 never retries. */
  attempts?: number;
  /**
   * Longest pause before a retry (ms). Default 10 s. The pause is the answer's `Retry-After`
   * when it has one — an answer asking for a longer pause is not retried (its `ApiError` says
   * how long in `retryAfterMs`) — else 0.5 s doubled per retry, with jitter.
   */
  maxDelayMs?: number;
}

export interface RestOptions {
  /**
   * Where the API lives, e.g. the function URL (`https://….lambda-url.us-east-1.on.aws/`) or
   * `http://127.0.0.1:9000/lambda-url/api/` locally. Relative URLs resolve against the page.
   */
  baseUrl: string | URL;
  /** `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
  /** Longest wait for an answer (ms), per attempt; a call may override it. Default 30 s. */
  timeoutMs?: number;
  /** Retries of `429` / `503`; `false` for none. Default: 3 attempts, pauses up to 10 s. */
  retry?: RetryOptions | false;
}

export type Method = "get" | "post" | "put" | "delete";
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
export type PathParams<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { parameters: { path: infer T } } ? T : Record<string, never>;
type Answers<P extends keyof paths, M extends Method> = Operation<P, M> extends { responses: infer R } ? R : never;
type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
/** The JSON of the route's 2xx answer. */
export type JsonAnswer<P extends keyof paths, M extends Method> = {
  [S in keyof Answers<P, M>]: S extends 200 | 201 | 202 ? JsonOf<Answers<P, M>[S]> : never;
}[keyof Answers<P, M>];
export type JsonBody<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { requestBody: { content: { "application/json": infer T } } } ? T : undefined;

/** What a route call needs beyond its path and method. */
export interface CallOptions<P extends keyof paths, M extends Method> extends RequestOptions {
  params: PathParams<P, M>;
  body?: JsonBody<P, M>;
  /** Error statuses whose JSON is the answer (not an `ApiError`), never retried: `/health`'s 503. */
  answerStatuses?: readonly number[];
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_ATTEMPTS = 3;
const DEFAULT_MAX_DELAY_MS = 10_000;
const FIRST_DELAY_MS = 500;
const RETRIED = [429, 503];

export class RestCaller {
  readonly baseUrl: URL;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #maxDelayMs: number;
  readonly #headers: Record<string, string>;

  constructor(options: RestOptions, headers: Record<string, string> = {}) {
    const page = (globalThis as { location?: { href: string } }).location?.href;
    const base = new URL(options.baseUrl, page);
    // A base without a trailing slash would lose its last segment when routes are joined.
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    this.baseUrl = base;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#attempts = options.retry === false ? 1 : Math.max(1, options.retry?.attempts ?? DEFAULT_ATTEMPTS);
    this.#maxDelayMs = (options.retry === false ? undefined : options.retry?.maxDelayMs) ?? DEFAULT_MAX_DELAY_MS;
    this.#headers = headers;
  }

  /** The URL of `template` with its `{parameters}` filled in, encoded. */
  url(template: string, params: Record<string, string | number>): URL {
    const path = template.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
      const value = params[name];
      if (value === undefined) throw new TypeError(`missing path parameter ${name}`);
      return encodeURIComponent(String(value));
    });
    return new URL(path.slice(1), this.baseUrl);
  }

  async call<P extends keyof paths, M extends Method>(
    template: P,
    method: M,
    options: CallOptions<P, M>,
  ): Promise<JsonAnswer<P, M>> {
    const url = this.url(template, options.params as Record<string, string | number>);
    const headers: Record<string, string> = { accept: "application/json", ...this.#headers };
    const init: RequestInit = { method: method.toUpperCase(), headers };
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.#attempt(url, init, options)) as JsonAnswer<P, M>;
      } catch (error) {
        if (!(error instanceof ApiError) || !RETRIED.includes(error.status) || attempt >= this.#attempts) throw error;
        const backoff = FIRST_DELAY_MS * 2 ** (attempt - 1) * (0.5 + Math.random() / 2);
        const pause = error.retryAfterMs ?? Math.min(backoff, this.#maxDelayMs);
        if (pause > this.#maxDelayMs) throw error;
        await sleep(pause, options.signal);
      }
    }
  }

  async #attempt(url: URL, init: RequestInit, options: RequestOptions & { answerStatuses?: readonly number[] }): Promise<unknown> {
    const { signal } = options;
    signal?.throwIfAborted();
    const controller = new AbortController();
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    const timer = setTimeout(
      () => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")),
      timeoutMs,
    );
    const forward = (): void => controller.abort(signal?.reason);
    signal?.addEventListener("abort", forward, { once: true });
    try {
      const response = await this.#fetch(url, { ...init, signal: controller.signal });
      const text = await response.text();
      let json: unknown = undefined;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        // Not JSON: for an error status the status itself is reported below.
      }
      if (!response.ok && !options.answerStatuses?.includes(response.status)) {
        const error = json as { code?: unknown; message?: unknown } | undefined;
        const code = typeof error?.code === "string" ? (error.code as ErrorCode) : `http_${response.status}` as const;
        const message = typeof error?.message === "string" ? error.message : text.slice(0, 200);
        throw new ApiError(response.status, code, message, retryAfter(response.headers.get("retry-after")));
      }
      if (json === undefined) throw new ApiError(response.status, "invalid_answer", "the answer is not JSON");
      return json;
    } catch (error) {
      // Aborted (the caller, or the timeout): the reason, not fetch's own wording of it.
      if (controller.signal.aborted) throw controller.signal.reason;
      throw error;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", forward);
    }
  }
}

/** `Retry-After` in ms: delay-seconds or an HTTP date; `null` when absent or unreadable. */
export function retryAfter(header: string | null, now = Date.now()): number | null {
  if (header === null) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    const abort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", abort, { once: true });
  });
}
