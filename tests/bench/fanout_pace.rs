//! The fanout's pace at DynamoDB's latency: one block changes a value of each of many watched
//! wallets, while every request the functions make to the table is held `TABLE_LATENCY`
//! first. DynamoDB Local answers on this machine in well under a millisecond, which hides
//! what a handler's round trips in a row cost; DynamoDB answers in a few. Reported: the time
//! from the block to the first and to the last of its feed entries, and entries a second
//! between them. The fanout's `FANOUT_CONCURRENCY` is whatever the bench's environment sets
//! (its default when unset): a run with `FANOUT_CONCURRENCY=1` measures one record at a time.

use std::time::Duration;

use alloy::primitives::Address;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::stats::round;

/// What each of the functions' table requests waits before DynamoDB Local sees it.
const TABLE_LATENCY: Duration = Duration::from_millis(5);
/// How long the block's feed entries may take before the section fails.
const DEADLINE: Duration = Duration::from_secs(180);

pub async fn run(bench: &Bench, owners: &[Address], token: Address) -> anyhow::Result<Value> {
    let feed_writes = || {
        bench
            .functions_db
            .counts()
            .get("PutItem feed")
            .map_or(0, |c| c.requests)
    };
    // The sessions as the api leaves them, complete (fresh owners hold nothing to store): the
    // poller watches them from its next step, not after its grace for an unfinished writer.
    let table = bench.env.stack.table().await;
    for owner in owners {
        table.complete_session(bench.chain_id(), owner, 1).await?;
    }
    for _ in 0..2 {
        bench.mine().await?;
        let block = bench.block_number().await?;
        bench.poller_settled(block, DEADLINE).await?;
    }
    bench.functions_db.set_latency(TABLE_LATENCY);
    let measured = async {
        let before = feed_writes();
        bench.automine(false).await?;
        let sent = async {
            for owner in owners {
                bench.send_transfer(token, *owner, 3).await?;
            }
            bench.mine().await
        }
        .await;
        bench.automine(true).await?;
        sent?;
        let mined = Instant::now();
        let (mut first, until) = (None, mined + DEADLINE);
        loop {
            let written = feed_writes() - before;
            if written > 0 && first.is_none() {
                first = Some(mined.elapsed());
            }
            if written >= owners.len() as u64 {
                break;
            }
            anyhow::ensure!(
                Instant::now() < until,
                "the fanout wrote {written} of {} feed entries in {DEADLINE:?}",
                owners.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok((first.unwrap_or_default(), mined.elapsed()))
    }
    .await;
    bench.functions_db.set_latency(Duration::ZERO);
    let (first, last) = measured?;
    let spread = (last - first).as_secs_f64().max(0.001);
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0);
    let concurrency = std::env::var("FANOUT_CONCURRENCY").unwrap_or_else(|_| "default".into());
    eprintln!(
        "bench: fanout pace at {TABLE_LATENCY:?} a table request, FANOUT_CONCURRENCY {concurrency}: {} entries, block to first {} ms, to last {} ms",
        owners.len(),
        ms(first),
        ms(last)
    );
    Ok(json!({
        "wallets_changed_in_one_block": owners.len(),
        "table_latency_ms": ms(TABLE_LATENCY),
        "fanout_concurrency": concurrency,
        "block_to_first_feed_entry_ms": ms(first),
        "block_to_last_feed_entry_ms": ms(last),
        "feed_entries_per_second": round(owners.len() as f64 / spread),
    }))
}
