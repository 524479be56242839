//! The poller's own numbers, rendered in the Prometheus text format: RPC requests by method,
//! rate limits and endpoint failures, table writes, errors, session changes applied, and per
//! chain the processed block, the head, the last progress and what degrades the chain's
//! watching (see `health`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use live_balances::chain::{LogLimitsView, RpcObserver};
use live_balances::clock::unix_now;

use crate::health::degradations;

/// Reads one gauge off a chain's state.
type Gauge = fn(&ChainState) -> u64;

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, u64, String), u64>>,
    chains: Mutex<BTreeMap<u64, ChainState>>,
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
    /// Unix seconds of the last rate-limited answer, and the wait it imposed.
    pub rate_limited_at: u64,
    pub rate_limited_wait: Duration,
    /// The RPC URL requests go to first now (0: the first configured).
    pub endpoint: usize,
    pub log_limits: LogLimitsView,
    /// Unix seconds of the last `eth_getLogs` refused for its result count.
    pub log_results_refused_at: u64,
    /// `None` without a WebSocket URL; else whether the head subscription is live, and since
    /// when (Unix seconds) it is in that state.
    pub subscribed: Option<bool>,
    pub subscription_since: u64,
    /// Steps failed in a row, and the kind of the last failure.
    pub failing_steps: u32,
    pub last_error: &'static str,
    /// Watched wallets whose stored values are yet to be learned (after a start).
    pub unlearned: u64,
}

impl Metrics {
    fn add(&self, name: &'static str, chain_id: u64, label: &str, by: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, chain_id, label.to_string())).or_default() += by;
        }
    }

    fn update(&self, chain_id: u64, f: impl FnOnce(&mut ChainState)) {
        if let Ok(mut c) = self.chains.lock() {
            f(c.entry(chain_id).or_default());
        }
    }

    pub fn count_rpc(&self, chain_id: u64, method: &'static str) {
        self.add("poller_rpc_requests_total", chain_id, method, 1);
    }

    pub fn count_writes(&self, chain_id: u64, outcome: &'static str, by: u64) {
        self.add("poller_table_writes_total", chain_id, outcome, by);
    }

    /// Changes of the watched set applied, by kind (`session`, `streaming`, `list`, `ended`,
    /// `found_by_pass`, `full_listing`, …).
    pub fn count_session_changes(&self, chain_id: u64, kind: &'static str, by: u64) {
        self.add("poller_session_changes_total", chain_id, kind, by);
    }

    pub fn count_error(&self, chain_id: u64, kind: &'static str) {
        self.add("poller_errors_total", chain_id, kind, 1);
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
            self.add("poller_ws_disconnects_total", chain_id, "", 1);
        }
    }

    pub fn chains(&self) -> BTreeMap<u64, ChainState> {
        self.chains.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// RPC requests so far for one chain, by method.
    pub fn rpc_requests(&self, chain_id: u64) -> BTreeMap<String, u64> {
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        counters
            .into_iter()
            .filter(|((name, chain, _), _)| {
                *name == "poller_rpc_requests_total" && *chain == chain_id
            })
            .map(|((_, _, method), n)| (method, n))
            .collect()
    }

    /// What reports one chain's RPC traffic here.
    pub fn observer(self: &Arc<Self>, chain_id: u64) -> Arc<dyn RpcObserver> {
        Arc::new(ChainObserver {
            chain_id,
            metrics: self.clone(),
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        let mut last_name = "";
        for ((name, chain, label), value) in &counters {
            if *name != last_name {
                let _ = writeln!(out, "# TYPE {name} counter");
                last_name = name;
            }
            let key = match *name {
                "poller_rpc_requests_total" => "method",
                "poller_rpc_endpoint_failures_total" | "poller_rpc_rate_limited_total" => {
                    "endpoint"
                }
                _ => "kind",
            };
            if label.is_empty() {
                let _ = writeln!(out, "{name}{{chain=\"{chain}\"}} {value}");
            } else {
                let _ = writeln!(out, "{name}{{chain=\"{chain}\",{key}=\"{label}\"}} {value}");
            }
        }
        let chains = self.chains();
        let gauges: [(&str, Gauge); 8] = [
            ("poller_processed_block", |c| c.processed),
            ("poller_unlearned_wallets", |c| c.unlearned),
            ("poller_head_block", |c| c.head),
            ("poller_blocks_behind", |c| {
                c.head.saturating_sub(c.processed)
            }),
            ("poller_last_progress_seconds", |c| c.last_progress),
            ("poller_rpc_endpoint", |c| c.endpoint as u64),
            ("poller_log_range_cap_blocks", |c| {
                c.log_limits.range_cap.unwrap_or(0)
            }),
            ("poller_log_results_range_blocks", |c| {
                c.log_limits.results_range.unwrap_or(0)
            }),
        ];
        for (name, get) in gauges {
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (chain, state) in &chains {
                let _ = writeln!(out, "{name}{{chain=\"{chain}\"}} {}", get(state));
            }
        }
        let _ = writeln!(out, "# TYPE poller_native_source gauge");
        for (chain, state) in &chains {
            let _ = writeln!(
                out,
                "poller_native_source{{chain=\"{chain}\",source=\"{}\"}} 1",
                state.native_source
            );
        }
        let now = unix_now();
        let _ = writeln!(out, "# TYPE poller_degraded gauge");
        for (chain, state) in &chains {
            for degradation in degradations(state, now) {
                let _ = writeln!(
                    out,
                    "poller_degraded{{chain=\"{chain}\",kind=\"{}\"}} 1",
                    degradation.kind
                );
            }
        }
        out
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
        m.add(
            "poller_rpc_rate_limited_total",
            self.chain_id,
            &endpoint.to_string(),
            1,
        );
        m.add(
            "poller_rpc_rate_limit_wait_ms_total",
            self.chain_id,
            "",
            wait.as_millis() as u64,
        );
        m.update(self.chain_id, |s| {
            s.rate_limited_at = unix_now();
            s.rate_limited_wait = wait;
        });
    }

    fn endpoint_failed(&self, endpoint: usize, _wait: Duration) {
        self.metrics.add(
            "poller_rpc_endpoint_failures_total",
            self.chain_id,
            &endpoint.to_string(),
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
            .update(self.chain_id, |s| s.endpoint = endpoint);
    }

    fn log_limits(&self, limits: LogLimitsView) {
        self.metrics.update(self.chain_id, |s| {
            if limits.result_refusals > s.log_limits.result_refusals {
                s.log_results_refused_at = unix_now();
            }
            s.log_limits = limits;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Arc::new(Metrics::default());
        let observer = m.observer(1);
        observer.request("eth_getLogs", 0);
        observer.request("eth_getLogs", 0);
        observer.request("eth_call", 0);
        observer.rate_limited(0, Duration::from_millis(1500));
        m.count_writes(1, "written", 3);
        m.set_head(1, 12);
        m.progressed(1, 10);
        m.set_native_source(1, "call_tracer");
        let text = m.render();
        for line in [
            "poller_native_source{chain=\"1\",source=\"call_tracer\"} 1",
            "poller_rpc_requests_total{chain=\"1\",method=\"eth_getLogs\"} 2",
            "poller_blocks_behind{chain=\"1\"} 2",
            "poller_rpc_rate_limited_total{chain=\"1\",endpoint=\"0\"} 1",
            "poller_rpc_rate_limit_wait_ms_total{chain=\"1\"} 1500",
            "poller_degraded{chain=\"1\",kind=\"rate_limited\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert_eq!(m.rpc_requests(1).get("eth_call"), Some(&1));
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
