//! The container's small HTTP port: `/health` (every chain made progress recently) for the
//! load balancer or ECS health check, `/metrics` for Prometheus (not found when the metrics are
//! written as EMF lines instead: `METRICS_FORMAT=emf`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use live_balances::runtime::clock::unix_now;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::health::Health;
use crate::metrics::Metrics;
use live_balances::runtime::telemetry::Telemetry;

/// Serves until `stop` turns true.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    telemetry: Arc<Telemetry>,
    chains: Vec<u64>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!(%addr, "health and metrics listening");
    loop {
        let (socket, _) = tokio::select! {
            accepted = live_balances::runtime::accept::next(&listener) => accepted,
            _ = stop.changed() => return Ok(()),
        };
        let (metrics, telemetry) = (metrics.clone(), telemetry.clone());
        let chains = chains.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = answer(req.uri().path(), &metrics, &telemetry, &chains);
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                warn!(%error, "metrics connection failed");
            }
        });
    }
}

fn answer(
    path: &str,
    metrics: &Metrics,
    telemetry: &Telemetry,
    chains: &[u64],
) -> Response<Full<Bytes>> {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            "application/json",
            "{\"code\":\"not_found\",\"message\":\"no such route\"}".to_string(),
        )
    };
    let (status, content_type, body) = match path {
        "/metrics" => {
            metrics.publish(unix_now());
            match telemetry.prometheus_text() {
                Some(text) => (StatusCode::OK, "text/plain; version=0.0.4", text),
                None => not_found(),
            }
        }
        "/health" => {
            let health = Health::of(metrics, chains, unix_now());
            let status = if health.ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                status,
                "application/json",
                serde_json::to_string(&health).unwrap_or_default(),
            )
        }
        _ => not_found(),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}
