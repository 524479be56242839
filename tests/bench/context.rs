//! One benchmark stack: the e2e harness's local stack with counting proxies in front of anvil
//! (for the poller and the api) and of DynamoDB Local (one for the poller and the pump, one
//! for the functions), plus the chain and table helpers the measurements share.

use std::sync::Mutex;
use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol_types::{SolCall, SolValue};
use anyhow::Context as _;
use e2e::Environment;
use live_balances::domain::address::lower;
use local_stack::contracts::{TEST_TOKEN_ARTIFACT, TestToken, artifact};
use local_stack::devnet::Wallet;
use local_stack::process::free_port;
use local_stack::stack::{ChainSource, LocalStack, StackOptions};
use serde_json::{Value, json};

use crate::proxy::{CountingProxy, Counts, Mode, merged};

/// Blocks' states anvil keeps. Its default history keeps a copy of the whole state for every
/// block: at 100,000 wallets (2 M storage slots) it held 15 GB when the kernel killed it.
const KEPT_STATES: u32 = 16;

/// Api function instances the stack runs.
pub const LAMBDA_CONCURRENCY: u32 = 128;

/// The cargo profile the functions run from: `BENCH_FUNCTIONS_PROFILE` (`profiling`: the
/// release code, as deployed, built first with `cargo build --profile profiling -p api -p
/// fanout -p webhooks`), else `debug`, as `make build` builds them.
pub fn functions_profile() -> String {
    std::env::var("BENCH_FUNCTIONS_PROFILE").unwrap_or_else(|_| "debug".into())
}

pub struct Bench {
    pub env: &'static Environment,
    /// Between the poller and anvil.
    pub rpc: CountingProxy,
    /// Between the functions and api servers (the api's chain reads) and anvil.
    pub functions_rpc: CountingProxy,
    /// Between the poller (and the pump) and DynamoDB Local.
    pub db: CountingProxy,
    /// Between the functions (api, fanout) and DynamoDB Local.
    pub functions_db: CountingProxy,
    pub anvil_port: u16,
    /// Funded, impersonated on anvil: sends unsigned transactions that wait for `evm_mine`.
    pub actor: Wallet,
    /// The running poller: its service name and `/health` base URL (a bench may restart it
    /// with other settings).
    poller: Mutex<(String, String)>,
}

impl Bench {
    /// Starts a stack; `extra_env` tunes the functions and the poller.
    pub async fn start(label: &str, extra_env: Vec<(String, String)>) -> anyhow::Result<Self> {
        let root = local_stack::tools::Tools::locate()?.root;
        let anvil_port = free_port()?;
        let dynamodb_port = free_port()?;
        let rpc = CountingProxy::start(anvil_port, Mode::JsonRpc).await?;
        let db = CountingProxy::start(dynamodb_port, Mode::DynamoDb).await?;
        let functions_db = CountingProxy::start(dynamodb_port, Mode::DynamoDb).await?;
        let functions_rpc = CountingProxy::start(anvil_port, Mode::JsonRpc).await?;
        let mut env = vec![
            ("RPC_URL_31337".to_string(), rpc.http_url()),
            ("WS_URL_31337".into(), rpc.ws_url()),
            ("DYNAMODB_ENDPOINT".into(), db.http_url()),
            ("RUST_LOG".into(), "info".into()),
            // Every client of a benchmark is this one machine: the per-source bounds would
            // measure themselves.
            ("MAX_STREAMS_PER_SOURCE".into(), "100000".into()),
            ("MAX_STREAMS_PER_WALLET".into(), "100000".into()),
            (
                "STREAM_OPENS_PER_SOURCE_PER_MINUTE".into(),
                "10000000".into(),
            ),
            (
                "CHAIN_READS_PER_SOURCE_PER_MINUTE".into(),
                "10000000".into(),
            ),
            (
                "SESSION_WRITES_PER_SOURCE_PER_MINUTE".into(),
                "10000000".into(),
            ),
        ];
        env.extend(extra_env);
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let options = StackOptions {
            dynamodb_port,
            lambda_port: free_port()?,
            server_port: free_port()?,
            chain: ChainSource::Anvil {
                port: anvil_port,
                block_time: None,
                // The poller reads at the blocks it processes, a few behind the head at most.
                kept_states: Some(KEPT_STATES),
            },
            log_dir: root.join(format!("target/bench/logs/{run}-{label}")),
            table_name: "live-balances-bench".into(),
            lambda_concurrency: LAMBDA_CONCURRENCY,
            functions_env: vec![
                ("DYNAMODB_ENDPOINT".into(), functions_db.http_url()),
                ("RPC_URL_31337".into(), functions_rpc.http_url()),
                ("WS_URL_31337".into(), functions_rpc.ws_url()),
            ],
            functions_profile: functions_profile(),
            extra_env: env,
            // The figures are of one chain; a second devnet would only share the machine.
            second_anvil_port: None,
        };
        eprintln!(
            "bench: starting the {label} stack; logs in {}",
            options.log_dir.display()
        );
        let stack = LocalStack::start(options).await?;
        // The harness's clients take a `'static` environment; one per stack, for the run.
        let env: &'static Environment = Box::leak(Box::new(Environment::around(stack)));
        let actor = Wallet::fresh(&env.stack.rpc_url).await?;
        env.rpc("anvil_impersonateAccount", json!([lower(&actor.address)]))
            .await?;
        let poller = Mutex::new(("poller".to_string(), env.stack.endpoints.poller.clone()));
        let bench = Self {
            env,
            rpc,
            functions_rpc,
            db,
            functions_db,
            anvil_port,
            actor,
            poller,
        };
        bench.wait_healthy().await?;
        Ok(bench)
    }

