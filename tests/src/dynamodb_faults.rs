//! An HTTP proxy in front of DynamoDB Local that answers some writes with the errors DynamoDB
//! gives under load — `ThrottlingException` (400) and `InternalServerError` (500) — and
//! forwards every other request unchanged. Faults can be switched on and off while it runs;
//! while they are off, connections are passed through byte for byte, so a stack can keep its
//! functions behind the proxy at little cost.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// DynamoDB operations that write.
const WRITES: [&str; 4] = ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"];

#[derive(Debug)]
struct Faults {
    target: String,
    http: reqwest::Client,
    /// Whether new connections are inspected (and writes refused) or passed through.
    on: AtomicBool,
    /// Of every `period` writes, the first `failures` are refused.
    period: AtomicU64,
    failures: AtomicU64,
    writes: AtomicU64,
    injected: AtomicU64,
    /// Connections passed through while faults were off: cut when faults are switched on,
    /// so clients reconnect and their requests are inspected.
    passed_through: Mutex<Vec<AbortHandle>>,
}

#[derive(Debug)]
pub struct FaultyDynamoDb {
    pub url: String,
    faults: Arc<Faults>,
    accept: JoinHandle<()>,
}

impl FaultyDynamoDb {
    /// Proxies to `target` (`http://127.0.0.1:port`); of every `period` writes the first
    /// `failures` fail, alternately throttled and with a server error — runs of failures
    /// longer than the SDK's own retries reach the caller.
    pub async fn start(target: &str, period: u64, failures: u64) -> anyhow::Result<Self> {
        let proxy = Self::start_healthy(target).await?;
        proxy.switch_on(period, failures);
        Ok(proxy)
    }

    /// Proxies to `target` without faults until [`Self::inject`].
    pub async fn start_healthy(target: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let faults = Arc::new(Faults {
            target: target.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            on: AtomicBool::new(false),
            period: AtomicU64::new(1),
            failures: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            passed_through: Mutex::new(vec![]),
        });
        let accept = tokio::spawn(accept_loop(listener, faults.clone()));
        Ok(Self {
            url,
            faults,
            accept,
        })
    }

    /// From now on, of every `period` writes the first `failures` are refused, until the
    /// guard is dropped. Connections opened while faults were off are cut (their callers see a
    /// broken connection and reconnect), so every later request is inspected.
    #[must_use = "faults end when the guard is dropped"]
    pub fn inject(&self, period: u64, failures: u64) -> FaultsOn<'_> {
        self.switch_on(period, failures);
        FaultsOn(self)
    }

    fn switch_on(&self, period: u64, failures: u64) {
        self.faults.period.store(period.max(1), Ordering::SeqCst);
        self.faults.failures.store(failures, Ordering::SeqCst);
        self.faults.writes.store(0, Ordering::SeqCst);
        self.faults.injected.store(0, Ordering::SeqCst);
        // Under the lock the accept loop holds while it decides: no connection is passed
        // through after this.
        let cut = {
            let mut open = lock(&self.faults.passed_through);
            self.faults.on.store(true, Ordering::SeqCst);
            std::mem::take(&mut *open)
        };
        for connection in cut {
            connection.abort();
        }
    }

    /// No more faults: every request is forwarded, and new connections pass through again.
    fn heal(&self) {
        let _open = lock(&self.faults.passed_through);
        self.faults.failures.store(0, Ordering::SeqCst);
        self.faults.on.store(false, Ordering::SeqCst);
    }

    /// Writes answered with an error since faults were switched on.
    pub fn injected(&self) -> u64 {
        self.faults.injected.load(Ordering::SeqCst)
    }

    /// Writes seen since faults were last switched on (failed or forwarded).
    pub fn writes(&self) -> u64 {
        self.faults.writes.load(Ordering::SeqCst)
    }
}

/// Faults are on while this lives (also when a test fails half-way: the stack is shared).
pub struct FaultsOn<'a>(&'a FaultyDynamoDb);

impl Drop for FaultsOn<'_> {
    fn drop(&mut self) {
        self.0.heal();
    }
}

impl Drop for FaultyDynamoDb {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, faults: Arc<Faults>) {
    loop {
        let (stream, _) = live_balances::runtime::accept::next(&listener).await;
        let stream = {
            let mut open = lock(&faults.passed_through);
            if faults.on.load(Ordering::SeqCst) {
                stream
            } else {
                let target = faults.target.trim_start_matches("http://").to_string();
                let task = tokio::spawn(pass_through(stream, target));
                open.retain(|c| !c.is_finished());
                open.push(task.abort_handle());
                continue;
            }
        };
        let faults = faults.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(faults.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Copies bytes both ways between the client and DynamoDB Local until either side closes.
async fn pass_through(mut client: TcpStream, target: String) {
    if let Ok(mut upstream) = TcpStream::connect(&target).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body =
        format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"}}"#);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(kind) = http::HeaderValue::from_str(kind) {
        headers.insert("x-amzn-errortype", kind);
    }
    response
}

async fn handle(
    faults: Arc<Faults>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_string();
    if WRITES.contains(&operation.as_str()) {
        let n = faults.writes.fetch_add(1, Ordering::SeqCst);
        if n % faults.period.load(Ordering::SeqCst) < faults.failures.load(Ordering::SeqCst) {
            faults.injected.fetch_add(1, Ordering::SeqCst);
            return Ok(if n.is_multiple_of(2) {
                error(
                    StatusCode::BAD_REQUEST,
                    "ThrottlingException",
                    "Rate of requests exceeds the allowed throughput.",
                )
            } else {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Internal server error",
                )
            });
        }
    }
    Ok(forward(&faults, req).await.unwrap_or_else(|e| {
        error(
            StatusCode::BAD_GATEWAY,
            "InternalServerError",
            &format!("proxy: {e}").replace('"', "'"),
        )
    }))
}

async fn forward(faults: &Faults, req: Request<Incoming>) -> anyhow::Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = faults
        .http
        .request(parts.method, format!("{}{path}", faults.target))
        .body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await?;
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = answer.status();
    for (name, value) in answer.headers() {
        if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
            response.headers_mut().insert(name, value.clone());
        }
    }
    *response.body_mut() = Full::new(answer.bytes().await?);
    Ok(response)
}
