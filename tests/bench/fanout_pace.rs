//! The fanout's pace at DynamoDB's latency: one block changes a value of each of many watched
//! wallets, while every request the functions make to the table is held `TABLE_LATENCY`
//! first: DynamoDB answers in a few milliseconds whatever the load, which DynamoDB Local on an
//! idle machine does not show. Reported: the time
//! from the block to the first and to the last of its feed entries, and entries a second
//! between them. The fanout's `FANOUT_CONCURRENCY` is whatever the bench's environment sets
//! (its default when unset): a run with `FANOUT_CONCURRENCY=1` measures one record at a time.
//!
//! Beside it, the ceiling under every local fanout figure: the feed appends DynamoDB Local
//! itself takes a second on this machine, with nothing added. DynamoDB spreads a table's
//! writes over its partitions (a wallet's feed is a partition key of its own); the emulator
//! does not, so a fanout pace near this ceiling is the emulator's, not the fanout's.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use futures::{StreamExt, stream};
use live_balances::domain::model::{BalanceKey, FeedEntry, FeedPosition};
use live_balances::runtime::clock::unix_now;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::stats::round;

/// What each of the functions' table requests waits before DynamoDB Local sees it.
const TABLE_LATENCY: Duration = Duration::from_millis(5);
/// How long the block's feed entries may take before the section fails.
const DEADLINE: Duration = Duration::from_secs(180);
/// Feed appends timed straight against DynamoDB Local, at each of [`APPENDS_AT_ONCE`].
const CEILING_APPENDS: usize = 1000;
/// Appends in flight at once: one after another, as a wallet's entries go, and 16, as a
/// batch's wallets go at the fanout's default `FANOUT_CONCURRENCY`.
const APPENDS_AT_ONCE: [usize; 2] = [1, 16];
/// A chain no session watches: the ceiling's entries reach no stream or webhook.
const CEILING_CHAIN: u64 = 4_242_424_242;

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
    let mut ceiling = serde_json::Map::new();
    for at_once in APPENDS_AT_ONCE {
        let rate = emulator_appends_per_second(bench, at_once).await?;
        ceiling.insert(at_once.to_string(), json!(round(rate)));
    }
    let spread = (last - first).as_secs_f64().max(0.001);
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0);
    let concurrency = std::env::var("FANOUT_CONCURRENCY").unwrap_or_else(|_| "default".into());
    eprintln!(
        "bench: fanout pace at {TABLE_LATENCY:?} a table request, FANOUT_CONCURRENCY {concurrency}: {} entries, block to first {} ms, to last {} ms",
        owners.len(),
        ms(first),
        ms(last)
    );
    let rates: Vec<String> = ceiling
        .iter()
        .map(|(at_once, rate)| format!("{rate} with {at_once} at once"))
        .collect();
    eprintln!(
        "bench: DynamoDB Local's own feed appends a second: {}",
        rates.join(", ")
    );
    Ok(json!({
        "wallets_changed_in_one_block": owners.len(),
        "table_latency_ms": ms(TABLE_LATENCY),
        "fanout_concurrency": concurrency,
        "block_to_first_feed_entry_ms": ms(first),
        "block_to_last_feed_entry_ms": ms(last),
        "feed_entries_per_second": round(owners.len() as f64 / spread),
        "emulator_feed_appends_per_second_by_appends_at_once": ceiling,
    }))
}

/// Feed appends a second DynamoDB Local takes straight from this process, `at_once` in
/// flight: conditional writes of fresh entries, each to a wallet of its own, as the fanout
/// writes them.
async fn emulator_appends_per_second(bench: &Bench, at_once: usize) -> anyhow::Result<f64> {
    let table = bench.env.stack.table().await;
    let ttl = unix_now() + 3600;
    let entries = (1..=CEILING_APPENDS)
        .map(|i| {
            Ok(FeedEntry {
                position: FeedPosition::parse(&i.to_string())?,
                chain_id: CEILING_CHAIN,
                owner: e2e::fresh_owner(),
                key: BalanceKey::Balance {
                    token: Address::repeat_byte(0x42),
                },
                value: U256::from(i),
                previous: None,
                block: 1,
                tx_hash: None,
                version: 1,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let written: Vec<_> = stream::iter(&entries)
        .map(|entry| table.append_feed(entry, ttl))
        .buffer_unordered(at_once)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64().max(0.001);
    for result in written {
        result?;
    }
    Ok(CEILING_APPENDS as f64 / elapsed)
}
