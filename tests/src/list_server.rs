//! A token-list server on this machine for the end-to-end tests: serves registered lists with
//! an ETag (answering 304 to a matching `If-None-Match`), counts what it served, and offers the
//! hostile shapes the api must refuse — redirects to forbidden addresses, redirect chains, a
//! body that never ends, one that is too slow, one that is not JSON.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How often one list was served: full bodies and 304s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    pub full: usize,
    pub not_modified: usize,
}

#[derive(Default)]
struct Lists {
    bodies: HashMap<String, Vec<u8>>,
    served: HashMap<String, Served>,
}

pub struct ListServer {
    pub base: String,
    lists: Arc<Mutex<Lists>>,
}

type Body = BoxBody<Bytes, Infallible>;

impl ListServer {
    /// Starts serving on a free loopback port, on the calling test's runtime.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let lists: Arc<Mutex<Lists>> = Arc::default();
        let shared = lists.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = live_balances::runtime::accept::next(&listener).await;
                let lists = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let lists = lists.clone();
                        async move { Ok::<_, Infallible>(answer(req, &lists).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Ok(Self { base, lists })
    }

    /// Serves `body` at `/lists/{name}`; returns its URL.
    pub fn serve(&self, name: &str, body: Vec<u8>) -> String {
        let path = format!("/lists/{name}");
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        lists.bodies.insert(path.clone(), body);
        format!("{}{path}", self.base)
    }

    pub fn served(&self, name: &str) -> Served {
        let lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        lists
            .served
            .get(&format!("/lists/{name}"))
            .copied()
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A token list in the Uniswap format for the given `(chainId, address, symbol, decimals)`.
pub fn token_list(tokens: &[(u64, String, String, u8)]) -> Vec<u8> {
    let tokens: Vec<_> = tokens
        .iter()
        .map(|(chain, address, symbol, decimals)| {
            serde_json::json!({"chainId": chain, "address": address, "symbol": symbol,
                "name": format!("{symbol} token"), "decimals": decimals})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "name": "e2e list", "timestamp": "2026-11-23T00:00:00Z",
        "version": {"major": 1, "minor": 0, "patch": 0}, "tokens": tokens,
    }))
    .unwrap_or_default()
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = full(StatusCode::FOUND, "");
    if let Ok(value) = location.parse() {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, value);
    }
    response
}

async fn answer(req: Request<hyper::body::Incoming>, lists: &Mutex<Lists>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if let Some(n) = path.strip_prefix("/redirects/") {
        // A chain of redirects that ends at /lists/base.
        return match n.parse::<u32>() {
            Ok(0) | Err(_) => redirect("/lists/base"),
            Ok(n) => redirect(&format!("/redirects/{}", n - 1)),
        };
    }
    match path.as_str() {
        "/redirect" => return redirect(query.strip_prefix("to=").unwrap_or("")),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return full(StatusCode::OK, "{}");
        }
        "/html" => return full(StatusCode::OK, "<html><body>not a list</body></html>"),
        "/endless" => {
            // Chunked, no Content-Length: the size is only known by counting.
            let chunks = stream::iter(
                std::iter::repeat_n(Bytes::from(vec![b' '; 64 * 1024]), 1024)
                    .map(|c| Ok::<_, Infallible>(Frame::data(c))),
            );
            return Response::new(StreamBody::new(chunks).boxed());
        }
        _ => {}
    }
    let mut lists = lists.lock().unwrap_or_else(|p| p.into_inner());
    let Some(body) = lists.bodies.get(&path).cloned() else {
        return full(StatusCode::NOT_FOUND, "no such list");
    };
    let etag = format!("\"{}\"", body.len());
    let matches = req
        .headers()
        .get(hyper::header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let served = lists.served.entry(path).or_default();
    let mut response = if matches {
        served.not_modified += 1;
        full(StatusCode::NOT_MODIFIED, "")
    } else {
        served.full += 1;
        full(StatusCode::OK, body)
    };
    if let Ok(value) = etag.parse() {
        response.headers_mut().insert(hyper::header::ETAG, value);
    }
    response
}
