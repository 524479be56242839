// @live-balances/react/query: for apps that already keep balances in TanStack Query. Query
// keys for a wallet's values, query options that read them once over REST, and a hook that
// keeps those cache entries up to date from the tab's live stream — so `useQuery` shows live
// values without refetching. TanStack Query is not imported: any client with its
// `setQueryData` fits.
import { useEffect, useRef } from "react";
import type { Address, ApiClient, WalletRef, WalletSnapshot } from "@live-balances/client";

import { useBalances } from "./hooks.js";
import type { LiveResult, WalletParams } from "./store.js";

/** A TanStack `QueryClient`, as far as this module writes to it. */
export interface QueryCacheWriter {
  setQueryData(queryKey: readonly unknown[], data: unknown): unknown;
}

/** The query keys of a wallet's values: `["live-balances", chainId, owner, …]`, addresses lowercase. */
export const liveBalancesKeys = {
  all: ["live-balances"] as const,
  wallet: ({ chainId, owner }: WalletRef) => ["live-balances", chainId, lower(owner)] as const,
  balance: ({ chainId, owner, token }: WalletRef & { token: Address }) =>
    ["live-balances", chainId, lower(owner), "balance", lower(token)] as const,
  allowance: ({ chainId, owner, token, spender }: WalletRef & { token: Address; spender: Address }) =>
    ["live-balances", chainId, lower(owner), "allowance", lower(token), lower(spender)] as const,
  permit2Allowance: ({ chainId, owner, token, spender }: WalletRef & { token: Address; spender: Address }) =>
    ["live-balances", chainId, lower(owner), "permit2", lower(token), lower(spender)] as const,
};

/**
 * `useQuery` options for one balance, read with `getBalance` (`null` when the token cannot be
 * read); never stale, since `useLiveQuerySync` keeps the entry up to date.
 */
export function balanceQueryOptions(client: ApiClient, params: WalletRef & { token: Address }) {
  return {
    queryKey: liveBalancesKeys.balance(params),
    queryFn: async ({ signal }: { signal: AbortSignal }): Promise<bigint | null> =>
      (await client.getBalance(params, { signal })).balance,
    staleTime: Infinity,
  } as const;
}

/**
 * Follows the wallet (as `useBalances`) and writes what changes into `queryClient`: each
 * balance under `liveBalancesKeys.balance`, each allowance under `liveBalancesKeys.allowance`
 * (`bigint`), each Permit2 allowance under `liveBalancesKeys.permit2Allowance` (a
 * `Permit2Allowance`), and the whole snapshot under `liveBalancesKeys.wallet`. Only values that changed
 * since the last write are written.
 */
export function useLiveQuerySync(queryClient: QueryCacheWriter, params: WalletParams): LiveResult<WalletSnapshot> {
  const result = useBalances(params);
  const written = useRef<{ client: QueryCacheWriter; wallet: string; snapshot: WalletSnapshot } | null>(null);
  const { data } = result;
  useEffect(() => {
    if (data === undefined || params.chainId === undefined || !params.owner) return;
    const wallet = { chainId: params.chainId, owner: params.owner };
    const name = liveBalancesKeys.wallet(wallet).join(":");
    // What this hook wrote last, if to the same cache for the same wallet: only changes follow.
    const last = written.current;
    const before = last && last.client === queryClient && last.wallet === name ? last.snapshot : null;
    for (const [token, balance] of data.balances) {
      if (before?.balances.get(token) !== balance) {
        queryClient.setQueryData(liveBalancesKeys.balance({ ...wallet, token }), balance);
      }
    }
    for (const [token, bySpender] of data.allowances) {
      for (const [spender, allowance] of bySpender) {
        if (before?.allowances.get(token)?.get(spender) !== allowance) {
          queryClient.setQueryData(liveBalancesKeys.allowance({ ...wallet, token, spender }), allowance);
        }
      }
    }
    for (const [token, bySpender] of data.permit2) {
      for (const [spender, allowance] of bySpender) {
        if (before?.permit2.get(token)?.get(spender) !== allowance) {
          queryClient.setQueryData(liveBalancesKeys.permit2Allowance({ ...wallet, token, spender }), allowance);
        }
      }
    }
    queryClient.setQueryData(liveBalancesKeys.wallet(wallet), data);
    written.current = { client: queryClient, wallet: name, snapshot: data };
  }, [queryClient, data, params.chainId, params.owner]);
  return result;
}

function lower(address: Address): Address {
  return address.toLowerCase() as Address;
}
