// The TanStack Query integration against a real QueryClient: the stream's values land under
// the documented keys, and query options read one balance over REST.
import { createElement } from "react";
import { QueryClient } from "@tanstack/query-core";
import { beforeEach, expect, test } from "vitest";

import { balanceQueryOptions, liveBalancesKeys, useLiveQuerySync } from "../src/query.js";
import { FakeEventSource, OWNER, SPENDER, TOKEN, render, service, snapshotData, step, updateData } from "./harness.js";

beforeEach(() => FakeEventSource.reset());

function Sync({ queryClient }: { queryClient: QueryClient }) {
  const { status } = useLiveQuerySync(queryClient, { chainId: 1, owner: OWNER, session: { customTokens: [TOKEN] } });
  return createElement("p", null, status);
}

test("live values are written into the query cache under the wallet's keys", async () => {
  const { client } = service();
  const queryClient = new QueryClient();
  const writes: unknown[] = [];
  queryClient.getQueryCache().subscribe((event) => {
    if (event.type === "updated") writes.push(event.query.queryKey);
  });
  await render(client, createElement(Sync, { queryClient }));
  const source = FakeEventSource.latest();
  await step(() => {
    source.open();
    source.send("all_balances", snapshotData("1500000"), "5");
  });
  const balanceKey = liveBalancesKeys.balance({ chainId: 1, owner: OWNER, token: TOKEN });
  expect(balanceKey).toEqual(["live-balances", 1, OWNER, "balance", TOKEN]);
  expect(queryClient.getQueryData(balanceKey)).toBe(1_500_000n);
  expect(queryClient.getQueryData(liveBalancesKeys.allowance({ chainId: 1, owner: OWNER, token: TOKEN, spender: SPENDER }))).toBe(5n);
  expect(queryClient.getQueryData(liveBalancesKeys.wallet({ chainId: 1, owner: OWNER }))).toBeDefined();

  writes.length = 0;
  await step(() => source.send("balance_update", updateData("1750000", "1500000", 11), "6"));
  expect(queryClient.getQueryData(balanceKey)).toBe(1_750_000n);
  // Only what changed: the balance and the wallet's snapshot, not the unchanged allowance.
  expect(writes.filter((k) => JSON.stringify(k).includes("allowance"))).toHaveLength(0);
});

test("Permit2 allowances are written under their own keys, again only when they change", async () => {
  const { client } = service();
  const queryClient = new QueryClient();
  const writes: unknown[] = [];
  queryClient.getQueryCache().subscribe((event) => {
    if (event.type === "updated") writes.push(event.query.queryKey);
  });
  await render(client, createElement(Sync, { queryClient }));
  const source = FakeEventSource.latest();
  const live = { amount: "700", expiration: 1_900_000_000, nonce: 4, expired: false };
  await step(() => {
    source.open();
    source.send("all_balances", { ...snapshotData("1"), permit2: { [TOKEN]: { [SPENDER]: live } } }, "5");
  });
  const key = liveBalancesKeys.permit2Allowance({ chainId: 1, owner: OWNER, token: TOKEN, spender: SPENDER });
  expect(key).toEqual(["live-balances", 1, OWNER, "permit2", TOKEN, SPENDER]);
  expect(queryClient.getQueryData(key)).toEqual({ amount: 700n, expiration: 1_900_000_000, nonce: 4, expired: false });

  writes.length = 0;
  await step(() => source.send("balance_update", updateData("2", "1", 11), "6"));
  expect(writes.filter((k) => JSON.stringify(k).includes("permit2"))).toHaveLength(0);
  await step(() =>
    source.send(
      "permit2_allowance_update",
      { address: TOKEN, spender: SPENDER, ...live, expired: true, previous: live, blockNumber: 12 },
      "7",
    ),
  );
  expect(queryClient.getQueryData(key)).toEqual({ amount: 700n, expiration: 1_900_000_000, nonce: 4, expired: true });
});

test("query options read one balance with getBalance and never go stale", async () => {
  const queryClient = new QueryClient();
  const fetch = (async () =>
    new Response(JSON.stringify({ address: TOKEN, owner: OWNER, balance: "42", blockNumber: 7, source: "chain" }), {
      status: 200,
    })) as typeof globalThis.fetch;
  const { createClient } = await import("@live-balances/client");
  const client = createClient({ baseUrl: "http://127.0.0.1:1/", fetch });
  const options = balanceQueryOptions(client, { chainId: 1, owner: OWNER, token: TOKEN });
  expect(await queryClient.fetchQuery(options)).toBe(42n);
  expect(options.staleTime).toBe(Infinity);
});
