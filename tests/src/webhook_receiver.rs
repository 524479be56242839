//! A webhook receiver on this machine for the end-to-end tests, written as a user's would be:
//! it verifies each delivery's signature itself (HMAC-SHA256 over `{id}.{timestamp}.{body}`
//! with the key the `whsec_` secret encodes, the timestamp within five minutes) — not through
//! the service's own signing code — answers what the test scripted (500s, a redirect, a hang), and
//! records everything it got.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// `307` to this location.
    Redirect(String),
    /// A redirect of this status (`301`, `302`, `303`: the ones a client follows with a GET) to
    /// this location.
    RedirectWith(u16, String),
    /// No answer for this long, then a 200 (to a sender that should have given up first).
    Hang(Duration),
    /// A 200 after this long: a slow target that still answers in time.
    Slow(Duration),
}

/// What [`Received::answered`] records for a request the receiver held past its sender's
/// patience ([`Answer::Hang`]).
pub const HUNG: u16 = 0;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// Whether the signature verified with the secret the receiver was given.
    pub verified: bool,
    /// What it answered ([`HUNG`]: nothing in time).
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    /// The secrets of the subscriptions that deliver here: a delivery verifies with one.
    secrets: Vec<String>,
    script: VecDeque<Answer>,
    received: Vec<Received>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

/// Verifies a delivery as the webhooks page's receivers (docs/src/api/webhooks.md) do.
pub fn verify(secret: &str, id: &str, timestamp: &str, signatures: &str, body: &[u8]) -> bool {
    let Ok(sent) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.abs_diff(sent) > 300 {
        return false;
    }
    let Some(expected) = sign(secret, id, timestamp, body) else {
        return false;
    };
    signatures.split(' ').any(|s| s == expected)
}

/// The `webhook-signature` value the scheme gives `body` (`v1,` and the base64 HMAC-SHA256
/// over `{id}.{timestamp}.{body}`, keyed with what the secret after `whsec_` decodes to), as
/// a user would write it; `None` for a secret of another shape.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|k| STANDARD.decode(k).ok())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

impl Receiver {
    /// Starts on a free loopback port (or `port`), on the calling test's runtime.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(0).await
    }

    pub async fn start_on(port: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let state = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(req, &state).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Self { url, shared, task })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Stops listening: connections are refused from now on.
    pub fn stop(self) {
        self.task.abort();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accepts deliveries signed with `secret` (one more subscription delivering here).
    pub fn set_secret(&self, secret: &str) {
        self.lock().secrets.push(secret.to_string());
    }

    /// Answers these to the next requests, in order (then 200 again).
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.lock().script.extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The deliveries it accepted (verified and answered 2xx), in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.verified && (200..300).contains(&r.answered))
            .collect()
    }

    /// Waits until `done` holds for what it has accepted.
    pub async fn wait_accepted(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        let until = Instant::now() + deadline;
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return Ok(accepted);
            }
            if Instant::now() >= until {
                anyhow::bail!(
                    "{what}: not within {deadline:?}; accepted {} of {} requests: {:?}",
                    accepted.len(),
                    self.received().len(),
                    self.received()
                        .iter()
                        .map(|r| (r.id.clone(), r.answered, r.verified))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    shared: &Mutex<Shared>,
) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return status(400),
    };
    let scripted = {
        let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
        let verified = shared
            .secrets
            .iter()
            .any(|secret| verify(secret, &id, &timestamp, &signature, &body));
        let scripted = if verified {
            shared.script.pop_front().unwrap_or(Answer::Status(200))
        } else {
            Answer::Status(401)
        };
        let answered = match &scripted {
            Answer::Status(code) => *code,
            Answer::Redirect(_) => 307,
            Answer::RedirectWith(code, _) => *code,
            Answer::Hang(_) => HUNG,
            Answer::Slow(_) => 200,
        };
        // Recorded on arrival: a hung request's sender has given up before it ends.
        shared.received.push(Received {
            id,
            timestamp,
            signature,
            body,
            verified,
            answered,
        });
        scripted
    };
    match scripted {
        Answer::Status(code) => status(code),
        Answer::Redirect(location) => redirect(307, &location),
        Answer::RedirectWith(code, location) => redirect(code, &location),
        Answer::Hang(pause) | Answer::Slow(pause) => {
            tokio::time::sleep(pause).await;
            status(200)
        }
    }
}

fn redirect(code: u16, location: &str) -> Response<Full<Bytes>> {
    let mut response = status(code);
    if let Ok(value) = location.parse() {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, value);
    }
    response
}

fn status(code: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
}
