//! The api function's memory peak, which sizes its Lambda memory: the largest VmHWM of any
//! api function instance the stack ran during the bench (it may serve several invocations
//! in one process, so this is at least one instance's peak). Debug build, as `make build`
//! builds it; the release arm64 artifact is smaller.

use serde_json::{Value, json};

use crate::procfs::{descendants_named, memory_mib};
use crate::stats::round;

/// template.yaml: the api function's MemorySize.
pub const API_FUNCTION_MB: f64 = 128.0;

pub fn report() -> Value {
    let peaks: Vec<f64> = descendants_named("api")
        .into_iter()
        .filter_map(|pid| memory_mib(pid).ok().map(|(_, hwm)| hwm))
        .collect();
    let peak = peaks.iter().copied().fold(0.0, f64::max);
    json!({
        "processes": peaks.len(),
        "peak_rss_mib": round(peak),
        "memory_size_mb": API_FUNCTION_MB,
        "headroom": round(API_FUNCTION_MB / peak.max(1.0) * 100.0) / 100.0,
        "met": peak > 0.0 && peak * 1.5 <= API_FUNCTION_MB,
        "rule": "MemorySize at least 1.5 x the measured peak, rounded to the smallest Lambda size that holds it",
    })
}
