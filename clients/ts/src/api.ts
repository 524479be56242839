// The REST side of the service: sessions and balance reads, typed from the OpenAPI document's
// paths (a renamed route or a changed answer fails the client's build, not a user's page).
import { parseOptionalAmount } from "./amount.js";
import type { paths } from "./schema.js";
import type { WalletPair } from "./events.js";
import type {
  OrderDeleted,
  OrderRequest,
  OrderView,
  OrdersView,
  PairResult,
  PairSessionRequest,
  SessionRequest,
  SessionView,
} from "./wire.js";

/** An answer other than 2xx, with the service's `{"code","message"}`. */
export class ApiError extends Error {
  constructor(
    /** HTTP status. */
    readonly status: number,
    /** Stable, machine-readable: `session_not_found`, `rate_limited`, `invalid_owner`, … */
    readonly code: string,
    message: string,
  ) {
    super(`${status} ${code}: ${message}`);
    this.name = "ApiError";
  }
}

/** One balance read: `balance` is `null` when the token's `balanceOf` fails. */
export interface BalanceReading {
  balance: bigint | null;
  blockNumber: number;
  /** `table` (tracked, kept fresh by the service) or `chain` (read now). */
  source: string;
}

export interface ClientOptions {
  /**
   * Where the API lives, e.g. the function URL (`https://….lambda-url.us-east-1.on.aws/`) or
   * `http://127.0.0.1:9000/lambda-url/api/` locally. Relative URLs resolve against the page.
   */
  baseUrl: string | URL;
  /** `fetch` to use (default: the global one). */
  fetch?: typeof fetch;
}

type Method = "get" | "post" | "put" | "delete";
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type PathParams<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { parameters: { path: infer T } } ? T : never;
type JsonAnswer<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { responses: { 200: { content: { "application/json": infer T } } } } ? T : never;
type JsonBody<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { requestBody: { content: { "application/json": infer T } } } ? T : undefined;

/** The REST routes, as the document names them. */
export class ApiClient {
  readonly baseUrl: URL;
  readonly #fetch: typeof fetch;

  constructor(options: ClientOptions) {
    const page = (globalThis as { location?: { href: string } }).location?.href;
    const base = new URL(options.baseUrl, page);
    // A base without a trailing slash would lose its last segment when routes are joined.
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    this.baseUrl = base;
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** `POST /{chain_id}/sessions/{owner}`: creates the wallet's session or adds to it. */
  createSession(chainId: number, owner: string, request: SessionRequest): Promise<SessionView> {
    return this.#call("/{chain_id}/sessions/{owner}", "post", { chain_id: chainId, owner }, request);
  }

  /** `PUT /{chain_id}/sessions/{owner}`: adds to a live session (`ApiError` 404 if none). */
  addToSession(chainId: number, owner: string, request: SessionRequest): Promise<SessionView> {
    return this.#call("/{chain_id}/sessions/{owner}", "put", { chain_id: chainId, owner }, request);
  }

  /**
   * `POST /sessions`: creates or adds to the sessions of several (chain, wallet) pairs at
   * once. A refused request (`ApiError`) stored nothing; past that each pair has its own
   * result — its session, or its `status` and `error`.
   */
  async createSessions(wallets: readonly PairSessionRequest[]): Promise<PairResult[]> {
    const view = await this.#call("/sessions", "post", {} as never, { wallets: [...wallets] });
    return view.wallets;
  }

  /** `GET /{chain_id}/sessions/{owner}` (`ApiError` 404 `session_not_found` if none). */
  getSession(chainId: number, owner: string): Promise<SessionView> {
    return this.#call("/{chain_id}/sessions/{owner}", "get", { chain_id: chainId, owner }, undefined);
  }

  /** `GET /{chain_id}/balance/{owner}/{token}`: one balance, tracked or read on chain. */
  async getBalance(chainId: number, owner: string, token: string): Promise<BalanceReading> {
    const view = await this.#call(
      "/{chain_id}/balance/{owner}/{token}",
      "get",
      { chain_id: chainId, owner, token },
      undefined,
    );
    return { balance: parseOptionalAmount(view.balance), blockNumber: view.blockNumber, source: view.source };
  }

