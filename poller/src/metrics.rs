//! The poller's own numbers, rendered in the Prometheus text format: RPC requests by method,
//! table writes, errors, session changes applied, and per chain the processed block, the head
//! and the last progress.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use live_balances::clock::unix_now;

/// Reads one gauge off a chain's state.
type Gauge = fn(&ChainState) -> u64;

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, u64, &'static str), u64>>,
    chains: Mutex<BTreeMap<u64, ChainState>>,
}

/// Where one chain's watcher stands.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChainState {
    pub processed: u64,
    pub head: u64,
    /// Unix seconds of the last step that completed (a new block or an idle check).
    pub last_progress: u64,
    /// How native balance changes are found (`call_tracer`, `parity_traces`, `reads`).
    pub native_source: &'static str,
}

impl Metrics {
    fn add(&self, name: &'static str, chain_id: u64, label: &'static str, by: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, chain_id, label)).or_default() += by;
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

    pub fn set_chain(&self, chain_id: u64, processed: u64, head: u64) {
        if let Ok(mut c) = self.chains.lock() {
            let state = c.entry(chain_id).or_default();
            state.processed = processed;
            state.head = head;
            state.last_progress = unix_now();
        }
    }

    pub fn set_native_source(&self, chain_id: u64, source: &'static str) {
        if let Ok(mut c) = self.chains.lock() {
            c.entry(chain_id).or_default().native_source = source;
        }
    }

    pub fn chains(&self) -> BTreeMap<u64, ChainState> {
        self.chains.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// RPC requests so far for one chain, by method.
    pub fn rpc_requests(&self, chain_id: u64) -> BTreeMap<&'static str, u64> {
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        counters
            .into_iter()
            .filter(|((name, chain, _), _)| {
                *name == "poller_rpc_requests_total" && *chain == chain_id
            })
            .map(|((_, _, method), n)| (method, n))
            .collect()
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
            let key = if *name == "poller_rpc_requests_total" {
                "method"
            } else {
                "kind"
            };
            let _ = writeln!(out, "{name}{{chain=\"{chain}\",{key}=\"{label}\"}} {value}");
        }
        let chains = self.chains();
        let gauges: [(&str, Gauge); 4] = [
            ("poller_processed_block", |c| c.processed),
            ("poller_head_block", |c| c.head),
            ("poller_blocks_behind", |c| {
                c.head.saturating_sub(c.processed)
            }),
            ("poller_last_progress_seconds", |c| c.last_progress),
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
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::default();
        m.count_rpc(1, "eth_getLogs");
        m.count_rpc(1, "eth_getLogs");
        m.count_rpc(1, "eth_call");
        m.count_writes(1, "written", 3);
        m.set_chain(1, 10, 12);
        m.set_native_source(1, "call_tracer");
        let text = m.render();
        assert!(
            text.contains("poller_native_source{chain=\"1\",source=\"call_tracer\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("poller_rpc_requests_total{chain=\"1\",method=\"eth_getLogs\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("poller_blocks_behind{chain=\"1\"} 2"),
            "{text}"
        );
        assert_eq!(m.rpc_requests(1).get("eth_call"), Some(&1));
    }
}
