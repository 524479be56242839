//! `make bench`: latency, RPC cost, scale, memory and table cost of live-balances, measured on
//! the real local stack (DynamoDB Local, anvil, `cargo lambda watch`, the pump, the poller)
//! beside a polling baseline, written to `target/bench/results.json` with a summary.
//!
//! A benchmark reports; it fails only when the system is wrong (an update never arrives, a
//! snapshot is incomplete), never because the machine is slow. `BENCH_ONLY=freshness,snapshot`
//! runs a subset; `BENCH_FULL=1` runs the full scale where the default is scaled down.

mod baseline;
mod clients;
mod context;
mod fanout;
mod footprint;
mod freshness;
mod function_memory;
mod listeners;
mod machine;
mod procfs;
mod proxy;
mod rpc_cost;
mod service;
mod service_cost;
mod snapshot;
mod stats;
mod streams;
mod summary;
mod table_cost;

use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use context::Bench;
use e2e::Transport;

/// Default SSE feed interval of the api (`SSE_FEED_INTERVAL_MS`, core/src/config.rs).
const DEFAULT_FEED_MS: u64 = 200;
/// The tighter setting measured beside it.
const TIGHT_FEED_MS: u64 = 50;
/// Default change-log interval of the server (`CHAIN_LOG_INTERVAL_MS`, core/src/config.rs).
const DEFAULT_LOG_MS: u64 = 50;

struct Plan {
    only: Option<Vec<String>>,
    full: bool,
}

