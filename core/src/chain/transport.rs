//! The HTTP transport under every reader, between alloy's `RpcClient` and the chain's
//! endpoints (one or more URLs, tried in the order configured).
//!
//! A request a provider answers with "slow down" (429, a 503 with `Retry-After`, a JSON-RPC
//! rate-limit error) waits as told — the `Retry-After` or the error's own hint, else
//! exponential backoff with jitter — and is sent again on its own, never failing the step it
//! belongs to; one an endpoint does not answer (refused, cut, timed out, 5xx) waits with
//! backoff. Either way the endpoint rests for that long: while it rests, requests go to the
//! next one configured, so an outage or a rate limit of the primary sheds load to a
//! secondary, and the primary is used again once its rest is over. With no endpoint to go
//! to, each request waits only what it was told itself (a 429 to one request does not hold
//! the others). No request waits longer than `max_wait` in all: then the last answer is
//! returned, and the caller's own retry (the poller's step backoff) takes over.
//!
//! alloy's own pieces were weighed: its HTTP transport drops `Retry-After` when the 429's body
//! is a JSON-RPC error (as Alchemy's is), so requests are posted here; its `RetryBackoffLayer`
//! waits a fixed pause when no hint came, has no bound on the total wait and retries a log
//! refusal Infura codes like a rate limit; its `FallbackLayer` ranks endpoints by latency
//! (moving load off the primary a user pays for) and, to fail over, sends every request to
//! several endpoints at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::http::reqwest;
use alloy::transports::{TransportError, TransportErrorKind, TransportFut, TransportResult};
use tokio::time::Instant;

use super::fault::{self, Fault};
use super::observer::{RpcObserver, method_label};
use crate::runtime::backoff::Backoff;

/// Backoff between tries of a rate-limited request whose answer named no wait.
const RATE_LIMIT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(250), Duration::from_secs(8));
/// Rest of an endpoint that failed to answer, when it is the only one: short, so the end of
/// an outage is noticed within a second or so (a refused connection costs the provider
/// nothing).
const ALONE_REST: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
/// Rest of a failing endpoint that has others to stand in: it is tried again less often.
const SHARED_REST: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

/// One URL of a chain, with how it has been doing.
struct Endpoint {
    url: reqwest::Url,
    state: Mutex<EndpointState>,
}

#[derive(Default)]
struct EndpointState {
    /// Not used again before this.
    resting_until: Option<Instant>,
    /// Failures to answer in a row (rate limits not counted).
    failures: u32,
}

struct Shared {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    max_wait: Duration,
    observer: Arc<dyn RpcObserver>,
    /// The endpoint the last request went to.
    in_use: AtomicUsize,
}

/// A `tower::Service` over a chain's endpoints; cheap to clone (alloy clones its transport).
#[derive(Clone)]
pub struct FailoverTransport {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FailoverTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverTransport")
            .field("endpoints", &self.shared.endpoints.len())
            .field("max_wait", &self.shared.max_wait)
            .finish()
    }
}

impl FailoverTransport {
    /// Over `urls` (at least one), each request bounded by `client`'s timeouts.
    pub fn new(
        client: reqwest::Client,
        urls: Vec<reqwest::Url>,
        max_wait: Duration,
        observer: Arc<dyn RpcObserver>,
    ) -> Self {
        let endpoints = urls
            .into_iter()
            .map(|url| Endpoint {
                url,
                state: Mutex::new(EndpointState::default()),
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                client,
                endpoints,
                max_wait,
                observer,
                in_use: AtomicUsize::new(0),
            }),
        }
    }
}

impl Shared {
    async fn send(&self, request: RequestPacket) -> TransportResult<ResponsePacket> {
        let methods: Vec<&'static str> = request.method_names().map(method_label).collect();
        let started = Instant::now();
        let mut retries = 0u32;
        // What this request's last try was told (or met): its own pause before it tries an
        // endpoint that rests. Another request's rate limit never holds this one: a resting
        // endpoint is only passed over while another does not rest.
        let mut pause = Duration::ZERO;
        loop {
            let index = match self.ready() {
                Some(index) => index,
                None => {
                    tokio::time::sleep(pause).await;
                    self.soonest_back()
                }
            };
            if self.in_use.swap(index, Ordering::SeqCst) != index {
                self.observer.endpoint_in_use(index);
            }
            for method in &methods {
                self.observer.request(method, index);
            }
            let endpoint = &self.endpoints[index];
            let (status, retry_after, result) = self.post(&endpoint.url, &request).await;
            let fault = match &result {
                Ok(answer) => answer
                    .as_error()
                    .map(|error| match fault::of_payload(error) {
                        // The header's wait, when the JSON-RPC error named none.
                        Fault::RateLimited { retry_after: None } => {
                            Fault::RateLimited { retry_after }
                        }
                        Fault::Other if status == 429 => Fault::RateLimited { retry_after },
                        fault => fault,
                    }),
                Err(error) => Some(fault::of_error(error)),
            };
            pause = match fault {
                Some(Fault::RateLimited { retry_after }) => {
                    let wait = retry_after
                        .unwrap_or_else(|| RATE_LIMIT_BACKOFF.pause_with_jitter(retries));
                    endpoint.rest(wait);
                    self.observer.rate_limited(index, wait);
                    wait
                }
                Some(Fault::Unavailable) => {
                    let rest = if self.endpoints.len() > 1 {
                        SHARED_REST
                    } else {
                        ALONE_REST
                    };
                    let wait = endpoint.failed(rest);
                    self.observer.endpoint_failed(index, wait);
                    wait
                }
                _ => {
                    endpoint.answered();
                    return result;
                }
            };
            retries += 1;
            // Past the bound, or a pause that would cross it with no other endpoint to try:
            // the last answer stands.
            let waits = self.ready().is_none();
            if started.elapsed() >= self.max_wait
                || (waits && started.elapsed() + pause > self.max_wait)
            {
                return result;
            }
        }
    }

