// `watchBalances`: a wallet's balance stream for a page, shared by every tab of the origin
// (`SharedStream`): one tab holds the EventSource, the others render what it shares, a tab
// that joins gets the state as of now, and the next tab resumes when the leader closes.
import { ApiError, type ApiClient } from "./api.js";
import type { AllBalancesEvent } from "./events.js";
import { SharedStream, type CallerHooks, type SharedStreamOptions, type TabRole } from "./shared-stream.js";
import type { StreamStatus } from "./stream.js";
import { WalletState } from "./wallet-state.js";
import type { SessionRequest, SessionView } from "./wire.js";

export type { TabRole } from "./shared-stream.js";

export interface WatchOptions extends SharedStreamOptions {
  /**
   * The session this tab needs. Created (or added to) before the stream opens, and created
   * again, with every tab's request, if the stream finds it gone (expired while paused).
   */
  session?: SessionRequest;
  /** The answer to this tab's session request. */
  onSession?: (session: SessionView) => void;
}

export interface BalanceWatch {
  readonly status: StreamStatus;
  readonly role: TabRole;
  /** The wallet's values now (the last snapshot with every update applied), or `null`. */
  current(): AllBalancesEvent | null;
  /** Stops watching; if this tab led, another tab takes the stream over. */
  close(): void;
}

export function watchBalances(
  client: ApiClient,
  chainId: number,
  owner: string,
  options: WatchOptions = {},
): BalanceWatch {
  const wallet = owner.toLowerCase();
  const state = new WalletState();
  const shared = new SharedStream<SessionRequest | null>(
    {
      name: `${client.baseUrl.href} ${chainId} ${wallet}`,
      url: (lastEventId) => client.streamUrl(chainId, wallet, lastEventId || undefined),
      state,
      request: options.session ?? null,
      createSessions: async (hooks) => {
        if (!options.session) return;
        const view = await client.createSession(chainId, wallet, options.session);
        hooks.callback(() => options.onSession?.(view));
      },
      recreateSessions: (own, others, hooks) => recreateSessionIfGone(client, chainId, wallet, options, own, others, hooks),
    },
    options,
  );
  return shared.watch(() => state.current());
}

/** The stream was refused: if the session is gone, create it again with every tab's request. */
async function recreateSessionIfGone(
  client: ApiClient,
  chainId: number,
  owner: string,
  options: WatchOptions,
  own: SessionRequest | null,
  others: readonly (SessionRequest | null)[],
  hooks: CallerHooks,
): Promise<void> {
  try {
    await client.getSession(chainId, owner);
    return;
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "session_not_found")) throw error;
  }
  const requests = new Map<string, SessionRequest>();
  for (const request of [own, ...others]) {
    // The first of equal requests is kept: this tab's own, so it hears its answer.
    if (request && !requests.has(JSON.stringify(request))) requests.set(JSON.stringify(request), request);
  }
  for (const request of requests.values()) {
    const view = await client.createSession(chainId, owner, request);
    if (request === own) hooks.callback(() => options.onSession?.(view));
  }
}