impl Plan {
    fn wants(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == section))
    }

    /// `quick` normally, `full` with `BENCH_FULL=1`.
    fn scale(&self, quick: usize, full: usize) -> usize {
        if self.full { full } else { quick }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plan = Plan {
        only: std::env::var("BENCH_ONLY")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
        full: std::env::var("BENCH_FULL").is_ok_and(|v| v == "1"),
    };
    let started = Instant::now();
    let mut report = Map::new();
    report.insert("machine".into(), machine::describe());
    report.insert("started_utc".into(), json!(machine::utc_now()));
    report.insert(
        "profile".into(),
        json!("debug: the poller, pump and functions (cargo lambda watch) run from target/debug, as `make build` builds them"),
    );
    report.insert("full_scale".into(), json!(plan.full));
    let mut sections = Map::new();

    let freshness_samples = plan.scale(100, 200);
    if plan.wants("freshness") {
        let tight = Bench::start(
            "tight",
            vec![("SSE_FEED_INTERVAL_MS".into(), TIGHT_FEED_MS.to_string())],
        )
        .await?;
        let token = tight.deploy_tokens(1).await?[0];
        let latencies =
            freshness::measure(&tight, Transport::FunctionUrl, token, freshness_samples).await?;
        sections.insert(
            "freshness_tight".into(),
            freshness::report(TIGHT_FEED_MS, &latencies),
        );
        tight.stop();
        eprintln!("bench: freshness at {TIGHT_FEED_MS} ms done");
    }

    let bench = Bench::start("default", vec![]).await?;
    let tokens = bench.deploy_tokens(100).await?;
    if plan.wants("freshness") {
        let latencies =
            freshness::measure(&bench, Transport::FunctionUrl, tokens[0], freshness_samples)
                .await?;
        sections.insert(
            "freshness_default".into(),
            freshness::report(DEFAULT_FEED_MS, &latencies),
        );
        eprintln!("bench: freshness at {DEFAULT_FEED_MS} ms done");
        let latencies =
            freshness::measure(&bench, Transport::Server, tokens[0], freshness_samples).await?;
        sections.insert(
            "freshness_service".into(),
            freshness::report_service(DEFAULT_LOG_MS, &latencies),
        );
        eprintln!("bench: freshness through the server done");
    }
    let mut owners = vec![];
    let mut tiers = vec![];
    let blocks = plan.scale(10, 20);
    if plan.wants("scale") {
        bench.clear_sessions().await?;
        tiers = rpc_cost::tiers(&bench, &tokens, &[1, 100], blocks, &mut owners).await?;
        drained(&bench).await;
        let window = Duration::from_secs(plan.scale(20, 60) as u64);
        let clients = clients::run(&bench, &owners, &tokens, 100, window).await?;
        sections.insert("clients_and_baseline".into(), clients);
        eprintln!("bench: clients window done");
        drained(&bench).await;
        // Fan-out keeps the 10 connections per owner. 100 connections here: at 500
        // (tried: all 2,500 updates delivered) their 2,500 feed queries a second saturate
        // DynamoDB Local on this 2-core machine and the figure measures the emulator.
        let connections = plan.scale(100, 120);
        let fanout = fanout::run(&bench, &owners[..connections / 10], &tokens, connections).await?;
        sections.insert("fanout".into(), fanout);
        eprintln!("bench: fan-out done");
    }
    if plan.wants("service") {
        drained(&bench).await;
        let sizes = service::Sizes {
            wallets: 1_000,
            streams: vec![100, 1_000, 10_000],
            quiet: Duration::from_secs(plan.scale(20, 60) as u64),
        };
        let result = service::run(&bench, &tokens[..2], &sizes).await?;
        sections.insert("service_cost".into(), service_cost::report(&result));
        sections.insert("service".into(), result);
        eprintln!("bench: service done");
    }
    if plan.wants("snapshot") {
        let runs = plan.scale(3, 5);
        let (result, snapshot_owners) = snapshot::run(&bench, &tokens[..50], runs).await?;
        sections.insert("initial_snapshot".into(), result);
        // The api function's memory peak so far: every route ran, the 5,000-token sessions
        // (the largest token list and snapshot) just now.
        sections.insert("api_function_memory".into(), function_memory::report());
        // Their 10,000 values each would weigh on the larger tiers: stop watching them.
        bench.delete_sessions(&snapshot_owners).await?;
        eprintln!("bench: snapshot done");
    }
    if plan.wants("scale") {
        let big = plan.scale(1_000, 10_000);
        let mut sizes = vec![big];
        if plan.full {
            sizes.insert(0, 1_000);
        }
        tiers.extend(rpc_cost::tiers(&bench, &tokens, &sizes, blocks, &mut owners).await?);
        // Mainnet's 12 s blocks: the spread sweep's share of each block is 12 times larger.
        // The first measured block also comes 12 s after the last one.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let slow = rpc_cost::measure_blocks(
            &bench,
            &owners,
            &tokens,
            0,
            plan.scale(3, 6),
            Duration::from_secs(12),
        )
        .await?;
        eprintln!(
            "bench: {} owners, 12 s blocks: {:.2} requests per block",
            owners.len(),
            slow.rpc_per_block()
        );
        let mut slow_json = slow.to_json();
        slow_json["owners"] = json!(owners.len());
        slow_json["seconds_between_blocks"] = json!(12);
        sections.insert("rpc_per_block_12s_blocks".into(), slow_json);
        let tiers_json: Vec<Value> = tiers.iter().map(|t| t.to_json(tokens.len())).collect();
        sections.insert("rpc_per_block".into(), rpc_cost::report(&tiers));
        sections.insert("rpc_per_block_tiers".into(), json!(tiers_json));
        sections.insert(
            "poller_footprint".into(),
            footprint::report(&tiers, tokens.len()),
        );
        let fanout = sections.get("fanout").cloned().unwrap_or_default();
        sections.insert("table_cost".into(), table_cost::report(&tiers, &fanout));
        eprintln!("bench: scale sections done");
    }
    bench.stop();

    let summary = summary::render(&sections);
    report.insert("results".into(), Value::Object(sections));
    report.insert(
        "duration_s".into(),
        json!(stats::round(started.elapsed().as_secs_f64())),
    );
    report.insert("load_average_at_end".into(), machine::load_average());
    let root = local_stack::tools::Tools::locate()?.root;
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("results.json");
    let text = serde_json::to_string_pretty(&Value::Object(report))?;
    std::fs::write(&path, &text)?;
    println!("{summary}");
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}

/// Lets the fanout finish the stream records of a load before a latency measurement.
async fn drained(bench: &Bench) {
    if !bench.wait_feed_drained(Duration::from_secs(90)).await {
        eprintln!("bench: the fanout was still writing feed entries after 90 s; measuring anyway");
    }
}
