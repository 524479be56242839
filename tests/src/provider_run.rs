//! Wallets living through a provider: the poller and an api server reaching the chain through
//! a [`ProviderProxy`], wallets registered through that server (its reads face the same
//! provider), and the changes a wallet sees — transfers in, approvals, ETH in, a block of many
//! transfers — each followed on the wallet's stream until it shows the chain's value. Shared by
//! the chain tests (which assert) and the benchmark (which reports).

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use anyhow::Context;
use live_balances::NATIVE_TOKEN;
use live_balances::chain::abi::IERC20;
use live_balances::config::DEFAULT_SPENDER;
use live_balances::domain::address::lower;
use local_stack::contracts::TestToken;
use local_stack::devnet::Wallet;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::follow::balance_of;
use crate::ledger::{Ledger, allowance_key, balance_key};
use crate::provider_proxy::ProviderProxy;
use crate::{Environment, SseClient};

/// The devnet's address, for a proxy in front of it.
pub fn devnet_addr(env: &Environment) -> anyhow::Result<std::net::SocketAddr> {
    Ok(env.stack.rpc_url.trim_start_matches("http://").parse()?)
}

/// The variables that point a poller or an api server at `proxy` for the stack's chain.
pub fn through(env: &Environment, proxy: &ProviderProxy) -> Vec<(String, String)> {
    let chain = env.chain_id();
    vec![
        (format!("RPC_URL_{chain}"), proxy.http_url()),
        (format!("WS_URL_{chain}"), proxy.ws_url()),
    ]
}

/// Session writes answered through an api behind the provider: anything but 200 counts.
#[derive(Debug, Default, Clone)]
pub struct SessionWrites {
    pub ok: u32,
    pub failed: Vec<(u16, String)>,
}

/// A wallet with a key (so it can approve and send), watched for one token, with a stream.
pub struct WatchedWallet {
    pub wallet: Wallet,
    pub sse: SseClient,
    pub ledger: Ledger,
}

impl WatchedWallet {
    /// A fresh wallet, its session posted to the api at `api` (a base URL), its stream open
    /// through the stack's function URL past the first `all_balances`.
    pub async fn new(
        env: &'static Environment,
        api: &str,
        token: Address,
        writes: &mut SessionWrites,
    ) -> anyhow::Result<Self> {
        let wallet = Wallet::fresh(&env.stack.rpc_url).await?;
        post_session(env, api, wallet.address, token, writes).await?;
        let mut sse = SseClient::connect(env, &lower(&wallet.address), None).await?;
        let mut ledger = Ledger::default();
        let snapshot = sse
            .wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        ledger.apply(&snapshot)?;
        Ok(Self {
            wallet,
            sse,
            ledger,
        })
    }

    pub fn address(&self) -> Address {
        self.wallet.address
    }

    /// Waits until the stream shows the chain's current value of each of `keys`.
    pub async fn shows_chain(
        &mut self,
        env: &Environment,
        token: Address,
        within: Duration,
    ) -> anyhow::Result<()> {
        let owner = self.address();
        let deadline = Instant::now() + within;
        for (key, want) in chain_values(env, owner, token).await? {
            let left = deadline.saturating_duration_since(Instant::now());
            self.ledger
                .wait_for(&mut self.sse, &key, &want, left)
                .await?;
        }
        Ok(())
    }
}

/// Posts a session for `owner` watching `token` through the api at `api`; a refusal is
/// counted, a transport failure fails.
pub async fn post_session(
    env: &Environment,
    api: &str,
    owner: Address,
    token: Address,
    writes: &mut SessionWrites,
) -> anyhow::Result<()> {
    let url = format!("{api}/{}/sessions/{}", env.chain_id(), lower(&owner));
    let body = json!({"customTokens": [lower(&token)]}).to_string();
    let (status, reply) = env
        .send_json(reqwest::Method::POST, &url, body, &[])
        .await?;
    if status == 200 {
        writes.ok += 1;
    } else {
        writes.failed.push((status, reply.to_string()));
    }
    Ok(())
}

/// The chain's values of what the stream of `owner` shows: its `token` balance, its ETH, its
/// allowance of `token` to the default spender.
pub async fn chain_values(
    env: &Environment,
    owner: Address,
    token: Address,
) -> anyhow::Result<Vec<(String, String)>> {
    let eth = env
        .rpc("eth_getBalance", json!([lower(&owner), "latest"]))
        .await?;
    let eth = U256::from_str_radix(
        eth.as_str().context("balance")?.trim_start_matches("0x"),
        16,
    )?;
    let data = IERC20::allowanceCall {
        owner,
        spender: DEFAULT_SPENDER,
    }
    .abi_encode();
    let call = json!({"to": lower(&token), "data": format!("0x{}", alloy::hex::encode(data))});
    let allowance = env.rpc("eth_call", json!([call, "latest"])).await?;
    let allowance = U256::from_str_radix(
        allowance
            .as_str()
            .context("allowance")?
            .trim_start_matches("0x"),
        16,
    )?;
    Ok(vec![
        (
            balance_key(&token),
            balance_of(env, token, owner).await?.to_string(),
        ),
        (balance_key(&NATIVE_TOKEN), eth.to_string()),
        (
            allowance_key(&token, &DEFAULT_SPENDER),
            allowance.to_string(),
        ),
    ])
}

