//! A static web server for a built front end (the React example): serves the files of one
//! folder over HTTP on a free local port — its own origin, as a deployed app's would be, so the
//! page reaches the api across origins (CORS) exactly as it would in production.

use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct StaticSite {
    /// `http://127.0.0.1:port`.
    pub url: String,
    accept: JoinHandle<()>,
}

impl StaticSite {
    /// Serves `root` (`GET` and `HEAD`; a folder's `index.html`; nothing outside `root`).
    pub async fn start(root: &Path) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let root = Arc::new(root.to_path_buf());
        let accept = tokio::spawn(async move {
            loop {
                let (stream, _) = live_balances::runtime::accept::next(&listener).await;
                let root = root.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| serve(root.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url, accept })
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    root: Arc<PathBuf>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = |status: StatusCode, content_type: &str, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        response
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(answer(StatusCode::METHOD_NOT_ALLOWED, "text/plain", vec![]));
    }
    let Some(path) = file_of(&root, req.uri().path()) else {
        return Ok(answer(StatusCode::NOT_FOUND, "text/plain", vec![]));
    };
    Ok(match tokio::fs::read(&path).await {
        Ok(bytes) => answer(StatusCode::OK, content_type(&path), bytes),
        Err(_) => answer(StatusCode::NOT_FOUND, "text/plain", vec![]),
    })
}

/// The file a URL path names under `root`, never above it.
fn file_of(root: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let path = root.join(relative);
    Some(if url_path.ends_with('/') || path.is_dir() {
        path.join("index.html")
    } else {
        path
    })
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
