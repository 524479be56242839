//! The per-chain session log: one small item per change of what the poller watches, written
//! in the same transaction as the change itself, so the poller — which reads the log once a
//! step instead of every session — learns each change within a block and reads only what
//! changed.
//!
//! What an entry says ([`SessionChange`]): a wallet's session item changed (created, grown,
//! tokens discovered — read it again); streams of a wallet vouch for it until a time (carried
//! in the entry, nothing to read); a stream asked for a background re-read of the wallet's
//! token set; a token list has a new version (its URL in the entry).
//!
//! **Recording a change.** Every write of a session item that the poller must see goes through
//! [`Table::logged_update`] (the session writes of `sessions/`), which puts the entry in the
//! same transaction: no session changes without its entry. A writer that changes a session by
//! other means records it with [`Table::record_session_change`] — the one function for that —
//! after its own write succeeded.
//! Should an entry still be lost (a writer's clock far off, an entry that became visible after
//! the poller's look-back), the poller's background pass over the sessions finds the change.
//!
//! Keys are in [`super::keys`] (`Q#{chain}#{bucket}` / `{append ms}#{kind}#{subject}`): time
//! buckets as the chain log's (`chain_log.rs`), so writes move to a fresh partition every half
//! minute and a reader queries only the bucket its window falls in (two near an edge). An
//! entry is stamped with the time its write is sent, and each write is bounded by
//! [`WRITE_TIMEOUT`] (all attempts): an entry that lands at all is visible within that time of
//! its stamp: a stretch of the log that ended [`READ_OVERLAP_MS`] ago holds every entry it will
//! ever hold (it is *settled*). Nearly every entry is visible within milliseconds of its
//! stamp, so a reader looks back only [`RECENT_OVERLAP_MS`] before its previous read, and
//! every few seconds reads the stretch settled since (each settled entry once): each entry is
//! read a few times, not once per read for a whole overlap. Entries expire after an hour.

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::{Address, keccak256};
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::chain_log::{BUCKET_MS, CLOCK_AHEAD_MS, bucket_of};
use super::{Item, StorageError, Table, Written, keys, n, s};
use crate::domain::address::{lower, parse_address};
use crate::runtime::clock::unix_now_ms;

/// The longest a logged write may take, every attempt included: long enough to ride out a
/// slow moment of the table (a session write is a client's request), short enough for the
/// overlap below.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after its stamp an entry that lands at all is visible: a stretch of the log that
/// ended this long ago is settled. A whole logged write plus room for clock skew between
/// writer and reader and for the reader's own pace.
pub const READ_OVERLAP_MS: u64 = 13_000;
/// A look-back that covers a logged write's usual latency, not its worst case.
pub const RECENT_OVERLAP_MS: u64 = 2_000;
/// Entries are needed for seconds; TTL removes them for free after this.
const TTL_SECS: u64 = 3_600;
/// Attempts at a transaction that another write of the same items cancelled.
const CONFLICT_ATTEMPTS: u32 = 3;

// The overlap covers a whole write, and a read's window touches at most two buckets.
const _: () = assert!(READ_OVERLAP_MS as u128 > WRITE_TIMEOUT.as_millis());
const _: () = assert!(READ_OVERLAP_MS + CLOCK_AHEAD_MS < BUCKET_MS);

/// One change of what a chain's poller watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SessionChange {
    /// The wallet's session item changed (or is gone): read it again.
    Session(Address),
    /// Streams of the wallet vouch for it until `until` (Unix seconds); its session lives
    /// until `expires_at`.
    Streaming {
        owner: Address,
        until: u64,
        expires_at: u64,
    },
    /// A stream asked for a background re-read of the wallet's whole token set.
    Rescan(Address),
    /// The token list at `url` has a new version on this chain.
    List { url: String },
}

impl SessionChange {
    /// The entry's kind and subject in its sort key: one entry per kind and wallet (or list)
    /// and millisecond.
    fn sk_tail(&self) -> String {
        match self {
            Self::Session(owner) => format!("s#{}", lower(owner)),
            Self::Streaming { owner, .. } => format!("t#{}", lower(owner)),
            Self::Rescan(owner) => format!("r#{}", lower(owner)),
            Self::List { url } => format!("l#{}", keccak256(url.as_bytes())),
        }
    }

    /// The wallet it is about, if any.
    pub fn owner(&self) -> Option<Address> {
        match self {
            Self::Session(owner) | Self::Rescan(owner) => Some(*owner),
            Self::Streaming { owner, .. } => Some(*owner),
            Self::List { .. } => None,
        }
    }
}

/// An entry as read back: its key (unique per entry: what a reader dedupes on), the time it
/// was stamped with, and the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLogEntry {
    pub key: String,
    pub at_ms: u64,
    pub change: SessionChange,
}

