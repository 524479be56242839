// `watchManyBalances`: several (chain, wallet) pairs on one stream (`GET /sse/balances`) — an
// EOA and a Safe, or one wallet on two chains — within the browser's six connections per
// origin, shared by every tab of the origin watching the same set of pairs (in any order)
// exactly as `watchBalances` shares one wallet's (`SharedStream`). Each event names its pair
// (`event.pair`); a pair whose session is gone gets an `error` of its own and the others go
// on. One composite id resumes every pair, so a tab taking over resumes all from the last.
import type { Address } from "./address.js";
import type { ApiClient } from "./api.js";
import { ApiError } from "./errors.js";
import type { WalletPair, WalletSnapshot } from "./events.js";
import { PairStates, canonicalOrder, pairKey } from "./pair-states.js";
import { pollWallet } from "./polling.js";
import { SharedStream, type CallerHooks, type SharedStreamOptions, type TabRole } from "./shared-stream.js";
import type { StreamStatus } from "./stream.js";
import type { PairResult, PairSessionRequest, SessionRequest } from "./wire.js";

/** A pair to watch, with the session it needs (created or added to before the stream opens). */
export interface WatchedPair extends WalletPair {
  session?: SessionRequest;
}

export interface ManyWatchOptions extends SharedStreamOptions {
  /**
   * The answer to this tab's sessions request: one result per pair with a `session`. The
   * sessions are created again, with every tab's requests, when the stream is refused.
   */
  onSessions?: (results: PairResult[]) => void;
}

export interface ManyBalanceWatch {
  readonly status: StreamStatus;
  readonly role: TabRole;
  /**
   * The pair's values now (its last snapshot with every update applied), or `null`. The same
   * object until the pair's next change.
   */
  current(pair: WalletPair): WalletSnapshot | null;
  /** Calls `listener` after every change (an event applied, the status, the role). */
  subscribe(listener: () => void): () => void;
  /** Stops watching; if this tab led, another tab takes the stream over. */
  close(): void;
}

export function watchManyBalances(
  client: ApiClient,
  pairs: readonly WatchedPair[],
  options: ManyWatchOptions = {},
): ManyBalanceWatch {
  const watched = pairs.map((p) => ({ chainId: p.chainId, owner: p.owner.toLowerCase() as Address, session: p.session }));
  const state = new PairStates(watched);
  const request: PairSessionRequest[] = [];
  for (const p of watched) if (p.session) request.push({ ...p.session, chainId: p.chainId, owner: p.owner });
  const shared = new SharedStream<PairSessionRequest[]>(
    {
      name: `${client.baseUrl.href} pairs ${canonicalOrder(watched).map(pairKey).join(",")}`,
      url: (lastEventId) => client.manyStreamUrl(watched, lastEventId || undefined),
      state,
      request,
      createSessions: (hooks) => createSessions(client, options, request, [], hooks),
      // Refused (every session gone, say): ask for them all again before the next attempt.
      recreateSessions: (own, others, hooks) => createSessions(client, options, own, others, hooks),
      poll: async (signal) => {
        const rounds = watched.map((p) => {
          const pair = { chainId: p.chainId, owner: p.owner };
          return pollWallet(client, pair, state.stateOf(pair), signal, pair);
        });
        return (await Promise.all(rounds)).flat();
      },
    },
    options,
  );
  return shared.watch((pair: WalletPair): WalletSnapshot | null => state.current(pair));
}

/**
 * Creates (or adds to) the sessions this tab's and the other tabs' requests ask for, equal
 * ones once: one `POST /sessions` per round, for a request names each pair at most once (two
 * tabs may ask different things of one pair). This tab's own come first, in the first round.
 */
async function createSessions(
  client: ApiClient,
  options: ManyWatchOptions,
  own: readonly PairSessionRequest[],
  others: readonly (readonly PairSessionRequest[])[],
  hooks: CallerHooks,
): Promise<void> {
  interface Entry {
    request: PairSessionRequest;
    own: boolean;
  }
  const distinct = new Map<string, Entry>();
  for (const [list, isOwn] of [[own, true], ...others.map((o) => [o, false] as const)] as const) {
    for (const request of list) {
      const key = JSON.stringify(request);
      if (!distinct.has(key)) distinct.set(key, { request, own: isOwn });
    }
  }
  const rounds: Entry[][] = [];
  for (const entry of distinct.values()) {
    const pair = pairKey(entry.request);
    let round = rounds.find((r) => !r.some((e) => pairKey(e.request) === pair));
    if (!round) rounds.push((round = []));
    round.push(entry);
  }
  for (const round of rounds) {
    const results = await client.createSessions(round.map((e) => e.request));
    const mine = results.filter((_, i) => round[i]?.own);
    if (mine.length === 0) continue;
    hooks.callback(() => options.onSessions?.(mine));
    for (const r of mine) {
      if (r.error) hooks.problem(new ApiError(r.status ?? 500, r.error.code, `${r.chainId}:${r.owner}: ${r.error.message}`));
    }
  }
}
