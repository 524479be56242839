//! What one SSE stream has shown its client, per value, so the feed entries it tails can be
//! told apart: news to send, or changes the client's `all_balances` already holds.
//!
//! A stream reads its feed position before the snapshot, so a change landing in between is
//! not lost. But the fanout appends entries a moment after the table changes: an entry for
//! a change the snapshot already shows — or for one before it — may appear in the feed only
//! after the snapshot was read. Sent, it would take the client back to an old value and break
//! the `previousBalance` chain. Such an entry is older than the block the snapshot's value was
//! read at, or equals the value shown.

use std::collections::HashMap;

use alloy::primitives::U256;

use crate::model::{BalanceKey, FeedEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShownValue {
    value: U256,
    /// The block of the snapshot's value, until an entry for the value has been sent: after
    /// that, entries come in feed order and each one is news.
    snapshot_block: Option<u64>,
}

/// The values a stream has shown its client.
#[derive(Debug, Clone, Default)]
pub struct ShownValues {
    values: HashMap<BalanceKey, ShownValue>,
}

impl ShownValues {
    /// Forgets everything and takes a snapshot's values, each with the block it was read at.
    pub fn reset_to_snapshot(&mut self, values: impl IntoIterator<Item = (BalanceKey, U256, u64)>) {
        self.values.clear();
        self.values
            .extend(values.into_iter().map(|(key, value, block)| {
                (
                    key,
                    ShownValue {
                        value,
                        snapshot_block: Some(block),
                    },
                )
            }));
    }

    /// Whether `entry` tells the client something; if so, it is now shown.
    pub fn admit(&mut self, entry: &FeedEntry) -> bool {
        if let Some(shown) = self.values.get(&entry.key) {
            if shown.value == entry.value {
                return false;
            }
            // Strictly older only: a reorg re-reads values at the new head, which can be the
            // snapshot's height (a branch replaced at the same height) — that is news.
            if shown
                .snapshot_block
                .is_some_and(|block| entry.block < block)
            {
                return false;
            }
        }
        self.values.insert(
            entry.key,
            ShownValue {
                value: entry.value,
                snapshot_block: None,
            },
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;

    use super::*;
    use crate::model::FeedPosition;

    const TOKEN: Address = Address::repeat_byte(7);
    const KEY: BalanceKey = BalanceKey::Balance { token: TOKEN };

    fn entry(previous: Option<u64>, value: u64, block: u64) -> FeedEntry {
        FeedEntry {
            position: FeedPosition::start(),
            chain_id: 1,
            owner: Address::repeat_byte(1),
            key: KEY,
            value: U256::from(value),
            previous: previous.map(U256::from),
            block,
            tx_hash: None,
        }
    }

    fn after_snapshot(value: u64, block: u64) -> ShownValues {
        let mut shown = ShownValues::default();
        shown.reset_to_snapshot([(KEY, U256::from(value), block)]);
        shown
    }

    #[test]
    fn entries_the_snapshot_already_holds_are_not_news() {
        // The snapshot read 142 at block 20; the entries 0→46 (block 10) and 46→142 (block 20)
        // reached the feed only after it.
        let mut shown = after_snapshot(142, 20);
        assert!(!shown.admit(&entry(Some(0), 46, 10)));
        assert!(!shown.admit(&entry(Some(46), 142, 20)));
        assert!(shown.admit(&entry(Some(142), 150, 21)));
    }

    #[test]
    fn once_news_was_sent_every_later_entry_is_news() {
        let mut shown = after_snapshot(5, 20);
        assert!(shown.admit(&entry(Some(5), 6, 21)));
        // A reorg's re-read at a lower height, after news: feed order rules.
        assert!(shown.admit(&entry(Some(6), 5, 19)));
    }

    #[test]
    fn a_branch_replaced_at_the_snapshots_height_is_news() {
        let mut shown = after_snapshot(5, 20);
        assert!(shown.admit(&entry(Some(5), 9, 20)));
    }

    #[test]
    fn values_the_snapshot_did_not_have_are_news() {
        let mut shown = after_snapshot(5, 20);
        let other = BalanceKey::Balance {
            token: Address::repeat_byte(8),
        };
        let mut e = entry(None, 3, 2);
        e.key = other;
        assert!(shown.admit(&e));
        assert!(!shown.admit(&e));
    }
}
