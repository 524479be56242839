//! Table units per tracked owner per hour, idle and at one transfer a minute, and the AWS cost
//! that follows — all computed from units measured in this run (the proxy's ConsumedCapacity
//! counts) and the prices below, with the arithmetic written into the report.

use serde_json::{Value, json};

use crate::proxy::total;
use crate::rpc_cost::{BlockCost, Tier};
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
/// Blocks an hour on Ethereum mainnet (12 s) and on the bench devnet (1 s).
const MAINNET_BLOCKS_PER_HOUR: f64 = 300.0;

fn units(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

pub fn report(tiers: &[Tier], fanout: &Value) -> Value {
    let Some(tier) = tiers.iter().max_by_key(|t| t.owners) else {
        return json!({"error": "no tier measured"});
    };
    let owners = tier.owners as f64;
    let touched = crate::rpc_cost::TOUCHED.min(tier.owners) as f64;
    // The poller's own items (sessions, balances, cursor) per block. Feed writes are left out
    // here: right after a load they are the fanout catching up on the load's stream records;
    // a transfer's feed write is added from the fan-out burst, where it was measured alone.
    let poller = |c: &BlockCost| {
        let t = total(
            &c.db
                .iter()
                .filter(|(k, _)| {
                    k.ends_with(" session") || k.ends_with(" balance") || k.ends_with(" cursor")
                })
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        );
        (
            t.read_units / c.blocks as f64,
            t.write_units / c.blocks as f64,
        )
    };
    let (idle_r, idle_w) = poller(&tier.idle);
    let (busy_r, busy_w) = poller(&tier.busy);
    let feed_w = units(fanout, "feed_write_units_per_balance_write");
    // One transfer's own cost: the busy block's extra units per owner touched, plus its feed
    // entry.
    let transfer_r = ((busy_r - idle_r) / touched).max(0.0);
    let transfer_w = ((busy_w - idle_w) / touched).max(0.0) + feed_w;
    let per_owner_hour = |blocks_per_hour: f64, transfers_per_hour: f64| {
        let r = idle_r * blocks_per_hour / owners + transfer_r * transfers_per_hour;
        let w = idle_w * blocks_per_hour / owners + transfer_w * transfers_per_hour;
        (r, w)
    };
    let dollars = |r: f64, w: f64| r * READ_PER_MILLION / 1e6 + w * WRITE_PER_MILLION / 1e6;
    let (ir, iw) = per_owner_hour(MAINNET_BLOCKS_PER_HOUR, 0.0);
    let (tr, tw) = per_owner_hour(MAINNET_BLOCKS_PER_HOUR, 60.0);
    let (lir, liw) = per_owner_hour(3600.0, 0.0);
    let (ltr, ltw) = per_owner_hour(3600.0, 60.0);
    let conn_read_minute = units(fanout, "table_read_units_per_connection_minute");
    let conn_write_minute = units(fanout, "table_write_units_per_connection_minute");
    let conn_table_hour = dollars(conn_read_minute * 60.0, conn_write_minute * 60.0);
    let conn_lambda_hour = 3600.0 * LAMBDA_GB * LAMBDA_GB_SECOND
        + 3600.0 / SSE_MAX_SECS * LAMBDA_PER_MILLION_REQUESTS / 1e6;
    let per_1000_idle = 1000.0 * (conn_table_hour + conn_lambda_hour + dollars(ir, iw));
    let per_1000_busy = 1000.0 * (conn_table_hour + conn_lambda_hour + dollars(tr, tw));
    json!({
        "measured_at_owners": tier.owners,
        "prices_usd": {
            "write_request_unit_per_million": WRITE_PER_MILLION,
            "read_request_unit_per_million": READ_PER_MILLION,
            "stream_read_requests_per_100k": STREAM_READS_PER_100K,
            "lambda_arm64_gb_second": LAMBDA_GB_SECOND,
            "lambda_per_million_requests": LAMBDA_PER_MILLION_REQUESTS,
            "fargate_arm64_0_25_vcpu_0_5_gb_per_hour": FARGATE_POLLER_PER_HOUR,
            "region": "us-east-1, on demand",
        },
        "poller_per_block_idle": {"read_units": round(idle_r * 100.0) / 100.0, "write_units": round(idle_w * 100.0) / 100.0},
        "feed_write_units_per_change": feed_w,
        "per_transfer": {"read_units": round(transfer_r * 100.0) / 100.0, "write_units": round(transfer_w * 100.0) / 100.0},
        "per_tracked_owner_hour_mainnet_12s_blocks": {
            "idle": {"read_units": round(ir * 100.0) / 100.0, "write_units": round(iw * 100.0) / 100.0},
            "one_transfer_a_minute": {"read_units": round(tr * 100.0) / 100.0, "write_units": round(tw * 100.0) / 100.0},
        },
        "per_tracked_owner_hour_1s_blocks": {
            "idle": {"read_units": round(lir * 100.0) / 100.0, "write_units": round(liw * 100.0) / 100.0},
            "one_transfer_a_minute": {"read_units": round(ltr * 100.0) / 100.0, "write_units": round(ltw * 100.0) / 100.0},
        },
        "per_connected_wallet_hour": {
            "table_read_units": round(conn_read_minute * 60.0),
            "table_usd": conn_table_hour,
            "lambda_usd": conn_lambda_hour,
        },
        // No wallet: the poller still lists sessions (1 read unit) and stores its cursor
        // (1 write unit) per block.
        "idle_cost_usd_per_hour": FARGATE_POLLER_PER_HOUR + dollars(MAINNET_BLOCKS_PER_HOUR, MAINNET_BLOCKS_PER_HOUR),
        "usd_per_hour_per_1000_connected_wallets_idle": round(per_1000_idle * 1000.0) / 1000.0,
        "usd_per_hour_per_1000_connected_wallets_one_transfer_a_minute": round(per_1000_busy * 1000.0) / 1000.0,
        "arithmetic": [
            "per owner-hour units = per-block idle units x blocks/hour / owners + per-transfer units x transfers/hour",
            "per-transfer units = (busy-block units - idle-block units) / owners touched in the busy block",
            "connected wallet-hour = SSE table reads (read units/connection-minute x 60 x $0.25/M) + Lambda (3600 s x 0.125 GB x $0.0000133334 + 3600/840 invocations x $0.20/M)",
            "idle (no wallets) = Fargate poller $0.01/h + per block one session listing (1 read unit) and one cursor write (1 write unit), 300 blocks/h on mainnet",
            "stream reads: free when Lambda's event source mapping reads them (AWS pricing); $0.02/100k otherwise",
        ],
    })
}
