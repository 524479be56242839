// Where the hooks find their client: `<LiveBalancesProvider client={…}>` around the app. The
// store behind the hooks is the client's own (one per client per tab), so two providers of one
// client share its streams.
import { createContext, createElement, useContext, type ReactNode } from "react";
import type { BalancesClient } from "@live-balances/client";

import { storeOf, type BalancesStore, type StoreOptions } from "./store.js";

const StoreContext = createContext<BalancesStore | null>(null);

export interface LiveBalancesProviderProps extends StoreOptions {
  /** `createClient({ baseUrl })`, made once (outside the component, or in a `useState`). */
  client: BalancesClient;
  children?: ReactNode;
}

export function LiveBalancesProvider({ client, children, ...options }: LiveBalancesProviderProps): ReactNode {
  // Made on first use and kept for the client: the options of the first provider hold.
  const store = storeOf(client, options);
  return createElement(StoreContext.Provider, { value: store }, children);
}

/** The store of the nearest `LiveBalancesProvider`. */
export function useBalancesStore(): BalancesStore {
  const store = useContext(StoreContext);
  if (!store) throw new Error("@live-balances/react: wrap the app in <LiveBalancesProvider client={…}>");
  return store;
}

/** The nearest provider's client, for its REST calls. */
export function useLiveBalancesClient(): BalancesClient {
  return useBalancesStore().client;
}
