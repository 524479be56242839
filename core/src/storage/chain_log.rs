//! The per-chain change log: one small item per wallet change, appended by the fanout after
//! the change's feed entry, so a long-lived server learns which of its wallets changed with
//! one query per interval for the whole chain — not one per wallet, nor one per connection.
//!
//! Its keys are in [`super::keys`] (`G#{chain}#{bucket}` / `{append ms}#{owner}#{position}`).
//! Partitions are time buckets of [`BUCKET_MS`], so writes move to a new partition every half
//! minute and none stays hot; a reader queries the bucket its window falls in (two near a
//! bucket's edge). The log is an index for dispatch only: the ids clients see are positions of the
//! wallet's own feed (`F#{chain}#{owner}`), and what a server sends is read from that feed.
//!
//! A reader finds an entry by its append time, so an entry must become visible soon after the
//! time in its key: [`Table::append_chain_log`] stamps each attempt with the time it is sent,
//! makes one attempt per call (no SDK retry re-sending an old stamp) and bounds it by
//! [`ATTEMPT_TIMEOUT`]. A reader whose reads each look back [`READ_OVERLAP_MS`] before the
//! previous one started therefore sees every entry whose append succeeded. Nearly every entry
//! is visible within milliseconds of its stamp, so a reader may read often with the short
//! look-back [`RECENT_OVERLAP_MS`] and less often with the full one: each entry is then read a
//! few times instead of once per read for the whole overlap.

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::Address;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use super::{Item, StorageError, Table, keys, n, s};
use crate::domain::address::parse_address;
use crate::domain::model::FeedPosition;

/// The time slice one partition of the log covers.
pub const BUCKET_MS: u64 = 30_000;
/// The longest one append attempt may take; an entry that becomes visible at all does so
/// within this time of the stamp in its key.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How far back every read of the log looks: the attempt timeout plus room for clock skew
/// between writer and reader and for the reader's own tick.
pub const READ_OVERLAP_MS: u64 = 2_500;
/// A look-back that covers an append's usual latency (milliseconds), not its worst case.
pub const RECENT_OVERLAP_MS: u64 = 250;
/// How far ahead of the reader's clock a writer's may be.
pub(super) const CLOCK_AHEAD_MS: u64 = 500;
/// Log entries are needed for seconds; TTL removes them for free after this.
const TTL_SECS: u64 = 3_600;
/// BatchWriteItem's limit.
const BATCH: usize = 25;

// The overlap covers a whole attempt, and a read's window touches at most two buckets.
const _: () = assert!(READ_OVERLAP_MS as u128 > ATTEMPT_TIMEOUT.as_millis());
const _: () = assert!(READ_OVERLAP_MS + CLOCK_AHEAD_MS < BUCKET_MS);

/// One wallet of one chain has feed entries up to `position`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainLogEntry {
    pub chain_id: u64,
    pub owner: Address,
    pub position: FeedPosition,
}

/// The start of the time bucket (the partition) `ms` falls in; the session log's too.
pub(super) fn bucket_of(ms: u64) -> u64 {
    ms / BUCKET_MS * BUCKET_MS
}

fn chain_log_sk(at_ms: u64, entry: &ChainLogEntry) -> String {
    keys::chain_log_sk(at_ms, &entry.owner, &entry.position)
}

/// The owner and position an item's sort key names.
fn parse_sk(chain_id: u64, sk: &str) -> Result<ChainLogEntry, StorageError> {
    let corrupt = |reason: &str| StorageError::corrupt(format!("chain log {sk}"), reason);
    let mut parts = sk.split('#');
    let (Some(_at), Some(owner), Some(position), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(corrupt("expected {ms}#{owner}#{position}"));
    };
    Ok(ChainLogEntry {
        chain_id,
        owner: parse_address(owner).map_err(|e| corrupt(&e.to_string()))?,
        position: FeedPosition::parse(position).map_err(|e| corrupt(&e.to_string()))?,
    })
}