    /// Posts `request` to `url`: the HTTP status, the `Retry-After` (capped), and the answer —
    /// a JSON-RPC answer even on an error status when the body is one (providers put their
    /// rate-limit and refusal errors there).
    async fn post(
        &self,
        url: &reqwest::Url,
        request: &RequestPacket,
    ) -> (u16, Option<Duration>, TransportResult<ResponsePacket>) {
        let body = match serde_json::to_vec(request) {
            Ok(body) => body,
            Err(e) => return (0, None, Err(TransportError::ser_err(e))),
        };
        let sent = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .headers(request.headers())
            .body(body)
            .send()
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) => return (0, None, Err(TransportErrorKind::custom(e))),
        };
        let status = answer.status();
        let retry_after = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(|secs: f64| Duration::from_secs_f64(secs.max(0.0)).min(fault::MAX_RETRY_HINT));
        let body = match answer.bytes().await {
            Ok(body) => body,
            Err(e) => {
                return (
                    status.as_u16(),
                    retry_after,
                    Err(TransportErrorKind::custom(e)),
                );
            }
        };
        let parsed = serde_json::from_slice::<ResponsePacket>(&body);
        let result = match parsed {
            Ok(packet) if status.is_success() || packet.is_error() => Ok(packet),
            _ if !status.is_success() => Err(TransportErrorKind::http_error_with_retry_after(
                status.as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
                retry_after,
            )),
            Ok(packet) => Ok(packet),
            Err(e) => Err(TransportError::deser_err(e, String::from_utf8_lossy(&body))),
        };
        (status.as_u16(), retry_after, result)
    }

    /// The first endpoint not resting, if any.
    fn ready(&self) -> Option<usize> {
        let now = Instant::now();
        self.endpoints
            .iter()
            .position(|endpoint| endpoint.rest_left(now).is_zero())
    }

    /// The endpoint whose rest ends first.
    fn soonest_back(&self) -> usize {
        let now = Instant::now();
        self.endpoints
            .iter()
            .enumerate()
            .min_by_key(|(_, endpoint)| endpoint.rest_left(now))
            .map_or(0, |(index, _)| index)
    }
}

impl Endpoint {
    fn lock(&self) -> std::sync::MutexGuard<'_, EndpointState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn rest_left(&self, now: Instant) -> Duration {
        self.lock()
            .resting_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// Rests for `wait` (extending a longer rest is never shortened).
    fn rest(&self, wait: Duration) {
        let mut state = self.lock();
        let until = Instant::now() + wait;
        state.resting_until = Some(state.resting_until.map_or(until, |u| u.max(until)));
    }

    /// Counts a failure to answer and rests by `rest`; returns the rest.
    fn failed(&self, rest: Backoff) -> Duration {
        let failures = {
            let mut state = self.lock();
            state.failures += 1;
            state.failures
        };
        let wait = rest.pause_with_jitter(failures - 1);
        self.rest(wait);
        wait
    }

    fn answered(&self) {
        let mut state = self.lock();
        state.failures = 0;
    }
}

