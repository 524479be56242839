//! An HTTP proxy in front of the api function for the browser test: it forwards every request
//! unchanged and counts the SSE streams open through it — what the server sees of a browser's
//! tabs — and can hold those streams' bytes back (a stall between the server and the page).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

type ProxyBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// One SSE request as the browser sent it.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    /// Path and query, e.g. `/lambda-url/api/sse/31337/balances/0x…?lastEventId=…`.
    pub path_and_query: String,
    /// The `Last-Event-ID` header, which EventSource sends when it reconnects by itself.
    pub last_event_id: Option<String>,
}

#[derive(Debug)]
struct Streams {
    target: String,
    http: reqwest::Client,
    open: AtomicU64,
    peak: AtomicU64,
    requests: Mutex<Vec<StreamRequest>>,
    held: watch::Sender<bool>,
}

#[derive(Debug)]
pub struct StreamCountingProxy {
    /// `http://127.0.0.1:port`: put it where the api's origin was.
    pub url: String,
    streams: Arc<Streams>,
    accept: JoinHandle<()>,
}

impl StreamCountingProxy {
    /// Listens on a free local port and forwards to `target` (an origin, `http://host:port`).
    pub async fn start(target: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let streams = Arc::new(Streams {
            target: target.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()?,
            open: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            requests: Mutex::new(vec![]),
            held: watch::channel(false).0,
        });
        let accept = tokio::spawn(accept_loop(listener, streams.clone()));
        Ok(Self {
            url,
            streams,
            accept,
        })
    }

    /// SSE streams open through the proxy now (answered `200 text/event-stream`, not yet
    /// ended by either side).
    pub fn open_streams(&self) -> u64 {
        self.streams.open.load(Ordering::SeqCst)
    }

    /// The most streams open at once since the last [`Self::reset_peak`].
    pub fn peak_streams(&self) -> u64 {
        self.streams.peak.load(Ordering::SeqCst)
    }

    pub fn reset_peak(&self) {
        self.streams
            .peak
            .store(self.open_streams(), Ordering::SeqCst);
    }

    /// Every SSE request so far, in order.
    pub fn stream_requests(&self) -> Vec<StreamRequest> {
        lock(&self.streams.requests).clone()
    }

    /// While held, no stream gets another byte from the server (they wait in the proxy).
    pub fn hold_streams(&self, held: bool) {
        self.streams.held.send_replace(held);
    }
}

impl Drop for StreamCountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, streams: Arc<Streams>) {
    loop {
        let (stream, _) = live_balances::runtime::accept::next(&listener).await;
        let streams = streams.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(streams.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Counts one open stream for as long as it lives (it goes with the response body: when the
/// stream ends, or hyper drops the body because the browser went away).
struct OpenStream(Arc<Streams>);

impl OpenStream {
    fn new(streams: Arc<Streams>) -> Self {
        let open = streams.open.fetch_add(1, Ordering::SeqCst) + 1;
        streams.peak.fetch_max(open, Ordering::SeqCst);
        Self(streams)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    streams: Arc<Streams>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    Ok(forward(streams, req).await.unwrap_or_else(|e| {
        let mut response = Response::new(
            Full::new(Bytes::from(format!("proxy: {e}")))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    }))
}

async fn forward(
    streams: Arc<Streams>,
    req: Request<Incoming>,
) -> anyhow::Result<Response<ProxyBody>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut request = streams
        .http
        .request(parts.method, format!("{}{path}", streams.target))
        .body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await?;
    let is_stream = answer.status() == StatusCode::OK
        && answer
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|n| match n {})
            .boxed_unsync(),
    );
    *response.status_mut() = answer.status();
    for (name, value) in answer.headers() {
        if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
            response.headers_mut().insert(name, value.clone());
        }
    }
    let upstream = answer
        .bytes_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    if !is_stream {
        *response.body_mut() = StreamBody::new(upstream.map(|c| c.map(Frame::data))).boxed_unsync();
        return Ok(response);
    }
    lock(&streams.requests).push(StreamRequest {
        path_and_query: path,
        last_event_id: parts
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let state = (
        upstream.boxed(),
        OpenStream::new(streams.clone()),
        streams.held.subscribe(),
    );
    let held = futures::stream::unfold(state, |(mut upstream, open, mut held)| async move {
        let chunk = upstream.next().await?;
        // Bytes that came while the streams are held wait here; the browser sees a silent
        // stream. (Checked after the chunk came: the wait for it began before the hold.)
        let _ = held.wait_for(|h| !*h).await;
        Some((chunk.map(Frame::data), (upstream, open, held)))
    });
    *response.body_mut() = StreamBody::new(held).boxed_unsync();
    Ok(response)
}
