//! The api server at scale, on its own: one server process (started for this section, with a
//! counting proxy of its own in front of DynamoDB, so every unit counted is the server's)
//! holding 100, 1,000 and 10,000 streams over 1,000 wallets. Reported: the table units it
//! spends per minute at each size while nothing changes (flat in connections, or it is
//! wrong), then with 10 and 100 wallets changing a block (growing with changes), then one
//! burst changing every wallet — delivery to every stream, latency, memory and CPU.

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::Address;
use e2e::fresh_owner;
use live_balances::domain::address::lower;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::procfs::{cpu_seconds, memory_mib};
use crate::proxy::{CountingProxy, Counts, Mode, since, total};
use crate::stats::{round, summary_ms};
use crate::streams::Streams;

/// Transfers per block the burst sends at most (a block holds about 580 first transfers).
const BURST_PER_BLOCK: usize = 400;
/// Blocks of each "wallets changing" window, one a second.
const CHANGE_BLOCKS: usize = 10;

pub struct Sizes {
    pub wallets: usize,
    pub streams: Vec<usize>,
    pub quiet: Duration,
}

fn per_minute(c: &Counts, window: Duration) -> Value {
    let t = total(c);
    let scale = 60.0 / window.as_secs_f64();
    json!({
        "read_units": round(t.read_units * scale),
        "write_units": round(t.write_units * scale),
        "requests": round(t.requests as f64 * scale),
    })
}

