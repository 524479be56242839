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
    for (key, transport) in [
        ("freshness_10_wallet_stream", "function URL"),
        ("freshness_10_wallet_stream_service", "server"),
    ] {
        let f = get(s, &[key]);
        if !f.is_null() {
            lines.push(format!(
                "  freshness ({transport}, one stream of {} wallets, n={}): p50 {} ms, p90 {} ms, p99 {} ms  [{}]",
                f["wallets_on_the_stream"], f["n"], f["p50_ms"], f["p90_ms"], f["p99_ms"], met(&f["met"])
            ));
        }
    }
    for run in get(s, &["providers", "runs"])
        .as_array()
        .into_iter()
        .flatten()
    {
        let l = &run["transfer_to_stream_ms"];
        lines.push(format!(
            "  provider ({}): {} changes, none lost; transfer -> stream p50 {} ms, p90 {} ms; converged {} ms after the outage; {} RPC requests a block",
            run["label"].as_str().unwrap_or_default(),
            run["changes"],
            l["p50"],
            l["p90"],
            run["converged_after_outage_ms"],
            run["rpc_requests_per_block"]
        ));
    }
    for run in get(s, &["native_cost", "runs"])
        .as_array()
        .into_iter()
        .flatten()
    {
        lines.push(format!(
            "  native cost ({} wallets, streamed {}, {}): {} units a block, found by {}",
            run["wallets"],
            run["streamed"],
            run["mode"].as_str().unwrap_or_default(),
            run["measured_1s_blocks"]["billed_units_per_block"],
            run["native_source"].as_str().unwrap_or_default()
        ));
    }
    let w = get(s, &["webhooks"]);
    if !w.is_null() {
        let l = &w["latency_mined_to_receiver"];
        let t = &w["throughput_one_consumer"];
        lines.push(format!(
            "  webhooks: mined -> receiver p50 {} ms, p99 {} ms (n={}); one consumer {} deliveries/s ({} deliveries, {} subscriptions)",
            l["p50_ms"], l["p99_ms"], l["n"], t["deliveries_per_second"], t["deliveries"], t["subscriptions"]
        ));
    }
    for run in get(s, &["orders", "runs"]).as_array().into_iter().flatten() {
        let (u, o) = (
            &run["balance_update_mined_to_received"],
            &run["order_status_mined_to_received"],
        );
        lines.push(format!(
            "  orders ({} per wallet): fanout reads per change {} queries + {} value reads ({} + {} units); balance_update p50 {} ms, p99 {} ms; order_status p50 {} ms (n={})",
            run["orders_per_wallet"], run["fanout_order_queries_per_change"], run["fanout_value_reads_per_change"],
            run["fanout_order_query_read_units_per_change"], run["fanout_value_read_units_per_change"],
            u["p50_ms"], u["p99_ms"], o["p50_ms"], o["n"]
        ));
    }
    let fs = get(s, &["freshness_service"]);
    if !fs.is_null() {
        lines.push(format!(
            "  freshness (server, change log {} ms, n={}): p50 {} ms, p90 {} ms, p99 {} ms  [p50<=100: {}]",
            fs["chain_log_interval_ms"], fs["n"], fs["p50_ms"], fs["p90_ms"], fs["p99_ms"], met(&fs["met"])
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
            "  5,000-token list session, 20 held (n={}): POST -> all_balances p50 {} ms [<=500: {}]; {} table writes [<=50: {}]; reconnect p50 {} ms [<=150: {}]; all_balances {} bytes [<=400 KB: {}]; session item {} bytes (before ~206 KB)",
            snap["post_to_all_balances"]["n"],
            snap["post_to_all_balances"]["p50_ms"],
            met(&snap["met"]["post_to_all_balances"]),
            snap["post_table_writes_max"],
            met(&snap["met"]["post_table_writes"]),
            snap["reconnect_to_all_balances"]["p50_ms"],
            met(&snap["met"]["reconnect_to_all_balances"]),
            snap["all_balances_bytes"],
            met(&snap["met"]["all_balances_bytes"]),
            snap["session_item_bytes_max"],
        ));
    }
    let p2 = get(s, &["initial_snapshot_permit2"]);
    if !p2.is_null() {
        lines.push(format!(
            "  the same with one Permit2 spender (n={}): POST -> all_balances p50 {} ms; {} table writes; reconnect p50 {} ms; all_balances {} bytes",
            p2["post_to_all_balances"]["n"],
            p2["post_to_all_balances"]["p50_ms"],
            p2["post_table_writes_max"],
            p2["reconnect_to_all_balances"]["p50_ms"],
            p2["all_balances_bytes"],
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
    let p = get(s, &["fanout_pace"]);
    if !p.is_null() {
        lines.push(format!(
            "  fanout pace at {} ms a table request (FANOUT_CONCURRENCY {}): {} wallets changed in one block, their feed entries {} to {} ms after it, {} a second; DynamoDB Local's own feed appends a second, one at a time {}, 16 at once {}",
            p["table_latency_ms"],
            p["fanout_concurrency"],
            p["wallets_changed_in_one_block"],
            p["block_to_first_feed_entry_ms"],
            p["block_to_last_feed_entry_ms"],
            p["feed_entries_per_second"],
            p["emulator_feed_appends_per_second_by_appends_at_once"]["1"],
            p["emulator_feed_appends_per_second_by_appends_at_once"]["16"],
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
    let scale = get(s, &["scale"]);
    if let Some(tiers) = scale["tiers"].as_array() {
        for tier in tiers {
            for m in tier["modes"].as_array().into_iter().flatten() {
                lines.push(format!(
                    "  poller, {} wallets, {}: start-up {} s; RPC/block {} (1 s blocks) {} (12 s); CPU per idle block {} ms (1 s) {} ms (12 s); RSS {} MB (peak {})",
                    tier["wallets"],
                    m["mode"],
                    m["startup_seconds"],
                    m["idle_1s_blocks"]["rpc_requests_per_block"],
                    m["idle_12s_blocks"]["rpc_requests_per_block"],
                    m["cpu_ms_per_idle_block"]["1s_blocks"],
                    m["cpu_ms_per_idle_block"]["12s_blocks"],
                    m["rss_mb"],
                    m["peak_rss_mb"],
                ));
            }
        }
        lines.push(format!(
            "  poller targets: RPC/block with traces <=4: {}",
            met(&scale["met"]["rpc_per_block_with_traces"]),
        ));
        for size in scale["met"]["by_size"].as_array().into_iter().flatten() {
            let targets = &size["targets"];
            for run in size["runs"].as_array().into_iter().flatten() {
                let startup = match targets["startup_seconds"].as_f64() {
                    Some(seconds) => format!("; start-up <={seconds} s: {}", met(&run["startup"])),
                    None => String::new(),
                };
                lines.push(format!(
                    "  poller targets at {} wallets, {}: RSS <={} MB: {}; CPU <={} ms per idle block: {}{startup}",
                    size["wallets"],
                    run["mode"],
                    targets["rss_mb"],
                    met(&run["rss"]),
                    targets["cpu_ms_per_idle_block"],
                    met(&run["cpu_per_idle_block"]),
                ));
            }
        }
    }
    let t = get(s, &["table_cost"]);
    if let Some(error) = t["error"].as_str() {
        lines.push(format!(
            "  table units per tracked wallet-hour: not computed, {error}"
        ));
    } else if !t.is_null() {
        lines.push(format!(
            "  table units per tracked wallet-hour at idle, {} wallets: {} read, {} write; compared at {} wallets (before: 60 read, 1.5 write): read {}, write {}; cost idle ${:.4}/h; per 1,000 connected wallets ${:.2}/h",
            t["measured_at_wallets"],
            t["per_tracked_wallet_hour_idle"]["read_units"],
            t["per_tracked_wallet_hour_idle"]["write_units"],
            t["idle_compared_at_wallets"],
            met(&t["idle_no_higher_than_before"]["read_units"]),
            met(&t["idle_no_higher_than_before"]["write_units"]),
            t["idle_cost_usd_per_hour"].as_f64().unwrap_or(f64::NAN),
            t["usd_per_hour_per_1000_connected_wallets_idle"]
                .as_f64()
                .unwrap_or(f64::NAN),
        ));
    }
    lines.join("\n")
}
