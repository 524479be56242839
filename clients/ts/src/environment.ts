// The browser APIs the client uses, named here so they can be handed in: the page's own by
// default, stand-ins in the unit tests (Node has no EventSource, Web Locks or document).

/** `EventSource` as the client uses it. */
export interface EventSourceLike {
  /** 0 connecting, 1 open, 2 closed (the browser gave up: an HTTP error, a wrong type). */
  readonly readyState: number;
  addEventListener(type: string, listener: (event: Event) => void): void;
  close(): void;
}

export type EventSourceFactory = new (url: string) => EventSourceLike;

/** `navigator.locks`: exclusive locks shared by every tab of the origin. */
export interface LockManagerLike {
  request(name: string, options: { signal?: AbortSignal }, callback: () => Promise<void>): Promise<unknown>;
}

/** `BroadcastChannel`: messages to every other tab of the origin on the same channel name. */
export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  close(): void;
}

export type BroadcastChannelFactory = new (name: string) => BroadcastChannelLike;

/** `document` as far as visibility goes. */
export interface VisibilitySource {
  readonly visibilityState: string;
  addEventListener(type: "visibilitychange", listener: () => void): void;
  removeEventListener(type: "visibilitychange", listener: () => void): void;
}

/** `window` as far as leaving the page goes. */
export interface PageLifecycle {
  addEventListener(type: "pagehide", listener: () => void): void;
  removeEventListener(type: "pagehide", listener: () => void): void;
}

export interface Environment {
  EventSource: EventSourceFactory;
  /** Without it (an insecure origin, an old browser) each tab opens its own stream. */
  locks?: LockManagerLike | undefined;
  BroadcastChannel?: BroadcastChannelFactory | undefined;
  document?: VisibilitySource | undefined;
  window?: PageLifecycle | undefined;
}

/** The page's own APIs. */
export function browserEnvironment(): Environment {
  const g = globalThis as unknown as {
    EventSource?: EventSourceFactory;
    BroadcastChannel?: BroadcastChannelFactory;
    navigator?: { locks?: LockManagerLike };
    document?: VisibilitySource;
    window?: PageLifecycle;
  };
  if (!g.EventSource) throw new Error("EventSource is not available here; pass `environment`");
  return {
    EventSource: g.EventSource,
    locks: g.navigator?.locks,
    BroadcastChannel: g.BroadcastChannel,
    document: g.document,
    window: g.window,
  };
}
