//! Poller: one watcher task per configured chain, from new heads to DynamoDB. SIGTERM or
//! Ctrl-C lets each watcher finish its current block and store its cursor.

use anyhow::{Context, bail};
use live_balances::chain::{BalanceReader, ReaderOptions};
use live_balances::config::Vars;
use live_balances::runtime::secrets::load_settings;
use live_balances::runtime::telemetry::Telemetry;
use live_balances::storage::Table;
use std::sync::Arc;
use std::time::Duration;

use poller::heads::{HeadSignal, follow_heads};
use poller::metrics::Metrics;
use poller::settings::PollerSettings;
use poller::{ChainWatcher, http};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// mimalloc rather than the system allocator: a step's table and node answers are many small
/// short-lived allocations, which glibc's malloc served with about a third of the poller's CPU
/// (measured with `perf` on the release build under session churn).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps the memory the poller frees for reuse instead of giving it back to the OS,
/// unless `MIMALLOC_PURGE_DELAY` says otherwise (its option `purge_delay`; -1: never). With
/// mimalloc's default (a purge 1 s after the first free, of everything freed by then), each
/// step's table and node answers landed in pages the OS had taken back, and the kernel zeroed
/// every page again on first touch: at 100,000 wallets a quarter of the poller's CPU, and
/// most of what moved it with the rest of the machine's load. A delay of a minute still left
/// a purge in most 12 s blocks. The memory kept is what the steps use again: resident memory
/// stayed within its spread between runs (measured with `perf` and the process's page-fault
/// count; see the benchmarks).
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = -1;
/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h; the Rust bindings name no
/// constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets [`ALLOCATOR_PURGE_DELAY_MS`], unless the environment sets mimalloc's own option.
#[allow(unsafe_code)]
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, which it reads each time it schedules a
        // purge; it takes any value at any time, from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS) }
    }
}

/// `poller healthcheck`: the container's health check (the runtime image has no curl).
/// Exits 0 when the running poller's `/health` answers 200.
fn healthcheck(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let mut stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let status_line = reply.lines().next().unwrap_or_default();
    if status_line.split(' ').nth(1) != Some("200") {
        bail!("unhealthy: {status_line}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        // Only the HTTP address is needed: no Secrets Manager call every 30 s.
        let settings = PollerSettings::from_vars(&Vars::from_env())?;
        return healthcheck(settings.http_addr);
    }
    keep_freed_memory();
    live_balances::runtime::logging::init();
    let settings = PollerSettings::new(load_settings().await?, &Vars::from_env())?;
    if settings.chains.is_empty() {
        bail!("no chain configured: set RPC_URL_<chainId> (or ETH_RPC, ARBITRUM_RPC, SEPOLIA_RPC)");
    }
    let table = Table::connect(&settings).await;

    let (stop, stopped) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let telemetry = Arc::new(Telemetry::for_process(&settings.metrics));
    let published = metrics.clone();
    telemetry.flush_periodically(&settings.metrics, move || {
        published.publish(live_balances::runtime::clock::unix_now())
    });
    let mut tasks = tokio::task::JoinSet::new();
    for chain in settings.chains.values() {
        let chain_id = chain.chain_id;
        let options = ReaderOptions::of(&settings).observed_by(metrics.observer(chain_id));
        let reader = BalanceReader::connect(&chain.rpc_urls, options)
            .with_context(|| format!("chain {chain_id}"))?;
        let heads = Arc::new(HeadSignal::default());
        if !chain.ws_urls.is_empty() {
            let follow = follow_heads(
                chain_id,
                chain.ws_urls.clone(),
                heads.clone(),
                metrics.clone(),
                stopped.clone(),
            );
            tokio::spawn(follow);
        }
        let watcher = ChainWatcher::new(
            chain_id,
            reader,
            table.clone(),
            &settings,
            metrics.clone(),
            heads,
        );
        tracing::info!(chain = chain_id, endpoint = ?chain, "watching chain");
        tasks.spawn(watcher.run(stopped.clone()));
    }
    // Unhealthy when a chain has made no progress (not even an idle head check) for a minute.
    let chains: Vec<u64> = settings.chains.keys().copied().collect();
    let addr = settings.http_addr;
    tokio::spawn(http::serve(
        addr,
        metrics.clone(),
        telemetry,
        chains,
        stopped.clone(),
    ));

    let mut sigterm = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: stopping after the current block"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: stopping after the current block"),
        Some(done) = tasks.join_next() => {
            // A watcher only returns early on an unrecoverable error.
            done??;
        }
    }
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option is mimalloc's purge delay: it reads as mimalloc's documented default (1 s)
    /// until set, then as set.
    #[test]
    #[allow(unsafe_code)]
    fn the_option_set_is_mimalloc_s_purge_delay() {
        // SAFETY: reads one of mimalloc's options.
        let read = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(read(), 1_000);
        keep_freed_memory();
        assert_eq!(read(), ALLOCATOR_PURGE_DELAY_MS);
    }
}
