// @live-balances/react: hooks for a wallet's live balances, allowances and orders, on one
// stream per wallet shared by every component of a tab (and by the tabs of a browser, through
// the client). TanStack Query users: `@live-balances/react/query`.
export { LiveBalancesProvider, useBalancesStore, useLiveBalancesClient, type LiveBalancesProviderProps } from "./context.js";
export { useAllowance, useBalance, useBalances, useOrderStatus, usePermit2Allowance } from "./hooks.js";
export {
  BalancesStore,
  storeOf,
  type LiveResult,
  type LiveStatus,
  type StoreOptions,
  type WalletParams,
} from "./store.js";
