// The client a front end creates once: the REST calls plus `watchBalances`.
import { ApiClient, type ClientOptions } from "./api.js";
import { watchBalances, type BalanceWatch, type WatchOptions } from "./watch.js";
import {
  watchManyBalances,
  type ManyBalanceWatch,
  type ManyWatchOptions,
  type WatchedPair,
} from "./watch-many.js";

export class BalancesClient extends ApiClient {
  /** Follows the wallet's balances live; see `WatchOptions`. */
  watchBalances(chainId: number, owner: string, options: WatchOptions = {}): BalanceWatch {
    return watchBalances(this, chainId, owner, options);
  }

  /** Follows several (chain, wallet) pairs on one stream; see `ManyWatchOptions`. */
  watchManyBalances(pairs: readonly WatchedPair[], options: ManyWatchOptions = {}): ManyBalanceWatch {
    return watchManyBalances(this, pairs, options);
  }
}

export function createClient(options: ClientOptions): BalancesClient {
  return new BalancesClient(options);
}
