//! One relay for the test suite's proxies in front of a node or a database: HTTP requests are
//! forwarded whole (method, path, headers, body) and WebSocket connections relayed frame by
//! frame, on one port. What each proxy does on top — count, delay, refuse, drop — is a
//! [`RelayHook`] the relay asks about every request, answer, connection and frame. A full
//! outage (open connections cut, new ones closed at once) is the relay's own switch.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

pub type RelayResponse = Response<Full<Bytes>>;

/// What to do with an HTTP request.
pub enum Step<T> {
    /// Send this body upstream (the request's own, or rewritten); `T` is handed back with the
    /// upstream's answer.
    Forward(Bytes, T),
    /// Answer it here; nothing goes upstream.
    Answer(RelayResponse),
}

/// What to do with a WebSocket connection being opened.
pub enum WebSocketPlan {
    /// Close it before the handshake.
    Refuse,
    /// Relay it; after `close_after`, close both sides without a word.
    Relay { close_after: Option<Duration> },
}

/// What a proxy does on top of relaying.
pub trait RelayHook: Send + Sync + 'static {
    /// What [`Self::request`] hands over to [`Self::response`] about a forwarded request.
    type Forwarded: Send;

    /// An HTTP request arrived.
    fn request(
        &self,
        head: &Parts,
        body: Bytes,
    ) -> impl Future<Output = Step<Self::Forwarded>> + Send;

    /// The upstream answered a forwarded request: `Some` replaces its answer.
    fn response(
        &self,
        forwarded: Self::Forwarded,
        status: StatusCode,
        body: &Bytes,
    ) -> impl Future<Output = Option<RelayResponse>> + Send;

    /// A WebSocket connection asks to open.
    fn websocket(&self) -> WebSocketPlan {
        WebSocketPlan::Relay { close_after: None }
    }

    /// A text frame from the client, before it goes upstream.
    fn client_frame(&self, _text: &str) {}

    /// A WebSocket was closed at its `close_after`.
    fn closed_on_schedule(&self) {}
}

/// A running relay; stopped (every connection cut) when dropped.
#[derive(Debug)]
pub struct Relay {
    pub addr: SocketAddr,
    down: watch::Sender<bool>,
    cut: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free local port in front of `upstream` (`127.0.0.1:port`, HTTP and
    /// WebSocket on the same port).
    pub async fn start<H: RelayHook>(upstream: SocketAddr, hook: Arc<H>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream_http: format!("http://{upstream}"),
            upstream_ws: format!("ws://{upstream}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            hook,
            down: watch::channel(false).0,
            cut: Arc::new(AtomicU64::new(0)),
        });
        let (down, cut) = (shared.down.clone(), shared.cut.clone());
        let accept = tokio::spawn(accept_loop(listener, shared));
        Ok(Self {
            addr,
            down,
            cut,
            accept,
        })
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// A full outage: open connections are cut, new ones closed as soon as accepted, until
    /// [`Self::restore`].
    pub fn cut(&self) {
        self.down.send_replace(true);
    }

    pub fn restore(&self) {
        self.down.send_replace(false);
    }

    /// Connections closed by an outage so far.
    pub fn connections_cut(&self) -> u64 {
        self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.down.send_replace(true);
        self.accept.abort();
    }
}

/// A JSON answer made by a hook (or by the relay when the upstream cannot be reached).
pub fn json_response(
    status: StatusCode,
    headers: &[(&str, String)],
    body: &serde_json::Value,
) -> RelayResponse {
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

struct Shared<H> {
    upstream_http: String,
    upstream_ws: String,
    http: reqwest::Client,
    hook: Arc<H>,
    down: watch::Sender<bool>,
    cut: Arc<AtomicU64>,
}

async fn accept_loop<H: RelayHook>(listener: TcpListener, shared: Arc<Shared<H>>) {
    loop {
        let (stream, _) = live_balances::runtime::accept::next(&listener).await;
        if *shared.down.borrow() {
            shared.cut.fetch_add(1, Ordering::SeqCst);
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut down = shared.down.subscribe();
            tokio::select! {
                _ = serve(stream, shared.clone()) => {}
                // Dropping the connection mid-request, as a provider going away does.
                _ = down.wait_for(|down| *down) => {
                    shared.cut.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
}

/// A WebSocket upgrade is told apart from plain HTTP by peeking at the request head.
async fn serve<H: RelayHook>(stream: TcpStream, shared: Arc<Shared<H>>) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut head = [0u8; 2048];
    let n = stream.peek(&mut head).await?;
    let text = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    if text.contains("upgrade: websocket") {
        return match shared.hook.websocket() {
            WebSocketPlan::Refuse => Ok(()),
            WebSocketPlan::Relay { close_after } => websocket(stream, &shared, close_after).await,
        };
    }
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(forward(req, &shared).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await?;
    Ok(())
}

async fn websocket<H: RelayHook>(
    stream: TcpStream,
    shared: &Shared<H>,
    close_after: Option<Duration>,
) -> anyhow::Result<()> {
    let client = tokio_tungstenite::accept_async(stream).await?;
    let (upstream, _) = tokio_tungstenite::connect_async(shared.upstream_ws.as_str()).await?;
    let (mut client_tx, mut client_rx) = client.split();
    let (mut up_tx, mut up_rx) = upstream.split();
    let to_upstream = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            if let Message::Text(text) = &msg {
                shared.hook.client_frame(text.as_str());
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
    let closed = async {
        match close_after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    };
    // Either side closing ends both; a scheduled close drops the socket without a word, as a
    // provider's load balancer does.
    tokio::select! {
        r = to_upstream => r,
        r = to_client => r,
        _ = closed => {
            shared.hook.closed_on_schedule();
            Ok(())
        }
    }
}

async fn forward<H: RelayHook>(req: Request<Incoming>, shared: &Shared<H>) -> RelayResponse {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json_response(StatusCode::BAD_REQUEST, &[], &serde_json::json!({})),
    };
    let (body, forwarded) = match shared.hook.request(&parts, body).await {
        Step::Forward(body, forwarded) => (body, forwarded),
        Step::Answer(response) => return response,
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let mut out = shared
        .http
        .request(
            parts.method.clone(),
            format!("{}{path}", shared.upstream_http),
        )
        .body(body);
    // Hooks read the answers: they come back uncompressed.
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "accept-encoding") {
            out = out.header(name, value);
        }
    }
    let reply = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            return json_response(
                StatusCode::BAD_GATEWAY,
                &[],
                &serde_json::json!({"error": e.to_string()}),
            );
        }
    };
    let status = reply.status();
    let headers = reply.headers().clone();
    let bytes = reply.bytes().await.unwrap_or_default();
    if let Some(replaced) = shared.hook.response(forwarded, status, &bytes).await {
        return replaced;
    }
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            response = response.header(name, value);
        }
    }
    response
        .body(Full::new(bytes))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The methods a JSON-RPC body calls, one per element of a batch (`<none>` for a call without
/// one); `None` when the body is not JSON.
pub fn json_rpc_methods(body: &[u8]) -> Option<Vec<String>> {
    let calls = match serde_json::from_slice::<serde_json::Value>(body).ok()? {
        serde_json::Value::Array(calls) => calls,
        single => vec![single],
    };
    Some(
        calls
            .iter()
            .map(|call| call["method"].as_str().unwrap_or("<none>").to_string())
            .collect(),
    )
}
