// The client a front end creates once: the REST calls a browser makes, and the two watches.
import { ApiClient, type ClientOptions } from "./api.js";
import { watchBalances, type BalanceWatch, type WatchParams } from "./watch.js";
import {
  watchManyBalances,
  type ManyBalanceWatch,
  type ManyWatchOptions,
  type WatchedPair,
} from "./watch-many.js";

export class BalancesClient extends ApiClient {
  /** Follows the wallet's balances live; see `WatchOptions`. */
  watchBalances(params: WatchParams): BalanceWatch {
    return watchBalances(this, params);
  }

  /** Follows several (chain, wallet) pairs on one stream; see `ManyWatchOptions`. */
  watchManyBalances(pairs: readonly WatchedPair[], options: ManyWatchOptions = {}): ManyBalanceWatch {
    return watchManyBalances(this, pairs, options);
  }
}

export function createClient(options: ClientOptions): BalancesClient {
  return new BalancesClient(options);
}
