//! A cheap question for a stream that polls its wallet's feed on its own (the function URL):
//! is there anything after my position? Asked with an eventually consistent read — half the
//! read units of a consistent one — because the answer only decides whether to read: what a
//! stream sends always comes from a consistent read of the feed ([`Table::feed_after`]). A
//! replica a moment behind delays an entry by one poll; it cannot lose or reorder one.

use alloy::primitives::Address;

use super::{StorageError, Table};
use crate::model::FeedPosition;

impl Table {
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
