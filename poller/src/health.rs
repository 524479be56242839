//! The poller's health: every configured chain's watcher made progress (a new block or an
//! idle check completed) recently enough by the one rule in `core::poller_health`. `/health`
//! answers it as JSON, and `poller healthcheck` (the container's check) asks that route.
//!
//! Beside it, what degrades a chain's watching while it still progresses — a provider rate
//! limiting, a fallback URL in use, log queries narrowed to the provider's limits, no trace
//! method, no head subscription, steps failing — each with why, so an operator sees which
//! limit of their plan is being felt.

use serde::Serialize;

use live_balances::runtime::poller_health::progress_is_fresh;

use crate::metrics::{ChainState, Metrics, TraceSupport};

/// How long after the last rate-limited answer a chain still counts as rate limited.
const RATE_LIMITED_FOR_SECS: u64 = 60;
/// How long after the last log query refused for its result count the cap is still named.
const LOG_RESULTS_REFUSED_FOR_SECS: u64 = 600;

/// Something that makes a chain's watching slower or costlier than it should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Degradation {
    pub kind: &'static str,
    pub reason: String,
}

/// What degrades a chain in `state`, at `now` (Unix seconds).
pub fn degradations(state: &ChainState, now: u64) -> Vec<Degradation> {
    let mut found = vec![];
    let mut add = |kind: &'static str, reason: String| found.push(Degradation { kind, reason });
    let provider = &state.provider;
    let since_limit = now.saturating_sub(provider.rate_limited_at);
    if provider.rate_limited_at > 0 && since_limit < RATE_LIMITED_FOR_SECS {
        add(
            "rate_limited",
            format!(
                "the provider asked to slow down {since_limit} s ago (429 or a rate-limit error); \
                 requests wait as told (last wait {} ms) and are sent again",
                provider.rate_limited_wait.as_millis()
            ),
        );
    }
    if provider.endpoint > 0 {
        add(
            "fallback_endpoint",
            format!(
                "requests go to RPC URL {} first: the ones before it are down or rate limited",
                provider.endpoint + 1
            ),
        );
    }
    let limits = provider.log_limits;
    if let Some(cap) = limits.range_cap {
        add(
            "log_range_limit",
            format!(
                "the provider refuses eth_getLogs over wider ranges: at most {cap} blocks per query"
            ),
        );
    }
    let refused_lately = provider.log_results_refused_at > 0
        && now.saturating_sub(provider.log_results_refused_at) < LOG_RESULTS_REFUSED_FOR_SECS;
    if limits.results_range.is_some() || refused_lately {
        let width = limits.results_range.map_or(String::new(), |r| {
            format!("queries of at most {r} blocks; ")
        });
        add(
            "log_result_limit",
            format!(
                "the provider caps eth_getLogs results ({} queries refused): {width}busy blocks \
                 split by event and owner ({} single-owner blocks re-read whole)",
                limits.result_refusals, limits.overflows
            ),
        );
    }
    match state.traces {
        TraceSupport::Missing => add(
            "no_traces",
            "the node offers no trace method: native balances are read per wallet (streamed \
             wallets every block, the others every NATIVE_POLL_SECS); asked again periodically"
                .into(),
        ),
        TraceSupport::Unknown(kind) => add(
            "no_traces",
            format!(
                "trace support unknown (the question failed: {kind}); native balances are read \
                 per wallet until the node answers"
            ),
        ),
        TraceSupport::NotAsked | TraceSupport::Found(_) => {}
    }
    if state.subscribed == Some(false) {
        add(
            "subscription_down",
            format!(
                "no newHeads subscription for {} s: heads are polled over HTTP every \
                 HEAD_POLL_INTERVAL_MS",
                now.saturating_sub(state.subscription_since)
            ),
        );
    }
    if state.failing_steps > 0 {
        add(
            "steps_failing",
            format!(
                "the last {} steps failed ({}); retried with backoff",
                state.failing_steps, state.last_error
            ),
        );
    }
    found
}