/// The item of an entry stamped `at_ms`.
fn entry_item(chain_id: u64, change: &SessionChange, at_ms: u64) -> Item {
    let mut item: Item = HashMap::from([
        (
            "pk".into(),
            s(keys::session_log_pk(chain_id, bucket_of(at_ms))),
        ),
        (
            "sk".into(),
            s(keys::session_log_sk(at_ms, &change.sk_tail())),
        ),
        ("ttl".into(), n(at_ms / 1000 + TTL_SECS)),
    ]);
    match change {
        SessionChange::Streaming {
            until, expires_at, ..
        } => {
            item.insert("until".into(), n(until));
            item.insert("expires".into(), n(expires_at));
        }
        SessionChange::List { url } => {
            item.insert("url".into(), s(url.clone()));
        }
        SessionChange::Session(_) | SessionChange::Rescan(_) => {}
    }
    item
}

/// The put of `change`'s entry stamped `at_ms`, for the transaction of the write it records
/// (sent within [`WRITE_TIMEOUT`] of the stamp).
fn session_change_put(
    table: &Table,
    chain_id: u64,
    change: &SessionChange,
    at_ms: u64,
) -> Result<TransactWriteItem, StorageError> {
    let put = Put::builder()
        .table_name(table.name())
        .set_item(Some(entry_item(chain_id, change, at_ms)))
        .build()
        .map_err(StorageError::refused)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// What a reader reads of an entry's item: its sort key (the time, the kind and the subject)
/// and what some kinds carry beside it (the partition key and the TTL are not parsed).
const ENTRY_ATTRIBUTES: &str = "sk, #until, #expires, #url";

/// An entry read back from its item.
fn parse_entry(mut item: Item) -> Result<SessionLogEntry, StorageError> {
    let sk = match item.remove("sk") {
        Some(AttributeValue::S(sk)) => sk,
        _ => String::new(),
    };
    let corrupt = |reason: &str| StorageError::corrupt(format!("session log {sk}"), reason);
    let number = |name: &str| -> Result<u64, StorageError> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(&format!("no number {name}")))
    };
    let mut parts = sk.splitn(3, '#');
    let (Some(at), Some(kind), Some(subject)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt("expected {ms}#{kind}#{subject}"));
    };
    let at_ms = at.parse().map_err(|_| corrupt("time is not a number"))?;
    let owner = || parse_address(subject).map_err(|e| corrupt(&e.to_string()));
    let change = match kind {
        "s" => SessionChange::Session(owner()?),
        "t" => SessionChange::Streaming {
            owner: owner()?,
            until: number("until")?,
            expires_at: number("expires")?,
        },
        "r" => SessionChange::Rescan(owner()?),
        "l" => SessionChange::List {
            url: item
                .get("url")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .ok_or_else(|| corrupt("a list entry without its url"))?,
        },
        other => return Err(corrupt(&format!("unknown kind {other}"))),
    };
    Ok(SessionLogEntry {
        key: sk,
        at_ms,
        change,
    })
}

/// Whether a cancelled transaction was cancelled by its first item's condition (the write it
/// carries found the item otherwise than it expected), by a concurrent write, or neither.
fn cancelled_by(error: &TransactWriteItemsError) -> Option<&str> {
    let TransactWriteItemsError::TransactionCanceledException(cancelled) = error else {
        return error
            .code()
            .filter(|c| *c == "TransactionConflictException");
    };
    cancelled
        .cancellation_reasons()
        .iter()
        .filter_map(|r| r.code())
        .find(|c| *c != "None")
}

impl Table {
    /// Sends `update` of a session item (or another item whose change the poller must learn)
    /// in one transaction with `change`'s log entry. [`Written::Skipped`]: the update's
    /// condition failed, nothing was written.
    pub(crate) async fn logged_update(
        &self,
        chain_id: u64,
        update: Update,
        change: &SessionChange,
    ) -> Result<Written, StorageError> {
        self.logged_transaction(
            chain_id,
            TransactWriteItem::builder().update(update).build(),
            change,
        )
        .await
    }

