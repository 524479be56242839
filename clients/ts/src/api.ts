// The REST routes a browser calls — sessions, balance reads, health — with named parameters
// (an owner and a token cannot be swapped unnoticed), and the URLs of the two streams. The
// back-end routes (orders, webhooks) are `BackendClient`'s (`@live-balances/client/backend`).
import type { Address } from "./address.js";
import { parseOptionalAmount } from "./amount.js";
import type { WalletPair } from "./events.js";
import { RestCaller, type RequestOptions, type RestOptions } from "./rest.js";
import type { Health, PairResult, PairSessionRequest, SessionRequest, SessionView } from "./wire.js";

export type ClientOptions = RestOptions;

/** A wallet on a chain, as a call names it. */
export interface WalletRef {
  chainId: number;
  owner: Address;
}

/** A session request for one wallet: the wallet and what to track. */
export type SessionParams = WalletRef & SessionRequest;

/** One balance read: `balance` is `null` when the token's `balanceOf` fails. */
export interface BalanceReading {
  balance: bigint | null;
  blockNumber: number;
  /** `table` (tracked, kept fresh by the service) or `chain` (read now). */
  source: string;
}

export class ApiClient {
  /** The service's base URL, ending in `/`. */
  readonly baseUrl: URL;
  protected readonly rest: RestCaller;

  constructor(options: ClientOptions, headers: Record<string, string> = {}) {
    this.rest = new RestCaller(options, headers);
    this.baseUrl = this.rest.baseUrl;
  }

  /** `POST /{chain_id}/sessions/{owner}`: creates the wallet's session or adds to it. */
  createSession({ chainId, owner, ...request }: SessionParams, options?: RequestOptions): Promise<SessionView> {
    return this.rest.call("/{chain_id}/sessions/{owner}", "post", {
      ...options,
      params: { chain_id: chainId, owner },
      body: request,
    });
  }

  /** `PUT /{chain_id}/sessions/{owner}`: adds to a live session (`ApiError` 404 if none). */
  addToSession({ chainId, owner, ...request }: SessionParams, options?: RequestOptions): Promise<SessionView> {
    return this.rest.call("/{chain_id}/sessions/{owner}", "put", {
      ...options,
      params: { chain_id: chainId, owner },
      body: request,
    });
  }

  /** `GET /{chain_id}/sessions/{owner}` (`ApiError` 404 `session_not_found` if none). */
  getSession({ chainId, owner }: WalletRef, options?: RequestOptions): Promise<SessionView> {
    return this.rest.call("/{chain_id}/sessions/{owner}", "get", { ...options, params: { chain_id: chainId, owner } });
  }

  /**
   * `POST /sessions`: creates or adds to the sessions of several (chain, wallet) pairs at
   * once. A refused request (`ApiError`) stored nothing; past that each pair has its own
   * result — its session, or its `status` and `error`.
   */
  async createSessions(wallets: readonly PairSessionRequest[], options?: RequestOptions): Promise<PairResult[]> {
    const view = await this.rest.call("/sessions", "post", { ...options, params: {}, body: { wallets: [...wallets] } });
    return view.wallets;
  }

  /** `GET /{chain_id}/balance/{owner}/{token}`: one balance, tracked or read on chain. */
  async getBalance(
    { chainId, owner, token }: WalletRef & { token: Address },
    options?: RequestOptions,
  ): Promise<BalanceReading> {
    const view = await this.rest.call("/{chain_id}/balance/{owner}/{token}", "get", {
      ...options,
      params: { chain_id: chainId, owner, token },
    });
    return { balance: parseOptionalAmount(view.balance), blockNumber: view.blockNumber, source: view.source };
  }

  /**
   * `POST /{chain_id}/balances/{owner}`: many balances in one request (tracked ones from the
   * table, the rest in one chain read) — what the polling fallback calls. Keyed by lowercase
   * token address.
   */
  async getBalances(
    { chainId, owner, tokens }: WalletRef & { tokens: readonly Address[] },
    options?: RequestOptions,
  ): Promise<Map<Address, BalanceReading>> {
    const view = await this.rest.call("/{chain_id}/balances/{owner}", "post", {
      ...options,
      params: { chain_id: chainId, owner },
      body: { tokens: [...tokens] },
    });
    const readings = new Map<Address, BalanceReading>();
    for (const [token, entry] of Object.entries(view.balances)) {
      readings.set(token.toLowerCase() as Address, {
        balance: parseOptionalAmount(entry.balance),
        blockNumber: entry.blockNumber,
        source: entry.source,
      });
    }
    return readings;
  }

  /**
   * `GET /health`: the table's and each chain's state. A `503` (something is not healthy) is
   * answered with the same shape, `ok: false`, not thrown.
   */
  health(options?: RequestOptions): Promise<Health> {
    return this.rest.call("/health", "get", { ...options, params: {}, answerStatuses: [503] });
  }

  /** The URL of the wallet's SSE stream, resuming after `lastEventId` when given. */
  streamUrl({ chainId, owner }: WalletRef, lastEventId?: string): string {
    const url = this.rest.url("/sse/{chain_id}/balances/{owner}", { chain_id: chainId, owner });
    if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
    return url.href;
  }

  /**
   * The URL of the multi-wallet stream of `pairs` (`GET /sse/balances`), resuming after
   * `lastEventId` when given.
   */
  manyStreamUrl(pairs: readonly WalletPair[], lastEventId?: string): string {
    const url = this.rest.url("/sse/balances", {});
    url.searchParams.set("wallets", pairs.map((p) => `${p.chainId}:${p.owner}`).join(","));
    if (lastEventId) url.searchParams.set("lastEventId", lastEventId);
    return url.href;
  }
}
