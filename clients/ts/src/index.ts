// @live-balances/client: typed access to a live-balances deployment from a browser.
export { createClient, BalancesClient } from "./client.js";
export { ApiClient, ApiError, type BalanceReading, type ClientOptions } from "./api.js";
export { watchBalances, type BalanceWatch, type TabRole, type WatchOptions } from "./watch.js";
export type { SharedStreamOptions } from "./shared-stream.js";
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
  type BalanceEvent,
  type BalanceUpdateEvent,
  type OrderStatus,
  type OrderStatusEvent,
  type PingEvent,
  type ResyncEvent,
  type StreamErrorEvent,
  type WalletPair,
} from "./events.js";
export { formatUnits, parseAmount } from "./amount.js";
export type * from "./environment.js";
export type * from "./wire.js";
export type { paths, components } from "./schema.js";
