// What the hooks' tests share: a client whose fetch answers as the service would (recording
// each request), watches on the client's scripted EventSource (`clients/ts/test/fakes.ts`),
// and React rendering into happy-dom's document.
import { createElement, StrictMode, type ReactNode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { act } from "react";
import { createClient, type BalancesClient } from "@live-balances/client";

import { LiveBalancesProvider } from "../src/index.js";
import { FakeEventSource, OWNER, TOKEN, tab } from "../../ts/test/fakes.js";

export { FakeEventSource, OWNER, TOKEN };
export { SPENDER, snapshotData, updateData } from "../../ts/test/fakes.js";

// React's act() environment flag, so updates outside events are flushed and checked.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

export interface Service {
  client: BalancesClient;
  requests: string[];
  bodies: unknown[];
}

export function service(): Service {
  const requests: string[] = [];
  const bodies: unknown[] = [];
  const fetch = (async (input: URL | RequestInfo, init?: RequestInit) => {
    const method = init?.method ?? "GET";
    requests.push(`${method} ${new URL(String(input)).pathname}`);
    bodies.push(typeof init?.body === "string" ? JSON.parse(init.body) : null);
    return new Response(JSON.stringify({ tokens: [TOKEN], spenders: [], metadata: {} }), { status: 200 });
  }) as typeof globalThis.fetch;
  return { client: createClient({ baseUrl: "http://127.0.0.1:9000/lambda-url/api/", fetch }), requests, bodies };
}

/** Renders `ui` under the provider (in StrictMode) into a fresh container. */
export async function render(client: BalancesClient, ui: ReactNode, lingerMs = 0): Promise<{ root: Root; container: HTMLElement; rerender(ui: ReactNode): Promise<void> }> {
  const container = document.createElement("div");
  document.body.append(container);
  const root = createRoot(container);
  const wrap = (node: ReactNode): ReactNode =>
    createElement(
      StrictMode,
      null,
      createElement(LiveBalancesProvider, { client, lingerMs, watch: { environment: tab(undefined), share: false } }, node),
    );
  await act(async () => root.render(wrap(ui)));
  return {
    root,
    container,
    rerender: async (node) => {
      await act(async () => root.render(wrap(node)));
    },
  };
}

/** Runs `work` inside act() and lets promises settle. */
export async function step(work: () => void = () => {}): Promise<void> {
  await act(async () => {
    work();
    await new Promise((resolve) => setTimeout(resolve, 0));
  });
}

/** The streams open now. */
export function openStreams(): FakeEventSource[] {
  return FakeEventSource.open();
}
