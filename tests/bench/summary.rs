//! The few lines `make bench` prints at the end: each figure beside its target.

use serde_json::{Map, Value};

fn get<'a>(sections: &'a Map<String, Value>, path: &[&str]) -> &'a Value {
    let mut v = sections.get(path[0]).unwrap_or(&Value::Null);
    for key in &path[1..] {
        v = &v[*key];
    }
    v
}

fn met(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(true) => "met",
        Some(false) => "NOT MET",
        None => "-",
    }
}

/// One line per measured section; sections not run are left out.
pub fn render(s: &Map<String, Value>) -> String {
    let mut lines = vec!["bench summary (full figures in target/bench/results.json):".to_string()];
    for (name, key) in [
        ("default", "freshness_default"),
        ("tight", "freshness_tight"),
    ] {
        let f = get(s, &[key]);
        if !f.is_null() {
            lines.push(format!(
                "  freshness ({name}, feed {} ms, n={}): p50 {} ms, p90 {} ms, p99 {} ms  [p50<=250, p99<=1000: {}]",
                f["sse_feed_interval_ms"], f["n"], f["p50_ms"], f["p90_ms"], f["p99_ms"], met(&f["met"])
            ));
        }
    }
    let fs = get(s, &["freshness_service"]);
    if !fs.is_null() {
        lines.push(format!(
            "  freshness (server, change log {} ms, n={}): p50 {} ms, p90 {} ms, p99 {} ms  [p50<=100: {}]",
            fs["chain_log_interval_ms"], fs["n"], fs["p50_ms"], fs["p90_ms"], fs["p99_ms"], met(&fs["met"])
        ));
    }
    let rpc = get(s, &["rpc_per_block"]);
    if let Some(rows) = rpc["requests_per_block"].as_array() {
        let cells: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} owners {}/{}",
                    r["owners"], r["no_owner_touched"], r["owners_touched"]
                )
            })
            .collect();
        lines.push(format!(
            "  RPC per block (idle/touched): {}  [<=4: {}]",
            cells.join(", "),
            met(&rpc["met"])
        ));
    }
    let slow = get(s, &["rpc_per_block_12s_blocks"]);
    if !slow.is_null() {
        lines.push(format!(
            "  RPC per block with 12 s blocks, {} owners: {}",
            slow["owners"], slow["rpc_requests_per_block"]
        ));
    }
    let c = get(s, &["clients_and_baseline"]);
    if !c.is_null() {
        lines.push(format!(
            "  RPC per minute: service {} (1 client) / {} ({} clients); polling baseline {} ({}x); freshness p50 {} ms vs {} ms ({}x)",
            c["service_rpc_per_minute_1_client"],
            c["service_rpc_per_minute_with_clients"],
            c["clients"],
            c["baseline_rpc_per_minute"],
            c["baseline_to_service_request_ratio"],
            c["sse_freshness"]["p50_ms"],
            c["baseline_freshness"]["p50_ms"],
            c["baseline_to_service_freshness_ratio_p50"],
        ));
    }
    let snap = get(s, &["initial_snapshot"]);
    if !snap.is_null() {
        lines.push(format!(
            "  5,000-token snapshot, POST -> all_balances (n={}): p50 {} ms  [<=1500: {}]",
            snap["post_to_all_balances"]["n"],
            snap["post_to_all_balances"]["p50_ms"],
            met(&snap["met"])
        ));
    }
    let f = get(s, &["fanout"]);
    if !f.is_null() {
        lines.push(format!(
            "  fan-out: {}/{} updates to {} connections, p50 {} ms, p99 {} ms; {} read units per connection-minute",
            f["updates_received"],
            f["updates_expected"],
            f["connections"],
            f["latency_mined_to_received"]["p50_ms"],
            f["latency_mined_to_received"]["p99_ms"],
            f["table_read_units_per_connection_minute"],
        ));
    }
    let sv = get(s, &["service"]);
    if let Some(tiers) = sv["tiers"].as_array() {
        let idle: Vec<String> = tiers
            .iter()
            .map(|t| format!("{} at {}", t["idle_per_minute"]["read_units"], t["streams"]))
            .collect();
        lines.push(format!(
            "  server: read units a minute while idle {} streams; burst to {} streams of {} wallets: {}/{} delivered, p50 {} ms, p99 {} ms, peak RSS {} MiB  [10,000 streams, 100%, <=500 MB: {}]",
            idle.join(" / "),
            sv["burst"]["streams"],
            sv["wallets"],
            sv["burst"]["delivered"],
            sv["burst"]["streams"],
            sv["burst"]["latency_mined_to_received"]["p50_ms"],
            sv["burst"]["latency_mined_to_received"]["p99_ms"],
            sv["burst"]["rss_peak_mib"],
            met(&sv["met"]),
        ));
    }
    let sc = get(s, &["service_cost"]);
    if !sc.is_null() {
        lines.push(format!(
            "  service cost per 1,000 connected wallets: ${:.3}/h  [<=0.15: {}]",
            sc["usd_per_hour_per_1000_connected_wallets"]
                .as_f64()
                .unwrap_or(f64::NAN),
            met(&sc["met"]),
        ));
    }
    let m = get(s, &["api_function_memory"]);
    if !m.is_null() {
        lines.push(format!(
            "  api function peak RSS {} MiB, MemorySize {} MB  [>=1.5x: {}]",
            m["peak_rss_mib"],
            m["memory_size_mb"],
            met(&m["met"])
        ));
    }
    let p = get(s, &["poller_footprint"]);
    if !p.is_null() {
        lines.push(format!(
            "  poller peak RSS at 10,000 owners: {} MiB ({})  [<=150 MB: {}]",
            p["peak_rss_mib_at_10000_owners"],
            p["how"],
            met(&p["met"])
        ));
    }
    let t = get(s, &["table_cost"]);
    if !t.is_null() {
        lines.push(format!(
            "  cost: idle ${:.4}/h; per 1,000 connected wallets ${:.2}/h",
            t["idle_cost_usd_per_hour"].as_f64().unwrap_or(f64::NAN),
            t["usd_per_hour_per_1000_connected_wallets_idle"]
                .as_f64()
                .unwrap_or(f64::NAN),
        ));
    }
    lines.join("\n")
}
