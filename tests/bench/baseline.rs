//! The polling baseline: wallet UIs that poll their own balances as they do today — one
//! Multicall3 `aggregate3` of `balanceOf` for all their tokens every 8 s, the native balance
//! every 11 s — straight against the node, through their own counting proxy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256};
use alloy::sol;
use alloy::sol_types::SolCall;
use anyhow::Context;
use live_balances::config::DEFAULT_MULTICALL;
use rand::Rng;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::listeners::Delivery;

sol! {
    struct Call3 { address target; bool allowFailure; bytes callData; }
    struct Result3 { bool success; bytes returnData; }
    function aggregate3(Call3[] calls) external payable returns (Result3[] returnData);
    function balanceOf(address owner) external view returns (uint256);
}

pub const TOKEN_POLL: Duration = Duration::from_secs(8);
pub const NATIVE_POLL: Duration = Duration::from_secs(11);

pub struct Baseline {
    seen: Arc<Mutex<Vec<Delivery>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> anyhow::Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let reply: Value = http.post(url).json(&body).send().await?.json().await?;
    reply.get("result").cloned().context("no result")
}

async fn token_balances(
    http: &reqwest::Client,
    url: &str,
    owner: Address,
    tokens: &[Address],
) -> anyhow::Result<Vec<U256>> {
    let calls: Vec<Call3> = tokens
        .iter()
        .map(|t| Call3 {
            target: *t,
            allowFailure: true,
            callData: balanceOfCall { owner }.abi_encode().into(),
        })
        .collect();
    let data = Bytes::from(aggregate3Call { calls }.abi_encode());
    let result = call(
        http,
        url,
        "eth_call",
        json!([{"to": DEFAULT_MULTICALL, "data": data}, "latest"]),
    )
    .await?;
    let raw: Bytes = serde_json::from_value(result)?;
    let decoded = aggregate3Call::abi_decode_returns(&raw)?;
    Ok(decoded
        .iter()
        .map(|r| U256::try_from_be_slice(&r.returnData).unwrap_or_default())
        .collect())
}

impl Baseline {
    /// One polling client per owner, each starting at a random phase.
    pub fn start(url: String, owners: &[Address], tokens: &[Address]) -> Self {
        let seen = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::new();
        let tasks = owners
            .iter()
            .enumerate()
            .map(|(i, &owner)| {
                let (seen, stop, http, url) =
                    (seen.clone(), stop.clone(), http.clone(), url.clone());
                let tokens = tokens.to_vec();
                tokio::spawn(async move {
                    let (t0, n0) = {
                        let mut rng = rand::rng();
                        (
                            rng.random_range(0..TOKEN_POLL.as_millis() as u64),
                            rng.random_range(0..NATIVE_POLL.as_millis() as u64),
                        )
                    };
                    let start = Instant::now();
                    let mut next_tokens = start + Duration::from_millis(t0);
                    let mut next_native = start + Duration::from_millis(n0);
                    let mut known: HashMap<Address, U256> = HashMap::new();
                    let mut first = true;
                    while !stop.load(Ordering::SeqCst) {
                        let due = next_tokens.min(next_native);
                        tokio::time::sleep_until(
                            due.min(Instant::now() + Duration::from_millis(200)),
                        )
                        .await;
                        let now = Instant::now();
                        if now >= next_tokens {
                            next_tokens += TOKEN_POLL;
                            if let Ok(values) = token_balances(&http, &url, owner, &tokens).await {
                                let at = Instant::now();
                                for (token, value) in tokens.iter().zip(values) {
                                    let old = known.insert(*token, value);
                                    if !first && old != Some(value) {
                                        let token = live_balances::domain::address::lower(token);
                                        if let Ok(mut s) = seen.lock() {
                                            s.push((i, owner, token, value.to_string(), at));
                                        }
                                    }
                                }
                                first = false;
                            }
                        }
                        if now >= next_native {
                            next_native += NATIVE_POLL;
                            let _ =
                                call(&http, &url, "eth_getBalance", json!([owner, "latest"])).await;
                        }
                    }
                })
            })
            .collect();
        Self { seen, stop, tasks }
    }

    /// Changes the clients have seen so far.
    pub fn seen(&self) -> Vec<Delivery> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
