// The hooks: a wallet's whole snapshot, one balance, one allowance, one order — each reading
// the tab's shared store through `useSyncExternalStore` and re-rendering only when what it
// returns changes. A hook given no chain or owner (a wallet not connected) is idle; given
// another, it follows that one (the previous wallet's stream closes once nobody reads it).
import { useCallback, useMemo, useSyncExternalStore } from "react";
import type { Address, OrderStatus, Permit2Allowance, WalletSnapshot } from "@live-balances/client";

import { useBalancesStore } from "./context.js";
import { IDLE, PENDING, walletKey, type LiveResult, type WalletParams } from "./store.js";

/** The wallet's values — balances, allowances, token metadata, orders — live. */
export function useBalances(params: WalletParams): LiveResult<WalletSnapshot> {
  return useWalletSelector(params, "", identity);
}

/** One token's balance (`NATIVE_TOKEN` for the chain's coin), live. */
export function useBalance(params: WalletParams & { token: Address }): LiveResult<bigint> {
  const token = params.token.toLowerCase() as Address;
  const select = useCallback((s: WalletSnapshot) => s.balances.get(token), [token]);
  return useWalletSelector(params, token, select);
}

/** One allowance of `token` to `spender` (default: the session's default spender), live. */
export function useAllowance(params: WalletParams & { token: Address; spender: Address }): LiveResult<bigint> {
  const token = params.token.toLowerCase() as Address;
  const spender = params.spender.toLowerCase() as Address;
  const select = useCallback((s: WalletSnapshot) => s.allowances.get(token)?.get(spender), [token, spender]);
  return useWalletSelector(params, `${token}/${spender}`, select);
}

/**
 * The Permit2 allowance of `token` to `spender` — amount, expiration, nonce, `expired` — live,
 * for a spender the session names in `permit2Spenders`; the same object until it changes.
 * `undefined` before the first snapshot, and while the snapshot holds none for the pair (a
 * large session leaves out the zero ones of tokens it does not name: never set). The token's
 * own allowance to Permit2 is `useAllowance({ token, spender: PERMIT2 })`.
 */
export function usePermit2Allowance(
  params: WalletParams & { token: Address; spender: Address },
): LiveResult<Readonly<Permit2Allowance>> {
  const token = params.token.toLowerCase() as Address;
  const spender = params.spender.toLowerCase() as Address;
  const select = useCallback((s: WalletSnapshot) => s.permit2.get(token)?.get(spender), [token, spender]);
  return useWalletSelector(params, `permit2/${token}/${spender}`, select);
}

/**
 * One open order's fillability (registered by a back end with `putOrder`), live; `undefined`
 * when the wallet has no such open order.
 */
export function useOrderStatus(params: WalletParams & { orderId: string }): LiveResult<OrderStatus> {
  const { orderId } = params;
  const select = useCallback((s: WalletSnapshot) => s.orders.get(orderId), [orderId]);
  return useWalletSelector(params, orderId, select);
}

function identity(snapshot: WalletSnapshot): WalletSnapshot {
  return snapshot;
}

/**
 * The wallet's result through `select`: the same object for as long as the selected value,
 * the status and the error stay the same (`selection` names what `select` picks, so a new
 * selection is a new snapshot function).
 */
function useWalletSelector<T>(
  params: WalletParams,
  selection: string,
  select: (snapshot: WalletSnapshot) => T | undefined,
): LiveResult<T> {
  const store = useBalancesStore();
  const key = walletKey(params);
  const session = params.session;
  const sessionKey = session ? JSON.stringify(session) : "";
  const { chainId, owner } = params;

  const subscribe = useCallback(
    (listener: () => void) => store.subscribe({ chainId, owner, session }, listener),
    // `session` is compared by its JSON: an inline object literal must not resubscribe.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [store, key, sessionKey],
  );
  const getSnapshot = useMemo(() => {
    let source: LiveResult<WalletSnapshot> | null = null;
    let selected: LiveResult<T> | null = null;
    return (): LiveResult<T> => {
      const next = store.snapshot(key);
      if (next === source && selected) return selected;
      source = next;
      const data = next.data === undefined ? undefined : select(next.data);
      if (selected && selected.data === data && selected.status === next.status && selected.error === next.error) {
        return selected;
      }
      selected = next.data === data ? (next as LiveResult<T>) : Object.freeze({ data, status: next.status, error: next.error });
      return selected;
    };
    // `selection` stands for `select`'s inputs.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [store, key, selection]);
  const serverSnapshot = key === null ? IDLE : PENDING;
  return useSyncExternalStore(subscribe, getSnapshot, () => serverSnapshot);
}
