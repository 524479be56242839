//! What connected wallets cost on the service, from the units the service section measured
//! (the server's own table units, its memory and CPU at 10,000 streams) and us-east-1 prices
//! for Fargate arm64 and the Application Load Balancer, with the arithmetic in the report.

use serde_json::{Value, json};

use crate::stats::round;
use crate::table_cost::{READ_PER_MILLION, WRITE_PER_MILLION};

/// Fargate arm64, us-east-1, per hour.
const FARGATE_VCPU_HOUR: f64 = 0.032_384;
const FARGATE_GB_HOUR: f64 = 0.003_556;
/// Application Load Balancer, us-east-1: per hour, and per load balancer capacity unit-hour.
const ALB_HOUR: f64 = 0.022_5;
const ALB_LCU_HOUR: f64 = 0.008;
/// One LCU is the most of: 25 new connections a second, 3,000 active connections (a minute),
/// 1 GB processed an hour (IP targets), 1,000 rule evaluations a second.
const LCU_NEW_PER_SECOND: f64 = 25.0;
const LCU_ACTIVE: f64 = 3_000.0;
const LCU_GB_PER_HOUR: f64 = 1.0;
/// template.yaml: service streams end after an hour and reconnect; sessions are kept alive
/// every 1,200 s per wallet per task.
const SERVICE_SSE_MAX_SECS: f64 = 3_600.0;
const TEMPLATE_KEEPALIVE_SECS: f64 = 1_200.0;
/// Bytes on the wire per ping (`event: ping` frame, ~45 bytes, plus HTTP/2 framing).
const PING_BYTES: f64 = 60.0;
const PING_SECS: f64 = 15.0;
/// Fargate sizes (vCPU, GB) from smallest: the first whose half holds the measured peak.
const SIZES: [(f64, f64); 4] = [(0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0)];
/// Tasks kept for availability (template.yaml's ServiceMinTasks).
const MIN_TASKS: f64 = 2.0;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

