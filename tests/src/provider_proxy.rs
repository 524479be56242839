//! A JSON-RPC proxy in front of anvil that behaves like a hosted node provider — HTTP and
//! WebSocket on one port — with each of a provider's habits switched on per test: latency on
//! every request, a share of requests answered `429` with `Retry-After`, `debug_*`/`trace_*`
//! refused as not offered, `eth_getLogs` refused above a block range or a result count (in
//! the words real providers use), the WebSocket dropped every few seconds, and full outages
//! (open connections cut, new ones closed at once). It counts what passed by method, and what
//! it refused, so a test can report requests per block. The provider is a hook on
//! [`crate::relay`], which does the forwarding and the outages.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use hyper::http::request::Parts;
use serde_json::{Value, json};

use crate::relay::{
    Relay, RelayHook, RelayResponse, Step, WebSocketPlan, json_response, json_rpc_methods,
};

/// The habits switched on (all off by default: a transparent proxy).
#[derive(Debug, Clone, Default)]
pub struct ProviderFaults {
    /// Added to every HTTP request before it is answered.
    pub latency: Duration,
    /// Share of HTTP requests answered `429 Too Many Requests` (0 to 1).
    pub rate_limited: f64,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after_secs: u64,
    /// `debug_*` and `trace_*` answered "method does not exist".
    pub refuse_traces: bool,
    /// `eth_getLogs` over more blocks than this refused ("block range is too wide").
    pub max_log_blocks: Option<u64>,
    /// `eth_getLogs` with more logs than this refused ("query returned more than N results").
    pub max_log_results: Option<usize>,
    /// Every `eth_getLogs` answered with an internal error (a node failing one method).
    pub fail_logs: bool,
    /// Every WebSocket connection closed after this long.
    pub ws_drop_every: Option<Duration>,
    /// After such a drop, new WebSocket connections are refused for this long (the provider's
    /// side of the reconnect takes a while): blocks mined meanwhile are announced to no one.
    pub ws_refused_after_drop: Duration,
}

impl ProviderFaults {
    /// Everything the provider does at once (40 ms, 20% 429 with `Retry-After: 1`,
    /// no traces, 3-block and 50-log caps, the WebSocket dropped every 60 s).
    pub fn all() -> Self {
        Self {
            latency: Duration::from_millis(40),
            rate_limited: 0.2,
            retry_after_secs: 1,
            refuse_traces: true,
            max_log_blocks: Some(3),
            max_log_results: Some(50),
            fail_logs: false,
            ws_drop_every: Some(Duration::from_secs(60)),
            ws_refused_after_drop: Duration::from_secs(1),
        }
    }
}

/// What the proxy saw.
#[derive(Debug, Clone, Default)]
pub struct ProviderCounts {
    /// Requests that reached the proxy, by JSON-RPC method (refused ones included).
    pub requests: BTreeMap<String, u64>,
    /// Answered 429.
    pub rate_limited: u64,
    /// `eth_getLogs` refused for its range or its result count.
    pub logs_refused: u64,
    /// `eth_getLogs` answered with an internal error.
    pub logs_failed: u64,
    /// Trace calls refused.
    pub traces_refused: u64,
    /// WebSocket connections the proxy closed on schedule.
    pub ws_dropped: u64,
    /// Connections closed by an outage.
    pub cut: u64,
}

impl ProviderCounts {
    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            requests: self
                .requests
                .iter()
                .map(|(m, n)| (m.clone(), n - before.requests.get(m).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            rate_limited: self.rate_limited - before.rate_limited,
            logs_refused: self.logs_refused - before.logs_refused,
            logs_failed: self.logs_failed - before.logs_failed,
            traces_refused: self.traces_refused - before.traces_refused,
            ws_dropped: self.ws_dropped - before.ws_dropped,
            cut: self.cut - before.cut,
        }
    }
}

/// The provider's habits, as a hook on the relay.
#[derive(Debug)]
struct Provider {
    /// For the head an open-ended log range is measured against.
    upstream_http: String,
    http: reqwest::Client,
    faults: Mutex<ProviderFaults>,
    counts: Mutex<ProviderCounts>,
    ws_drops: AtomicU64,
    /// New WebSocket connections are refused until then.
    ws_refused_until: Mutex<Option<tokio::time::Instant>>,
}

impl Provider {
    fn faults(&self) -> ProviderFaults {
        lock(&self.faults).clone()
    }

    fn count(&self, f: impl FnOnce(&mut ProviderCounts)) {
        f(&mut lock(&self.counts));
    }

    /// How many blocks an `eth_getLogs` filter spans (tags resolved against the node's head).
    async fn log_range(&self, filter: &Value) -> Option<u64> {
        if filter.get("blockHash").is_some_and(|v| !v.is_null()) {
            return Some(1);
        }
        let number = |v: &Value| -> Option<u64> {
            match v.as_str()? {
                "earliest" => Some(0),
                hex => u64::from_str_radix(hex.strip_prefix("0x")?, 16).ok(),
            }
        };
        let (from, to) = (number(&filter["fromBlock"]), number(&filter["toBlock"]));
        // "latest", "pending", absent: the head.
        let head = if from.is_none() || to.is_none() {
            let answer: Value = self
                .http
                .post(&self.upstream_http)
                .json(
                    &json!({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}),
                )
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            number(&answer["result"])
        } else {
            None
        };
        let (from, to) = (from.or(head)?, to.or(head)?);
        Some(to.saturating_sub(from) + 1)
    }

