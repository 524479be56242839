//! Thousands of SSE streams from one process: each a bare hyper HTTP/1.1 connection reading
//! its body frames and noting when each `balance_update` arrived — a few kilobytes a stream,
//! so the bench process can hold 10,000 of them beside the server it measures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{Context, bail};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use live_balances::domain::address::lower;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One delivered update: (stream, owner, token, balance, when).
pub type Delivery = (usize, Address, String, String, Instant);

#[derive(Default)]
struct Shared {
    deliveries: Mutex<Vec<Delivery>>,
    /// Streams the server ended or broke (they are not reopened: a benchmark counts them).
    ended: AtomicU64,
    pings: AtomicU64,
}

pub struct Streams {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// Opened this many at a time.
const OPENING: usize = 64;

impl Streams {
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::default()),
            tasks: vec![],
        }
    }

    /// Opens `count` more streams to `base` (`http://host:port`), spread over `owners` (stream
    /// `i` follows `owners[i % len]`), each past its `all_balances` before this returns.
    pub async fn open(
        &mut self,
        base: &str,
        chain_id: u64,
        owners: &[Address],
        count: usize,
    ) -> anyhow::Result<()> {
        let first = self.tasks.len();
        let addr = base.trim_start_matches("http://").to_string();
        let opened: Vec<anyhow::Result<JoinHandle<()>>> =
            futures::stream::iter(first..first + count)
                .map(|i| {
                    let owner = owners[i % owners.len()];
                    let (addr, shared) = (addr.clone(), self.shared.clone());
                    async move { open_one(&addr, chain_id, i, owner, shared).await }
                })
                .buffer_unordered(OPENING)
                .collect()
                .await;
        for task in opened {
            self.tasks.push(task?);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared
            .deliveries
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Streams that ended before the bench closed them.
    pub fn ended(&self) -> u64 {
        self.shared.ended.load(Ordering::Relaxed)
    }

    pub fn pings(&self) -> u64 {
        self.shared.pings.load(Ordering::Relaxed)
    }

    /// Closes every stream.
    pub async fn close(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Connects, asks for the stream, waits for `all_balances`, then hands the rest of the stream
/// to a task that records deliveries.
async fn open_one(
    addr: &str,
    chain_id: u64,
    index: usize,
    owner: Address,
    shared: Arc<Shared>,
) -> anyhow::Result<JoinHandle<()>> {
    let socket = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting stream {index}"))?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(socket)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(format!("/sse/{chain_id}/balances/{}", lower(&owner)))
        .header("host", addr)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if response.status() != 200 {
        bail!("stream {index}: {}", response.status());
    }
    let mut body = response.into_body();
    let mut buffer = String::new();
    // The snapshot first, within a bound.
    let until = Instant::now() + Duration::from_secs(60);
    while !buffer.contains("event: all_balances") {
        let frame = tokio::time::timeout_at(until, body.frame())
            .await
            .context("no all_balances in time")?
            .context("stream ended before all_balances")??;
        if let Ok(data) = frame.into_data() {
            buffer.push_str(&String::from_utf8_lossy(&data));
        }
    }
    buffer.clear();
    Ok(tokio::spawn(async move {
        // Keeps the connection's request side alive for as long as the stream is read.
        let _sender = sender;
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let at = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                record(&shared, index, owner, &block, at);
            }
        }
        shared.ended.fetch_add(1, Ordering::Relaxed);
    }))
}

fn record(shared: &Shared, index: usize, owner: Address, block: &str, at: Instant) {
    if block.starts_with("event: ping") {
        shared.pings.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if !block.starts_with("event: balance_update") {
        return;
    }
    let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
        return;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(data) else {
        return;
    };
    let token = value["address"].as_str().unwrap_or_default().to_string();
    let balance = value["balance"].as_str().unwrap_or_default().to_string();
    if let Ok(mut d) = shared.deliveries.lock() {
        d.push((index, owner, token, balance, at));
    }
}
