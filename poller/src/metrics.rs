//! The poller's own numbers, through the `metrics` facade (core's `telemetry` sends them to
//! `/metrics` or to EMF lines): RPC requests by method, rate limits and endpoint failures,
//! table writes, errors, session changes applied, and per chain the processed block, the head,
//! the blocks behind, the wallets watched, the last progress and what degrades the chain's
//! watching (see `health`, which reads the same per-chain state).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use live_balances::chain::{LogLimitsView, RpcObserver};
use live_balances::runtime::clock::unix_now;
use metrics::{counter, gauge};

use crate::health::degradations;

/// Reads one gauge off a chain's state.
type Gauge = fn(&ChainState) -> u64;

/// The gauges read off each chain's state when the metrics are rendered or flushed.
const GAUGES: [(&str, Gauge); 9] = [
    ("poller_processed_block", |c| c.processed),
    ("poller_unlearned_wallets", |c| c.unlearned),
    ("poller_watched_wallets", |c| c.watched),
    ("poller_head_block", |c| c.head),
    ("poller_blocks_behind", |c| {
        c.head.saturating_sub(c.processed)
    }),
    ("poller_last_progress_seconds", |c| c.last_progress),
    ("poller_rpc_endpoint", |c| c.provider.endpoint as u64),
    ("poller_log_range_cap_blocks", |c| {
        c.provider.log_limits.range_cap.unwrap_or(0)
    }),
    ("poller_log_results_range_blocks", |c| {
        c.provider.log_limits.results_range.unwrap_or(0)
    }),
];

/// Each chain's state (what `/health` reports), and the poller's counters and gauges through
/// the `metrics` facade: Prometheus text at `/metrics` or EMF lines, as the process's
/// telemetry is set up.
#[derive(Debug, Default)]
pub struct Metrics {
    chains: Mutex<BTreeMap<u64, ChainState>>,
    /// The labelled flags published as 1 (degradations, native sources): set to 0 once gone.
    flags: Mutex<BTreeSet<(&'static str, u64, &'static str, &'static str)>>,
}

/// Whether the node's trace methods are known.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum TraceSupport {
    /// Not asked (`NATIVE_BALANCES=reads`), or not yet.
    #[default]
    NotAsked,
    /// The node answers this source's trace method.
    Found(&'static str),
    /// The node said it offers neither trace method.
    Missing,
    /// The last question got no answer that settles it (`kind` of the failure).
    Unknown(&'static str),
}

/// Where one chain's watcher stands.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChainState {
    pub processed: u64,
    /// The newest head the watcher learned, whether or not it could process it.
    pub head: u64,
    /// Unix seconds of the last step that completed (a new block or an idle check).
    pub last_progress: u64,
    /// How native balance changes were found last (`call_tracer`, `parity_traces`, `reads`).
    pub native_source: &'static str,
    pub traces: TraceSupport,
    /// How the chain's provider answers, as its reader reports it.
    pub provider: ProviderState,
    /// `None` without a WebSocket URL; else whether the head subscription is live, and since
    /// when (Unix seconds) it is in that state.
    pub subscribed: Option<bool>,
    pub subscription_since: u64,
    /// Steps failed in a row, and the kind of the last failure.
    pub failing_steps: u32,
    pub last_error: &'static str,
    /// Watched wallets whose stored values are yet to be learned (after a start).
    pub unlearned: u64,
    /// Wallets watched: a live session or a hold (an order, a subscription) each.
    pub watched: u64,
}

/// How one chain's provider answers: rate limits, the endpoint in use, log query limits.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProviderState {
    /// Unix seconds of the last rate-limited answer, and the wait it imposed.
    pub rate_limited_at: u64,
    pub rate_limited_wait: Duration,
    /// The RPC URL requests go to first now (0: the first configured).
    pub endpoint: usize,
    pub log_limits: LogLimitsView,
    /// Unix seconds of the last `eth_getLogs` refused for its result count.
    pub log_results_refused_at: u64,
}