/// One chain's watcher, as `/health` reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainHealth {
    pub chain: u64,
    pub ok: bool,
    pub processed_block: u64,
    /// The node's head as last seen, even while steps fail.
    pub head_block: u64,
    /// How the last step found native balance changes (`call_tracer`, `parity_traces`,
    /// `reads`): the cheapest way for the wallets watched, see the README.
    pub native_source: &'static str,
    /// The trace method the node answers, when it answers one.
    pub traces: Option<&'static str>,
    /// Empty when nothing degrades the chain.
    pub degraded: Vec<Degradation>,
}

/// The body of `/health`: `ok` when every chain is.
#[derive(Debug, Serialize)]
pub struct Health {
    pub ok: bool,
    pub chains: Vec<ChainHealth>,
}

impl Health {
    /// Each of `chains` as its watcher last reported to `metrics`, at `now` (Unix seconds).
    pub fn of(metrics: &Metrics, chains: &[u64], now: u64) -> Self {
        let states = metrics.chains();
        let chains: Vec<ChainHealth> = chains
            .iter()
            .map(|&chain| {
                let state = states.get(&chain).copied().unwrap_or_default();
                ChainHealth {
                    chain,
                    ok: progress_is_fresh(now.saturating_sub(state.last_progress)),
                    processed_block: state.processed,
                    head_block: state.head,
                    native_source: state.native_source,
                    traces: match state.traces {
                        TraceSupport::Found(source) => Some(source),
                        _ => None,
                    },
                    degraded: degradations(&state, now),
                }
            })
            .collect();
        Self {
            ok: chains.iter().all(|c| c.ok),
            chains,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use live_balances::chain::LogLimitsView;

    use crate::metrics::ProviderState;

    use super::*;

    #[test]
    fn a_chain_without_recent_progress_makes_the_poller_unhealthy() {
        let metrics = Metrics::default();
        metrics.set_head(1, 12);
        metrics.progressed(1, 10);
        let now = live_balances::runtime::clock::unix_now();
        let health = Health::of(&metrics, &[1], now);
        assert!(health.ok);
        let health = Health::of(&metrics, &[1, 2], now);
        assert!(!health.ok);
        assert!(health.chains[0].ok && !health.chains[1].ok);
        let later = Health::of(&metrics, &[1], now + 61);
        assert!(!later.ok);
        let json = serde_json::to_string(&health.chains[0]).unwrap();
        assert_eq!(
            json,
            r#"{"chain":1,"ok":true,"processedBlock":10,"headBlock":12,"nativeSource":"","traces":null,"degraded":[]}"#
        );
    }

    #[test]
    fn each_degradation_says_why() {
        let now = 1_000_000;
        let state = ChainState {
            provider: ProviderState {
                rate_limited_at: now - 5,
                rate_limited_wait: Duration::from_secs(1),
                endpoint: 1,
                log_limits: LogLimitsView {
                    range_cap: Some(3),
                    results_range: Some(1),
                    splits: 4,
                    result_refusals: 2,
                    overflows: 1,
                },
                log_results_refused_at: 0,
            },
            traces: TraceSupport::Missing,
            subscribed: Some(false),
            subscription_since: now - 7,
            failing_steps: 2,
            last_error: "rpc",
            ..ChainState::default()
        };
        let kinds: Vec<&str> = degradations(&state, now).iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [
                "rate_limited",
                "fallback_endpoint",
                "log_range_limit",
                "log_result_limit",
                "no_traces",
                "subscription_down",
                "steps_failing"
            ]
        );
        // A rate limit a minute old no longer counts.
        assert!(
            degradations(&state, now + 60)
                .iter()
                .all(|d| d.kind != "rate_limited")
        );
        assert!(degradations(&ChainState::default(), now).is_empty());
    }
}
