//! Table units per tracked wallet-hour at idle and at one transfer a minute, and the AWS cost
//! that follows — all computed from units measured in this run (the proxies' ConsumedCapacity
//! counts) and the prices below, with the arithmetic written into the report.

use serde_json::{Value, json};

use crate::proxy::total;
use crate::scale::{Tier, traces, units_per_wallet_hour};
use crate::stats::round;

/// us-east-1 on-demand prices used (USD).
pub const WRITE_PER_MILLION: f64 = 1.25;
pub const READ_PER_MILLION: f64 = 0.25;
pub const STREAM_READS_PER_100K: f64 = 0.02;
pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
pub const LAMBDA_PER_MILLION_REQUESTS: f64 = 0.20;
pub const FARGATE_POLLER_PER_HOUR: f64 = 0.01;
/// template.yaml: the api function has 128 MB (sized from its measured peak); SSE streams end
/// after 840 s and reconnect.
const LAMBDA_GB: f64 = crate::function_memory::API_FUNCTION_MB / 1024.0;
const SSE_MAX_SECS: f64 = 840.0;
/// Blocks an hour on Ethereum mainnet (12 s).
const MAINNET_BLOCKS_PER_HOUR: f64 = 300.0;
/// Before issue 14 (README, run of 2026-11-23 18:06 UTC, 1,000 owners x 100 tokens, 12 s
/// blocks): per tracked owner-hour at idle.
const BEFORE_READ_UNITS: f64 = 60.0;
const BEFORE_WRITE_UNITS: f64 = 1.5;
const BEFORE_WALLETS: usize = 1000;

