//! The poller's footprint per tier: resident memory (VmRSS, VmHWM) and CPU time per block,
//! and — when the run stopped short of 10,000 owners — a linear extrapolation to it from the
//! two largest tiers, labelled as such.

use serde_json::{Value, json};

use crate::rpc_cost::Tier;
use crate::stats::round;

/// 150 MB (10^6 bytes) in MiB, the unit of /proc.
const TARGET_MIB: f64 = 150.0 * 1e6 / 1_048_576.0;
const TARGET_OWNERS: usize = 10_000;

pub fn report(tiers: &[Tier], tokens: usize) -> Value {
    let rows: Vec<Value> = tiers
        .iter()
        .map(|t| {
            json!({
                "owners": t.owners,
                "values_tracked": t.owners * (tokens + 1),
                "rss_mib": round(t.rss_mib),
                "peak_rss_mib": round(t.hwm_mib),
                "cpu_ms_per_block_no_owner_touched": round(t.idle.cpu_seconds * 1000.0 / t.idle.blocks as f64),
                "cpu_ms_per_block_owners_touched": round(t.busy.cpu_seconds * 1000.0 / t.busy.blocks as f64),
            })
        })
        .collect();
    let measured = tiers.iter().find(|t| t.owners >= TARGET_OWNERS);
    let (rss_at_target, how) = match measured {
        Some(t) => (t.hwm_mib, "measured"),
        None => {
            let mut sorted: Vec<&Tier> = tiers.iter().collect();
            sorted.sort_by_key(|t| t.owners);
            match sorted.as_slice() {
                [.., a, b] if b.owners > a.owners => {
                    let slope = (b.hwm_mib - a.hwm_mib) / (b.owners - a.owners) as f64;
                    (
                        b.hwm_mib + slope * (TARGET_OWNERS - b.owners) as f64,
                        "extrapolated linearly from the two largest tiers (peak RSS); run BENCH_FULL=1 to measure",
                    )
                }
                _ => (f64::NAN, "not enough tiers"),
            }
        }
    };
    json!({
        "tiers": rows,
        "peak_rss_mib_at_10000_owners": round(rss_at_target),
        "how": how,
        "target_mib": round(TARGET_MIB),
        "target": "<= 150 MB RSS at 10,000 owners x 100 tokens",
        "met": rss_at_target <= TARGET_MIB,
        "build": "debug (target/debug/poller, as make build builds it)",
    })
}