/// Every value of `owner` the stream shows equals the chain's, in the table too.
pub async fn table_matches_chain(
    env: &Environment,
    owner: Address,
    token: Address,
) -> anyhow::Result<Vec<String>> {
    let table = env.stack.table().await;
    let mut wrong = vec![];
    let keys = [
        live_balances::BalanceKey::Balance { token },
        live_balances::BalanceKey::Balance {
            token: NATIVE_TOKEN,
        },
        live_balances::BalanceKey::Allowance {
            token,
            spender: DEFAULT_SPENDER,
        },
    ];
    for ((name, want), key) in chain_values(env, owner, token).await?.into_iter().zip(keys) {
        let stored = table
            .balance(env.chain_id(), &owner, &key)
            .await?
            .and_then(|i| i.read.value())
            .unwrap_or_default()
            .to_string();
        if stored != want {
            wrong.push(format!(
                "{} {name}: table {stored}, chain {want}",
                lower(&owner)
            ));
        }
    }
    Ok(wrong)
}

/// How long each change took from its transaction being sent to its value on the stream.
#[derive(Debug, Default, Clone)]
pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    /// The `p`-th percentile (0 to 100), nearest rank.
    pub fn percentile(&self, p: u32) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
        sorted[rank - 1]
    }
}

/// One change to `watched` made by `make`, followed until the stream shows the chain's values;
/// its latency is recorded.
async fn seen<F, Fut>(
    env: &Environment,
    watched: &mut WatchedWallet,
    token: Address,
    latencies: &mut Latencies,
    within: Duration,
    make: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    make().await?;
    watched.shows_chain(env, token, within).await?;
    latencies.0.push(started.elapsed());
    Ok(())
}

/// A token transfer from `actor` to `watched`, seen on its stream.
pub async fn transfer_seen(
    env: &Environment,
    actor: &Wallet,
    token: Address,
    watched: &mut WatchedWallet,
    amount: u64,
    latencies: &mut Latencies,
    within: Duration,
) -> anyhow::Result<()> {
    let to = watched.address();
    seen(env, watched, token, latencies, within, || async move {
        actor.transfer(token, to, U256::from(amount)).await?;
        Ok(())
    })
    .await
}

/// An approval by `watched` to the default spender, seen on its stream (with the gas it paid).
pub async fn approval_seen(
    env: &Environment,
    token: Address,
    watched: &mut WatchedWallet,
    amount: u64,
    latencies: &mut Latencies,
    within: Duration,
) -> anyhow::Result<()> {
    let wallet = watched.wallet.clone();
    seen(env, watched, token, latencies, within, || async move {
        wallet
            .approve(token, DEFAULT_SPENDER, U256::from(amount))
            .await?;
        Ok(())
    })
    .await
}

/// ETH from `actor` to `watched`, seen on its stream.
pub async fn eth_seen(
    env: &Environment,
    actor: &Wallet,
    token: Address,
    watched: &mut WatchedWallet,
    wei: u64,
    latencies: &mut Latencies,
    within: Duration,
) -> anyhow::Result<()> {
    let to = watched.address();
    seen(env, watched, token, latencies, within, || async move {
        actor.send_eth(to, U256::from(wei)).await?;
        Ok(())
    })
    .await
}

/// One block of transfers of `token` to each of `owners` (that many each), from a fresh
/// sender `actor` funds first (the burst's nonces are set by hand, which would confuse the
/// actor's own nonce cache); returns the block.
pub async fn one_block_of_transfers(
    env: &Environment,
    actor: &Wallet,
    token: Address,
    owners: &[(Address, usize)],
) -> anyhow::Result<u64> {
    let sender = Wallet::fresh(&env.stack.rpc_url).await?;
    let total: usize = owners.iter().map(|(_, n)| n).sum();
    actor
        .transfer(token, sender.address, U256::from(total))
        .await?;
    env.rpc("evm_setAutomine", json!([false])).await?;
    let sent = async {
        let actor = &sender;
        let mut pending = vec![];
        let mut nonce = actor.provider.get_transaction_count(actor.address).await?;
        for (owner, count) in owners {
            for _ in 0..*count {
                let input = TestToken::transferCall {
                    to: *owner,
                    amount: U256::from(1u64),
                }
                .abi_encode();
                let tx = TransactionRequest::default()
                    .from(actor.address)
                    .to(token)
                    .input(input.into())
                    .nonce(nonce)
                    .gas_limit(100_000);
                nonce += 1;
                pending.push(actor.provider.send_transaction(tx).await?);
            }
        }
        env.rpc("evm_mine", json!([])).await?;
        let mut block = 0;
        for tx in pending {
            let receipt = tx.get_receipt().await?;
            block = receipt.block_number.unwrap_or_default();
        }
        anyhow::Ok(block)
    }
    .await;
    env.rpc("evm_setAutomine", json!([true])).await?;
    sent
}

/// What a run under a provider did: counted, not judged (the tests judge).
#[derive(Debug, Default, Clone)]
pub struct RunFigures {
    /// Changes made and followed to the stream.
    pub changes: u32,
    /// Latencies of changes made while the provider answered.
    pub latencies: Latencies,
    /// From the end of an outage until every wallet's stream showed the chain's values.
    pub converged_after_outage: Option<Duration>,
    pub session_writes: SessionWrites,
    /// Blocks the run mined, for requests per block.
    pub blocks: u64,
}

/// Reads `Value` path `path` of the poller's `/health` for the first chain.
pub async fn poller_health(env: &Environment, poller_url: &str) -> anyhow::Result<Value> {
    let health: Value = env
        .http
        .get(format!("{poller_url}/health"))
        .send()
        .await?
        .json()
        .await?;
    Ok(health["chains"][0].clone())
}

/// The kinds of degradation the poller's `/health` names for the first chain now.
pub async fn degradations(env: &Environment, poller_url: &str) -> anyhow::Result<Vec<String>> {
    let chain = poller_health(env, poller_url).await?;
    Ok(chain["degraded"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["kind"].as_str().map(str::to_string))
        .collect())
}
