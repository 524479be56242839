//! End-to-end test harness: one real local stack per test run (DynamoDB Local, two anvil
//! chains, `cargo lambda watch`, the api's long-lived server, the pump, the poller), shared by
//! every test; tests isolate themselves with fresh wallets and freshly deployed tokens. Tests
//! use the default chain (31337) unless they name the second one
//! ([`Environment::second_chain_id`]); clients choose the api's transport ([`Transport`]): the
//! function URL or the server.
//!
//! Modules beside the stack and its clients here: `follow` (following a balance on a stream
//! until it holds the chain's value), `ledger` (following all of a wallet's values at once),
//! `provider_run` (wallets living through a provider-like proxy), `permit2` (Uniswap's Permit2
//! on the devnet), `browser` (headless Chromium), `list_server` (token
//! lists served locally), `webhook_receiver` (a receiver verifying signatures as a user's
//! would), `static_site` (a built front end on its own origin), and the fault injectors
//! `proxy` (an RPC outage), `provider_proxy` (a hosted node provider's habits: latency, rate
//! limits, log caps, no traces, dropped WebSockets), `dynamodb_faults` (the table) and
//! `stream_proxy` (the api function). Suites: `e2e/`, `chain/`, `bench/`.

pub mod browser;
pub mod dynamodb_faults;
pub mod follow;
pub mod ledger;
pub mod list_server;
pub mod permit2;
pub mod provider_proxy;
pub mod provider_run;
pub mod proxy;
pub mod relay;
pub mod static_site;
pub mod stream_proxy;
pub mod table_rows;
pub mod webhook_receiver;

use std::sync::OnceLock;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{Context, bail};
use futures::StreamExt;
use local_stack::devnet::Wallet;

use crate::dynamodb_faults::FaultyDynamoDb;
use local_stack::process::free_port;
use local_stack::stack::{ChainSource, LocalStack, StackOptions};
use serde_json::Value;
use tokio::time::Instant;

/// Longest any single expectation waits.
pub const DEADLINE: Duration = Duration::from_secs(45);
/// The test stack's limit of session writes a minute per wallet.
pub const SESSION_WRITES_PER_OWNER: u64 = 12;

/// How long a webhook subscription fails on the test stack before it is disabled.
pub const WEBHOOK_DISABLE_AFTER_SECS: u64 = 5;
/// How long the test stack's webhook deliveries wait for an answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one subscription's deliveries may take in one batch on the test stack.
pub const WEBHOOK_BATCH_SECS: u64 = 4;
/// Streams open at once on one wallet on the test stack (the 500-client test opens 10).
pub const MAX_STREAMS_PER_WALLET: u32 = 12;

/// Longest SSE stream on the test stack.
pub const SSE_MAX_SECS: u64 = 12;

/// JSON-RPC calls per batch of [`Environment::rpc_batch`].
const RPC_BATCH: usize = 500;

/// The two ways the same api is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The api function behind its function URL (`cargo lambda watch` locally).
    FunctionUrl,
    /// The long-lived server (ECS behind a load balancer in AWS).
    Server,
}

impl Transport {
    pub const BOTH: [Transport; 2] = [Transport::FunctionUrl, Transport::Server];
}

pub struct Environment {
    pub stack: LocalStack,
    pub http: reqwest::Client,
    /// The proxy the functions reach DynamoDB through (see [`Self::function_faults`]).
    function_faults: Option<FaultyDynamoDb>,
    /// Runs the proxy: kept for as long as the stack.
    _runtime: Option<tokio::runtime::Runtime>,
}

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// A poller's RPC requests on one chain by method, and its idle steps, as counted so far or
/// over a window ([`PollerRequests::since`]).
#[derive(Debug, Clone, Default)]
pub struct PollerRequests {
    pub by_method: std::collections::BTreeMap<String, u64>,
    /// Steps of idle work (sweeps, first reads, re-reads) that ran on the poller's own clock
    /// because no block came for `SNAPSHOT_INTERVAL / 4`, as when a test is slow between two
    /// of its blocks: each may read its share of the sweep in an `eth_call` of its own.
    pub idle_steps: u64,
}

impl PollerRequests {
    /// The requests of `method`.
    pub fn calls(&self, method: &str) -> u64 {
        self.by_method.get(method).copied().unwrap_or(0)
    }

