//! `make bench`: latency, RPC cost, scale, memory and table cost of live-balances, measured on
//! the real local stack (DynamoDB Local, anvil, `cargo lambda watch`, the pump, the poller)
//! beside a polling baseline, plus the node cost of each native-balance mode and the service
//! behind a provider-like node, written to `target/bench/results.json` with a summary.
//!
//! A benchmark reports; it fails only when the system is wrong (an update never arrives, a
//! snapshot is incomplete), never because the machine is slow. `BENCH_ONLY=snapshot,scale`
//! runs a subset of `freshness`, `clients`, `fanout`, `fanout_pace`, `service`, `snapshot`,
//! `scale`, `webhooks`, `orders`, `native`, `providers`;
//! `BENCH_FULL=1`
//! runs larger samples.
// The churn report is one `json!` deeper than the default limit expands.
#![recursion_limit = "256"]

mod baseline;
mod churn;
mod clients;
mod context;
mod fanout;
mod fanout_pace;
mod freshness;
mod function_memory;
mod item_size;
mod listeners;
mod machine;
mod native_cost;
mod orders;
mod procfs;
mod providers;
mod proxy;
mod rpc_cost;
mod scale;
mod service;
mod service_cost;
mod snapshot;
mod stats;
mod streams;
mod summary;
mod table_cost;
mod tokens;
mod webhooks;

use std::time::Duration;

use alloy::primitives::Address;
use e2e::{Transport, fresh_owner};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use context::Bench;

