//! The fanout handler: each stream record of a balance item whose value changed becomes one
//! entry in the owner's change feed, at the record's sequence number; then each wallet that
//! got entries is named once in its chain's change log, which long-lived servers tail to learn
//! which wallets to read (the feed stays the record of what changed; the log only points at it).
//!
//! Each wallet's records are processed in order, several wallets at once; the earliest record
//! that failed is reported as a batch item failure so Lambda retries from there (nothing after
//! it is skipped; what other wallets wrote after it is written again, a no-op since appends are
//! idempotent). A transient DynamoDB error (throttling, a server error, no answer) is first
//! retried here, with backoff: Lambda retries a batch only a few times before parking it, and
//! a parked record is a change no client ever sees. A refused request (permissions,
//! validation) is not: retrying cannot help. A change-log append that fails after its retries
//! reports the first record it covered, so the retried batch appends it again.
//!
//! Records of order items (registrations and status changes) become `order_status` entries,
//! and a wallet's value changes re-judge its orders on those tokens, once a batch (see
//! [`orders`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::diff::feed_entry;
use crate::settings::FanoutSettings;
use alloy::primitives::Address;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::{StreamExt, stream};
use lambda_runtime::{Error, LambdaEvent, tracing};
use live_balances::domain::model::{BalanceKey, FeedEntry, FeedEvent, FeedPosition};
use live_balances::runtime::clock::{unix_now, unix_now_ms};

mod diff;
pub mod settings;
mod telemetry;
use live_balances::storage::{
    ChainLogEntry, StorageError, StreamImage, Table, balance_item_from_image, image_is_first_read,
    image_version, retry,
};
use thiserror::Error;

mod orders;

pub use orders::{order_entry_for, reassess};

/// What the handler needs, built once per container.
#[derive(Debug, Clone)]
pub struct State {
    pub table: Table,
    pub feed_ttl: Duration,
    /// Whether wallets with new entries are named in the chain's change log.
    pub chain_log: bool,
    /// Wallets whose records are written at once.
    pub concurrency: usize,
}

impl State {
    pub fn new(table: Table, settings: &FanoutSettings) -> Self {
        Self {
            table,
            feed_ttl: settings.feed_ttl,
            chain_log: settings.chain_log_enabled,
            concurrency: settings.concurrency,
        }
    }
}

/// Why a record could not be turned into a feed entry.
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("record has no sequence number")]
    NoSequenceNumber,
    #[error("record sequence number is not a feed position: {0}")]
    BadSequenceNumber(String),
    #[error(transparent)]
    Image(#[from] StorageError),
}

/// The feed entry a record yields, if any.
pub fn entry_for(record: &EventRecord) -> Result<Option<FeedEntry>, RecordError> {
    let change = &record.change;
    let Some(new) = balance_item_from_image(&change.new_image)? else {
        return Ok(None);
    };
    let old = balance_item_from_image(&change.old_image)?;
    let position = record_position(record)?;
    Ok(feed_entry(
        old.as_ref(),
        &new,
        change_version(&change.old_image, &change.new_image),
        image_is_first_read(&change.new_image),
        position,
    ))
}

/// The feed position of a record's entry: its stream sequence number.
fn record_position(record: &EventRecord) -> Result<FeedPosition, RecordError> {
    let sequence = record
        .change
        .sequence_number
        .as_deref()
        .ok_or(RecordError::NoSequenceNumber)?;
    FeedPosition::parse(sequence).map_err(|_| RecordError::BadSequenceNumber(sequence.to_string()))
}

/// The feed entry a record yields, if any: a value change, or an order's status.
pub fn event_for(record: &EventRecord) -> Result<Option<FeedEvent>, RecordError> {
    if let Some(entry) = entry_for(record)? {
        return Ok(Some(FeedEvent::Value(entry)));
    }
    Ok(order_entry_for(record)?.map(FeedEvent::Order))
}

/// The version a change made, or 0 (unordered: always sent) when the write did not count
/// itself — a writer from before versions existed, still running during a rolling deploy,
/// leaves the version as it was, and stamping its change with that old version would make
/// streams take real news for old.
fn change_version(old: &StreamImage, new: &StreamImage) -> u64 {
    let version = image_version(new);
    if version > image_version(old) {
        version
    } else {
        0
    }
}

