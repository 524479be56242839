// @live-balances/client/backend: the routes only a back end calls — orders and webhook
// subscriptions, which belong to an API key (`Authorization: Bearer <key>` on every request) —
// and the verification of webhook deliveries. For Node.js and other servers: an API key never
// belongs in a browser.
import type { Address } from "./address.js";
import { ApiClient, type ClientOptions, type WalletRef } from "./api.js";
import type { RequestOptions } from "./rest.js";
import type {
  OrderDeleted,
  OrderRequest,
  OrderView,
  OrdersView,
  ReplayAccepted,
  WebhookCreated,
  WebhookDeleted,
  WebhookRequest,
  WebhookView,
} from "./wire.js";

export { DeliveryVerifier, type WebhookDelivery, type DeliveryHeaders } from "./delivery.js";

export interface BackendClientOptions extends ClientOptions {
  /** The API key the operator issued: sent as `Authorization: Bearer <apiKey>`. */
  apiKey: string;
}

/** An order of a wallet, as the client names it (its id is yours: a CoW order UID, say). */
export interface OrderRef extends WalletRef {
  orderId: string;
}

/** A webhook subscription on a chain. */
export interface WebhookRef {
  chainId: number;
  id: string;
}

export class BackendClient extends ApiClient {
  constructor(options: BackendClientOptions) {
    const { apiKey, ...rest } = options;
    if (!apiKey) throw new TypeError("apiKey is required");
    super(rest, { authorization: `Bearer ${apiKey}` });
  }

  /**
   * `PUT /{chain_id}/orders/{owner}/{order_id}`: registers an open order (or replaces it) and
   * answers its fillability; the wallet's stream and webhooks then tell when it changes.
   */
  putOrder({ chainId, owner, orderId, ...order }: OrderRef & OrderRequest, options?: RequestOptions): Promise<OrderView> {
    return this.rest.call("/{chain_id}/orders/{owner}/{order_id}", "put", {
      ...options,
      params: { chain_id: chainId, owner, order_id: orderId },
      body: order,
    });
  }

  /** `DELETE /{chain_id}/orders/{owner}/{order_id}` (`ApiError` 404 `order_not_found` if none). */
  deleteOrder({ chainId, owner, orderId }: OrderRef, options?: RequestOptions): Promise<OrderDeleted> {
    return this.rest.call("/{chain_id}/orders/{owner}/{order_id}", "delete", {
      ...options,
      params: { chain_id: chainId, owner, order_id: orderId },
    });
  }

  /** `GET /{chain_id}/orders/{owner}`: the wallet's open orders with their fillability. */
  getOrders({ chainId, owner }: WalletRef, options?: RequestOptions): Promise<OrdersView> {
    return this.rest.call("/{chain_id}/orders/{owner}", "get", { ...options, params: { chain_id: chainId, owner } });
  }

  /**
   * `POST /{chain_id}/webhooks`: subscribes `url` to the wallets' changes. The answer holds
   * the signing secret, shown only here: keep it for `DeliveryVerifier`.
   */
  createWebhook(
    { chainId, ...request }: { chainId: number; wallets: readonly Address[] } & Omit<WebhookRequest, "wallets">,
    options?: RequestOptions,
  ): Promise<WebhookCreated> {
    return this.rest.call("/{chain_id}/webhooks", "post", {
      ...options,
      params: { chain_id: chainId },
      body: { ...request, wallets: [...request.wallets] },
    });
  }

  /** `GET /{chain_id}/webhooks/{id}`: status and parked deliveries. */
  getWebhook({ chainId, id }: WebhookRef, options?: RequestOptions): Promise<WebhookView> {
    return this.rest.call("/{chain_id}/webhooks/{id}", "get", { ...options, params: { chain_id: chainId, id } });
  }

  /** `DELETE /{chain_id}/webhooks/{id}`. */
  deleteWebhook({ chainId, id }: WebhookRef, options?: RequestOptions): Promise<WebhookDeleted> {
    return this.rest.call("/{chain_id}/webhooks/{id}", "delete", { ...options, params: { chain_id: chainId, id } });
  }

  /** `POST /{chain_id}/webhooks/{id}/replay`: re-enables it and sends the parked deliveries again. */
  replayWebhook({ chainId, id }: WebhookRef, options?: RequestOptions): Promise<ReplayAccepted> {
    return this.rest.call("/{chain_id}/webhooks/{id}/replay", "post", { ...options, params: { chain_id: chainId, id } });
  }
}

export function createBackendClient(options: BackendClientOptions): BackendClient {
  return new BackendClient(options);
}

export { ApiError, type ErrorCode } from "./errors.js";
export type { RequestOptions, RetryOptions } from "./rest.js";
export type { Address } from "./address.js";
export type {
  OrderDeleted,
  OrderRequest,
  OrderView,
  OrdersView,
  ReplayAccepted,
  WebhookCreated,
  WebhookDeleted,
  WebhookRequest,
  WebhookView,
} from "./wire.js";