    /// Waits for the poller's first heartbeat (the api's `/health` turns 200).
    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let url = self.env.url("/health");
        local_stack::stack::wait_for("api health", Duration::from_secs(120), || async {
            let r = self.env.http.get(&url).send().await?;
            anyhow::ensure!(r.status() == 200, "health {}", r.status());
            Ok(())
        })
        .await
    }

    /// Stops every process of this stack (the environment itself lives on, leaked).
    pub fn stop(&self) {
        let _ = self.stop_poller();
        let _ = self.env.stack.stop_service("pump");
        let _ = self.env.stack.stop_service("pump-webhooks");
        let _ = self.env.stack.stop_functions();
        for name in ["anvil", "dynamodb"] {
            let _ = self.env.stack.stop_service(name);
        }
    }

    /// Every node request of the stack: the poller's and the api's.
    pub fn node_counts(&self) -> Counts {
        merged(&self.rpc.counts(), &self.functions_rpc.counts())
    }

    /// Everything the table saw, from every process of the stack.
    pub fn table_counts(&self) -> Counts {
        merged(&self.db.counts(), &self.functions_db.counts())
    }

    /// Stops the running poller (SIGTERM: it stores its cursor).
    pub fn stop_poller(&self) -> anyhow::Result<()> {
        let name = self.lock_poller().0.clone();
        self.env.stack.stop_service(&name)
    }

    /// Starts the poller built in `profile` (`debug`, `release`) with `overrides` on top of the
    /// stack's environment (the one before is stopped first); returns when it has started
    /// (its `/health` answers).
    pub async fn start_poller_in(
        &self,
        profile: &str,
        overrides: &[(String, String)],
    ) -> anyhow::Result<()> {
        self.stop_poller()?;
        let name = format!("poller-{}", unix_millis());
        let binary = local_stack::tools::Tools::locate()?.workspace_bin_of(profile, "poller");
        let url = self
            .env
            .stack
            .start_poller_binary_as(&name, &binary, overrides)?;
        *self.lock_poller() = (name, url.clone());
        let health = format!("{url}/health");
        local_stack::stack::wait_for("poller", Duration::from_secs(60), || async {
            self.env.http.get(&health).send().await?;
            Ok(())
        })
        .await
    }

    fn lock_poller(&self) -> std::sync::MutexGuard<'_, (String, String)> {
        self.poller.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running poller's `/health` answer.
    pub async fn poller_health(&self) -> anyhow::Result<Value> {
        let url = format!("{}/health", self.lock_poller().1);
        Ok(self.env.http.get(&url).send().await?.json().await?)
    }

    pub fn chain_id(&self) -> u64 {
        self.env.chain_id()
    }

    /// Turns anvil's automine on or off (off: transactions wait for [`Self::mine`]).
    pub async fn automine(&self, on: bool) -> anyhow::Result<()> {
        self.env.rpc("evm_setAutomine", json!([on])).await?;
        Ok(())
    }

    /// Mines one block now; returns when anvil has mined it.
    pub async fn mine(&self) -> anyhow::Result<()> {
        self.env.rpc("evm_mine", json!([])).await?;
        Ok(())
    }

    /// The actor's mined transaction count.
    pub async fn nonce(&self) -> anyhow::Result<u64> {
        let n = self
            .env
            .rpc(
                "eth_getTransactionCount",
                json!([lower(&self.actor.address), "latest"]),
            )
            .await?;
        Ok(u64::from_str_radix(
            n.as_str().context("nonce")?.trim_start_matches("0x"),
            16,
        )?)
    }

    /// Mines blocks until the actor's transactions up to `nonce` are all in.
    pub async fn mine_all(&self, nonce: u64) -> anyhow::Result<()> {
        for _ in 0..100 {
            self.mine().await?;
            if self.nonce().await? >= nonce {
                return Ok(());
            }
        }
        anyhow::bail!("transactions up to nonce {nonce} were not mined")
    }

    pub async fn block_number(&self) -> anyhow::Result<u64> {
        self.env.block_number().await
    }

    /// Sends a transaction from the actor without waiting for it to be mined.
    pub async fn send_unmined(&self, to: Option<Address>, data: Vec<u8>) -> anyhow::Result<()> {
        let mut tx = json!({
            "from": lower(&self.actor.address),
            "data": Bytes::from(data),
            // Enough for a token deployment; blocks take 30M, so mine until all are in.
            "gas": if to.is_some() { "0x30d40" } else { "0x16e360" },
        });
        if let Some(to) = to {
            tx["to"] = json!(lower(&to));
        }
        self.env.rpc("eth_sendTransaction", json!([tx])).await?;
        Ok(())
    }

    /// Sends `amount` wei from the actor to `to`, left for the next block.
    pub async fn send_eth(&self, to: Address, amount: U256) -> anyhow::Result<()> {
        let tx = json!({
            "from": lower(&self.actor.address),
            "to": lower(&to),
            "value": format!("0x{amount:x}"),
            "gas": "0x5208",
        });
        self.env.rpc("eth_sendTransaction", json!([tx])).await?;
        Ok(())
    }

    /// A transfer of `amount` of `token` from the actor to `to`, left for the next block.
    pub async fn send_transfer(
        &self,
        token: Address,
        to: Address,
        amount: u64,
    ) -> anyhow::Result<()> {
        let data = TestToken::transferCall {
            to,
            amount: U256::from(amount),
        }
        .abi_encode();
        self.send_unmined(Some(token), data).await
    }

    /// Deploys `count` test tokens in one block, each with a large supply for the actor.
    pub async fn deploy_tokens(&self, count: usize) -> anyhow::Result<Vec<Address>> {
        self.automine(false).await?;
        let result = async {
            let nonce = self.nonce().await?;
            let code = artifact(TEST_TOKEN_ARTIFACT)?.bytecode.to_vec();
            let mut tokens = vec![];
            for i in 0..count {
                let args = (format!("Bench {i}"), format!("B{i}"), U256::from(18));
                let mut data = code.clone();
                data.extend(args.abi_encode_params());
                self.send_unmined(None, data).await?;
                tokens.push(self.actor.address.create(nonce + i as u64));
            }
            self.mine_all(nonce + count as u64).await?;
            for token in &tokens {
                let mint = TestToken::mintCall {
                    to: self.actor.address,
                    amount: U256::from(10u64).pow(U256::from(30)),
                }
                .abi_encode();
                self.send_unmined(Some(*token), mint).await?;
            }
            self.mine_all(nonce + 2 * count as u64).await?;
            anyhow::Ok(tokens)
        }
        .await;
        self.automine(true).await?;
        let tokens = result?;
        let code = self
            .env
            .rpc("eth_getCode", json!([lower(&tokens[0]), "latest"]))
            .await?;
        anyhow::ensure!(code.as_str().is_some_and(|c| c.len() > 2), "no token code");
        Ok(tokens)
    }

    /// Deletes the sessions of `owners`: the poller stops watching them.
    pub async fn delete_sessions(&self, owners: &[Address]) -> anyhow::Result<()> {
        use live_balances::storage::keys;
        let table = self.env.stack.table().await;
        for owner in owners {
            table
                .client()
                .delete_item()
                .table_name(table.name())
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(keys::session_pk(self.chain_id())),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S(keys::session_sk(owner)),
                )
                .send()
                .await?;
            // Deleted behind the api's back: the poller hears of it as any writer tells it.
            table.record_session_change(self.chain_id(), owner).await?;
        }
        Ok(())
    }

    /// Writes sessions of `tokens` (custom tokens) straight into the table for the client and
    /// fan-out sections: revision 1, not complete, so the poller reads their values itself
    /// when it sees them (fresh owners hold nothing yet: all zero, none stored).
    pub async fn write_sessions(
        &self,
        owners: &[Address],
        tokens: &[Address],
    ) -> anyhow::Result<()> {
        use futures::{StreamExt, TryStreamExt};
        let table = self.env.stack.table().await;
        // No allowance spender: half the values to load, the same requests per block. The
        // sessions' values are not written (revision 1, none complete): the poller reads them.
        let now = live_balances::runtime::clock::unix_now();
        let sessions: Vec<live_balances::domain::model::Session> = owners
            .iter()
            .map(|owner| live_balances::domain::model::Session {
                asked: live_balances::domain::model::SessionAsks {
                    custom_tokens: tokens.iter().copied().collect(),
                    ..Default::default()
                },
                revision: 1,
                expires_at: now + 3600,
                ..live_balances::domain::model::Session::new(self.chain_id(), *owner, now)
            })
            .collect();
        futures::stream::iter(&sessions)
            .map(|session| {
                let table = &table;
                async move { table.write_session(session, 0, true).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Waits (up to `deadline`) until the fanout has caught up with the stream: no feed entry
    /// written for a second. Returns whether it did.
    pub async fn wait_feed_drained(&self, deadline: Duration) -> bool {
        let feed_writes = |c: &Counts| c.get("PutItem feed").map_or(0, |c| c.requests);
        let until = tokio::time::Instant::now() + deadline;
        let mut last = feed_writes(&self.functions_db.counts());
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = feed_writes(&self.functions_db.counts());
            if now == last {
                return true;
            }
            last = now;
        }
        false
    }

    /// Waits until the poller has learned every listed wallet's stored values (its
    /// `poller_unlearned_wallets` gauge at 0), with a block a second meanwhile (a live chain:
    /// the poller takes what it learned in the background at each step).
    pub async fn poller_learned(&self, deadline: Duration) -> anyhow::Result<()> {
        let url = format!("{}/metrics", self.lock_poller().1);
        local_stack::stack::wait_for("poller to learn every wallet", deadline, || async {
            self.mine().await?;
            tokio::time::sleep(Duration::from_millis(900)).await;
            let metrics = self.env.http.get(&url).send().await?.text().await?;
            let unlearned = metrics
                .lines()
                .find_map(|l| l.strip_prefix("poller_unlearned_wallets{"))
                .and_then(|l| l.split("} ").nth(1))
                .and_then(|v| v.trim().parse::<u64>().ok());
            anyhow::ensure!(unlearned == Some(0), "{unlearned:?} wallets to learn");
            Ok(())
        })
        .await
    }

    /// Waits until the poller has processed `block` and finished every write it started.
    pub async fn poller_settled(&self, block: u64, deadline: Duration) -> anyhow::Result<()> {
        local_stack::stack::wait_for("poller to process the block", deadline, || async {
            let health = self.poller_health().await?;
            let processed = health["chains"][0]["processedBlock"].as_u64().unwrap_or(0);
            anyhow::ensure!(processed >= block, "at {processed}, waiting for {block}");
            Ok(())
        })
        .await
    }
}

fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