    fn count_methods(&self, body: &[u8]) {
        let Some(methods) = json_rpc_methods(body) else {
            return;
        };
        self.count(|c| {
            for method in methods {
                *c.requests.entry(method).or_default() += 1;
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A forwarded call, for judging the node's answer.
struct Call {
    id: Value,
    method: String,
    max_log_results: Option<usize>,
}

impl RelayHook for Provider {
    type Forwarded = Call;

    async fn request(&self, _head: &Parts, body: Bytes) -> Step<Call> {
        let faults = self.faults();
        self.count_methods(&body);
        tokio::time::sleep(faults.latency).await;
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let id = request["id"].clone();
        let method = request["method"].as_str().unwrap_or_default().to_string();
        if faults.rate_limited > 0.0 && rand::random::<f64>() < faults.rate_limited {
            self.count(|c| c.rate_limited += 1);
            return Step::Answer(json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &[("retry-after", faults.retry_after_secs.to_string())],
                &rpc_error(
                    &id,
                    429,
                    "Your app has exceeded its compute units per second capacity.".into(),
                ),
            ));
        }
        if faults.refuse_traces && (method.starts_with("debug_") || method.starts_with("trace_")) {
            self.count(|c| c.traces_refused += 1);
            return Step::Answer(json_response(
                StatusCode::OK,
                &[],
                &rpc_error(
                    &id,
                    -32601,
                    format!("the method {method} does not exist/is not available"),
                ),
            ));
        }
        if method == "eth_getLogs" && faults.fail_logs {
            self.count(|c| c.logs_failed += 1);
            return Step::Answer(json_response(
                StatusCode::OK,
                &[],
                &rpc_error(&id, -32000, "internal error".into()),
            ));
        }
        if method == "eth_getLogs"
            && let Some(max) = faults.max_log_blocks
            && let Some(blocks) = self.log_range(&request["params"][0]).await
            && blocks > max
        {
            self.count(|c| c.logs_refused += 1);
            return Step::Answer(json_response(
                StatusCode::OK,
                &[],
                &rpc_error(&id, -32600, "block range is too wide".into()),
            ));
        }
        Step::Forward(
            body,
            Call {
                id,
                method,
                max_log_results: faults.max_log_results,
            },
        )
    }

    async fn response(
        &self,
        call: Call,
        _status: StatusCode,
        body: &Bytes,
    ) -> Option<RelayResponse> {
        let max = call
            .max_log_results
            .filter(|_| call.method == "eth_getLogs")?;
        let answer: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let logs = answer["result"].as_array()?;
        if logs.len() <= max {
            return None;
        }
        self.count(|c| c.logs_refused += 1);
        Some(json_response(
            StatusCode::OK,
            &[],
            &rpc_error(
                &call.id,
                -32005,
                format!("query returned more than {max} results"),
            ),
        ))
    }

    fn websocket(&self) -> WebSocketPlan {
        let refused =
            lock(&self.ws_refused_until).is_some_and(|until| tokio::time::Instant::now() < until);
        if refused {
            return WebSocketPlan::Refuse;
        }
        WebSocketPlan::Relay {
            close_after: self.faults().ws_drop_every,
        }
    }

    fn client_frame(&self, text: &str) {
        self.count_methods(text.as_bytes());
    }

    fn closed_on_schedule(&self) {
        self.ws_drops.fetch_add(1, Ordering::SeqCst);
        *lock(&self.ws_refused_until) =
            Some(tokio::time::Instant::now() + self.faults().ws_refused_after_drop);
    }
}

#[derive(Debug)]
pub struct ProviderProxy {
    pub addr: SocketAddr,
    provider: Arc<Provider>,
    relay: Relay,
}

impl ProviderProxy {
    /// Listens on a free local port in front of the node at `upstream` (`127.0.0.1:port`),
    /// with no fault on.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let provider = Arc::new(Provider {
            upstream_http: format!("http://{upstream}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            faults: Mutex::new(ProviderFaults::default()),
            counts: Mutex::new(ProviderCounts::default()),
            ws_drops: AtomicU64::new(0),
            ws_refused_until: Mutex::new(None),
        });
        let relay = Relay::start(upstream, provider.clone()).await?;
        Ok(Self {
            addr: relay.addr,
            provider,
            relay,
        })
    }

    pub fn http_url(&self) -> String {
        self.relay.http_url()
    }

    pub fn ws_url(&self) -> String {
        self.relay.ws_url()
    }

    /// Switches these faults on (and every other off) from the next request on.
    pub fn set(&self, faults: ProviderFaults) {
        *lock(&self.provider.faults) = faults;
    }

    /// A full outage: open connections are cut, new ones closed as soon as accepted, until
    /// [`Self::restore`].
    pub fn cut(&self) {
        self.relay.cut();
    }

    pub fn restore(&self) {
        self.relay.restore();
    }

    pub fn counts(&self) -> ProviderCounts {
        let mut counts = lock(&self.provider.counts).clone();
        counts.ws_dropped = self.provider.ws_drops.load(Ordering::SeqCst);
        counts.cut = self.relay.connections_cut();
        counts
    }
}

fn rpc_error(id: &Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}