/// Default SSE feed interval of the api (`SSE_FEED_INTERVAL_MS`, core/src/config.rs).
const DEFAULT_FEED_MS: u64 = 200;
/// The tighter setting measured beside it.
const TIGHT_FEED_MS: u64 = 50;
/// Every section's name, for `BENCH_ONLY`.
const SECTIONS: [&str; 11] = [
    "freshness",
    "clients",
    "fanout",
    "fanout_pace",
    "service",
    "snapshot",
    "scale",
    "webhooks",
    "orders",
    "native",
    "providers",
];
/// Wallets the fanout pace's block changes (as many as the service section's bursts a block).
const PACE_WALLETS: usize = 400;
/// Wallets on the multi-wallet stream whose freshness is measured beside the single one's.
const STREAM_WALLETS: usize = 10;
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
    if let Some(unknown) = plan
        .only
        .iter()
        .flatten()
        .find(|s| !SECTIONS.contains(&s.as_str()))
    {
        anyhow::bail!("BENCH_ONLY: no section {unknown:?}; sections are {SECTIONS:?}");
    }
    let started = Instant::now();
    let mut report = Map::new();
    report.insert("machine".into(), machine::describe());
    report.insert("started_utc".into(), json!(machine::utc_now()));
    report.insert(
        "profile".into(),
        json!(format!(
            "debug: the poller and pump run from target/debug, as `make build` builds them; the functions (cargo lambda watch) from target/{}",
            context::functions_profile()
        )),
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

    if [
        "freshness",
        "clients",
        "fanout",
        "fanout_pace",
        "service",
        "snapshot",
    ]
    .iter()
    .any(|s| plan.wants(s))
    {
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
            // The same, for one multi-wallet stream of 10 wallets (issue 19), on both
            // transports: each transfer timed to its own wallet's update.
            for (transport, key) in [
                (Transport::FunctionUrl, "freshness_10_wallet_stream"),
                (Transport::Server, "freshness_10_wallet_stream_service"),
            ] {
                let latencies = freshness::measure_many(
                    &bench,
                    transport,
                    tokens[0],
                    STREAM_WALLETS,
                    freshness_samples,
                )
                .await?;
                let mut section = match transport {
                    Transport::FunctionUrl => freshness::report(DEFAULT_FEED_MS, &latencies),
                    Transport::Server => freshness::report_service(DEFAULT_LOG_MS, &latencies),
                };
                section["wallets_on_the_stream"] = json!(STREAM_WALLETS);
                sections.insert(key.into(), section);
            }
            eprintln!("bench: freshness of a {STREAM_WALLETS}-wallet stream done");
        }
        if plan.wants("clients") || plan.wants("fanout") {
            let owners = watched_owners(&bench, &tokens, 100).await?;
            if plan.wants("clients") {
                let window = Duration::from_secs(plan.scale(20, 60) as u64);
                let clients = clients::run(&bench, &owners, &tokens, 100, window).await?;
                sections.insert("clients_and_baseline".into(), clients);
                eprintln!("bench: clients window done");
                drained(&bench).await;
            }
            if plan.wants("fanout") {
                // Fan-out keeps the 10 connections per owner. 100 connections here: at
                // 500 (tried: all 2,500 updates delivered) their 2,500 feed queries a second
                // saturate DynamoDB Local on this 2-core machine and the figure measures the
                // emulator.
                let connections = plan.scale(100, 120);
                let fanout =
                    fanout::run(&bench, &owners[..connections / 10], &tokens, connections).await?;
                sections.insert("fanout".into(), fanout);
                eprintln!("bench: fan-out done");
                drained(&bench).await;
            }
        }
        if plan.wants("fanout_pace") {
            let owners = watched_owners(&bench, &tokens[..1], PACE_WALLETS).await?;
            let pace = fanout_pace::run(&bench, &owners, tokens[0]).await?;
            sections.insert("fanout_pace".into(), pace);
            eprintln!("bench: fanout pace done");
            drained(&bench).await;
        }
        if plan.wants("service") {
            let sizes = service::Sizes {
                wallets: 1_000,
                streams: vec![100, 1_000, 10_000],
                quiet: Duration::from_secs(plan.scale(20, 60) as u64),
            };
            let result = service::run(&bench, &tokens[..2], &sizes).await?;
            sections.insert("service_cost".into(), service_cost::report(&result));
            sections.insert("service".into(), result);
            eprintln!("bench: service done");
            drained(&bench).await;
        }
        if plan.wants("snapshot") {
            let list = bench
                .token_list("five-thousand", &tokens, snapshot::LIST_TOKENS)
                .await?;
            let runs = plan.scale(5, 15);
            let (result, _) = snapshot::run(&bench, &list, runs, &[]).await?;
            sections.insert("initial_snapshot".into(), result);
            // The same sessions naming one Permit2 spender (Permit2 installed as on a real chain).
            e2e::permit2::install_permit2(&bench.env.stack.rpc_url).await?;
            let router = alloy::primitives::Address::repeat_byte(0x52);
            let (result, _) = snapshot::run(&bench, &list, plan.scale(3, 5), &[router]).await?;
            sections.insert("initial_snapshot_permit2".into(), result);
            // The api function's memory peak so far: every route ran, the 5,000-token sessions
            // (the largest token list and snapshot) just now.
            sections.insert("api_function_memory".into(), function_memory::report());
            eprintln!("bench: snapshot done");
        }
        bench.stop();
    }

    if plan.wants("webhooks") {
        // A stack of its own: the throughput window's consumer reads the stream from its
        // start, so it should hold only this section's records.
        let bench = Bench::start("webhooks", vec![]).await?;
        let token = bench.deploy_tokens(1).await?[0];
        let latencies = webhooks::latency(&bench, token, plan.scale(100, 200)).await?;
        eprintln!("bench: webhook latency done");
        let throughput = webhooks::throughput(&bench, token, 20, plan.scale(10, 25)).await?;
        sections.insert("webhooks".into(), webhooks::report(&latencies, throughput));
        eprintln!("bench: webhook throughput done");
        bench.stop();
    }

    if plan.wants("orders") {
        // A stack of its own: every order registration is a session write, more from this
        // machine in a minute than the default per-source limit allows.
        let bench = Bench::start(
            "orders",
            vec![(
                "SESSION_WRITES_PER_SOURCE_PER_MINUTE".into(),
                "100000".into(),
            )],
        )
        .await?;
        let token = bench.deploy_tokens(1).await?[0];
        sections.insert(
            "orders".into(),
            orders::run(&bench, token, &[0, 1, 10]).await?,
        );
        bench.stop();
    }

    if plan.wants("scale") {
        let windows = scale::Windows {
            fast_blocks: plan.scale(20, 60),
            slow_blocks: plan.scale(3, 10),
            busy_blocks: plan.scale(5, 20),
        };
        // `BENCH_WALLETS=10000` measures only some sizes (profiling one of them).
        let sizes: Vec<usize> = match std::env::var("BENCH_WALLETS") {
            Ok(v) if !v.is_empty() => v
                .split(',')
                .map(|s| s.trim().parse())
                .collect::<Result<_, _>>()?,
            _ => vec![1, 1_000, 10_000],
        };
        // Session churn at 10,000 wallets and above (`BENCH_CHURN_WALLETS` to choose).
        let churn = scale::Churn {
            sizes: match std::env::var("BENCH_CHURN_WALLETS") {
                Ok(v) if !v.is_empty() => v
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?,
                _ => sizes.iter().copied().filter(|s| *s >= 10_000).collect(),
            },
            blocks: plan.scale(20, 60),
        };
        // `BENCH_SCALE_MODES=traces-release` measures only some poller runs (see `scale::MODES`).
        let modes: Vec<String> = std::env::var("BENCH_SCALE_MODES")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        let tiers = scale::run(&sizes, windows, &churn, &modes).await?;
        sections.insert("scale".into(), scale::report(&tiers));
        let fanout = sections.get("fanout").cloned().unwrap_or_default();
        sections.insert("table_cost".into(), table_cost::report(&tiers, &fanout));
        eprintln!("bench: scale done");
    }

    if plan.wants("native") {
        let sizes: Vec<usize> = match std::env::var("BENCH_WALLETS") {
            Ok(v) if !v.is_empty() => v
                .split(',')
                .map(|s| s.trim().parse())
                .collect::<Result<_, _>>()?,
            _ => vec![1, 1_000, 10_000],
        };
        let runs = native_cost::run(&sizes, plan.scale(5, 20)).await?;
        sections.insert("native_cost".into(), native_cost::report(&runs));
        eprintln!("bench: native cost done");
    }

    if plan.wants("providers") {
        let runs = providers::run().await?;
        sections.insert("providers".into(), providers::report(&runs));
        eprintln!("bench: providers done");
    }

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

/// `count` fresh owners with sessions of `tokens`, loaded by the poller.
async fn watched_owners(
    bench: &Bench,
    tokens: &[Address],
    count: usize,
) -> anyhow::Result<Vec<Address>> {
    let owners: Vec<Address> = (0..count).map(|_| fresh_owner()).collect();
    bench.write_sessions(&owners, tokens).await?;
    bench.mine().await?;
    let block = bench.block_number().await?;
    bench
        .poller_settled(block, Duration::from_secs(300))
        .await?;
    Ok(owners)
}

/// Lets the fanout finish the stream records of a load before a latency measurement.
async fn drained(bench: &Bench) {
    if !bench.wait_feed_drained(Duration::from_secs(90)).await {
        eprintln!("bench: the fanout was still writing feed entries after 90 s; measuring anyway");
    }
}
