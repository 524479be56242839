// The example's entry: which API, chain, wallet and tokens come from the query string
// (`?api=…&chain=31337&owner=0x…&tokens=0x…,0x…`), so the same build runs anywhere.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { createClient, toAddress } from "@live-balances/client";
import { LiveBalancesProvider } from "@live-balances/react";

import { App } from "./App";

const query = new URLSearchParams(location.search);
const client = createClient({ baseUrl: query.get("api") ?? "http://127.0.0.1:9000/lambda-url/api/" });
const chainId = Number(query.get("chain") ?? "31337");
const owner = toAddress(query.get("owner") ?? "0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
const tokens = (query.get("tokens") ?? "").split(",").filter(Boolean).map(toAddress);

const root = document.getElementById("root");
if (!root) throw new Error("no #root");
createRoot(root).render(
  <StrictMode>
    <LiveBalancesProvider client={client} watch={{ fallback: { pollEveryMs: 10_000 } }}>
      <App chainId={chainId} owner={owner} tokens={tokens} />
    </LiveBalancesProvider>
  </StrictMode>,
);