    /// Sends `write` in one transaction with `change`'s log entry, stamped as each attempt
    /// is sent; [`Written::Skipped`] when `write`'s condition failed.
    pub(crate) async fn logged_transaction(
        &self,
        chain_id: u64,
        write: TransactWriteItem,
        change: &SessionChange,
    ) -> Result<Written, StorageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let entry = session_change_put(self, chain_id, change, unix_now_ms())?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(write.clone())
                .transact_items(entry)
                .customize()
                .config_override(
                    aws_sdk_dynamodb::config::Builder::default().timeout_config(
                        TimeoutConfig::builder()
                            .operation_timeout(WRITE_TIMEOUT)
                            .build(),
                    ),
                )
                .send()
                .await;
            let Err(error) = result else {
                return Ok(Written::Yes);
            };
            match error.as_service_error().and_then(cancelled_by) {
                Some("ConditionalCheckFailed") => return Ok(Written::Skipped),
                // Another write of the same item in flight: a fresh attempt, with a fresh
                // stamp, once it is done.
                Some("TransactionConflict" | "TransactionConflictException")
                    if attempt < CONFLICT_ATTEMPTS =>
                {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                _ => return Err(StorageError::from_sdk(error)),
            }
        }
    }

    /// Records that `owner`'s session on `chain_id` changed, so every poller of the chain
    /// reads it again within a block: the one function for a writer that changed a session
    /// item other than through this module's logged writes (call it once that write has
    /// succeeded). Retried while DynamoDB is unavailable; an error means the poller learns the
    /// change only from its background pass over the sessions.
    pub async fn record_session_change(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<(), StorageError> {
        self.append_session_log(chain_id, &SessionChange::Session(*owner))
            .await
    }

    /// Appends one entry on its own (not in a transaction), retried with a fresh stamp.
    pub(crate) async fn append_session_log(
        &self,
        chain_id: u64,
        change: &SessionChange,
    ) -> Result<(), StorageError> {
        super::retry::with_retry(
            || async {
                self.client
                    .put_item()
                    .table_name(&self.name)
                    .set_item(Some(entry_item(chain_id, change, unix_now_ms())))
                    .customize()
                    .config_override(
                        aws_sdk_dynamodb::config::Builder::default().timeout_config(
                            TimeoutConfig::builder()
                                .operation_timeout(WRITE_TIMEOUT)
                                .build(),
                        ),
                    )
                    .send()
                    .await
                    .map_err(StorageError::from_sdk)
                    .map(|_| ())
            },
            |attempt, error| {
                tracing::warn!(
                    chain = chain_id,
                    attempt,
                    error,
                    "session log append failed; retrying"
                )
            },
        )
        .await
    }

    /// Every entry of `chain_id` stamped at or after `since_ms` (up to a little past `now_ms`,
    /// for writers whose clock is ahead), in time order.
    pub async fn session_log_since(
        &self,
        chain_id: u64,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<SessionLogEntry>, StorageError> {
        self.session_log_between(chain_id, since_ms, now_ms + CLOCK_AHEAD_MS)
            .await
    }

    /// Every entry of `chain_id` stamped from `from_ms` to before `to_ms`, in time order, by
    /// consistent queries of the buckets the stretch touches.
    pub async fn session_log_between(
        &self,
        chain_id: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<SessionLogEntry>, StorageError> {
        // A sort key starts with its stamp, at a fixed width: the stamp `to_ms` alone sorts
        // before every key stamped then, after every key stamped earlier.
        let (from, to) = (keys::chain_log_time(from_ms), keys::chain_log_time(to_ms));
        let mut entries = vec![];
        let mut bucket = bucket_of(from_ms);
        while from_ms < to_ms && bucket <= bucket_of(to_ms) {
            let query = self
                .query(
                    "pk = :pk AND sk BETWEEN :from AND :to",
                    keys::session_log_pk(chain_id, bucket),
                )
                .expression_attribute_values(":from", s(from.clone()))
                .expression_attribute_values(":to", s(to.clone()))
                .projection_expression(ENTRY_ATTRIBUTES)
                .expression_attribute_names("#until", "until")
                .expression_attribute_names("#expires", "expires")
                .expression_attribute_names("#url", "url")
                .consistent_read(true);
            for item in self.query_items(query).await? {
                entries.push(parse_entry(item)?);
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
    fn entries_read_back_as_written_and_sort_by_time() {
        let owner = Address::repeat_byte(0xAB);
        let changes = [
            SessionChange::Session(owner),
            SessionChange::Streaming {
                owner,
                until: 1_700_000_180,
                expires_at: 1_700_003_600,
            },
            SessionChange::Rescan(owner),
            SessionChange::List {
                url: "https://lists.example/a#b?c".into(),
            },
        ];
        for change in changes {
            let item = entry_item(7, &change, 1_700_000_000_123);
            let pk = item["pk"].as_s().unwrap();
            assert_eq!(pk, "Q#7#1699999980000");
            let entry = parse_entry(item.clone()).unwrap();
            assert_eq!(entry.change, change);
            assert_eq!(entry.at_ms, 1_700_000_000_123);
            assert_eq!(
                change.owner().is_some(),
                !matches!(change, SessionChange::List { .. })
            );
        }
        let early = entry_item(7, &SessionChange::Session(owner), 999);
        let late = entry_item(7, &SessionChange::Session(owner), 1_000);
        assert!(early["sk"].as_s().unwrap() < late["sk"].as_s().unwrap());
        // A stretch ending at 1,000 ms: its bound sorts after the key stamped before it and
        // before the key stamped then.
        let bound = keys::chain_log_time(1_000);
        assert!(early["sk"].as_s().unwrap().as_str() < bound.as_str());
        assert!(late["sk"].as_s().unwrap().as_str() > bound.as_str());
    }

    #[test]
    fn malformed_entries_are_corrupt_not_a_panic() {
        for sk in [
            "",
            "1#s",
            "x#s#0xab",
            "1#z#0xab",
            "1#s#0x12",
            "1#t#0xabababababababababababababababababababab",
        ] {
            let item: Item = HashMap::from([("sk".into(), s(sk))]);
            assert!(parse_entry(item).is_err(), "{sk}");
        }
    }
}