  /**
   * `POST /{chain_id}/balances/{owner}`: many balances in one request (tracked ones from the
   * table, the rest in one chain read) — what a polling fallback calls.
   */
  async getBalances(chainId: number, owner: string, tokens: readonly string[]): Promise<Map<string, BalanceReading>> {
    const view = await this.#call(
      "/{chain_id}/balances/{owner}",
      "post",
      { chain_id: chainId, owner },
      { tokens: [...tokens] },
    );
    const readings = new Map<string, BalanceReading>();
    for (const [token, entry] of Object.entries(view.balances)) {
      readings.set(token, {
        balance: parseOptionalAmount(entry.balance),
        blockNumber: entry.blockNumber,
        source: entry.source,
      });
    }
    return readings;
  }

  /**
   * `PUT /{chain_id}/orders/{owner}/{order_id}`: registers an open order (or replaces it) and
   * answers its fillability; the wallet's stream then sends `order_status` when it changes.
   */
  putOrder(chainId: number, owner: string, orderId: string, request: OrderRequest): Promise<OrderView> {
    return this.#call(
      "/{chain_id}/orders/{owner}/{order_id}",
      "put",
      { chain_id: chainId, owner, order_id: orderId },
      request,
    );
  }

  /** `DELETE /{chain_id}/orders/{owner}/{order_id}` (`ApiError` 404 `order_not_found` if none). */
  deleteOrder(chainId: number, owner: string, orderId: string): Promise<OrderDeleted> {
    return this.#call(
      "/{chain_id}/orders/{owner}/{order_id}",
      "delete",
      { chain_id: chainId, owner, order_id: orderId },
      undefined,
    );
  }

  /** `GET /{chain_id}/orders/{owner}`: the wallet's open orders with their fillability. */
  getOrders(chainId: number, owner: string): Promise<OrdersView> {
    return this.#call("/{chain_id}/orders/{owner}", "get", { chain_id: chainId, owner }, undefined);
  }

  /** The URL of the wallet's SSE stream, resuming after `lastEventId` when given. */
  streamUrl(chainId: number, owner: string, lastEventId?: string): string {
    const url = this.#url("/sse/{chain_id}/balances/{owner}", { chain_id: chainId, owner });
    if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
    return url.href;
  }

  /**
   * The URL of the multi-wallet stream of `pairs` (`GET /sse/balances`), resuming after
   * `lastEventId` when given.
   */
  manyStreamUrl(pairs: readonly WalletPair[], lastEventId?: string): string {
    const url = this.#url("/sse/balances", {});
    url.searchParams.set("wallets", pairs.map((p) => `${p.chainId}:${p.owner}`).join(","));
    if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
    return url.href;
  }

  #url(template: string, params: Record<string, string | number>): URL {
    const path = template.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
      const value = params[name];
      if (value === undefined) throw new TypeError(`missing path parameter ${name}`);
      return encodeURIComponent(String(value));
    });
    return new URL(path.slice(1), this.baseUrl);
  }

  async #call<P extends keyof paths, M extends Method>(
    template: P,
    method: M,
    params: PathParams<P, M>,
    body: JsonBody<P, M>,
  ): Promise<JsonAnswer<P, M>> {
    const init: RequestInit = { method: method.toUpperCase(), headers: { accept: "application/json" } };
    if (body !== undefined) {
      init.headers = { accept: "application/json", "content-type": "application/json" };
      init.body = JSON.stringify(body);
    }
    const response = await this.#fetch(this.#url(template, params as Record<string, string | number>), init);
    const text = await response.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON: for an error status the status itself is reported below.
    }
    if (!response.ok) {
      const error = json as { code?: unknown; message?: unknown } | undefined;
      const code = typeof error?.code === "string" ? error.code : `http_${response.status}`;
      const message = typeof error?.message === "string" ? error.message : text.slice(0, 200);
      throw new ApiError(response.status, code, message);
    }
    if (json === undefined) throw new ApiError(response.status, "invalid_answer", "the answer is not JSON");
    return json as JsonAnswer<P, M>;
  }
}
