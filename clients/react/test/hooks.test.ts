// The hooks in React's development build under StrictMode (every effect mounted, unmounted and
// mounted again): one session request and one stream for any number of components on a
// wallet, live values, a re-render only for what changed, following the wallet and chain the
// app passes, and nothing opened on the server.
import { createElement, useRef, type ReactNode } from "react";
import { renderToString } from "react-dom/server";
import { act } from "react";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { Address } from "@live-balances/client";

import {
  LiveBalancesProvider,
  useAllowance,
  useBalance,
  useBalances,
  useOrderStatus,
  usePermit2Allowance,
} from "../src/index.js";
import {
  FakeEventSource,
  OWNER,
  SPENDER,
  TOKEN,
  openStreams,
  render,
  service,
  snapshotData,
  step,
  updateData,
} from "./harness.js";

const OTHER_TOKEN: Address = "0x00000000000000000000000000000000000000aa";
const SECOND_OWNER: Address = "0x00000000000000000000000000000000000000b2";

beforeEach(() => FakeEventSource.reset());
afterEach(() => {
  document.body.replaceChildren();
});

/** Renders what a hook returns as text, counting its renders. */
function Show({ name, read }: { name: string; read: () => { data: unknown; status: string } }): ReactNode {
  const renders = useRef(0);
  renders.current += 1;
  const { data, status } = read();
  const text =
    data === undefined ? "-" : typeof data === "bigint" || typeof data === "string" ? String(data) : "snapshot";
  return createElement("p", { id: name, "data-status": status, "data-renders": renders.current }, text);
}

const text = (id: string): string | null | undefined => document.getElementById(id)?.textContent;
const renders = (id: string): number => Number(document.getElementById(id)?.dataset["renders"]);

describe("components on one wallet", () => {
  test("share one session request and one stream, even under StrictMode", async () => {
    const { client, requests } = service();
    const wallet = { chainId: 31337, owner: OWNER, session: { customTokens: [TOKEN] } };
    await render(
      client,
      createElement(
        "div",
        null,
        createElement(Show, { name: "all", read: () => useBalances(wallet) }),
        createElement(Show, { name: "one", read: () => useBalance({ ...wallet, token: TOKEN }) }),
        createElement(Show, { name: "allowance", read: () => useAllowance({ ...wallet, token: TOKEN, spender: SPENDER }) }),
      ),
    );
    await step();
    expect(requests).toEqual([`POST /lambda-url/api/31337/sessions/${OWNER}`]);
    expect(openStreams()).toHaveLength(1);
    expect(document.getElementById("one")?.dataset["status"]).toBe("connecting");

    const source = FakeEventSource.latest();
    await step(() => {
      source.open();
      source.send("all_balances", snapshotData("1500000"), "5");
    });
    expect(text("all")).toBe("snapshot");
    expect(text("one")).toBe("1500000");
    expect(text("allowance")).toBe("5");
    expect(document.getElementById("one")?.dataset["status"]).toBe("live");

    await step(() => source.send("balance_update", updateData("1750000", "1500000", 11), "6"));
    expect(text("one")).toBe("1750000");
    expect(openStreams()).toHaveLength(1);
    expect(requests).toHaveLength(1);
  });

  test("a hook re-renders only when what it returns changes", async () => {
    const { client } = service();
    const wallet = { chainId: 31337, owner: OWNER };
    await render(
      client,
      createElement(
        "div",
        null,
        createElement(Show, { name: "mine", read: () => useBalance({ ...wallet, token: TOKEN }) }),
        createElement(Show, { name: "other", read: () => useBalance({ ...wallet, token: OTHER_TOKEN }) }),
      ),
    );
    const source = FakeEventSource.latest();
    await step(() => {
      source.open();
      source.send("all_balances", { ...snapshotData("1"), balances: { [TOKEN]: "1", [OTHER_TOKEN]: "9" } }, "5");
    });
    const before = renders("mine");
    await step(() => source.send("balance_update", { ...updateData("10", "9", 11), address: OTHER_TOKEN }, "6"));
    expect(text("other")).toBe("10");
    expect(renders("mine")).toBe(before);
    await step(() => source.send("ping", { time: 1 }));
    expect(renders("mine")).toBe(before);
    expect(renders("other")).toBeGreaterThan(before);
  });

  test("a second component's session request is added to the wallet's session", async () => {
    const { client, requests, bodies } = service();
    await render(
      client,
      createElement(
        "div",
        null,
        createElement(Show, { name: "a", read: () => useBalances({ chainId: 1, owner: OWNER, session: { customTokens: [TOKEN] } }) }),
        createElement(Show, {
          name: "b",
          read: () => useBalance({ chainId: 1, owner: OWNER, token: OTHER_TOKEN, session: { customTokens: [OTHER_TOKEN] } }),
        }),
      ),
    );
    await step();
    expect(requests).toEqual([`POST /lambda-url/api/1/sessions/${OWNER}`, `POST /lambda-url/api/1/sessions/${OWNER}`]);
    expect(bodies).toEqual([{ customTokens: [TOKEN] }, { customTokens: [OTHER_TOKEN] }]);
    expect(openStreams()).toHaveLength(1);
  });
});