/// Runs one write of `event`'s record, retrying while DynamoDB is unavailable or throttling.
async fn with_retry<T, F, Fut>(what: &str, event: &FeedEvent, write: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>>,
{
    retry::with_retry(write, |attempt, error| {
        tracing::warn!(owner = %event.owner(), position = %event.position(), attempt, error, what, "write failed; retrying");
    })
    .await
}

/// Appends `event` to its wallet's feed.
async fn append_event(state: &State, event: &FeedEvent, ttl: u64) -> Result<(), StorageError> {
    match event {
        FeedEvent::Value(entry) => {
            with_retry("feed append", event, || state.table.append_feed(entry, ttl)).await?;
        }
        FeedEvent::Order(entry) => {
            with_retry("order status append", event, || {
                state.table.append_order_status(entry, ttl)
            })
            .await?;
        }
    }
    Ok(())
}

/// Names `entries` in their chains' change logs, retrying what DynamoDB did not take (each
/// attempt stamped anew, see `live_balances::storage::chain_log`). Returns what could not be
/// appended.
async fn append_chain_log_with_retry(
    state: &State,
    mut entries: Vec<ChainLogEntry>,
) -> Result<(), (StorageError, Vec<ChainLogEntry>)> {
    let mut retries = retry::Retries::new();
    loop {
        let error = match state.table.append_chain_log(&entries, unix_now_ms()).await {
            Ok(left) if left.is_empty() => return Ok(()),
            Ok(left) => {
                entries = left;
                StorageError::Unavailable(format!("{} change-log entries not taken", entries.len()))
            }
            Err(error @ StorageError::Unavailable(_)) => error,
            Err(error) => return Err((error, entries)),
        };
        tracing::warn!(entries = entries.len(), attempt = retries.attempt, %error, "change-log append failed; retrying");
        if !retries.wait().await {
            return Err((error, entries));
        }
    }
}

/// What a wallet's change-log entry covers: its newest position in this batch, and its first
/// record here (position and sequence number: where a retry must start to append it again).
struct WalletInBatch {
    log: ChainLogEntry,
    first: RetryFrom,
}

/// One change-log entry per wallet that got feed entries.
fn chain_log_entries(appended: &[Pending]) -> BTreeMap<(u64, Address), WalletInBatch> {
    let mut wallets: BTreeMap<(u64, Address), WalletInBatch> = BTreeMap::new();
    for (entry, sequence) in appended {
        let position = entry.position();
        wallets
            .entry((entry.chain_id(), entry.owner()))
            .and_modify(|w| w.log.position = w.log.position.clone().max(position.clone()))
            .or_insert_with(|| WalletInBatch {
                log: ChainLogEntry {
                    chain_id: entry.chain_id(),
                    owner: entry.owner(),
                    position: position.clone(),
                },
                first: (position.clone(), sequence.clone()),
            });
    }
    wallets
}

fn failure(sequence_number: Option<String>) -> DynamoDbBatchItemFailure {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = sequence_number;
    failure
}

/// A record's event and its sequence number (where a retry starts to handle it again).
type Pending = (FeedEvent, Option<String>);

/// Where a retried batch must start: a record's feed position and sequence number.
type RetryFrom = (FeedPosition, Option<String>);

/// The earlier of two places to retry from.
fn earlier(a: Option<RetryFrom>, b: Option<RetryFrom>) -> Option<RetryFrom> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A batch's events grouped by wallet, each wallet's in stream order; wallets in the order
/// they first appear.
fn by_wallet(events: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut index: HashMap<(u64, Address), usize> = HashMap::new();
    let mut wallets: Vec<Vec<Pending>> = vec![];
    for pending in events {
        let wallet = (pending.0.chain_id(), pending.0.owner());
        let at = *index.entry(wallet).or_insert_with(|| {
            wallets.push(vec![]);
            wallets.len() - 1
        });
        wallets[at].push(pending);
    }
    wallets
}

/// Records one wallet's events in stream order, stopping at the first that fails, then
/// re-judges its orders once on every value the appended entries changed.
///
/// Appends go one after another: a reader of the feed moves its cursor to the newest entry it
/// saw, so an entry appended after a newer one would be skipped. Orders are judged once the
/// entries are in, not after each: they are judged on the values the table holds (see
/// [`orders`]), which every record of the batch already wrote, so a wallet's first 20 values
/// cost one query of its orders instead of 20. An order registered after that query was judged
/// on registration on values at least as new as the batch's.
async fn record_wallet(
    state: &State,
    events: Vec<Pending>,
    ttl: u64,
) -> (Vec<Pending>, Option<RetryFrom>) {
    let mut appended = Vec::with_capacity(events.len());
    let mut failed = None;
    for (event, sequence) in events {
        if let Err(error) = append_event(state, &event, ttl).await {
            tracing::error!(owner = %event.owner(), position = %event.position(), %error, "record failed; retrying from it");
            telemetry::failed("record");
            failed = Some((event.position().clone(), sequence));
            break;
        }
        tracing::debug!(
            chain = event.chain_id(),
            owner = %event.owner(),
            position = %event.position(),
            "feed entry appended"
        );
        telemetry::feed_entry_written(event.chain_id());
        appended.push((event, sequence));
    }
    // Judged once for every value appended; a failure retries the batch from the wallet's
    // first value change (appending again is a no-op).
    let changed: Vec<BalanceKey> = appended
        .iter()
        .filter_map(|(event, _)| match event {
            FeedEvent::Value(entry) => Some(entry.key),
            FeedEvent::Order(_) => None,
        })
        .collect();
    let first_value = appended
        .iter()
        .find(|(event, _)| matches!(event, FeedEvent::Value(_)));
    if let Some((event, sequence)) = first_value {
        let owner = event.owner();
        let judged = with_retry("order reassessment", event, || {
            reassess(&state.table, event.chain_id(), &owner, &changed)
        })
        .await;
        if let Err(error) = judged {
            tracing::error!(%owner, position = %event.position(), %error, "order reassessment failed; retrying from the wallet's first value change");
            telemetry::failed("record");
            failed = earlier(failed, Some((event.position().clone(), sequence.clone())));
        }
    }
    (appended, failed)
}

/// Handles one batch of stream records. Wallets are written at once (up to
/// `FANOUT_CONCURRENCY`), each wallet's records in order: a batch of 100 records takes a few
/// round trips to the table rather than 200 in a row, so one stream shard keeps up with a
/// busy chain. A failure is reported at the earliest record that failed; the retried batch
/// handles again what other wallets wrote after it, which appends and re-judging make safe.
pub async fn handle(
    state: &State,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let ttl = unix_now().saturating_add(state.feed_ttl.as_secs());
    let mut response = DynamoDbEventResponse::default();
    telemetry::records(event.payload.records.len());
    // Records are read in order up to the first that is not a valid item image: the batch is
    // retried from it, so nothing after it is handled now.
    let mut events = vec![];
    let mut failed_at: Option<RetryFrom> = None;
    for record in &event.payload.records {
        match event_for(record) {
            Ok(Some(event)) => events.push((event, record.change.sequence_number.clone())),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(event_id = %record.event_id, %error, "record failed; retrying from it");
                telemetry::failed("record");
                let sequence = record.change.sequence_number.clone();
                let position = sequence
                    .as_deref()
                    .and_then(|s| FeedPosition::parse(s).ok())
                    .unwrap_or_else(FeedPosition::start);
                failed_at = Some((position, sequence));
                break;
            }
        }
    }
    let written: Vec<_> = stream::iter(by_wallet(events))
        .map(|wallet| record_wallet(state, wallet, ttl))
        .buffer_unordered(state.concurrency)
        .collect()
        .await;
    let mut appended = vec![];
    for (wallet, failed) in written {
        appended.extend(wallet);
        failed_at = earlier(failed_at, failed);
    }
    if state.chain_log && !appended.is_empty() {
        let wallets = chain_log_entries(&appended);
        let entries = wallets.values().map(|w| w.log.clone()).collect();
        if let Err((error, left)) = append_chain_log_with_retry(state, entries).await {
            tracing::error!(wallets = left.len(), %error, "change-log append failed; retrying from the first record it covers");
            telemetry::failed("change_log");
            // The earliest record of a wallet not named: the retried batch appends it again.
            let first = left
                .iter()
                .filter_map(|log| wallets.get(&(log.chain_id, log.owner)))
                .map(|w| w.first.clone())
                .min_by(|a, b| a.0.cmp(&b.0));
            failed_at = earlier(failed_at, first);
        }
    }
    if let Some((_, sequence)) = failed_at {
        response.batch_item_failures.push(failure(sequence));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use live_balances::domain::model::BalanceKey;

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn modify_of_a_balance_becomes_a_feed_entry() {
        let ev = event(include_str!("../tests/data/balance_modify.json"));
        let entry = entry_for(&ev.records[0]).unwrap().unwrap();
        assert_eq!(entry.value.to_string(), "1500000");
        assert_eq!(
            entry.previous.map(|p| p.to_string()).as_deref(),
            Some("1000000")
        );
        assert_eq!(entry.block, 124);
        assert_eq!(
            entry.position,
            FeedPosition::parse("4000000000000000000000001").unwrap()
        );
        assert!(matches!(entry.key, BalanceKey::Balance { .. }));
    }

    #[test]
    fn insert_has_no_previous_and_other_items_are_ignored() {
        let ev = event(include_str!("../tests/data/mixed_batch.json"));
        // The first read of a newly tracked value.
        let insert = entry_for(&ev.records[0]).unwrap().unwrap();
        assert_eq!(insert.previous, None);
        // The same insert written as a change of a tracked value: it was zero (sparse values
        // store no zeros).
        let mut change = ev.records[0].clone();
        change.change.new_image.remove("first");
        let entry = entry_for(&change).unwrap().unwrap();
        assert_eq!(entry.previous.map(|p| p.to_string()).as_deref(), Some("0"));
        // A session item and a feed item are not balances.
        assert!(entry_for(&ev.records[1]).unwrap().is_none());
        assert!(entry_for(&ev.records[2]).unwrap().is_none());
        // Same value at a later block: nothing for clients.
        assert!(entry_for(&ev.records[3]).unwrap().is_none());
    }

    /// The events of `records` (balance changes of `owners[i]` at position `i + 1`).
    fn events(owners: &[u8]) -> Vec<Pending> {
        let ev = event(include_str!("../tests/data/balance_modify.json"));
        let entry = entry_for(&ev.records[0]).unwrap().unwrap();
        owners
            .iter()
            .enumerate()
            .map(|(i, owner)| {
                let mut entry = entry.clone();
                entry.owner = Address::repeat_byte(*owner);
                entry.position = FeedPosition::parse(&(i + 1).to_string()).unwrap();
                (FeedEvent::Value(entry), Some((i + 1).to_string()))
            })
            .collect()
    }

    #[test]
    fn wallets_keep_their_records_in_order() {
        let wallets = by_wallet(events(&[1, 2, 1, 3, 2, 1]));
        let sequences: Vec<Vec<&str>> = wallets
            .iter()
            .map(|w| w.iter().map(|(_, s)| s.as_deref().unwrap()).collect())
            .collect();
        assert_eq!(sequences, [vec!["1", "3", "6"], vec!["2", "5"], vec!["4"]]);
        let owners: Vec<Address> = wallets.iter().map(|w| w[0].0.owner()).collect();
        assert_eq!(owners, [1, 2, 3].map(Address::repeat_byte));
    }

    #[test]
    fn a_retry_starts_at_the_earliest_failure() {
        let at = |n: u32| {
            Some((
                FeedPosition::parse(&n.to_string()).unwrap(),
                Some(n.to_string()),
            ))
        };
        assert_eq!(earlier(at(7), at(3)), at(3));
        assert_eq!(earlier(at(3), at(7)), at(3));
        assert_eq!(earlier(None, at(7)), at(7));
        assert_eq!(earlier(at(7), None), at(7));
        assert_eq!(earlier(None, None), None);
    }

    #[test]
    fn poison_record_is_an_error_not_a_panic() {
        let ev = event(include_str!("../tests/data/poison.json"));
        assert!(matches!(
            entry_for(&ev.records[0]),
            Err(RecordError::Image(_))
        ));
    }
}

#[cfg(test)]
mod props {
    //! Property tests of stream-record parsing on arbitrary records: never a panic, an entry
    //! only ever at the record's own sequence number, and a valid change yields exactly the
    //! entry its images and sequence number say.

    use live_balances::storage::stream_record;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    const OWNER: &str = "0xd8da6bf26964af9d7eed9e03e53415d37aa96045";
    const TOKEN: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";

    /// Any DynamoDB-JSON attribute value, well-typed or not.
    fn attribute() -> impl Strategy<Value = Value> {
        prop_oneof![
            "\\PC{0,12}".prop_map(|s| json!({ "S": s })),
            "[0-9]{1,80}".prop_map(|s| json!({ "S": s })),
            "-?[0-9]{1,22}".prop_map(|n| json!({ "N": n })),
            any::<bool>().prop_map(|b| json!({ "BOOL": b })),
            Just(json!({ "NULL": true })),
            Just(json!({ "L": [] })),
            Just(json!({ "S": OWNER })),
        ]
    }

    fn balance_image(read: &str, block: u64) -> Value {
        json!({
            "pk": { "S": format!("B#1#{OWNER}") },
            "sk": { "S": format!("T#{TOKEN}") },
            "chain_id": { "N": "1" },
            "owner": { "S": OWNER },
            "token": { "S": TOKEN },
            "read": { "S": read },
            "block": { "N": block.to_string() },
            "updated_at": { "N": "1700000000" },
        })
    }

    fn record(new: Value, old: Option<Value>, sequence: Option<String>) -> Value {
        stream_record(new, old, sequence.as_deref(), 1_700_000_000)
    }

    fn parse(record: Value) -> Option<EventRecord> {
        serde_json::from_value::<Event>(json!({ "Records": [record] }))
            .ok()
            .and_then(|mut e| e.records.pop())
    }

    proptest! {
        /// A balance image with any of its attributes replaced by anything.
        #[test]
        fn a_corrupted_record_is_an_error_never_a_panic(
            corrupt in prop::collection::btree_map(
                prop::sample::select(vec!["pk", "sk", "chain_id", "owner", "token", "spender", "read", "block", "tx"]),
                attribute(),
                1..4,
            ),
            in_old: bool,
            sequence in prop::option::of("\\PC{0,45}"),
        ) {
            let mut image = balance_image("100", 5);
            for (name, value) in &corrupt {
                image[*name] = value.clone();
            }
            let (new, old) = if in_old {
                (balance_image("200", 6), Some(image))
            } else {
                (image, Some(balance_image("50", 4)))
            };
            let Some(record) = parse(record(new, old, sequence)) else {
                return Ok(());
            };
            if let Ok(Some(entry)) = entry_for(&record) {
                let sequence = record.change.sequence_number.clone().unwrap_or_default();
                prop_assert_eq!(Ok(entry.position), FeedPosition::parse(&sequence));
            }
        }

        /// Any JSON at all in the image slots: the event either does not deserialize (Lambda
        /// refuses it before the handler) or the handler answers without panicking.
        #[test]
        fn arbitrary_images_never_panic(
            new in prop::collection::hash_map("[a-z_]{1,8}", attribute(), 0..8),
            old in prop::option::of(prop::collection::hash_map("[a-z_]{1,8}", attribute(), 0..8)),
            sequence in prop::option::of("[0-9]{1,45}"),
        ) {
            let new = serde_json::to_value(new).unwrap();
            let old = old.map(|o| serde_json::to_value(o).unwrap());
            if let Some(record) = parse(record(new, old, sequence)) {
                let _ = entry_for(&record);
            }
        }

        /// A well-formed change yields one entry at its sequence number with the new and
        /// previous values and the version its write counted (0 if it counted none); an
        /// unchanged value or a new zero yields none; a bad sequence number is an error.
        #[test]
        fn a_valid_change_yields_exactly_its_entry(
            old_value in prop::option::of(prop_oneof![Just(0u128), any::<u128>()]),
            new_value in prop_oneof![Just(0u128), any::<u128>()],
            block in 1u64..u64::MAX,
            version in 0u64..4,
            counted: bool,
            first: bool,
            sequence in "[0-9]{1,40}|[0-9]{41,45}|[0-9]{0,5}[a-z.-][0-9]{0,5}",
        ) {
            let mut old = old_value.map(|v| balance_image(&v.to_string(), block - 1));
            if let Some(old) = old.as_mut().filter(|_| version > 0) {
                old["version"] = json!({ "N": version.to_string() });
            }
            // A counted write adds one to the version; a writer from before versions did not.
            let new_version = match (counted, &old) {
                (true, _) => version + 1,
                (false, Some(_)) => version,
                (false, None) => 0,
            };
            let mut new = balance_image(&new_value.to_string(), block);
            if new_version > 0 {
                new["version"] = json!({ "N": new_version.to_string() });
            }
            if first {
                new["first"] = json!({ "BOOL": true });
            }
            // Sparse values: an insert was a zero, unless it is a first read.
            let previous = match old_value {
                Some(v) => Some(v.to_string()),
                None if first => None,
                None => Some("0".to_string()),
            };
            let record = parse(record(new, old, Some(sequence.clone()))).unwrap();
            let outcome = entry_for(&record);
            let no_news = old_value == Some(new_value) || (old_value.is_none() && new_value == 0);
            match FeedPosition::parse(&sequence) {
                Err(_) => prop_assert!(matches!(outcome, Err(RecordError::BadSequenceNumber(_))), "{:?}", outcome),
                Ok(_) if no_news => prop_assert!(matches!(outcome, Ok(None)), "{:?}", outcome),
                Ok(position) => {
                    let entry = outcome.unwrap().unwrap();
                    prop_assert_eq!(entry.position, position);
                    prop_assert_eq!(entry.value.to_string(), new_value.to_string());
                    prop_assert_eq!(entry.previous.map(|p| p.to_string()), previous);
                    prop_assert_eq!(entry.block, block);
                    prop_assert_eq!(live_balances::domain::address::lower(&entry.owner), OWNER);
                    prop_assert_eq!(entry.version, if counted { version + 1 } else { 0 });
                }
            }
        }
    }
}
