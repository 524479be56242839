//! Starting and stopping the whole local stack, in dependency order, each part waited on
//! until it answers (with a deadline, never a bare sleep).
//!
//! Here: what the stack is and [`LocalStack::start`]. By concern: `chains` (anvil devnets and
//! each chain's environment), `table` (DynamoDB Local, the table, API keys), `functions` (the
//! runtime emulator, the function instances, the stream pumps), `long_running` (the server and
//! the poller), `services` (spawning, checking and stopping the child processes).

mod chains;
mod functions;
mod long_running;
mod services;
mod table;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use tokio::time::Instant;

use crate::process::Service;
use crate::tools::Tools;
use chains::{chain_env, second_chain_env};

/// Which chain the stack watches.
#[derive(Debug, Clone)]
pub enum ChainSource {
    /// A local anvil devnet; `block_time` `None` mines a block per transaction.
    /// `kept_states`: how many blocks' states anvil keeps (`--prune-history`), when not its
    /// default history, which copies the whole state at every block: a state of 2 M storage
    /// slots (the bench's 100,000 wallets) runs it out of memory within a few dozen blocks.
    Anvil {
        port: u16,
        block_time: Option<u64>,
        kept_states: Option<u32>,
    },
    /// A real chain reached through the environment (`ETH_RPC`, `RPC_URL_<id>`, …).
    External {
        chain_id: u64,
        rpc_url: String,
        ws_url: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub dynamodb_port: u16,
    pub lambda_port: u16,
    /// Where the long-lived HTTP server (the api's second transport) listens.
    pub server_port: u16,
    pub chain: ChainSource,
    pub log_dir: PathBuf,
    pub table_name: String,
    /// Instances of the api function running at once (each takes up to
    /// `API_INVOCATIONS_PER_INSTANCE` invocations at a time and keeps serving the streams it
    /// started while it takes the next).
    pub lambda_concurrency: u32,
    /// Environment of the functions and api servers only (not the poller or the pump), on top
    /// of `extra_env`: tests put a fault-injecting proxy between them and DynamoDB
    /// (`DYNAMODB_ENDPOINT`); the bench counts their table and node requests apart from the
    /// poller's.
    pub functions_env: Vec<(String, String)>,
    /// The cargo profile whose function binaries run as the instances (`debug`, as `make
    /// build` builds them; the bench may run what is deployed: `profiling`, the release code
    /// with symbols).
    pub functions_profile: String,
    /// Extra environment for the functions and the poller (intervals, limits).
    pub extra_env: Vec<(String, String)>,
    /// A second anvil devnet on this port (chain [`SECOND_ANVIL_CHAIN_ID`], set up like the
    /// first), served by the same poller and api; only beside [`ChainSource::Anvil`].
    pub second_anvil_port: Option<u16>,
}

/// A chain of the stack besides its default one.
#[derive(Debug, Clone)]
pub struct LocalChain {
    pub chain_id: u64,
    pub rpc_url: String,
}

/// A running local stack. Dropping it stops every process it started.
#[derive(Debug)]
pub struct LocalStack {
    pub tools: Tools,
    pub options: StackOptions,
    pub chain_id: u64,
    pub rpc_url: String,
    /// The second anvil devnet, when [`StackOptions::second_anvil_port`] asked for one.
    pub second_chain: Option<LocalChain>,
    pub endpoints: Endpoints,
    /// An API key of tenant `dev`, issued when the stack started: what a back end (and the
    /// tests of back-end routes) sends as `Authorization: Bearer …`. Its quotas are generous
    /// (every test of a run, and a developer's scripts, share it).
    pub api_key: String,
    env: BTreeMap<String, String>,
    services: Mutex<BTreeMap<String, Service>>,
}

/// Where the stack's parts answer.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// DynamoDB Local.
    pub dynamodb: String,
    /// Base URL of the api function's function URL: `…/lambda-url/api`.
    pub api: String,
    /// Base URL of the same api served by the long-lived server: `http://127.0.0.1:<port>`.
    pub server: String,
    /// The fanout function's Invoke API, which the stream pump feeds.
    pub fanout_invoke: String,
    /// The webhooks function's Invoke API: its own pump process feeds it, as its own event
    /// source mapping does in AWS, so a slow webhook target never holds up the fanout.
    pub webhooks_invoke: String,
    /// The poller's `/health` and `/metrics` base URL.
    pub poller: String,
}

/// The second devnet's chain id: anvil's default plus one.
pub const SECOND_ANVIL_CHAIN_ID: u64 = 31338;

/// Polls `check` until it succeeds or `deadline` passes, failing with `what` and the last error.
pub async fn wait_for<F, Fut, T>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= until => {
                return Err(e.context(format!("{what} not ready after {}s", deadline.as_secs())));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let tools = Tools::locate()?;
        std::fs::create_dir_all(&options.log_dir)?;
        let dynamodb_url = format!("http://127.0.0.1:{}", options.dynamodb_port);
        let lambda = format!("http://127.0.0.1:{}", options.lambda_port);
        let (chain_id, rpc_url, mut env) = chain_env(&options, &dynamodb_url);
        let second_chain = second_chain_env(&options, &mut env)?;
        let poller_port = crate::process::free_port()?;
        env.insert(
            "POLLER_HTTP_ADDR".into(),
            format!("127.0.0.1:{poller_port}"),
        );
        // The data key that seals webhook secrets: a fresh one per stack (its table lives in
        // memory), from the environment as a deployment without KMS would give it.
        env.insert(
            "WEBHOOK_SECRETS_KEY".into(),
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()),
        );
        env.extend(options.extra_env.iter().cloned());
        let mut stack = Self {
            endpoints: Endpoints {
                dynamodb: dynamodb_url,
                api: format!("{lambda}/lambda-url/api"),
                server: format!("http://127.0.0.1:{}", options.server_port),
                fanout_invoke: format!("{lambda}/2015-03-31/functions/fanout/invocations"),
                webhooks_invoke: format!("{lambda}/2015-03-31/functions/webhooks/invocations"),
                poller: format!("http://127.0.0.1:{poller_port}"),
            },
            tools,
            options,
            chain_id,
            rpc_url,
            second_chain,
            api_key: String::new(),
            env,
            services: Mutex::new(BTreeMap::new()),
        };
        stack.start_dynamodb().await?;
        stack.api_key = stack
            .issue_api_key_with(
                "dev",
                live_balances::domain::api_key::Quotas {
                    requests_per_minute: 1_000_000,
                    max_webhooks: 100_000,
                },
            )
            .await?;
        stack.start_chains().await?;
        stack.start_functions().await?;
        stack.start_server().await?;
        stack.start_pump()?;
        stack.start_poller()?;
        Ok(stack)
    }

    /// The environment every process of the stack gets.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }
}
