//! The fanout handler: each stream record of a balance item whose value changed becomes one
//! entry in the owner's change feed, at the record's sequence number.
//!
//! Records are processed in order; the first that fails is reported as a batch item failure
//! so Lambda retries from there (nothing after it is skipped, nothing before it repeated in
//! the feed since appends are idempotent).

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{Error, LambdaEvent, tracing};
use live_balances::clock::unix_now;
use live_balances::diff::feed_entry;
use live_balances::model::{FeedEntry, FeedPosition};
use live_balances::storage::{StorageError, Table, balance_item_from_image};
use thiserror::Error;

/// What the handler needs, built once per container.
#[derive(Debug, Clone)]
pub struct State {
    pub table: Table,
    pub feed_ttl: Duration,
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
    let sequence = change
        .sequence_number
        .as_deref()
        .ok_or(RecordError::NoSequenceNumber)?;
    let position = FeedPosition::parse(sequence)
        .map_err(|_| RecordError::BadSequenceNumber(sequence.to_string()))?;
    Ok(feed_entry(old.as_ref(), &new, position))
}

pub async fn handle(
    state: &State,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let ttl = unix_now().saturating_add(state.feed_ttl.as_secs());
    let mut response = DynamoDbEventResponse::default();
    for record in &event.payload.records {
        let outcome = match entry_for(record) {
            Ok(Some(entry)) => state
                .table
                .append_feed(&entry, ttl)
                .await
                .map(|_| Some(entry))
                .map_err(RecordError::from),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Some(entry)) => tracing::debug!(
                chain = entry.chain_id,
                owner = %entry.owner,
                token = %entry.key.token(),
                block = entry.block,
                position = %entry.position,
                "feed entry appended"
            ),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(event_id = %record.event_id, %error, "record failed; retrying from it");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                break;
            }
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use live_balances::model::BalanceKey;

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
        let insert = entry_for(&ev.records[0]).unwrap().unwrap();
        assert_eq!(insert.previous, None);
        // A session item and a feed item are not balances.
        assert!(entry_for(&ev.records[1]).unwrap().is_none());
        assert!(entry_for(&ev.records[2]).unwrap().is_none());
        // Same value at a later block: nothing for clients.
        assert!(entry_for(&ev.records[3]).unwrap().is_none());
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
