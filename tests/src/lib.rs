//! End-to-end test harness: one real local stack per test run (DynamoDB Local, anvil,
//! `cargo lambda watch`, the pump, the poller), shared by every test; tests isolate
//! themselves with fresh wallets and freshly deployed tokens.

use std::sync::OnceLock;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{Context, bail};
use futures::StreamExt;
use local_stack::devnet::Wallet;
use local_stack::process::free_port;
use local_stack::stack::{ChainSource, LocalStack, StackOptions};
use serde_json::Value;
use tokio::time::Instant;

/// Longest any single expectation waits.
pub const DEADLINE: Duration = Duration::from_secs(45);

pub struct Environment {
    pub stack: LocalStack,
    pub http: reqwest::Client,
}

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

impl Environment {
    /// The shared stack, started by the first test that asks.
    pub fn get() -> &'static Environment {
        let env = ENVIRONMENT.get_or_init(|| {
            // Started on its own thread and runtime: tests each run their own runtime, and the
            // stack's processes must outlive any one of them.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
                runtime
                    .block_on(Self::start())
                    .map_err(|e| format!("{e:#}"))
            })
            .join()
            .unwrap_or_else(|_| Err("stack start panicked".into()))
        });
        match env {
            Ok(env) => env,
            Err(e) => panic!("local stack did not start: {e}"),
        }
    }

    async fn start() -> anyhow::Result<Self> {
        let root = local_stack::tools::Tools::locate()?.root;
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let options = StackOptions {
            dynamodb_port: free_port()?,
            lambda_port: free_port()?,
            chain: ChainSource::Anvil {
                port: free_port()?,
                block_time: None,
            },
            log_dir: root.join(format!("target/e2e-logs/{run}")),
            table_name: "live-balances-e2e".into(),
            lambda_concurrency: 24,
            extra_env: vec![
                ("HEAD_POLL_INTERVAL_MS".into(), "100".into()),
                ("SSE_FEED_INTERVAL_MS".into(), "100".into()),
                ("SSE_PING_SECS".into(), "2".into()),
            ],
        };
        eprintln!(
            "e2e: starting the local stack; logs in {}",
            options.log_dir.display()
        );
        let stack = LocalStack::start(options).await?;
        Ok(Self {
            stack,
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.api_url)
    }

    pub fn chain_id(&self) -> u64 {
        self.stack.chain_id
    }

    /// A wallet with ETH and its own freshly deployed token holding `supply` (raw units).
    pub async fn actor_with_token(&self, supply: u64) -> anyhow::Result<(Wallet, Address)> {
        let actor = Wallet::fresh(&self.stack.rpc_url).await?;
        let token = actor.deploy_token("Test Token", "TT", 6).await?;
        actor
            .mint(token, actor.address, alloy::primitives::U256::from(supply))
            .await?;
        Ok((actor, token))
    }

    /// POSTs a session body; returns status and JSON body.
    pub async fn post_session(
        &self,
        chain: &str,
        owner: &str,
        body: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(self.url(&format!("/{chain}/sessions/{owner}")))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        json_reply(response).await
    }
}

pub async fn json_reply(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    let value =
        serde_json::from_str(&text).with_context(|| format!("body is not JSON: {text:?}"))?;
    Ok((status, value))
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

/// A minimal SSE client over a streaming HTTP response.
pub struct SseClient {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    pub last_id: Option<String>,
}

impl SseClient {
    /// Connects; fails unless the answer is `200 text/event-stream`.
    pub async fn connect(
        env: &Environment,
        owner: &str,
        last_event_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut request = env
            .http
            .get(env.url(&format!("/sse/{}/balances/{owner}", env.chain_id())));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await?;
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
        Ok(Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
            last_id: None,
        })
    }

    /// The next event (comments and `retry:`-only blocks skipped), or an error at `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> anyhow::Result<Event> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block)? {
                    if event.id.is_some() {
                        self.last_id.clone_from(&event.id);
                    }
                    return Ok(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .context("no SSE event before the deadline")?;
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes?)),
                None => bail!("SSE stream ended"),
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
}

fn parse_block(block: &str) -> anyhow::Result<Option<Event>> {
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
        None => Ok(None),
        Some(event) => {
            let data = serde_json::from_str(&data.join("\n"))
                .with_context(|| format!("event data: {block}"))?;
            Ok(Some(Event { event, id, data }))
        }
    }
}
