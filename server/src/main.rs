//! The api as a long-lived HTTP server: the same router and handlers as the Lambda function,
//! every SSE stream fed by the process's hub. SIGTERM (or Ctrl-C) drains and exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use api::State;
use api_server::settings::ServerSettings;
use live_balances::runtime::telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// How often the open streams are logged (the template turns the line into a metric that
/// autoscaling follows).
const REPORT_EVERY: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    live_balances::runtime::logging::init();
    let server = ServerSettings::from_env()?;
    // The chain endpoints come from the chain secret, as in the Lambda shell.
    let state = Arc::new(State::start().await?.with_hub());
    let telemetry = Arc::new(Telemetry::for_process(&state.settings.metrics));
    telemetry.flush_periodically(&state.settings.metrics, || {});
    let listener = TcpListener::bind(server.addr)
        .await
        .with_context(|| format!("binding {}", server.addr))?;
    tracing::info!(addr = %server.addr, "listening");
    if let Some(hub) = state.hub.clone() {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REPORT_EVERY);
            loop {
                every.tick().await;
                tracing::info!(
                    open_streams = hub.open_streams(),
                    wallets = hub.wallets(),
                    "streams"
                );
            }
        });
    }
    let mut sigterm = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: draining"),
        }
    };
    api_server::serve::run(state, telemetry, listener, server, shutdown).await;
    Ok(())
}