impl tower::Service<RequestPacket> for FailoverTransport {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { shared.send(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A node on a local port that answers each request with the next scripted HTTP response
    /// (status line, headers, body), then the last one forever.
    async fn scripted(answers: Vec<&'static str>) -> (reqwest::Url, Arc<Mutex<u32>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"))
            .parse()
            .expect("url");
        let served = Arc::new(Mutex::new(0u32));
        let script = Arc::new(Mutex::new(VecDeque::from(answers)));
        let count = served.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 65536];
                    let mut filled = 0;
                    loop {
                        let Ok(n) = socket.read(&mut buffer[filled..]).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        filled += n;
                        let text = String::from_utf8_lossy(&buffer[..filled]).to_string();
                        let Some(head_end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let length: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if filled < head_end + 4 + length {
                            continue;
                        }
                        filled = 0;
                        *count.lock().expect("count") += 1;
                        let answer = {
                            let mut script = script.lock().expect("script");
                            if script.len() > 1 {
                                script.pop_front().unwrap_or_default()
                            } else {
                                script.front().copied().unwrap_or_default()
                            }
                        };
                        let (head, body) = answer.split_once("\n\n").unwrap_or((answer, ""));
                        let reply = format!(
                            "{}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            head.replace('\n', "\r\n"),
                            body.len()
                        );
                        if socket.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, served)
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl RpcObserver for Seen {
        fn rate_limited(&self, endpoint: usize, wait: Duration) {
            self.0
                .lock()
                .expect("seen")
                .push(format!("limited {endpoint} {}", wait.as_secs()));
        }
        fn endpoint_failed(&self, endpoint: usize, _wait: Duration) {
            self.0
                .lock()
                .expect("seen")
                .push(format!("failed {endpoint}"));
        }
        fn endpoint_in_use(&self, endpoint: usize) {
            self.0
                .lock()
                .expect("seen")
                .push(format!("using {endpoint}"));
        }
    }

    const OK: &str = "HTTP/1.1 200 OK\n\n{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":\"0x10\"}";
    const LIMITED: &str = "HTTP/1.1 429 Too Many Requests\nretry-after: 1\n\n{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":429,\"message\":\"too many requests\"}}";

    fn transport(
        urls: Vec<reqwest::Url>,
        max_wait: Duration,
        seen: Arc<Seen>,
    ) -> FailoverTransport {
        FailoverTransport::new(reqwest::Client::new(), urls, max_wait, seen)
    }

    async fn block_number(transport: FailoverTransport) -> Result<u64, String> {
        let client = alloy::rpc::client::RpcClient::new(transport, true);
        client
            .request_noparams::<alloy::primitives::U64>("eth_blockNumber")
            .await
            .map(|n| n.to::<u64>())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn a_rate_limited_request_waits_as_told_and_is_sent_again() {
        let (url, served) = scripted(vec![LIMITED, OK]).await;
        let seen = Arc::new(Seen::default());
        let started = Instant::now();
        let n = block_number(transport(vec![url], Duration::from_secs(10), seen.clone())).await;
        assert_eq!(n, Ok(16));
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "waited the Retry-After"
        );
        assert_eq!(*served.lock().expect("served"), 2);
        assert_eq!(*seen.0.lock().expect("seen"), vec!["limited 0 1"]);
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let (url, _) = scripted(vec![LIMITED]).await;
        let started = Instant::now();
        let n = block_number(transport(
            vec![url],
            Duration::from_millis(500),
            Arc::new(Seen::default()),
        ))
        .await;
        assert!(n.is_err(), "{n:?}");
        assert!(started.elapsed() < Duration::from_millis(900));
    }

    #[tokio::test]
    async fn a_rate_limited_or_dead_primary_sheds_load_to_the_secondary() {
        let (primary, primary_served) = scripted(vec![LIMITED, OK]).await;
        let (secondary, secondary_served) = scripted(vec![OK]).await;
        let seen = Arc::new(Seen::default());
        let t = transport(
            vec![primary, secondary],
            Duration::from_secs(10),
            seen.clone(),
        );
        let started = Instant::now();
        assert_eq!(block_number(t.clone()).await, Ok(16));
        // The primary rests for its Retry-After: the next request goes to the secondary too.
        assert_eq!(block_number(t.clone()).await, Ok(16));
        assert!(started.elapsed() < Duration::from_millis(900), "no wait");
        assert_eq!(*primary_served.lock().expect("p"), 1);
        assert_eq!(*secondary_served.lock().expect("s"), 2);
        // Rested, the primary serves again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(block_number(t).await, Ok(16));
        assert_eq!(*primary_served.lock().expect("p"), 2);
        assert_eq!(
            *seen.0.lock().expect("seen"),
            vec!["limited 0 1", "using 1", "using 0"]
        );

        // A primary that refuses connections: port 0, where nothing can listen (a port freed
        // by a dropped listener may be taken meanwhile by another test's server).
        let closed: reqwest::Url = "http://127.0.0.1:0".parse().expect("url");
        let (secondary, _) = scripted(vec![OK]).await;
        let seen = Arc::new(Seen::default());
        let t = transport(
            vec![closed, secondary],
            Duration::from_secs(10),
            seen.clone(),
        );
        assert_eq!(block_number(t).await, Ok(16));
        assert_eq!(*seen.0.lock().expect("seen"), vec!["failed 0", "using 1"]);
    }

    #[tokio::test]
    async fn a_log_refusal_is_answered_at_once() {
        let refusal = "HTTP/1.1 200 OK\n\n{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":-32005,\"message\":\"query returned more than 10000 results\"}}";
        let (url, served) = scripted(vec![refusal]).await;
        let n = block_number(transport(
            vec![url],
            Duration::from_secs(10),
            Arc::new(Seen::default()),
        ))
        .await;
        assert!(n.is_err_and(|e| e.contains("more than 10000")));
        assert_eq!(*served.lock().expect("served"), 1);
    }
}
