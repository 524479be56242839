//! Turning one changed balance item (old and new image) into a change-feed entry.

use alloy::primitives::U256;

use live_balances::domain::model::{BalanceItem, FeedEntry, FeedPosition, TokenRead};

/// The feed entry for a change from `old` to `new` (the item's `version`-th write), or `None`
/// when nothing a client shows changed (same value at a newer block, a value that could not
/// be read, a removal).
///
/// Values are sparse: an absent item is a zero. So an insert is a change from zero — unless
/// the write was the first read of a newly tracked value (`first_read`), which has no previous
/// value. A first read of zero is no news at all (and is not even stored); nor is an insert of
/// zero.
pub fn feed_entry(
    old: Option<&BalanceItem>,
    new: &BalanceItem,
    version: u64,
    first_read: bool,
    position: FeedPosition,
) -> Option<FeedEntry> {
    let TokenRead::Value(value) = new.read else {
        return None;
    };
    let previous = match old {
        Some(old) => old.read.value(),
        None if first_read => None,
        None => Some(U256::ZERO),
    };
    if previous == Some(value) || (old.is_none() && value.is_zero()) {
        return None;
    }
    Some(FeedEntry {
        position,
        chain_id: new.chain_id,
        owner: new.owner,
        key: new.key,
        value,
        previous,
        block: new.block,
        tx_hash: new.tx_hash,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, B256};
    use live_balances::domain::model::BalanceKey;

    fn item(value: TokenRead, block: u64) -> BalanceItem {
        BalanceItem {
            chain_id: 31337,
            owner: Address::repeat_byte(1),
            key: BalanceKey::Balance {
                token: Address::repeat_byte(2),
            },
            read: value,
            block,
            tx_hash: Some(B256::repeat_byte(3)),
        }
    }

    fn pos() -> FeedPosition {
        FeedPosition::parse("42").unwrap()
    }

    #[test]
    fn changed_value_yields_entry_with_previous() {
        let old = item(TokenRead::Value(U256::from(10)), 5);
        let new = item(TokenRead::Value(U256::from(15)), 6);
        let entry = feed_entry(Some(&old), &new, 1, false, pos()).unwrap();
        assert_eq!(entry.value, U256::from(15));
        assert_eq!(entry.previous, Some(U256::from(10)));
        assert_eq!(entry.block, 6);
        assert_eq!(entry.position, pos());
        assert_eq!(entry.version, 1);
    }

    #[test]
    fn a_first_read_has_no_previous_but_an_insert_was_zero() {
        let new = item(TokenRead::Value(U256::from(7)), 6);
        assert_eq!(
            feed_entry(None, &new, 1, true, pos()).unwrap().previous,
            None
        );
        // A tracked value that was zero (no item) and is now 7.
        assert_eq!(
            feed_entry(None, &new, 1, false, pos()).unwrap().previous,
            Some(U256::ZERO)
        );
    }

    #[test]
    fn a_first_value_of_zero_is_no_news_but_a_later_zero_is() {
        let zero = item(TokenRead::Value(U256::ZERO), 6);
        assert_eq!(feed_entry(None, &zero, 1, true, pos()), None);
        let old = item(TokenRead::Value(U256::from(3)), 5);
        assert_eq!(
            feed_entry(Some(&old), &zero, 2, false, pos())
                .unwrap()
                .previous,
            Some(U256::from(3))
        );
        // From unreadable to zero: the client showed an error, so zero is news.
        let failed = item(TokenRead::Failed, 5);
        assert!(feed_entry(Some(&failed), &zero, 2, false, pos()).is_some());
    }

    #[test]
    fn unchanged_or_unreadable_values_yield_nothing() {
        let old = item(TokenRead::Value(U256::from(10)), 5);
        assert_eq!(
            feed_entry(
                Some(&old),
                &item(TokenRead::Value(U256::from(10)), 9),
                1,
                false,
                pos()
            ),
            None
        );
        assert_eq!(
            feed_entry(Some(&old), &item(TokenRead::Failed, 9), 1, false, pos()),
            None
        );
    }

    #[test]
    fn recovery_from_failed_read_reports_no_previous() {
        let old = item(TokenRead::Failed, 5);
        let new = item(TokenRead::Value(U256::from(1)), 6);
        assert_eq!(
            feed_entry(Some(&old), &new, 1, false, pos())
                .unwrap()
                .previous,
            None
        );
    }
}
