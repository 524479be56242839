//! What the chain adapter tells its owner as it works: every request sent, every wait a
//! provider imposed, which endpoint serves, what log limits it learned. The poller turns these
//! into metrics and `/health`'s degradations; the api needs none of it.

use std::time::Duration;

/// What the adapter learned about a provider's `eth_getLogs` limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogLimitsView {
    /// Widest block range the provider takes, as learned from its refusals (`None`: no
    /// refusal seen, the configured range is used).
    pub range_cap: Option<u64>,
    /// Widest range whose logs stayed under the provider's result cap lately.
    pub results_range: Option<u64>,
    /// Queries the provider refused and the adapter split.
    pub splits: u64,
    /// Of them, refused for their result count.
    pub result_refusals: u64,
    /// Single-block, single-owner queries still over the result cap: the owner's values are
    /// all re-read instead.
    pub overflows: u64,
}

/// Receives the adapter's reports. Every method has a default that ignores the report.
pub trait RpcObserver: Send + Sync {
    /// A request of `method` went to endpoint `endpoint` (0: the first URL configured).
    fn request(&self, _method: &'static str, _endpoint: usize) {}
    /// Endpoint `endpoint` said to slow down; it rests for `wait`.
    fn rate_limited(&self, _endpoint: usize, _wait: Duration) {}
    /// Endpoint `endpoint` failed to answer (connection, timeout, 5xx); it rests for `wait`.
    fn endpoint_failed(&self, _endpoint: usize, _wait: Duration) {}
    /// Requests now go to endpoint `endpoint` first.
    fn endpoint_in_use(&self, _endpoint: usize) {}
    /// The learned log limits changed.
    fn log_limits(&self, _limits: LogLimitsView) {}
}

/// An observer that ignores everything (the api's readers).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl RpcObserver for Unobserved {}

/// A JSON-RPC method as a metrics label: the methods the adapter sends, anything else `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "eth_call",
        "eth_getLogs",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "debug_traceBlockByNumber",
        "trace_block",
        "eth_chainId",
        "eth_subscribe",
        "eth_getBalance",
    ];
    KNOWN
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}
