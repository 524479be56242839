//! A JSON-RPC proxy in front of anvil that behaves like a hosted node provider — HTTP and
//! WebSocket on one port — with each of a provider's habits switched on per test: latency on
//! every request, a share of requests answered `429` with `Retry-After`, `debug_*`/`trace_*`
//! refused as not offered, `eth_getLogs` refused above a block range or a result count (in
//! the words real providers use), the WebSocket dropped every few seconds, and full outages
//! (open connections cut, new ones closed at once). It counts what passed by method, and what
//! it refused, so a test can report requests per block.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

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
            traces_refused: self.traces_refused - before.traces_refused,
            ws_dropped: self.ws_dropped - before.ws_dropped,
            cut: self.cut - before.cut,
        }
    }
}

#[derive(Debug)]
struct Shared {
    upstream_http: String,
    upstream_ws: String,
    http: reqwest::Client,
    faults: Mutex<ProviderFaults>,
    counts: Mutex<ProviderCounts>,
    down: watch::Sender<bool>,
    ws_drops: AtomicU64,
    /// New WebSocket connections are refused until then.
    ws_refused_until: Mutex<Option<tokio::time::Instant>>,
}

impl Shared {
    fn faults(&self) -> ProviderFaults {
        lock(&self.faults).clone()
    }

