//! Reading a wallet's change feed after a position, page by page, oldest first: the one way
//! the api reads a feed, for a stream's own polls and catch-ups and for the server's hub.

use alloy::primitives::Address;
use live_balances::domain::model::{FeedEvent, FeedPosition};
use live_balances::storage::{StorageError, Table};

/// Most entries per query; a longer backlog is read in further pages at once.
const PAGE: i32 = 100;

/// The feed after a position, read one consistent query at a time until its end.
pub struct FeedPages<'a> {
    table: &'a Table,
    chain_id: u64,
    owner: &'a Address,
    after: FeedPosition,
    done: bool,
}

impl<'a> FeedPages<'a> {
    pub fn after(table: &'a Table, chain_id: u64, owner: &'a Address, from: &FeedPosition) -> Self {
        Self {
            table,
            chain_id,
            owner,
            after: from.clone(),
            done: false,
        }
    }

    /// The next page of entries; `None` once the feed is read to its end.
    pub async fn next(&mut self) -> Result<Option<Vec<FeedEvent>>, StorageError> {
        if self.done {
            return Ok(None);
        }
        let entries = self
            .table
            .feed_after(self.chain_id, self.owner, &self.after, PAGE)
            .await?;
        self.done = entries.len() < PAGE as usize;
        match entries.last() {
            Some(last) => {
                self.after = last.position().clone();
                Ok(Some(entries))
            }
            None => Ok(None),
        }
    }
}
