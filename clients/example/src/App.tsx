// Two components on one wallet — the whole portfolio, and one token's headline — each with its
// own hook; they share one stream (and one session request each, added up).
import { formatUnits, type Address } from "@live-balances/client";
import { useBalance, useBalances } from "@live-balances/react";

interface WalletProps {
  chainId: number;
  owner: Address;
}

export function App({ tokens, ...wallet }: WalletProps & { tokens: Address[] }) {
  const [first] = tokens;
  return (
    <main>
      <h1>Live balances</h1>
      {first && <Headline {...wallet} token={first} />}
      <Portfolio {...wallet} tokens={tokens} />
    </main>
  );
}

/** Every balance of the wallet, amounts with their decimals applied. */
function Portfolio({ chainId, owner, tokens }: WalletProps & { tokens: Address[] }) {
  const { data, status, error } = useBalances({ chainId, owner, session: { customTokens: tokens } });
  return (
    <section>
      <p id="status" data-status={status}>
        {status}
      </p>
      {error && <p id="error">{error.message}</p>}
      <table id="balances">
        <tbody>
          {[...(data?.balances ?? [])].map(([token, balance]) => {
            const meta = data?.tokens.get(token);
            return (
              <tr key={token} data-token={token}>
                <td className="symbol">{meta?.symbol ?? token}</td>
                <td className="amount">{meta ? formatUnits(balance, meta.decimals) : balance.toString()}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

/** One token's raw balance, from its own hook on the same wallet. */
function Headline({ token, ...wallet }: WalletProps & { token: Address }) {
  const { data: balance } = useBalance({ ...wallet, token, session: { customTokens: [token] } });
  return (
    <p id="headline" data-token={token} data-raw={balance?.toString() ?? ""}>
      {balance === undefined ? "…" : balance.toString()}
    </p>
  );
}