impl Metrics {
    fn add(name: &'static str, chain_id: u64, label: Option<(&'static str, String)>, by: u64) {
        let chain = ("chain", chain_id.to_string());
        match label {
            Some(label) => counter!(name, &[chain, label]).increment(by),
            None => counter!(name, &[chain]).increment(by),
        }
    }

    fn update(&self, chain_id: u64, f: impl FnOnce(&mut ChainState)) {
        if let Ok(mut c) = self.chains.lock() {
            f(c.entry(chain_id).or_default());
        }
    }

    pub fn count_rpc(&self, chain_id: u64, method: &'static str) {
        Self::add(
            "poller_rpc_requests_total",
            chain_id,
            Some(("method", method.into())),
            1,
        );
    }

    pub fn count_writes(&self, chain_id: u64, outcome: &'static str, by: u64) {
        Self::add(
            "poller_table_writes_total",
            chain_id,
            Some(("kind", outcome.into())),
            by,
        );
    }

    /// Changes of the watched set applied, by kind (`session`, `streaming`, `list`, `ended`,
    /// `found_by_pass`, `full_listing`, …).
    pub fn count_session_changes(&self, chain_id: u64, kind: &'static str, by: u64) {
        Self::add(
            "poller_session_changes_total",
            chain_id,
            Some(("kind", kind.into())),
            by,
        );
    }

    /// Steps completed, by kind: `blocks` (a range of new blocks) or `idle` (the sweeps, first
    /// reads and re-reads that run on the poller's own clock while no block arrives).
    pub fn count_step(&self, chain_id: u64, kind: &'static str) {
        Self::add(
            "poller_steps_total",
            chain_id,
            Some(("kind", kind.into())),
            1,
        );
    }

    /// Catch-ups of newly learned wallets, by where their events came from (`memory`,
    /// `provider`).
    pub fn count_catch_up(&self, chain_id: u64, source: &'static str) {
        Self::add(
            "poller_catch_ups_total",
            chain_id,
            Some(("source", source.into())),
            1,
        );
    }

    pub fn count_error(&self, chain_id: u64, kind: &'static str) {
        Self::add(
            "poller_errors_total",
            chain_id,
            Some(("kind", kind.into())),
            1,
        );
    }

    /// A head the node announced or answered.
    pub fn set_head(&self, chain_id: u64, head: u64) {
        self.update(chain_id, |s| s.head = s.head.max(head));
    }

    /// A step completed: processed up to `processed`.
    pub fn progressed(&self, chain_id: u64, processed: u64) {
        self.update(chain_id, |s| {
            s.processed = processed;
            s.head = s.head.max(processed);
            s.last_progress = unix_now();
            s.failing_steps = 0;
        });
    }

    /// A step failed with an error of `kind`.
    pub fn step_failed(&self, chain_id: u64, kind: &'static str) {
        self.count_error(chain_id, kind);
        self.update(chain_id, |s| {
            s.failing_steps += 1;
            s.last_error = kind;
        });
    }

    /// A rewind after a reorg: the processed block goes back, and so may the head.
    pub fn rewound(&self, chain_id: u64, processed: u64, head: u64) {
        self.update(chain_id, |s| {
            s.processed = processed;
            s.head = head;
        });
    }

    pub fn set_unlearned(&self, chain_id: u64, wallets: u64) {
        self.update(chain_id, |s| s.unlearned = wallets);
    }

    pub fn set_watched(&self, chain_id: u64, wallets: u64) {
        self.update(chain_id, |s| s.watched = wallets);
    }

    pub fn set_native_source(&self, chain_id: u64, source: &'static str) {
        self.update(chain_id, |s| s.native_source = source);
    }

    pub fn set_traces(&self, chain_id: u64, traces: TraceSupport) {
        self.update(chain_id, |s| s.traces = traces);
    }

    /// Whether the head subscription is live (called only where a WebSocket is configured).
    pub fn set_subscribed(&self, chain_id: u64, up: bool) {
        let mut lost = false;
        self.update(chain_id, |s| {
            if s.subscribed != Some(up) {
                lost = s.subscribed == Some(true);
                s.subscribed = Some(up);
                s.subscription_since = unix_now();
            }
        });
        if lost {
            Self::add("poller_ws_disconnects_total", chain_id, None, 1);
        }
    }

    pub fn chains(&self) -> BTreeMap<u64, ChainState> {
        self.chains.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// What reports one chain's RPC traffic here.
    pub fn observer(self: &Arc<Self>, chain_id: u64) -> Arc<dyn RpcObserver> {
        Arc::new(ChainObserver {
            chain_id,
            metrics: self.clone(),
        })
    }

    /// Sets the gauges read off each chain's state, as of `now` (before the metrics are
    /// rendered or flushed: degradations depend on the time).
    pub fn publish(&self, now: u64) {
        let mut flags = BTreeSet::new();
        for (chain_id, state) in self.chains() {
            let chain = chain_id.to_string();
            for (name, get) in GAUGES {
                gauge!(name, "chain" => chain.clone()).set(get(&state) as f64);
            }
            flags.insert((
                "poller_native_source",
                chain_id,
                "source",
                state.native_source,
            ));
            for degradation in degradations(&state, now) {
                flags.insert(("poller_degraded", chain_id, "kind", degradation.kind));
            }
        }
        let Ok(mut published) = self.flags.lock() else {
            return;
        };
        for (name, chain_id, key, value) in published.difference(&flags) {
            gauge!(*name, "chain" => chain_id.to_string(), *key => *value).set(0.0);
        }
        for (name, chain_id, key, value) in &flags {
            gauge!(*name, "chain" => chain_id.to_string(), *key => *value).set(1.0);
        }
        *published = flags;
    }
}