describe("the wallet and chain the app passes", () => {
  function Wallet({ chainId, owner }: { chainId: number | undefined; owner: Address | undefined }): ReactNode {
    return createElement(Show, { name: "w", read: () => useBalance({ chainId, owner, token: TOKEN }) });
  }

  test("no wallet connected is idle; connecting one opens its stream; switching moves it", async () => {
    const { client } = service();
    const view = await render(client, createElement(Wallet, { chainId: undefined, owner: undefined }));
    expect(document.getElementById("w")?.dataset["status"]).toBe("idle");
    expect(FakeEventSource.all).toHaveLength(0);

    await view.rerender(createElement(Wallet, { chainId: 31337, owner: OWNER }));
    await step();
    expect(openStreams().map((s) => s.url)).toEqual([`http://127.0.0.1:9000/lambda-url/api/sse/31337/balances/${OWNER}`]);
    const first = FakeEventSource.latest();
    await step(() => {
      first.open();
      first.send("all_balances", snapshotData("7"), "5");
    });
    expect(text("w")).toBe("7");

    await view.rerender(createElement(Wallet, { chainId: 31338, owner: SECOND_OWNER }));
    expect(text("w"), "another wallet's value is never shown for this one").toBe("-");
    await step();
    expect(first.closed).toBe(true);
    expect(openStreams().map((s) => s.url)).toEqual([
      `http://127.0.0.1:9000/lambda-url/api/sse/31338/balances/${SECOND_OWNER}`,
    ]);

    await view.rerender(createElement(Wallet, { chainId: 31338, owner: undefined }));
    await step();
    expect(document.getElementById("w")?.dataset["status"]).toBe("idle");
    expect(openStreams()).toHaveLength(0);
  });

  test("the stream closes once the last component leaves, not while another still reads it", async () => {
    const { client } = service();
    const both = (n: number): ReactNode =>
      createElement(
        "div",
        null,
        ...Array.from({ length: n }, (_, i) =>
          createElement(Show, { key: i, name: `c${i}`, read: () => useBalances({ chainId: 1, owner: OWNER }) }),
        ),
      );
    const view = await render(client, both(2));
    await step();
    await view.rerender(both(1));
    await step();
    expect(openStreams()).toHaveLength(1);
    await act(async () => view.root.unmount());
    await step();
    expect(openStreams()).toHaveLength(0);
  });
});

test("an order's fillability", async () => {
  const { client } = service();
  await render(client, createElement(Show, { name: "o", read: () => useOrderStatus({ chainId: 1, owner: OWNER, orderId: "o1" }) }));
  const source = FakeEventSource.latest();
  const order = {
    orderId: "o1",
    sellToken: TOKEN,
    sellAmount: "250",
    spender: SPENDER,
    validTo: 2_000_000_000,
    fillable: false,
    short: "allowance",
    balanceShortfall: "0",
    allowanceShortfall: "245",
    blockNumber: 10,
  };
  await step(() => {
    source.open();
    source.send("all_balances", { ...snapshotData("1"), orders: [order] }, "5");
  });
  expect(text("o")).toBe("snapshot");
  await step(() => source.send("order_status", { ...order, fillable: true, short: null, allowanceShortfall: "0" }, "6"));
  expect(text("o")).toBe("snapshot");
  expect(document.getElementById("o")?.dataset["status"]).toBe("live");
});

test("a Permit2 allowance, live until its expiry; other values re-render it not", async () => {
  const { client } = service();
  const wallet = { chainId: 1, owner: OWNER, session: { permit2Spenders: [SPENDER] } };
  const read = () => {
    const { data, status } = usePermit2Allowance({ ...wallet, token: TOKEN, spender: SPENDER });
    return { data: data && `${data.amount}/${data.expiration}/${data.nonce}/${data.expired}`, status };
  };
  await render(client, createElement(Show, { name: "p", read }));
  const source = FakeEventSource.latest();
  const live = { amount: "700", expiration: 1_900_000_000, nonce: 4, expired: false };
  await step(() => {
    source.open();
    source.send("all_balances", { ...snapshotData("1"), permit2: { [TOKEN]: { [SPENDER]: live } } }, "5");
  });
  expect(text("p")).toBe("700/1900000000/4/false");
  const before = renders("p");
  await step(() => source.send("balance_update", updateData("2", "1", 11), "6"));
  expect(renders("p")).toBe(before);
  await step(() =>
    source.send(
      "permit2_allowance_update",
      { address: TOKEN, spender: SPENDER, ...live, expired: true, previous: live, blockNumber: 12 },
      "7",
    ),
  );
  expect(text("p")).toBe("700/1900000000/4/true");
});

test("on the server: rendered without touching the browser's APIs or the network", () => {
  const { client, requests } = service();
  const html = renderToString(
    createElement(
      LiveBalancesProvider,
      { client },
      createElement(Show, { name: "ssr", read: () => useBalance({ chainId: 1, owner: OWNER, token: TOKEN }) }),
      createElement(Show, { name: "idle", read: () => useBalances({ chainId: 1, owner: undefined }) }),
    ),
  );
  expect(html).toContain('data-status="connecting"');
  expect(html).toContain('data-status="idle"');
  expect(FakeEventSource.all).toHaveLength(0);
  expect(requests).toHaveLength(0);
});

test("trouble shows in `error` until the stream is live again", async () => {
  const { client } = service();
  const failing = Object.assign(client, {
    createSession: async () => {
      throw new Error("refused: too_many_tokens");
    },
  });
  await render(
    failing,
    createElement(Show, {
      name: "e",
      read: () => {
        const r = useBalances({ chainId: 1, owner: OWNER, session: { customTokens: [TOKEN] } });
        return { data: r.error?.message, status: r.status };
      },
    }),
  );
  await step();
  expect(document.getElementById("e")?.textContent).toBe("refused: too_many_tokens");
  const source = FakeEventSource.latest();
  await step(() => {
    source.open();
    source.send("all_balances", snapshotData("1"), "5");
  });
  expect(document.getElementById("e")?.textContent).toBe("-");
  await step(() => source.send("balance_update", "not json", "6"));
  expect(document.getElementById("e")?.textContent, "an unreadable event while live shows too").toMatch(/unreadable balance_update/);
});
