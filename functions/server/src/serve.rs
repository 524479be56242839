//! Accepting connections until shutdown, then draining: no new connections, every stream ends
//! with a `retry:` hint (its client reconnects to another task and resumes), requests in
//! flight get `SERVER_DRAIN_SECS` to finish. `GET /metrics` is this process's Prometheus text
//! (with `METRICS_FORMAT=emf` its metrics are log lines instead, and the route is not found).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api::State;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use live_balances::config::ServerSettings;
use live_balances::telemetry::Telemetry;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::{cors, exchange};

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
    let cors = cors::layer(&server.cors_allow_origins);
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let server = Arc::new(server);
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = live_balances::accept::next(&listener) => accepted,
            _ = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let (state, server, telemetry) = (state.clone(), server.clone(), telemetry.clone());
        let service = ServiceBuilder::new()
            .layer(cors.clone())
            .service(tower::service_fn(move |req: http::Request<Incoming>| {
                let (state, server, telemetry) = (state.clone(), server.clone(), telemetry.clone());
                async move {
                    if req.method() == http::Method::GET
                        && req.uri().path() == "/metrics"
                        && let Some(text) = telemetry.prometheus_text()
                    {
                        return Ok(exchange::metrics(text));
                    }
                    Ok::<_, std::convert::Infallible>(
                        exchange::answer(&state, &server, peer, req).await,
                    )
                }
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