/// One chain's reports from its reader, into the metrics.
struct ChainObserver {
    chain_id: u64,
    metrics: Arc<Metrics>,
}

impl RpcObserver for ChainObserver {
    fn request(&self, method: &'static str, _endpoint: usize) {
        self.metrics.count_rpc(self.chain_id, method);
    }

    fn rate_limited(&self, endpoint: usize, wait: Duration) {
        let m = &self.metrics;
        Metrics::add(
            "poller_rpc_rate_limited_total",
            self.chain_id,
            Some(("endpoint", endpoint.to_string())),
            1,
        );
        Metrics::add(
            "poller_rpc_rate_limit_wait_ms_total",
            self.chain_id,
            None,
            wait.as_millis() as u64,
        );
        m.update(self.chain_id, |s| {
            s.provider.rate_limited_at = unix_now();
            s.provider.rate_limited_wait = wait;
        });
    }

    fn endpoint_failed(&self, endpoint: usize, _wait: Duration) {
        Metrics::add(
            "poller_rpc_endpoint_failures_total",
            self.chain_id,
            Some(("endpoint", endpoint.to_string())),
            1,
        );
    }

    fn endpoint_in_use(&self, endpoint: usize) {
        tracing::warn!(
            chain = self.chain_id,
            endpoint = endpoint + 1,
            "RPC requests now go to this URL first (the ones before it are down or rate limited)"
        );
        self.metrics
            .update(self.chain_id, |s| s.provider.endpoint = endpoint);
    }

    fn log_limits(&self, limits: LogLimitsView) {
        self.metrics.update(self.chain_id, |s| {
            let provider = &mut s.provider;
            if limits.result_refusals > provider.log_limits.result_refusals {
                provider.log_results_refused_at = unix_now();
            }
            provider.log_limits = limits;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with a recorder of its own; the Prometheus text it left.
    fn rendered(f: impl FnOnce()) -> String {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, f);
        handle.render()
    }

    #[test]
    fn renders_counters_and_gauges() {
        let text = rendered(|| {
            let m = Arc::new(Metrics::default());
            let observer = m.observer(1);
            observer.request("eth_getLogs", 0);
            observer.request("eth_getLogs", 0);
            observer.request("eth_call", 0);
            observer.rate_limited(0, Duration::from_millis(1500));
            m.count_writes(1, "written", 3);
            m.set_head(1, 12);
            m.progressed(1, 10);
            m.set_watched(1, 4);
            m.set_native_source(1, "call_tracer");
            m.publish(unix_now());
        });
        for line in [
            "poller_native_source{chain=\"1\",source=\"call_tracer\"} 1",
            "poller_rpc_requests_total{chain=\"1\",method=\"eth_getLogs\"} 2",
            "poller_rpc_requests_total{chain=\"1\",method=\"eth_call\"} 1",
            "poller_blocks_behind{chain=\"1\"} 2",
            "poller_watched_wallets{chain=\"1\"} 4",
            "poller_rpc_rate_limited_total{chain=\"1\",endpoint=\"0\"} 1",
            "poller_rpc_rate_limit_wait_ms_total{chain=\"1\"} 1500",
            "poller_degraded{chain=\"1\",kind=\"rate_limited\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn a_degradation_that_ended_is_published_as_zero() {
        let text = rendered(|| {
            let m = Metrics::default();
            m.progressed(1, 10);
            m.set_native_source(1, "call_tracer");
            m.publish(unix_now());
            m.set_native_source(1, "reads");
            m.publish(unix_now());
        });
        for line in [
            "poller_native_source{chain=\"1\",source=\"call_tracer\"} 0",
            "poller_native_source{chain=\"1\",source=\"reads\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn the_head_is_kept_while_steps_fail() {
        let m = Metrics::default();
        m.progressed(1, 10);
        m.set_head(1, 30);
        m.step_failed(1, "rpc");
        let state = m.chains()[&1];
        assert_eq!(
            (state.processed, state.head, state.failing_steps),
            (10, 30, 1)
        );
        m.progressed(1, 30);
        assert_eq!(m.chains()[&1].failing_steps, 0);
    }
}
