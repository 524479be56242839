//! What one SSE stream has shown its client, per value, so the feed entries it tails can be
//! told apart: news to send, or changes the client's `all_balances` already holds.
//!
//! A stream reads its feed position before the snapshot, so a change landing in between is
//! not lost. But the fanout appends entries a moment after the table changes: an entry for
//! a change the snapshot already shows — or for one before it — may appear in the feed only
//! after the snapshot was read. Sent, it would take the client back to an old value and break
//! the `previousBalance` chain. Each balance item counts its writes (its version), and each
//! entry carries the version its change made: an entry at or below the version the snapshot
//! read is old news. Blocks cannot tell this apart: a reorg can store a value read at a lower
//! block than the one it replaces.

use std::collections::HashMap;

use alloy::primitives::U256;

use live_balances::domain::model::{BalanceKey, FeedEntry, OrderStatusEntry};
use live_balances::domain::order::OrderId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShownValue {
    /// `None`: the snapshot showed the value as unreadable.
    value: Option<U256>,
    /// The item's version in the snapshot, until an entry for the value has been sent: after
    /// that, entries come in feed order and each one is news.
    snapshot_version: Option<u64>,
}

/// The values a stream has shown its client.
#[derive(Debug, Clone, Default)]
pub struct ShownValues {
    values: HashMap<BalanceKey, ShownValue>,
    /// Each order's version in the snapshot, until an entry for it has been sent.
    orders: HashMap<OrderId, u64>,
}

impl ShownValues {
    /// Forgets everything and takes a snapshot's values (`None`: unreadable), each with the
    /// item's version at the snapshot.
    pub fn reset_to_snapshot(
        &mut self,
        values: impl IntoIterator<Item = (BalanceKey, Option<U256>, u64)>,
    ) {
        self.values.clear();
        self.orders.clear();
        self.values
            .extend(values.into_iter().map(|(key, value, version)| {
                (
                    key,
                    ShownValue {
                        value,
                        snapshot_version: Some(version),
                    },
                )
            }));
    }

    /// Takes the snapshot's orders, each with its item's version at the snapshot (after
    /// [`Self::reset_to_snapshot`]).
    pub fn show_orders(&mut self, orders: impl IntoIterator<Item = (OrderId, u64)>) {
        self.orders.extend(orders);
    }

    /// Whether an `order_status` entry tells the client something: not when the snapshot
    /// already showed the order at that version or a later one.
    pub fn admit_order(&mut self, entry: &OrderStatusEntry) -> bool {
        match self.orders.get(&entry.order.id) {
            Some(version) if *version >= entry.version => false,
            _ => {
                self.orders.remove(&entry.order.id);
                true
            }
        }
    }

    /// Whether `entry` tells the client something; if so, it is now shown.
    pub fn admit(&mut self, entry: &FeedEntry) -> bool {
        if let Some(shown) = self.values.get(&entry.key) {
            if shown.value == Some(entry.value) {
                return false;
            }
            // Version 0: an entry from before versions were counted, which cannot be ordered;
            // sent, as it always was.
            if entry.version != 0
                && shown
                    .snapshot_version
                    .is_some_and(|version| entry.version <= version)
            {
                return false;
            }
        }
        self.values.insert(
            entry.key,
            ShownValue {
                value: Some(entry.value),
                snapshot_version: None,
            },
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;

    use super::*;
    use live_balances::domain::model::FeedPosition;

    const TOKEN: Address = Address::repeat_byte(7);
    const KEY: BalanceKey = BalanceKey::Balance { token: TOKEN };

    fn entry(previous: Option<u64>, value: u64, block: u64, version: u64) -> FeedEntry {
        FeedEntry {
            position: FeedPosition::start(),
            chain_id: 1,
            owner: Address::repeat_byte(1),
            key: KEY,
            value: U256::from(value),
            previous: previous.map(U256::from),
            block,
            tx_hash: None,
            version,
        }
    }

    fn after_snapshot(value: Option<u64>, version: u64) -> ShownValues {
        let mut shown = ShownValues::default();
        shown.reset_to_snapshot([(KEY, value.map(U256::from), version)]);
        shown
    }

    #[test]
    fn entries_the_snapshot_already_holds_are_not_news() {
        // The snapshot read 142 as the item's 2nd write; the entries 0→46 (1st) and 46→142
        // (2nd) reached the feed only after it.
        let mut shown = after_snapshot(Some(142), 2);
        assert!(!shown.admit(&entry(Some(0), 46, 10, 1)));
        assert!(!shown.admit(&entry(Some(46), 142, 20, 2)));
        assert!(shown.admit(&entry(Some(142), 150, 21, 3)));
    }

    #[test]
    fn a_value_that_came_back_is_still_old_news() {
        // 0→142, 142→46, 46→142: the middle entry continues from what the snapshot shows,
        // yet it is older than the snapshot.
        let mut shown = after_snapshot(Some(142), 3);
        assert!(!shown.admit(&entry(Some(142), 46, 11, 2)));
        assert!(!shown.admit(&entry(Some(46), 142, 12, 3)));
    }

    #[test]
    fn a_reorg_to_a_lower_block_is_news() {
        // The snapshot showed 5 read at block 20; a reorg's rewind stores 9 read at block 18.
        let mut shown = after_snapshot(Some(5), 4);
        assert!(shown.admit(&entry(Some(5), 9, 18, 5)));
    }

    #[test]
    fn once_news_was_sent_every_later_entry_is_news() {
        let mut shown = after_snapshot(Some(5), 4);
        assert!(shown.admit(&entry(Some(5), 6, 21, 5)));
        assert!(shown.admit(&entry(Some(6), 5, 19, 6)));
    }

    #[test]
    fn an_older_value_of_an_unreadable_one_is_old_news() {
        let mut shown = after_snapshot(None, 3);
        assert!(!shown.admit(&entry(None, 8, 10, 2)));
        assert!(shown.admit(&entry(None, 8, 30, 4)));
    }

    #[test]
    fn unversioned_entries_and_new_values_are_news() {
        let mut shown = after_snapshot(Some(5), 4);
        assert!(shown.admit(&entry(Some(5), 6, 1, 0)));
        let mut other = entry(None, 3, 2, 1);
        other.key = BalanceKey::Balance {
            token: Address::repeat_byte(8),
        };
        assert!(shown.admit(&other));
        assert!(!shown.admit(&other));
    }

    #[test]
    fn an_order_status_the_snapshot_holds_is_old_news_and_later_ones_are_sent() {
        use live_balances::domain::order::{Fillability, Order};
        let status = |version: u64| OrderStatusEntry {
            position: FeedPosition::start(),
            order: Order {
                chain_id: 1,
                owner: Address::repeat_byte(1),
                id: OrderId::parse("o").unwrap(),
                sell_token: TOKEN,
                sell_amount: U256::from(5),
                spender: live_balances::domain::model::Spender::Erc20(Address::repeat_byte(2)),
                valid_to: 9,
            },
            status: Fillability::of(U256::from(5), U256::ZERO, U256::ZERO),
            block: 1,
            version,
        };
        let mut shown = ShownValues::default();
        shown.reset_to_snapshot([]);
        shown.show_orders([(OrderId::parse("o").unwrap(), 2)]);
        assert!(!shown.admit_order(&status(1)));
        assert!(!shown.admit_order(&status(2)));
        assert!(shown.admit_order(&status(3)));
        // Once one was sent, the rest come in feed order: all news.
        assert!(shown.admit_order(&status(3)));
        // An order registered after the snapshot is news.
        shown.reset_to_snapshot([]);
        assert!(shown.admit_order(&status(1)));
    }
}