    fn count(&self, f: impl FnOnce(&mut ProviderCounts)) {
        f(&mut lock(&self.counts));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
pub struct ProviderProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl ProviderProxy {
    /// Listens on a free local port in front of the node at `upstream` (`127.0.0.1:port`),
    /// with no fault on.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream_http: format!("http://{upstream}"),
            upstream_ws: format!("ws://{upstream}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            faults: Mutex::new(ProviderFaults::default()),
            counts: Mutex::new(ProviderCounts::default()),
            down: watch::channel(false).0,
            ws_drops: AtomicU64::new(0),
            ws_refused_until: Mutex::new(None),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Switches these faults on (and every other off) from the next request on.
    pub fn set(&self, faults: ProviderFaults) {
        *lock(&self.shared.faults) = faults;
    }

    /// A full outage: open connections are cut, new ones closed as soon as accepted, until
    /// [`Self::restore`].
    pub fn cut(&self) {
        self.shared.down.send_replace(true);
    }

    pub fn restore(&self) {
        self.shared.down.send_replace(false);
    }

    pub fn counts(&self) -> ProviderCounts {
        let mut counts = lock(&self.shared.counts).clone();
        counts.ws_dropped = self.shared.ws_drops.load(Ordering::SeqCst);
        counts
    }
}

impl Drop for ProviderProxy {
    fn drop(&mut self) {
        self.shared.down.send_replace(true);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, _) = live_balances::accept::next(&listener).await;
        if *shared.down.borrow() {
            shared.count(|c| c.cut += 1);
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut down = shared.down.subscribe();
            tokio::select! {
                _ = serve(stream, shared.clone()) => {}
                // Dropping the connection mid-request, as a provider going away does.
                _ = down.wait_for(|down| *down) => shared.count(|c| c.cut += 1),
            }
        });
    }
}

/// A WebSocket upgrade is told apart from plain HTTP by peeking at the request head.
async fn serve(stream: TcpStream, shared: Arc<Shared>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut head = [0u8; 2048];
    let n = stream.peek(&mut head).await?;
    let text = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    if text.contains("upgrade: websocket") {
        let refused =
            lock(&shared.ws_refused_until).is_some_and(|until| tokio::time::Instant::now() < until);
        if refused {
            return Ok(());
        }
        return websocket(stream, shared).await;
    }
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(answer(req, &shared).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await?;
    Ok(())
}

async fn websocket(stream: TcpStream, shared: Arc<Shared>) -> anyhow::Result<()> {
    let client = tokio_tungstenite::accept_async(stream).await?;
    let (upstream, _) = tokio_tungstenite::connect_async(shared.upstream_ws.as_str()).await?;
    let (mut client_tx, mut client_rx) = client.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let to_upstream = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            if let Message::Text(text) = &msg {
                count_methods(&shared, text.as_bytes());
            }
            up_tx.send(msg).await?;
        }
        anyhow::Ok(())
    };
    let to_client = async {
        while let Some(Ok(msg)) = up_rx.next().await {
            client_tx.send(msg).await?;
        }
        anyhow::Ok(())
    };
    let faults = shared.faults();
    let drop_after = faults.ws_drop_every;
    let dropped = async {
        match drop_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    // Either side closing ends both; a scheduled drop closes the socket without a word, as a
    // provider's load balancer does.
    tokio::select! {
        r = to_upstream => r,
        r = to_client => r,
        _ = dropped => {
            shared.ws_drops.fetch_add(1, Ordering::SeqCst);
            *lock(&shared.ws_refused_until) =
                Some(tokio::time::Instant::now() + faults.ws_refused_after_drop);
            Ok(())
        }
    }
}

fn count_methods(shared: &Shared, body: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let calls = match value {
        Value::Array(calls) => calls,
        single => vec![single],
    };
    shared.count(|c| {
        for call in calls {
            let method = call["method"].as_str().unwrap_or("<none>").to_string();
            *c.requests.entry(method).or_default() += 1;
        }
    });
}

fn reply(status: StatusCode, headers: &[(&str, String)], body: Value) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn rpc_error(id: &Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

async fn answer(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let faults = shared.faults();
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, &[], json!({})),
    };
    count_methods(shared, &body);
    tokio::time::sleep(faults.latency).await;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let id = request["id"].clone();
    let method = request["method"].as_str().unwrap_or_default().to_string();
    if faults.rate_limited > 0.0 && rand::random::<f64>() < faults.rate_limited {
        shared.count(|c| c.rate_limited += 1);
        return reply(
            StatusCode::TOO_MANY_REQUESTS,
            &[("retry-after", faults.retry_after_secs.to_string())],
            rpc_error(
                &id,
                429,
                "Your app has exceeded its compute units per second capacity.".into(),
            ),
        );
    }
    if faults.refuse_traces && (method.starts_with("debug_") || method.starts_with("trace_")) {
        shared.count(|c| c.traces_refused += 1);
        return reply(
            StatusCode::OK,
            &[],
            rpc_error(
                &id,
                -32601,
                format!("the method {method} does not exist/is not available"),
            ),
        );
    }
    if method == "eth_getLogs"
        && let Some(max) = faults.max_log_blocks
        && let Some(blocks) = log_range(shared, &request["params"][0]).await
        && blocks > max
    {
        shared.count(|c| c.logs_refused += 1);
        return reply(
            StatusCode::OK,
            &[],
            rpc_error(&id, -32600, "block range is too wide".into()),
        );
    }
    let upstream = match shared
        .http
        .post(&shared.upstream_http)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return reply(
                StatusCode::BAD_GATEWAY,
                &[],
                json!({"error": e.to_string()}),
            );
        }
    };
    let status = upstream.status();
    let bytes = upstream.bytes().await.unwrap_or_default();
    if method == "eth_getLogs"
        && let Some(max) = faults.max_log_results
    {
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if answer["result"]
            .as_array()
            .is_some_and(|logs| logs.len() > max)
        {
            shared.count(|c| c.logs_refused += 1);
            return reply(
                StatusCode::OK,
                &[],
                rpc_error(
                    &id,
                    -32005,
                    format!("query returned more than {max} results"),
                ),
            );
        }
    }
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// How many blocks an `eth_getLogs` filter spans (tags resolved against the node's head).
async fn log_range(shared: &Shared, filter: &Value) -> Option<u64> {
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
        let answer: Value = shared
            .http
            .post(&shared.upstream_http)
            .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}))
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
