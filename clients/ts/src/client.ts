// The client a front end creates once: the REST calls plus `watchBalances`.
import { ApiClient, type ClientOptions } from "./api.js";
import { watchBalances, type BalanceWatch, type WatchOptions } from "./watch.js";

export class BalancesClient extends ApiClient {
  /** Follows the wallet's balances live; see `WatchOptions`. */
  watchBalances(chainId: number, owner: string, options: WatchOptions = {}): BalanceWatch {
    return watchBalances(this, chainId, owner, options);
  }
}

export function createClient(options: ClientOptions): BalancesClient {
  return new BalancesClient(options);
}