    /// What was counted since `before`.
    pub fn since(&self, before: &PollerRequests) -> PollerRequests {
        PollerRequests {
            by_method: self
                .by_method
                .iter()
                .map(|(m, n)| (m.clone(), n - before.calls(m)))
                .collect(),
            idle_steps: self.idle_steps - before.idle_steps,
        }
    }

    /// Whether the `eth_call`s of this window and `other` differ by no more than the idle
    /// steps of the window with more: a block step's reads are one call, an idle step's may
    /// be one more.
    pub fn same_calls_as(&self, other: &PollerRequests) -> bool {
        let (mine, theirs) = (self.calls("eth_call"), other.calls("eth_call"));
        mine <= theirs + self.idle_steps && theirs <= mine + other.idle_steps
    }
}

/// The value of `name` with exactly `labels` (in the order the binary gives them) in a
/// Prometheus text; 0 when absent.
pub fn prometheus_value(text: &str, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let series = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{}}} ", labels.join(","))
    };
    match text.lines().find_map(|l| l.strip_prefix(&series)) {
        Some(value) => Ok(value.trim().parse()?),
        None => Ok(0.0),
    }
}

impl Environment {
    /// The shared stack, started by the first test that asks.
    pub fn get() -> &'static Environment {
        let env = ENVIRONMENT.get_or_init(|| {
            // Started on its own thread and runtime: tests each run their own runtime, and the
            // stack's processes must outlive any one of them.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
                let (stack, function_faults) = runtime
                    .block_on(Self::start())
                    .map_err(|e| format!("{e:#}"))?;
                Ok(Self {
                    stack,
                    function_faults: Some(function_faults),
                    _runtime: Some(runtime),
                    // No idle connections kept: every test runs its own tokio runtime, and a
                    // pooled connection belongs to the runtime that opened it — reused from a
                    // later test after that runtime ended, it fails with "dispatch task is
                    // gone".
                    //
                    // A read that waits longer than any expectation may means a hung server
                    // (an overloaded emulator): the test fails with a reason instead of
                    // hanging the run. Streams are not cut by it: pings arrive every 2 s.
                    http: reqwest::Client::builder()
                        .pool_max_idle_per_host(0)
                        .connect_timeout(DEADLINE)
                        .read_timeout(DEADLINE)
                        .build()
                        .map_err(|e| e.to_string())?,
                })
            })
            .join()
            .unwrap_or_else(|_| Err("stack start panicked".into()))
        });
        match env {
            Ok(env) => env,
            Err(e) => panic!("local stack did not start: {e}"),
        }
    }

    async fn start() -> anyhow::Result<(LocalStack, FaultyDynamoDb)> {
        let root = local_stack::tools::Tools::locate()?.root;
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let dynamodb_port = free_port()?;
        let function_faults =
            FaultyDynamoDb::start_healthy(&format!("http://127.0.0.1:{dynamodb_port}")).await?;
        let options = StackOptions {
            dynamodb_port,
            lambda_port: free_port()?,
            server_port: free_port()?,
            chain: ChainSource::Anvil {
                port: free_port()?,
                block_time: None,
                kept_states: None,
            },
            log_dir: root.join(format!("target/e2e-logs/{run}")),
            table_name: "live-balances-e2e".into(),
            // 32 instances of 16 pollers: more than the 500-client test ever has in flight.
            lambda_concurrency: 32,
            functions_env: vec![("DYNAMODB_ENDPOINT".into(), function_faults.url.clone())],
            functions_profile: "debug".into(),
            second_anvil_port: Some(free_port()?),
            extra_env: vec![
                ("HEAD_POLL_INTERVAL_MS".into(), "100".into()),
                ("SSE_FEED_INTERVAL_MS".into(), "100".into()),
                ("SSE_PING_SECS".into(), "2".into()),
                // Short sweeps so the rebasing-token test sees a silent change quickly (the
                // slow sweep finds a token's first silent change, the frequent one the rest).
                ("SNAPSHOT_INTERVAL".into(), "6".into()),
                ("SWEEP_ALL_INTERVAL".into(), "6".into()),
                (
                    "RUST_LOG".into(),
                    "info,poller=debug,local_stack=debug,fanout=debug".into(),
                ),
                // Streams end often, so every test also exercises reconnect-and-resume.
                ("SSE_MAX_SECS".into(), SSE_MAX_SECS.to_string()),
                ("SSE_KEEPALIVE_SECS".into(), "1".into()),
                // Short, so the tests see revalidation and timeouts without long waits.
                ("TOKEN_LIST_TTL_SECS".into(), "3".into()),
                ("TOKEN_LIST_TIMEOUT_MS".into(), "2000".into()),
                ("TOKEN_LIST_MAX_BYTES".into(), "1048576".into()),
                // Every test's requests come from this one machine.
                (
                    "SESSION_WRITES_PER_SOURCE_PER_MINUTE".into(),
                    "100000".into(),
                ),
                (
                    "WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE".into(),
                    "100000".into(),
                ),
                ("STREAM_OPENS_PER_SOURCE_PER_MINUTE".into(), "100000".into()),
                ("CHAIN_READS_PER_SOURCE_PER_MINUTE".into(), "100000".into()),
                // 500 SSE clients of one machine in the chain tests.
                ("MAX_STREAMS_PER_SOURCE".into(), "1000".into()),
                (
                    "MAX_STREAMS_PER_WALLET".into(),
                    MAX_STREAMS_PER_WALLET.to_string(),
                ),
                (
                    "SESSION_WRITES_PER_OWNER_PER_MINUTE".into(),
                    SESSION_WRITES_PER_OWNER.to_string(),
                ),
                // Webhooks: quick retries, and a subscription failing for a few seconds is
                // disabled, so the tests see parking and disabling without long waits.
                ("WEBHOOK_RETRY_FIRST_MS".into(), "200".into()),
                (
                    "WEBHOOK_TIMEOUT_MS".into(),
                    WEBHOOK_TIMEOUT.as_millis().to_string(),
                ),
                (
                    "WEBHOOK_DISABLE_AFTER_SECS".into(),
                    WEBHOOK_DISABLE_AFTER_SECS.to_string(),
                ),
                ("WEBHOOK_BATCH_SECS".into(), WEBHOOK_BATCH_SECS.to_string()),
                // A rotated-out secret signs beside the new one this long.
                ("WEBHOOK_SECRET_OVERLAP_SECS".into(), "5".into()),
            ],
        };
        eprintln!(
            "e2e: starting the local stack; logs in {}",
            options.log_dir.display()
        );
        let stack = LocalStack::start(options).await?;
        Ok((stack, function_faults))
    }

    /// An environment around a stack started elsewhere (the benchmarks), without a proxy in
    /// front of the functions' DynamoDB.
    pub fn around(stack: LocalStack) -> Self {
        Self {
            stack,
            http: reqwest::Client::new(),
            function_faults: None,
            _runtime: None,
        }
    }

    /// The proxy between the functions and DynamoDB: faults are off unless a test switches
    /// them on.
    pub fn function_faults(&self) -> anyhow::Result<&FaultyDynamoDb> {
        self.function_faults
            .as_ref()
            .context("this stack's functions reach DynamoDB directly")
    }

    /// `Authorization` of a back end holding the stack's API key (tenant `dev`).
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.stack.api_key)
    }

    /// A request builder with the stack's API key, for the back-end routes.
    pub fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.bearer_auth(&self.stack.api_key)
    }

    /// Sends `body` as JSON with the stack's API key (a back end's request); status and JSON.
    pub async fn send_backend(
        &self,
        method: reqwest::Method,
        url: &str,
        body: String,
    ) -> anyhow::Result<(u16, Value)> {
        let bearer = self.bearer();
        self.send_json(method, url, body, &[("authorization", &bearer)])
            .await
    }

    /// `path` under the function URL.
    pub fn url(&self, path: &str) -> String {
        self.url_via(Transport::FunctionUrl, path)
    }

    /// `path` under the chosen transport's base URL.
    pub fn url_via(&self, transport: Transport, path: &str) -> String {
        match transport {
            Transport::FunctionUrl => format!("{}{path}", self.stack.endpoints.api),
            Transport::Server => format!("{}{path}", self.stack.endpoints.server),
        }
    }

    /// Mines an empty block (the sweep and native balances advance with blocks).
    pub async fn mine(&self) -> anyhow::Result<()> {
        use alloy::providers::Provider;
        let provider = local_stack::devnet::plain_provider(&self.stack.rpc_url)?;
        provider
            .raw_request::<_, Value>("anvil_mine".into(), (1u64,))
            .await?;
        Ok(())
    }

    /// The RPC requests and idle steps the poller at `poller_url` counted so far on the
    /// default chain (from its `/metrics`; the second chain's are counted apart and left out).
    pub async fn poller_requests(&self, poller_url: &str) -> anyhow::Result<PollerRequests> {
        let chain = format!("poller_rpc_requests_total{{chain=\"{}\",", self.chain_id());
        let text = self.metrics_of(poller_url).await?;
        let mut by_method = std::collections::BTreeMap::new();
        for line in text.lines().filter(|l| l.starts_with(&chain)) {
            let method = line
                .split("method=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .context("method")?;
            let value = line.rsplit(' ').next().context("value")?.parse()?;
            by_method.insert(method.to_string(), value);
        }
        let idle_steps = self.count_of_kind(&text, "poller_steps_total", "idle")?;
        Ok(PollerRequests {
            by_method,
            idle_steps,
        })
    }

    /// The `/metrics` text of the service at `base_url` (a poller's, say).
    pub async fn metrics_of(&self, base_url: &str) -> anyhow::Result<String> {
        let url = format!("{base_url}/metrics");
        Ok(self.http.get(url).send().await?.text().await?)
    }

    /// The count of session changes of `kind` the poller at `poller_url` applied on the
    /// default chain (`poller_session_changes_total`; 0 before its first).
    pub async fn session_changes(&self, poller_url: &str, kind: &str) -> anyhow::Result<u64> {
        let text = self.metrics_of(poller_url).await?;
        self.count_of_kind(&text, "poller_session_changes_total", kind)
    }

    /// The value of counter `name` of `kind` on the default chain in a poller's `/metrics`
    /// text (0 before its first).
    fn count_of_kind(&self, text: &str, name: &str, kind: &str) -> anyhow::Result<u64> {
        let chain = self.chain_id().to_string();
        let labels = [("chain", chain.as_str()), ("kind", kind)];
        Ok(prometheus_value(text, name, &labels)? as u64)
    }

    /// Waits until the poller has processed `block`.
    pub async fn poller_reached(&self, block: u64) -> anyhow::Result<()> {
        let url = format!("{}/health", self.stack.endpoints.poller);
        local_stack::stack::wait_for("poller to process the block", DEADLINE, || async {
            let health: Value = self.http.get(&url).send().await?.json().await?;
            let processed = health["chains"][0]["processedBlock"].as_u64().unwrap_or(0);
            anyhow::ensure!(processed >= block, "at {processed}, waiting for {block}");
            Ok(())
        })
        .await
    }

    /// The devnet's latest block number.
    pub async fn block_number(&self) -> anyhow::Result<u64> {
        let n = self.rpc("eth_blockNumber", serde_json::json!([])).await?;
        Ok(u64::from_str_radix(
            n.as_str().context("block number")?.trim_start_matches("0x"),
            16,
        )?)
    }

    /// A JSON-RPC call to the devnet.
    pub async fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let reply: Value = self.post_rpc(&rpc_request(1, method, &params)).await?;
        if let Some(error) = reply.get("error") {
            bail!("{method}: {error}");
        }
        Ok(reply["result"].clone())
    }

    /// JSON-RPC calls to the devnet in batches (`RPC_BATCH` a request: a set-up of many
    /// wallets' storage), their answers dropped; fails on any error answer.
    pub async fn rpc_batch(&self, calls: Vec<(&str, Value)>) -> anyhow::Result<()> {
        for chunk in calls.chunks(RPC_BATCH) {
            let body = chunk
                .iter()
                .enumerate()
                .map(|(id, (method, params))| rpc_request(id, method, params))
                .collect();
            let replies: Vec<Value> = self.post_rpc(&body).await?;
            anyhow::ensure!(replies.len() == chunk.len(), "batch answered partly");
            if let Some(error) = replies.iter().find_map(|r| r.get("error")) {
                bail!("anvil refused a set-up call: {error}");
            }
        }
        Ok(())
    }

    /// Posts one JSON-RPC request (or batch) to the devnet, straight to anvil.
    async fn post_rpc<T: serde::de::DeserializeOwned>(&self, body: &Value) -> anyhow::Result<T> {
        Ok(self
            .http
            .post(&self.stack.rpc_url)
            .json(body)
            .send()
            .await?
            .json()
            .await?)
    }

    pub fn chain_id(&self) -> u64 {
        self.stack.chain_id
    }

    /// The stack's second anvil chain, served by the same api and poller as the first.
    pub fn second_chain_id(&self) -> anyhow::Result<u64> {
        Ok(self
            .stack
            .second_chain
            .as_ref()
            .context("this stack runs one chain")?
            .chain_id)
    }

    /// The RPC URL of one of the stack's chains.
    pub fn rpc_url_of(&self, chain_id: u64) -> anyhow::Result<&str> {
        if chain_id == self.chain_id() {
            return Ok(&self.stack.rpc_url);
        }
        match &self.stack.second_chain {
            Some(second) if second.chain_id == chain_id => Ok(&second.rpc_url),
            _ => bail!("the stack has no chain {chain_id}"),
        }
    }

    /// A wallet with its own key and 1,000 ETH on chain `chain_id`.
    pub async fn fresh_wallet_on(&self, chain_id: u64) -> anyhow::Result<Wallet> {
        Wallet::fresh(self.rpc_url_of(chain_id)?).await
    }

    /// A fresh owner holding `held` of a freshly deployed rebasing token, with a session
    /// tracking it and a stream past its `all_balances` (which shows `held`); returns the
    /// actor that can mint and rebase it, the token, the owner and the stream.
    pub async fn watched_rebasing(
        &'static self,
        held: u64,
    ) -> anyhow::Result<(Wallet, Address, Address, SseClient)> {
        let actor = Wallet::fresh(&self.stack.rpc_url).await?;
        let rebasing = actor.deploy_rebasing_token().await?;
        let owner = fresh_owner();
        actor
            .mint_rebasing(rebasing, owner, alloy::primitives::U256::from(held))
            .await?;
        let token = live_balances::domain::address::lower(&rebasing);
        self.watch(
            &live_balances::domain::address::lower(&owner),
            &format!(r#"{{"customTokens":["{token}"]}}"#),
        )
        .await?;
        let mut sse =
            SseClient::connect(self, &live_balances::domain::address::lower(&owner), None).await?;
        let snapshot = sse
            .wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        anyhow::ensure!(
            snapshot.data["balances"][&token] == held.to_string().as_str(),
            "the snapshot shows the minted balance: {:?}",
            snapshot.data
        );
        Ok((actor, rebasing, owner, sse))
    }

    /// A wallet with ETH and its own freshly deployed token holding `supply` (raw units).
    pub async fn actor_with_token(&self, supply: u64) -> anyhow::Result<(Wallet, Address)> {
        self.actor_with_token_on(self.chain_id(), supply).await
    }

    /// [`Self::actor_with_token`] on chain `chain_id`.
    pub async fn actor_with_token_on(
        &self,
        chain_id: u64,
        supply: u64,
    ) -> anyhow::Result<(Wallet, Address)> {
        let actor = self.fresh_wallet_on(chain_id).await?;
        let token = actor.deploy_token("Test Token", "TT", 6).await?;
        actor
            .mint(token, actor.address, alloy::primitives::U256::from(supply))
            .await?;
        Ok((actor, token))
    }

    /// POSTs a session body through the function URL; returns status and JSON body.
    pub async fn post_session(
        &self,
        chain: &str,
        owner: &str,
        body: &str,
    ) -> anyhow::Result<(u16, Value)> {
        self.post_session_via(Transport::FunctionUrl, chain, owner, body)
            .await
    }

    /// POSTs a session body through `transport`; returns status and JSON body.
    pub async fn post_session_via(
        &self,
        transport: Transport,
        chain: &str,
        owner: &str,
        body: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let url = self.url_via(transport, &format!("/{chain}/sessions/{owner}"));
        self.send_json(reqwest::Method::POST, &url, body.to_string(), &[])
            .await
    }

    /// Expires the session of `owner` on `chain_id` as time would: its expiry passes.
    pub async fn expire_session(&self, chain_id: u64, owner: &Address) -> anyhow::Result<()> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let table = self.stack.table().await;
        let past = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            - 10;
        let created = table
            .session(chain_id, owner)
            .await?
            .context("session exists")?;
        anyhow::ensure!(created.expires_at > past, "already expired");
        table
            .client()
            .update_item()
            .table_name(table.name())
            .key("pk", AttributeValue::S(format!("S#{chain_id}")))
            .key(
                "sk",
                AttributeValue::S(live_balances::domain::address::lower(owner)),
            )
            .update_expression("SET expires_at = :past")
            .expression_attribute_values(":past", AttributeValue::N(past.to_string()))
            .send()
            .await?;
        Ok(())
    }

    /// POSTs a multi-pair session body (`POST /sessions`) through `transport`.
    pub async fn post_sessions_via(
        &self,
        transport: Transport,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let url = self.url_via(transport, "/sessions");
        self.send_json(reqwest::Method::POST, &url, body.to_string(), &[])
            .await
    }

    /// Creates (or adds to) the session of `owner` on the stack's chain; anything but 200 fails.
    pub async fn watch(&self, owner: &str, body: &str) -> anyhow::Result<()> {
        self.watch_on(self.chain_id(), owner, body).await
    }

    /// [`Self::watch`] on chain `chain_id`.
    pub async fn watch_on(&self, chain_id: u64, owner: &str, body: &str) -> anyhow::Result<()> {
        self.watch_via_on(Transport::FunctionUrl, chain_id, owner, body)
            .await
    }

    /// [`Self::watch`] through `transport`.
    pub async fn watch_via(
        &self,
        transport: Transport,
        owner: &str,
        body: &str,
    ) -> anyhow::Result<()> {
        self.watch_via_on(transport, self.chain_id(), owner, body)
            .await
    }

    /// [`Self::watch`] through `transport` on chain `chain_id`.
    pub async fn watch_via_on(
        &self,
        transport: Transport,
        chain_id: u64,
        owner: &str,
        body: &str,
    ) -> anyhow::Result<()> {
        let (status, reply) = self
            .post_session_via(transport, &chain_id.to_string(), owner, body)
            .await?;
        anyhow::ensure!(status == 200, "session: {reply}");
        Ok(())
    }

    /// Sends `body` with `method` to `url`, declared as JSON, with `headers` beside; returns
    /// status and JSON body (retried as [`Self::json_request`] is).
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        url: &str,
        body: String,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        self.json_request(|| {
            let request = self
                .http
                .request(method.clone(), url)
                .header("content-type", "application/json");
            headers
                .iter()
                .fold(request, |r, (name, value)| r.header(*name, *value))
                .body(body.clone())
        })
        .await
    }

    /// Sends an idempotent request and reads its JSON answer. A transport failure (no HTTP
    /// answer at all) is retried twice, as a browser client would: `cargo lambda watch`
    /// occasionally drops a response while other instances stream. An HTTP error status is
    /// never retried: it is the answer under test.
    pub async fn json_request(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<(u16, Value)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = async {
                let response = request().send().await?;
                let status = response.status().as_u16();
                Ok::<_, reqwest::Error>((status, response.text().await?))
            }
            .await;
            match outcome {
                Ok((status, text)) => {
                    let value = serde_json::from_str(&text)
                        .with_context(|| format!("body is not JSON: {text:?}"))?;
                    return Ok((status, value));
                }
                Err(e) if attempt < 3 => eprintln!("transport error, retrying: {e}"),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A random wallet address nobody else in the run uses.
pub fn fresh_owner() -> Address {
    alloy::signers::local::PrivateKeySigner::random().address()
}

/// One parsed SSE event.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// A minimal SSE client over a streaming HTTP response. Like `EventSource`, it can
/// reconnect on its own with `Last-Event-ID` when the server ends the stream, and keeps
/// trying while the server cannot be reached.
pub struct SseClient {
    env: &'static Environment,
    transport: Transport,
    /// The stream's path and query (`/sse/{chain}/balances/{owner}`, `/sse/balances?wallets=…`).
    path: String,
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    pub last_id: Option<String>,
    /// The stream URL's `lastEventId`, kept for every reconnect (as `EventSource` keeps its
    /// URL): the resume position of a new stream continuing another's.
    query_id: Option<String>,
    /// Reconnect when the server ends the stream (as `EventSource` does).
    pub auto_reconnect: bool,
    pub reconnects: u32,
    /// The last `retry:` hint the server sent (milliseconds), and how many it sent.
    pub retry_ms: Option<u64>,
    pub retry_hints: u32,
}

/// A JSON-RPC request.
fn rpc_request(id: usize, method: &str, params: &Value) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Pause between attempts to reach a server that is down (EventSource waits `retry:`).
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

impl SseClient {
    /// Connects through the function URL; fails unless the answer is `200 text/event-stream`.
    pub async fn connect(
        env: &'static Environment,
        owner: &str,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::connect_to(
            env,
            Transport::FunctionUrl,
            env.chain_id(),
            owner,
            None,
            last_event_id,
        )
        .await
    }

    /// [`Self::connect`] to the stream of `owner` on chain `chain_id`.
    pub async fn connect_on(
        env: &'static Environment,
        chain_id: u64,
        owner: &str,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::connect_to(
            env,
            Transport::FunctionUrl,
            chain_id,
            owner,
            None,
            last_event_id,
        )
        .await
    }

    /// Connects through `transport`; fails unless the answer is `200 text/event-stream`.
    pub async fn connect_via(
        env: &'static Environment,
        transport: Transport,
        owner: &str,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::connect_to(env, transport, env.chain_id(), owner, None, last_event_id).await
    }

    /// Connects with the resume position in the URL (`?lastEventId=`), as a browser's new
    /// EventSource continuing another's stream does; reconnects send the header too.
    pub async fn connect_with_query(
        env: &'static Environment,
        owner: &str,
        query_id: &str,
    ) -> anyhow::Result<Self> {
        Self::connect_to(
            env,
            Transport::FunctionUrl,
            env.chain_id(),
            owner,
            Some(query_id),
            None,
        )
        .await
    }

    /// Connects to the multi-wallet stream of `wallets` (chain id, owner) through
    /// `transport`; fails unless the answer is `200 text/event-stream`.
    pub async fn connect_many(
        env: &'static Environment,
        transport: Transport,
        wallets: &[(u64, String)],
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::connect_path(env, transport, many_path(wallets), None, last_event_id).await
    }

    async fn connect_to(
        env: &'static Environment,
        transport: Transport,
        chain_id: u64,
        owner: &str,
        query_id: Option<&str>,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        let path = format!("/sse/{chain_id}/balances/{owner}");
        Self::connect_path(env, transport, path, query_id, last_event_id).await
    }

    async fn connect_path(
        env: &'static Environment,
        transport: Transport,
        path: String,
        query_id: Option<&str>,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        let body = Self::open(env, transport, &path, query_id, last_event_id).await?;
        Ok(Self {
            env,
            transport,
            path,
            body,
            buffer: String::new(),
            last_id: last_event_id.or(query_id).map(str::to_string),
            query_id: query_id.map(str::to_string),
            auto_reconnect: true,
            reconnects: 0,
            retry_ms: None,
            retry_hints: 0,
        })
    }

    async fn open(
        env: &Environment,
        transport: Transport,
        path: &str,
        query_id: Option<&str>,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>> {
        let mut url = reqwest::Url::parse(&env.url_via(transport, path))?;
        if let Some(id) = query_id {
            url.query_pairs_mut().append_pair("lastEventId", id);
        }
        let mut request = env.http.get(url);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        // The answer's head within the deadline: an emulator that takes the connection and
        // never answers fails the test with a reason instead of hanging it.
        let send = |request: reqwest::RequestBuilder| async move {
            tokio::time::timeout(DEADLINE, request.send())
                .await
                .context("no answer to the SSE request within the deadline")?
                .map_err(anyhow::Error::from)
        };
        let response = match send(request.try_clone().context("request")?).await {
            Ok(r) => r,
            // A transport failure (no answer): reconnect once, as EventSource does.
            Err(_) => send(request).await?,
        };
        let content_type = response.headers().get("content-type").cloned();
        if response.status() != 200 {
            bail!(
                "SSE answered {}: {}",
                response.status(),
                response.text().await?
            );
        }
        if content_type.as_ref().and_then(|v| v.to_str().ok()) != Some("text/event-stream") {
            bail!("SSE content type is {content_type:?}");
        }
        Ok(response.bytes_stream().boxed())
    }

    /// The next event (`retry:`-only blocks skipped), or an error at `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> anyhow::Result<Event> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(retry) = block.lines().find_map(|l| l.strip_prefix("retry: ")) {
                    self.retry_ms = retry.trim().parse().ok();
                    self.retry_hints += 1;
                }
                let (id, event) = parse_block(&block)?;
                // Like EventSource: a block's id counts even when it carries no event.
                if id.is_some() {
                    self.last_id = id;
                }
                if let Some(event) = event {
                    return Ok(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .context("no SSE event before the deadline")?;
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                // A broken connection: like a server-ended stream, EventSource reconnects.
                Some(Err(_)) | None if self.auto_reconnect => {
                    self.buffer.clear();
                    self.reconnects += 1;
                    let (query_id, last_id) = (self.query_id.clone(), self.last_id.clone());
                    self.body = Self::reopen(
                        self.env,
                        self.transport,
                        &self.path,
                        (query_id, last_id),
                        deadline,
                    )
                    .await?;
                }
                // `cargo lambda watch` sometimes ends a finished stream by dropping the
                // connection instead of closing the chunked body.
                Some(Err(e)) => bail!("SSE stream ended abruptly: {e}"),
                None => bail!("SSE stream ended"),
            }
        }
    }

    /// Opens the stream again from the last id, retrying while the server cannot be reached
    /// (a restart) until `deadline`. An HTTP error answer is not retried: it is final, as for
    /// `EventSource`.
    async fn reopen(
        env: &Environment,
        transport: Transport,
        path: &str,
        (query_id, last_id): (Option<String>, Option<String>),
        deadline: Instant,
    ) -> anyhow::Result<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>> {
        loop {
            match Self::open(
                env,
                transport,
                path,
                query_id.as_deref(),
                last_id.as_deref(),
            )
            .await
            {
                Ok(body) => return Ok(body),
                Err(e)
                    if e.downcast_ref::<reqwest::Error>().is_some()
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the server ends the stream, returning the events seen before that.
    pub async fn until_end(&mut self, deadline: Instant) -> anyhow::Result<Vec<Event>> {
        self.auto_reconnect = false;
        let mut seen = vec![];
        loop {
            match self.next(deadline).await {
                Ok(e) => seen.push(e),
                Err(e) if e.to_string().starts_with("SSE stream ended") => return Ok(seen),
                Err(e) => return Err(e),
            }
        }
    }

    /// Skips events until one satisfies `want`; fails at the deadline.
    pub async fn wait_for(
        &mut self,
        what: &str,
        mut want: impl FnMut(&Event) -> bool,
    ) -> anyhow::Result<Event> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let event = self
                .next(deadline)
                .await
                .with_context(|| format!("waiting for {what}"))?;
            if want(&event) {
                return Ok(event);
            }
        }
    }

    /// [`Self::follow_balance`] with owned arguments, for joining many clients at once.
    pub async fn follow_balance_owned(
        &mut self,
        token: String,
        from: String,
        to: String,
    ) -> anyhow::Result<usize> {
        self.follow_balance(&token, &from, &to).await
    }

    /// Follows `balance_update`s of `token` from `from` until `to`, checking that each one
    /// continues where the previous left off (no gap, no repeat) with increasing ids.
    /// Returns how many updates it took.
    pub async fn follow_balance(
        &mut self,
        token: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<usize> {
        let mut current = from.to_string();
        let mut last_id = self.last_id.clone().unwrap_or_default();
        let mut steps = 0;
        while current != to {
            let e = self
                .wait_for(&format!("{token} from {current} towards {to}"), |e| {
                    e.event == "balance_update" && e.data["address"] == token
                })
                .await?;
            // A first value (`previousBalance: null`) equal to the one held restates it.
            if e.data["previousBalance"].is_null() && e.data["balance"] == current.as_str() {
                continue;
            }
            let previous = e.data["previousBalance"].as_str().unwrap_or_default();
            if previous != current {
                bail!("update does not continue from {current}: {:?}", e.data);
            }
            let id = e.id.clone().context("update without id")?;
            if id <= last_id {
                bail!("ids must increase: {id} after {last_id}");
            }
            last_id = id;
            current = e.data["balance"].as_str().context("balance")?.to_string();
            steps += 1;
        }
        Ok(steps)
    }
}

/// The path of the multi-wallet stream of `wallets`: `/sse/balances?wallets=chain:owner,…`.
pub fn many_path(wallets: &[(u64, String)]) -> String {
    let pairs: Vec<String> = wallets.iter().map(|(c, o)| format!("{c}:{o}")).collect();
    format!("/sse/balances?wallets={}", pairs.join(","))
}

/// The id a block sets (if any) and the event it dispatches (if any).
fn parse_block(block: &str) -> anyhow::Result<(Option<String>, Option<Event>)> {
    let mut event = None;
    let mut id = None;
    let mut data = vec![];
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push(v);
        }
    }
    match event {
        None => Ok((id, None)),
        Some(event) => {
            let data = serde_json::from_str(&data.join("\n"))
                .with_context(|| format!("event data: {block}"))?;
            Ok((id.clone(), Some(Event { event, id, data })))
        }
    }
}