fn units(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

pub fn report(tiers: &[Tier], fanout: &Value) -> Value {
    let Some((tier, run)) = tiers
        .iter()
        .filter_map(|t| traces(t).map(|r| (t, r)))
        .max_by_key(|(t, _)| t.wallets)
    else {
        return json!({"error": "no size measured in the `traces` mode (the debug build the figures compare)"});
    };
    let wallets = tier.wallets as f64;
    let idle_per_wallet: Vec<Value> = tiers
        .iter()
        .filter_map(|t| {
            traces(t).map(|r| {
                let mut v = units_per_wallet_hour(r, t.wallets);
                v["wallets"] = json!(t.wallets);
                v
            })
        })
        .collect();
    let idle = units_per_wallet_hour(run, tier.wallets);
    let (ir, iw) = (units(&idle, "read_units"), units(&idle, "write_units"));
    // The target compares like with like: the tier of the before figure's size when measured
    // (the cursor and the session log read are shared by every wallet, so a larger tier looks cheaper
    // per wallet by that alone), else the largest.
    let (compared_at, compared) = tiers
        .iter()
        .find(|t| t.wallets == BEFORE_WALLETS)
        .and_then(|t| traces(t).map(|r| (t.wallets, units_per_wallet_hour(r, t.wallets))))
        .unwrap_or((tier.wallets, idle.clone()));
    let (cr, cw) = (
        units(&compared, "read_units"),
        units(&compared, "write_units"),
    );
    // One transfer's own cost: the busy blocks' extra poller units per wallet touched, plus
    // its feed entry (measured in the fan-out burst).
    let feed_w = units(fanout, "feed_write_units_per_balance_write");
    let (transfer_r, transfer_w) = match &run.busy_1s {
        Some(busy) => {
            let touched = crate::scale::TOUCHED.min(tier.wallets) as f64;
            let (b, i) = (total(&busy.db), total(&run.idle_1s.db));
            let per = |x: f64, bb: usize| x / bb as f64;
            (
                ((per(b.read_units, busy.blocks) - per(i.read_units, run.idle_1s.blocks))
                    / touched)
                    .max(0.0),
                ((per(b.write_units, busy.blocks) - per(i.write_units, run.idle_1s.blocks))
                    / touched)
                    .max(0.0)
                    + feed_w,
            )
        }
        None => (0.0, feed_w),
    };
    let (tr, tw) = (ir + transfer_r * 60.0, iw + transfer_w * 60.0);
    let dollars = |r: f64, w: f64| r * READ_PER_MILLION / 1e6 + w * WRITE_PER_MILLION / 1e6;
    let conn_read_minute = units(fanout, "table_read_units_per_connection_minute");
    let conn_write_minute = units(fanout, "table_write_units_per_connection_minute");
    let conn_table_hour = dollars(conn_read_minute * 60.0, conn_write_minute * 60.0);
    let conn_lambda_hour = 3600.0 * LAMBDA_GB * LAMBDA_GB_SECOND
        + 3600.0 / SSE_MAX_SECS * LAMBDA_PER_MILLION_REQUESTS / 1e6;
    let per_1000_idle = 1000.0 * (conn_table_hour + conn_lambda_hour + dollars(ir, iw));
    let per_1000_busy = 1000.0 * (conn_table_hour + conn_lambda_hour + dollars(tr, tw));
    let per_block = &idle["per_block"];
    json!({
        "measured_at_wallets": tier.wallets,
        "prices_usd": {
            "write_request_unit_per_million": WRITE_PER_MILLION,
            "read_request_unit_per_million": READ_PER_MILLION,
            "stream_read_requests_per_100k": STREAM_READS_PER_100K,
            "lambda_arm64_gb_second": LAMBDA_GB_SECOND,
            "lambda_per_million_requests": LAMBDA_PER_MILLION_REQUESTS,
            "fargate_arm64_0_25_vcpu_0_5_gb_per_hour": FARGATE_POLLER_PER_HOUR,
            "region": "us-east-1, on demand",
        },
        "per_tracked_wallet_hour_idle_by_size": idle_per_wallet,
        "per_tracked_wallet_hour_idle": {"read_units": ir, "write_units": iw},
        "per_tracked_wallet_hour_idle_before": {"read_units": BEFORE_READ_UNITS, "write_units": BEFORE_WRITE_UNITS, "at": "1,000 owners x 100 tokens, 12 s blocks (README before issue 14)"},
        "idle_compared_at_wallets": compared_at,
        "idle_no_higher_than_before": {
            "read_units": cr <= BEFORE_READ_UNITS,
            "write_units": cw <= BEFORE_WRITE_UNITS,
            "both": cr <= BEFORE_READ_UNITS && cw <= BEFORE_WRITE_UNITS,
        },
        "feed_write_units_per_change": feed_w,
        "per_transfer": {"read_units": round(transfer_r * 100.0) / 100.0, "write_units": round(transfer_w * 100.0) / 100.0},
        "per_tracked_wallet_hour_one_transfer_a_minute": {"read_units": round(tr * 100.0) / 100.0, "write_units": round(tw * 100.0) / 100.0},
        "per_connected_wallet_hour": {
            "table_read_units": round(conn_read_minute * 60.0),
            "table_usd": conn_table_hour,
            "lambda_usd": conn_lambda_hour,
        },
        // No wallet: the poller still reads the session log and stores its cursor every
        // block (the per-block units measured, which do not depend on wallets).
        "idle_cost_usd_per_hour": FARGATE_POLLER_PER_HOUR + dollars(
            units(per_block, "read_units") * MAINNET_BLOCKS_PER_HOUR,
            units(per_block, "write_units") * MAINNET_BLOCKS_PER_HOUR,
        ),
        "usd_per_hour_per_1000_tracked_wallets_idle": round(1000.0 * dollars(ir, iw) * 10_000.0) / 10_000.0,
        "usd_per_hour_per_1000_connected_wallets_idle": round(per_1000_idle * 1000.0) / 1000.0,
        "usd_per_hour_per_1000_connected_wallets_one_transfer_a_minute": round(per_1000_busy * 1000.0) / 1000.0,
        "wallets_in_the_measured_tier": wallets,
        "arithmetic": [
            "per wallet-hour idle = units per idle 12 s block x 300 / wallets (the session log read and the background pass over the sessions included)",
            "per-transfer units = (busy-block units - idle-block units) / wallets touched per busy block + the feed entry's units",
            "connected wallet-hour = SSE table reads (read units/connection-minute x 60 x $0.25/M) + Lambda (3600 s x 0.125 GB x $0.0000133334 + 3600/840 invocations x $0.20/M)",
            "idle (no wallets) = Fargate poller $0.01/h + the per-block units (session log read, cursor write) x 300 blocks/h",
            "stream reads: free when Lambda's event source mapping reads them (AWS pricing); $0.02/100k otherwise",
        ],
    })
}