/// Starts the section's own server and waits until the poller has loaded `owners`' values.
pub async fn run(bench: &Bench, tokens: &[Address], sizes: &Sizes) -> anyhow::Result<Value> {
    let (changing, bursting) = (tokens[0], tokens[1]);
    let stack = &bench.env.stack;
    let db = CountingProxy::start(stack.options.dynamodb_port, Mode::DynamoDb).await?;
    let port = local_stack::process::free_port()?;
    let url = stack
        .start_server_as(
            "server-scale",
            port,
            &[("DYNAMODB_ENDPOINT".to_string(), db.http_url())],
        )
        .await?;
    let pid = stack
        .pid_of("server-scale")
        .ok_or_else(|| anyhow::anyhow!("server-scale not running"))?;
    let result = measure(bench, &db, &url, pid, changing, bursting, sizes).await;
    stack.stop_service("server-scale")?;
    result
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    bench: &Bench,
    db: &CountingProxy,
    url: &str,
    pid: u32,
    changing: Address,
    bursting: Address,
    sizes: &Sizes,
) -> anyhow::Result<Value> {
    let owners: Vec<Address> = (0..sizes.wallets).map(|_| fresh_owner()).collect();
    bench.write_sessions(&owners, &[changing, bursting]).await?;
    // The poller reads and stores every new wallet's values at its next block.
    bench.mine().await?;
    let block = bench.block_number().await?;
    bench
        .poller_settled(block, Duration::from_secs(120))
        .await?;
    crate::drained(bench).await;
    let (rss_idle, _) = memory_mib(pid)?;
    let section_db = db.counts();

    let mut streams = Streams::new();
    let mut tiers = vec![];
    for &target in &sizes.streams {
        let opening = Instant::now();
        let db0 = db.counts();
        let cpu0 = cpu_seconds(pid)?;
        streams
            .open(url, bench.chain_id(), &owners, target - streams.len())
            .await?;
        let opened_in = opening.elapsed();
        let open_db = since(&db.counts(), &db0);
        let open_cpu = cpu_seconds(pid)? - cpu0;
        let new = target
            - tiers
                .last()
                .map_or(0, |t: &Value| t["streams"].as_u64().unwrap_or(0) as usize);
        // Settle (the last opens' own reads), then nothing changes for the window.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (db0, cpu0) = (db.counts(), cpu_seconds(pid)?);
        tokio::time::sleep(sizes.quiet).await;
        let quiet = since(&db.counts(), &db0);
        let cpu = cpu_seconds(pid)? - cpu0;
        let (rss, hwm) = memory_mib(pid)?;
        eprintln!(
            "bench: server holds {target} streams ({:.0} MiB): {:.0} read units a minute while idle",
            rss,
            total(&quiet).read_units * 60.0 / sizes.quiet.as_secs_f64()
        );
        tiers.push(json!({
            "streams": target,
            "wallets": sizes.wallets.min(target),
            "opened_seconds": round(opened_in.as_secs_f64()),
            "open_units_per_new_stream": {
                "read": round(total(&open_db).read_units / new.max(1) as f64 * 100.0) / 100.0,
                "write": round(total(&open_db).write_units / new.max(1) as f64 * 100.0) / 100.0,
            },
            "open_cpu_ms_per_new_stream": round(open_cpu * 1000.0 / new.max(1) as f64 * 100.0) / 100.0,
            "idle_per_minute": per_minute(&quiet, sizes.quiet),
            "idle_by_operation": quiet,
            "cpu_share_of_one_core_idle": round(cpu / sizes.quiet.as_secs_f64() * 1000.0) / 1000.0,
            "rss_mib": round(rss),
            "rss_peak_mib": round(hwm),
        }));
    }
    let ended_before_changes = streams.ended();

    // Wallets changing, with every stream open: reads follow the changed wallets.
    let mut changes = vec![];
    let mut next_owner = 0;
    for per_block in [10usize, 100] {
        let (db0, cpu0) = (db.counts(), cpu_seconds(pid)?);
        let started = Instant::now();
        bench.automine(false).await?;
        let driven = async {
            for b in 0..CHANGE_BLOCKS {
                tokio::time::sleep_until(started + Duration::from_secs(b as u64)).await;
                for _ in 0..per_block {
                    bench
                        .send_transfer(changing, owners[next_owner % owners.len()], 1)
                        .await?;
                    next_owner += 1;
                }
                bench.mine().await?;
            }
            tokio::time::sleep_until(started + Duration::from_secs(CHANGE_BLOCKS as u64 + 2)).await;
            anyhow::Ok(())
        }
        .await;
        bench.automine(true).await?;
        driven?;
        let window = started.elapsed();
        let counts = since(&db.counts(), &db0);
        let cpu = cpu_seconds(pid)? - cpu0;
        changes.push(json!({
            "wallets_changed_per_block": per_block,
            "blocks": CHANGE_BLOCKS,
            "window_seconds": round(window.as_secs_f64()),
            "per_minute": per_minute(&counts, window),
            "by_operation": counts,
            "feed_reads_per_changed_wallet": round(
                counts.get("Query feed").map_or(0.0, |c| c.requests as f64)
                    / (per_block * CHANGE_BLOCKS) as f64 * 100.0) / 100.0,
            "cpu_share_of_one_core": round(cpu / window.as_secs_f64() * 1000.0) / 1000.0,
        }));
        crate::drained(bench).await;
    }

    // One burst that changes every wallet: every stream must get its wallet's update.
    let before = streams.deliveries().len();
    let (db0, cpu0) = (db.counts(), cpu_seconds(pid)?);
    let mut mined: HashMap<Address, Instant> = HashMap::new();
    bench.automine(false).await?;
    let burst = async {
        for chunk in owners.chunks(BURST_PER_BLOCK) {
            for owner in chunk {
                bench.send_transfer(bursting, *owner, 7).await?;
            }
            bench.mine().await?;
            let at = Instant::now();
            for owner in chunk {
                mined.insert(*owner, at);
            }
        }
        anyhow::Ok(())
    }
    .await;
    bench.automine(true).await?;
    burst?;
    let expected = streams.len();
    let token = lower(&bursting);
    let until = Instant::now() + Duration::from_secs(120);
    let mut latencies = vec![];
    while Instant::now() < until {
        latencies = streams.deliveries()[before..]
            .iter()
            .filter(|(_, _, t, b, _)| *t == token && b == "7")
            .filter_map(|(_, owner, _, _, at)| {
                mined.get(owner).map(|m| (*at - *m).as_secs_f64() * 1000.0)
            })
            .collect();
        if latencies.len() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let burst_db = since(&db.counts(), &db0);
    let burst_cpu = cpu_seconds(pid)? - cpu0;
    let (rss, hwm) = memory_mib(pid)?;
    let ended = streams.ended();
    let pings = streams.pings();
    streams.close().await;
    // Later sections measure the poller without these wallets.
    bench.delete_sessions(&owners).await?;
    let keep_alives = since(&db.counts(), &section_db)
        .get("UpdateItem session")
        .copied()
        .unwrap_or_default();
    anyhow::ensure!(
        latencies.len() == expected,
        "the burst reached {} of {expected} streams",
        latencies.len()
    );
    let streams_max = sizes.streams.iter().copied().max().unwrap_or(0);
    Ok(json!({
        "wallets": sizes.wallets,
        "streams_per_wallet_at_most": streams_max / sizes.wallets.max(1),
        "quiet_window_seconds": sizes.quiet.as_secs(),
        "rss_mib_before_streams": round(rss_idle),
        "tiers": tiers,
        "wallets_changing": changes,
        "burst": {
            "wallets_changed": owners.len(),
            "blocks": owners.len().div_ceil(BURST_PER_BLOCK),
            "streams": expected,
            "delivered": latencies.len(),
            "delivery": latencies.len() as f64 / expected.max(1) as f64,
            "latency_mined_to_received": summary_ms(&latencies),
            "table": per_minute(&burst_db, Duration::from_secs(60)),
            "by_operation": burst_db,
            "cpu_seconds": round(burst_cpu * 100.0) / 100.0,
            "rss_mib_after": round(rss),
            "rss_peak_mib": round(hwm),
        },
        "keep_alive": {
            "writes": keep_alives.requests,
            "write_units_per_write": round(keep_alives.write_units / keep_alives.requests.max(1) as f64 * 100.0) / 100.0,
            "every_seconds_in_this_run": 60,
        },
        "streams_ended_by_the_server": ended,
        "streams_ended_before_changes": ended_before_changes,
        "pings_received": pings,
        "target": {"streams": 10_000, "wallets": 1_000, "delivery": 1.0, "rss_mib_at_most": 500},
        "met": latencies.len() == expected && hwm <= 500.0 && streams_max >= 10_000,
        "units_source": "the server's own counting proxy in front of DynamoDB Local (ConsumedCapacity, reads floored at 1 unit per consistent request, 0.5 per eventually consistent one)",
    }))
}
