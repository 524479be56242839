//! A wallet's change feed (`F#{chain}#{owner}` / `{feed position}`): the fanout appends an
//! entry per value change (and per order status, see `orders.rs`), streams read what comes
//! after their position.
//!
//! Streams that poll the feed on their own (the function URL) first ask the cheap question —
//! is there anything after my position? — with an eventually consistent read, half the read
//! units of a consistent one, because the answer only decides whether to read: what a stream
//! sends always comes from a consistent read ([`Table::feed_after`]). A replica a moment
//! behind delays an entry by one poll; it cannot lose or reorder one.

use alloy::primitives::Address;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::Item;
use super::records::FeedRecord;
use super::{StorageError, Table, Written, from_item, keys, s, to_item, written};
use crate::domain::model::{FeedEntry, FeedEvent, FeedPosition};

/// A feed item decoded by its kind: a value change, or an order's status.
pub(super) fn feed_event_from_item(item: Item) -> Result<FeedEvent, StorageError> {
    if super::orders::is_order_feed_item(&item) {
        super::orders::order_status_from_item(item).map(FeedEvent::Order)
    } else {
        FeedEntry::try_from(from_item::<FeedRecord>(item)?).map(FeedEvent::Value)
    }
}

impl Table {
    /// Appends an entry to the wallet's change feed. Idempotent: a stream record delivered
    /// twice has the same position and is written once.
    pub async fn append_feed(&self, entry: &FeedEntry, ttl: u64) -> Result<Written, StorageError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_item(FeedRecord::new(entry, ttl))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        written(result)
    }

    /// Feed entries (value changes and order statuses) after `after`, oldest first, at most `limit` (a consistent read, so an
    /// entry appended before the query is never missed).
    pub async fn feed_after(
        &self,
        chain_id: u64,
        owner: &Address,
        after: &FeedPosition,
        limit: i32,
    ) -> Result<Vec<FeedEvent>, StorageError> {
        let out = self
            .feed_after_query(chain_id, owner, after)
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(feed_event_from_item)
            .collect()
    }

    /// The query of a wallet's feed entries after `after`, oldest first.
    fn feed_after_query(
        &self,
        chain_id: u64,
        owner: &Address,
        after: &FeedPosition,
    ) -> QueryFluentBuilder {
        self.query("pk = :pk AND sk > :after", keys::feed_pk(chain_id, owner))
            .expression_attribute_values(":after", s(after.as_str()))
    }

    /// Whether `position` is an entry still in the wallet's feed and not yet expired. Entries
    /// expire in the order they were written, so everything after a live entry is there too:
    /// a replay from it is complete.
    pub async fn feed_position_is_live(
        &self,
        chain_id: u64,
        owner: &Address,
        position: &FeedPosition,
        now: u64,
    ) -> Result<bool, StorageError> {
        let out = self
            .read_item(keys::feed_pk(chain_id, owner), position.as_str())
            .projection_expression("#ttl")
            .expression_attribute_names("#ttl", "ttl")
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        let ttl = out
            .item
            .as_ref()
            .and_then(|i| i.get("ttl"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok());
        Ok(ttl.is_some_and(|ttl| ttl > now))
    }

    /// The newest position in the wallet's feed, or the start when it is empty.
    pub async fn latest_feed_position(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<FeedPosition, StorageError> {
        let out = self
            .query("pk = :pk", keys::feed_pk(chain_id, owner))
            .projection_expression("sk")
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(1)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        let latest = out.items.unwrap_or_default().into_iter().next();
        match latest
            .as_ref()
            .and_then(|i| i.get("sk"))
            .and_then(|v| v.as_s().ok())
        {
            Some(sk) => FeedPosition::parse(sk).map_err(|e| StorageError::corrupt(sk.clone(), e)),
            None => Ok(FeedPosition::start()),
        }
    }

    /// Whether the wallet's feed holds an entry after `after`, as a replica sees it now.
    pub async fn feed_may_have_after(
        &self,
        chain_id: u64,
        owner: &Address,
        after: &FeedPosition,
    ) -> Result<bool, StorageError> {
        let out = self
            .feed_after_query(chain_id, owner, after)
            .projection_expression("sk")
            .consistent_read(false)
            .limit(1)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(out.count > 0)
    }
}