fn put(entry: &ChainLogEntry, at_ms: u64, ttl: u64) -> Result<WriteRequest, StorageError> {
    let item: Item = HashMap::from([
        (
            "pk".into(),
            s(keys::chain_log_pk(entry.chain_id, bucket_of(at_ms))),
        ),
        ("sk".into(), s(chain_log_sk(at_ms, entry))),
        ("ttl".into(), n(ttl)),
    ]);
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(StorageError::refused)?;
    Ok(WriteRequest::builder().put_request(put).build())
}

impl Table {
    /// Appends `entries`, each stamped `now_ms` (the time of this attempt), in batches of 25.
    /// Returns the entries DynamoDB did not take (throttled within a batch); the caller tries
    /// them again, with a new stamp. An error means a whole batch may or may not have landed,
    /// so it is tried again too. Duplicates are harmless: readers only ask "anything after
    /// what I read?".
    pub async fn append_chain_log(
        &self,
        entries: &[ChainLogEntry],
        now_ms: u64,
    ) -> Result<Vec<ChainLogEntry>, StorageError> {
        let ttl = now_ms / 1000 + TTL_SECS;
        let mut left = vec![];
        for chunk in entries.chunks(BATCH) {
            let requests = chunk
                .iter()
                .map(|e| put(e, now_ms, ttl))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .batch_write_item()
                .request_items(self.name.clone(), requests)
                .customize()
                .config_override(
                    aws_sdk_dynamodb::config::Builder::default()
                        .retry_config(RetryConfig::disabled())
                        .timeout_config(
                            TimeoutConfig::builder()
                                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                                .build(),
                        ),
                )
                .send()
                .await
                .map_err(StorageError::from_sdk)?;
            let unprocessed = out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.name))
                .unwrap_or_default();
            // The unprocessed requests name their entries by key; map them back.
            for request in unprocessed {
                let sk = request
                    .put_request
                    .as_ref()
                    .and_then(|p| p.item.get("sk"))
                    .and_then(|v| v.as_s().ok());
                if let Some(entry) = chunk
                    .iter()
                    .find(|e| sk.is_some_and(|sk| *sk == chain_log_sk(now_ms, e)))
                {
                    left.push(entry.clone());
                }
            }
        }
        Ok(left)
    }

    /// Every entry of `chain_id` appended at or after `since_ms` (up to a little past
    /// `now_ms`, for writers whose clock is ahead), by consistent queries of the buckets the
    /// window touches.
    pub async fn chain_log_since(
        &self,
        chain_id: u64,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<ChainLogEntry>, StorageError> {
        let from = keys::chain_log_time(since_ms);
        let mut entries = vec![];
        let mut bucket = bucket_of(since_ms);
        while bucket <= bucket_of(now_ms + CLOCK_AHEAD_MS) {
            let query = self
                .query(
                    "pk = :pk AND sk >= :from",
                    keys::chain_log_pk(chain_id, bucket),
                )
                .expression_attribute_values(":from", s(from.clone()))
                .projection_expression("sk")
                .consistent_read(true);
            for item in self.query_items(query).await? {
                if let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) {
                    entries.push(parse_sk(chain_id, sk)?);
                }
            }
            bucket += BUCKET_MS;
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time_and_name_owner_and_position() {
        let entry = ChainLogEntry {
            chain_id: 1,
            owner: Address::repeat_byte(0xAB),
            position: FeedPosition::parse("42").unwrap(),
        };
        let sk = chain_log_sk(1_700_000_000_123, &entry);
        assert!(sk.starts_with("1700000000123#0xabab"));
        assert_eq!(parse_sk(1, &sk).unwrap(), entry);
        // 13 digits: string order is time order.
        assert!(chain_log_sk(999, &entry) < chain_log_sk(1_000, &entry));
        assert_eq!(
            keys::chain_log_pk(1, bucket_of(1_700_000_029_999)),
            "G#1#1700000010000"
        );
        for bad in [
            "",
            "1#2",
            "1#0x12#3",
            "1#0xabababababababababababababababababababab#x",
            "1#a#b#c",
        ] {
            assert!(parse_sk(1, bad).is_err(), "{bad}");
        }
    }
}
