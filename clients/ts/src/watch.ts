// `watchBalances`: a wallet's balance stream for a page, shared by every tab of the origin
// (`SharedStream`): one tab holds the EventSource, the others render what it shares, a tab
// that joins gets the state as of now, and the next tab resumes when the leader closes.
import type { ApiClient, WalletRef } from "./api.js";
import { ApiError } from "./errors.js";
import type { WalletSnapshot } from "./events.js";
import { pollWallet } from "./polling.js";
import type { RequestOptions } from "./rest.js";
import { SharedStream, type CallerHooks, type SharedStreamOptions, type TabRole } from "./shared-stream.js";
import type { StreamStatus } from "./stream.js";
import { WalletState } from "./wallet-state.js";
import type { SessionRequest, SessionView } from "./wire.js";

export type { TabRole } from "./shared-stream.js";

export interface WatchOptions extends SharedStreamOptions {
  /**
   * The session this tab needs. Created (or added to) before the stream opens, and created
   * again, with every tab's requests, if the stream finds it gone (expired while paused).
   */
  session?: SessionRequest;
  /** The answer to each of this tab's session requests. */
  onSession?: (session: SessionView) => void;
}

/** What `watchBalances` takes: the wallet, and how to follow it. */
export type WatchParams = WalletRef & WatchOptions;

export interface BalanceWatch {
  readonly status: StreamStatus;
  readonly role: TabRole;
  /**
   * The wallet's values now (the last snapshot with every update applied), or `null` before
   * the first. The same object until the next change.
   */
  current(): WalletSnapshot | null;
  /** Calls `listener` after every change (an event applied, the status, the role). */
  subscribe(listener: () => void): () => void;
  /**
   * Adds `request` to the wallet's session (`POST`, which creates or adds) and keeps it among
   * what is created again if the session expires. New tokens' values arrive as updates.
   */
  addSession(request: SessionRequest, options?: RequestOptions): Promise<SessionView>;
  /** Stops watching; if this tab led, another tab takes the stream over. */
  close(): void;
}

export function watchBalances(client: ApiClient, params: WatchParams): BalanceWatch {
  const { chainId, session, onSession } = params;
  const wallet = { chainId, owner: params.owner.toLowerCase() as WalletRef["owner"] };
  const state = new WalletState();
  // This tab's session requests, each once: the first from `session`, more from `addSession`.
  const requests: SessionRequest[] = session ? [session] : [];
  const shared = new SharedStream<SessionRequest[]>(
    {
      name: `${client.baseUrl.href} ${chainId} ${wallet.owner}`,
      url: (lastEventId) => client.streamUrl(wallet, lastEventId || undefined),
      state,
      get request() {
        return [...requests];
      },
      createSessions: async (hooks) => {
        if (!session) return;
        const view = await client.createSession({ ...wallet, ...session });
        hooks.callback(() => onSession?.(view));
      },
      recreateSessions: (own, others, hooks) => recreateSessionIfGone(client, wallet, onSession, own, others, hooks),
      poll: (signal) => pollWallet(client, wallet, state, signal),
    },
    params,
  );
  const watch = shared.watch(() => state.current());
  return {
    get status() {
      return watch.status;
    },
    get role() {
      return watch.role;
    },
    current: watch.current,
    subscribe: watch.subscribe,
    close: watch.close,
    async addSession(request, options) {
      const key = JSON.stringify(request);
      if (!requests.some((r) => JSON.stringify(r) === key)) {
        requests.push(request);
        shared.sessionsChanged();
      }
      const view = await client.createSession({ ...wallet, ...request }, options);
      shared.callback(() => onSession?.(view));
      return view;
    },
  };
}

/** The stream was refused: if the session is gone, create it again with every tab's requests. */
async function recreateSessionIfGone(
  client: ApiClient,
  wallet: WalletRef,
  onSession: WatchOptions["onSession"],
  own: readonly SessionRequest[],
  others: readonly (readonly SessionRequest[])[],
  hooks: CallerHooks,
): Promise<void> {
  try {
    await client.getSession(wallet);
    return;
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "session_not_found")) throw error;
  }
  const requests = new Map<string, { request: SessionRequest; own: boolean }>();
  for (const [list, isOwn] of [[own, true], ...others.map((o) => [o, false] as const)] as const) {
    // The first of equal requests is kept: this tab's own, so it hears its answer.
    for (const request of list) {
      const key = JSON.stringify(request);
      if (!requests.has(key)) requests.set(key, { request, own: isOwn });
    }
  }
  for (const { request, own: isOwn } of requests.values()) {
    const view = await client.createSession({ ...wallet, ...request });
    if (isOwn) hooks.callback(() => onSession?.(view));
  }
}
