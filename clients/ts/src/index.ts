// @live-balances/client: typed access to a live-balances deployment from a browser. The
// back-end routes (orders, webhooks, delivery verification) are in `@live-balances/client/backend`.
export { createClient, BalancesClient } from "./client.js";
export {
  ApiClient,
  type BalanceReading,
  type ClientOptions,
  type SessionParams,
  type WalletRef,
} from "./api.js";
export { ApiError, type ErrorCode } from "./errors.js";
export type { RequestOptions, RetryOptions } from "./rest.js";
export { NATIVE_TOKEN, PERMIT2, isAddress, toAddress, type Address } from "./address.js";
export { watchBalances, type BalanceWatch, type TabRole, type WatchOptions, type WatchParams } from "./watch.js";
export type { FallbackHook, PollingFallback, SharedStreamOptions } from "./shared-stream.js";
export {
  watchManyBalances,
  type ManyBalanceWatch,
  type ManyWatchOptions,
  type WatchedPair,
} from "./watch-many.js";
export type { StreamStatus } from "./stream.js";
export {
  EVENT_NAMES,
  EventDataError,
  parseEvent,
  type AllBalancesEvent,
  type AllowanceUpdateEvent,
  type Approval,
  type BalanceEvent,
  type BalanceUpdateEvent,
  type OrderStatus,
  type OrderStatusEvent,
  type Permit2Allowance,
  type Permit2AllowanceUpdateEvent,
  type PingEvent,
  type ResyncEvent,
  type StreamErrorEvent,
  type WalletPair,
  type WalletSnapshot,
} from "./events.js";
export { formatUnits, parseAmount } from "./amount.js";
export type * from "./environment.js";
export type * from "./wire.js";
export type { paths, components } from "./schema.js";