pub fn report(service: &Value) -> Value {
    let Some(top) = service["tiers"]
        .as_array()
        .and_then(|t| t.iter().max_by_key(|t| t["streams"].as_u64().unwrap_or(0)))
    else {
        return json!({"error": "the service section did not run"});
    };
    let streams = f(&top["streams"]);
    let wallets = f(&service["wallets"]);
    let rss_mib = f(&service["burst"]["rss_peak_mib"]).max(f(&top["rss_peak_mib"]));
    let cpu_idle = f(&top["cpu_share_of_one_core_idle"]);
    // The burst's CPU over one minute: a whole change of every wallet within a minute.
    let cpu_burst = f(&service["burst"]["cpu_seconds"]) / 60.0;
    let cpu = cpu_idle + cpu_burst;
    let (vcpu, gb) = SIZES
        .iter()
        .copied()
        .find(|(v, g)| cpu <= v * 0.5 && rss_mib / 1024.0 <= g * 0.5)
        .unwrap_or(SIZES[3]);
    let task_hour = vcpu * FARGATE_VCPU_HOUR + gb * FARGATE_GB_HOUR;

    // Per task, per hour, while nothing changes: the change-log tail.
    let idle = &top["idle_per_minute"];
    let tail_reads = f(&idle["read_units"]) * 60.0;
    // Per wallet per task holding it: one write of the session item each period.
    let keep_alive_per_wallet =
        f(&service["keep_alive"]["write_units_per_write"]) * 3600.0 / TEMPLATE_KEEPALIVE_SECS;
    // Each stream reopens once per SSE_MAX: a snapshot's reads and the session check.
    let open_reads = f(&top["open_units_per_new_stream"]["read"]);

    let dollars = |r: f64, w: f64| r * READ_PER_MILLION / 1e6 + w * WRITE_PER_MILLION / 1e6;
    let lcu = |streams: f64| {
        let new_per_second = streams / SERVICE_SSE_MAX_SECS;
        let gb_per_hour = streams * PING_BYTES * 3600.0 / PING_SECS / 1e9;
        (new_per_second / LCU_NEW_PER_SECOND)
            .max(streams / LCU_ACTIVE)
            .max(gb_per_hour / LCU_GB_PER_HOUR)
    };
    // `n` connected wallets with `per_wallet` streams each, on as many tasks as they need
    // (at least MIN_TASKS): everything, fixed costs included.
    let deployment = |n: f64, per_wallet: f64| {
        let streams_total = n * per_wallet;
        let tasks = (streams_total / streams).ceil().max(MIN_TASKS);
        let fargate = tasks * task_hour;
        let alb = ALB_HOUR + lcu(streams_total) * ALB_LCU_HOUR;
        let table = dollars(
            tasks * tail_reads + streams_total * open_reads * 3600.0 / SERVICE_SSE_MAX_SECS,
            keep_alive_per_wallet * n * per_wallet.min(tasks),
        );
        json!({
            "wallets": n,
            "streams": streams_total,
            "tasks": tasks,
            "fargate_usd_per_hour": round(fargate * 10_000.0) / 10_000.0,
            "load_balancer_usd_per_hour": round(alb * 10_000.0) / 10_000.0,
            "load_balancer_capacity_units": round(lcu(streams_total) * 100.0) / 100.0,
            "table_usd_per_hour": round(table * 10_000.0) / 10_000.0,
            "usd_per_hour": round((fargate + alb + table) * 10_000.0) / 10_000.0,
            "usd_per_hour_per_1000_wallets": round((fargate + alb + table) / n * 1000.0 * 10_000.0) / 10_000.0,
        })
    };
    let small = deployment(1_000.0, 1.0);
    let measured_shape = deployment(1_000.0, streams / wallets.max(1.0));
    let large = deployment(100_000.0, 1.0);
    let worst = [&small, &measured_shape]
        .iter()
        .map(|d| f(&d["usd_per_hour_per_1000_wallets"]))
        .fold(0.0, f64::max);
    json!({
        "task": {"vcpu": vcpu, "gb": gb, "usd_per_hour": round(task_hour * 10_000.0) / 10_000.0,
                 "holds_streams": streams, "measured_rss_peak_mib": rss_mib,
                 "measured_cpu_cores_at_10000_streams_idle_plus_a_burst_a_minute": round(cpu * 1000.0) / 1000.0},
        "per_task_hour": {
            "change_log_tail_read_units": round(tail_reads),
            "keep_alive_write_units_per_1000_wallets": round(keep_alive_per_wallet * 1000.0),
        },
        "per_stream_open_read_units": open_reads,
        "deployment_1000_wallets_1_stream_each": small,
        "deployment_1000_wallets_as_measured": measured_shape,
        "deployment_100000_wallets_1_stream_each": large,
        "usd_per_hour_per_1000_connected_wallets": worst,
        "target_usd_per_hour_per_1000_connected_wallets": 0.15,
        "met": worst <= 0.15,
        "prices_usd": {
            "fargate_arm64_vcpu_hour": FARGATE_VCPU_HOUR,
            "fargate_arm64_gb_hour": FARGATE_GB_HOUR,
            "alb_hour": ALB_HOUR,
            "alb_lcu_hour": ALB_LCU_HOUR,
            "read_request_unit_per_million": READ_PER_MILLION,
            "write_request_unit_per_million": WRITE_PER_MILLION,
        },
        "arithmetic": [
            "task size: the smallest Fargate size whose half holds the measured peak RSS and CPU (idle at 10,000 streams plus one all-wallet burst a minute)",
            "tasks = max(2, streams / streams per task); Fargate = tasks x (vCPU x $0.032384 + GB x $0.003556)",
            "ALB = $0.0225 + LCU x $0.008, LCU = max(new connections/s / 25, active connections / 3,000, GB/h / 1); new connections: each stream reconnects once per SSE_MAX (3,600 s); bytes: a 60-byte ping every 15 s per stream",
            "table = tasks x change-log tail reads per hour (measured) + stream opens (one per stream per hour, measured read units) + keep-alive writes (measured units per write, one per wallet per task holding it every 1,200 s as in the template)",
            "changes themselves (a balance write, a feed entry, a change-log entry, one feed read per task holding the wallet) are per change, not per connection: see wallets_changing",
        ],
    })
}
