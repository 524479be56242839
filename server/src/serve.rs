//! Accepting connections until shutdown, then draining: no new connections, every stream ends
//! with a `retry:` hint (its client reconnects to another task and resumes), requests in
//! flight get `SERVER_DRAIN_SECS` to finish. `GET /metrics` is this process's Prometheus text
//! (with `METRICS_FORMAT=emf` its metrics are log lines instead, and the route is not found).
//!
//! Each request goes through the layers, outermost first: the access log (one line per
//! answer: method, path, status, latency), CORS, the request time limit (`503 timeout`, the
//! router's JSON error), then the client address and the router.

use std::convert::Infallible;
use std::future::{Future, Ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::{ApiError, App, State, client_address};
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use live_balances::runtime::telemetry::Telemetry;
use tokio::net::TcpListener;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::cors;
use crate::settings::ServerSettings;

/// How long a connection may wait for a request's headers, idle keep-alive included: above
/// the load balancer's idle timeout (60 s in `template.yaml`), so the balancer, not the
/// server, closes idle connections and never sends on one the server just closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(75);

/// Serves `listener` until `shutdown` resolves, then drains.
pub async fn run(
    state: Arc<State>,
    telemetry: Arc<Telemetry>,
    listener: TcpListener,
    server: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let app = api::app(state.clone());
    let cors = cors::layer(&server.cors_allow_origins);
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let server = Arc::new(server);
    let timeout_secs = server.request_timeout.as_secs();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = live_balances::runtime::accept::next(&listener) => accepted,
            _ = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let (app, server, telemetry) = (app.clone(), server.clone(), telemetry.clone());
        let service = ServiceBuilder::new()
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(cors.clone())
            .layer(HandleErrorLayer::new(timed_out(timeout_secs)))
            .timeout(server.request_timeout)
            .service(tower::service_fn(move |req: http::Request<Incoming>| {
                let (app, server, telemetry) = (app.clone(), server.clone(), telemetry.clone());
                async move { Ok::<_, Infallible>(answer(app, &server, &telemetry, peer, req).await) }
            }));
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(socket), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if let Some(hub) = &state.hub {
        tracing::info!(
            streams = hub.open_streams(),
            "draining: ending every stream with a retry hint"
        );
        hub.drain();
    }
    if tokio::time::timeout(server.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = server.drain_timeout.as_secs(),
            "connections still open after the drain time; exiting anyway"
        );
    }
}

/// The answer of a request the time limit cut off (the limit is the only error below it).
fn timed_out(secs: u64) -> impl FnOnce(BoxError) -> Ready<ApiError> + Clone {
    move |_| std::future::ready(ApiError::Timeout(secs))
}

/// One request: `GET /metrics` answered here, every other handed to the router with the
/// client's address — only what this shell puts there: nothing of the connection's leaks in.
async fn answer(
    app: App,
    server: &ServerSettings,
    telemetry: &Telemetry,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Response {
    if req.method() == http::Method::GET
        && req.uri().path() == "/metrics"
        && let Some(text) = telemetry.prometheus_text()
    {
        return metrics(text);
    }
    let (mut parts, body) = req.into_parts();
    parts.extensions = http::Extensions::new();
    parts.extensions.insert(client_address(
        &parts.headers,
        peer.ip(),
        server.trust_forwarded_for,
    ));
    let req = http::Request::from_parts(parts, Body::new(body));
    match app.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The answer of `GET /metrics`: Prometheus text.
fn metrics(text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
