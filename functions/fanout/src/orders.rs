//! Order fillability in the fanout, in two steps:
//!
//! 1. A value change (balance or allowance) re-judges the wallet's open orders that sell that
//!    token (and, for an allowance, name that spender): once a batch for all of a wallet's
//!    changes, after their feed entries. Where the change crossed an order's
//!    amount — fillable flipped, or the short side changed — the order item's status is
//!    updated (conditionally on its version: a replaced or deleted order is left alone).
//! 2. That update, like an order's registration, is a stream record of the order item, in the
//!    wallet's partition and so in order with its value changes: it becomes an
//!    `order_status` feed entry at its own sequence number — its own resumable position,
//!    idempotent like every feed append.
//!
//! Both values are read from the table (they may be newer than the record, never older than
//! what the feed already told): the status converges on the values the table holds, and a
//! record handled again or late records nothing.

use std::collections::HashMap;

use alloy::primitives::{Address, U256};
use aws_lambda_events::event::dynamodb::EventRecord;
use live_balances::NATIVE_TOKEN;
use live_balances::domain::model::{BalanceKey, OrderStatusEntry};
use live_balances::domain::order::{Fillability, OrderState};
use live_balances::runtime::clock::unix_now;
use live_balances::storage::{StorageError, Table, Written, order_from_image};

use crate::{RecordError, record_position};

/// The `order_status` entry an order item's record yields: its registration (or
/// replacement with other terms) and every change of its status; `None` for other records
/// and for a removal (a deleted or expired order simply leaves the next `all_balances`).
pub fn order_entry_for(record: &EventRecord) -> Result<Option<OrderStatusEntry>, RecordError> {
    let change = &record.change;
    let Some(new) = order_from_image(&change.new_image)? else {
        return Ok(None);
    };
    let old = order_from_image(&change.old_image)?;
    let news = match &old {
        None => true,
        Some(old) => old.order != new.order || old.status.crossed(&new.status),
    };
    if !news {
        return Ok(None);
    }
    Ok(Some(OrderStatusEntry {
        position: record_position(record)?,
        order: new.order,
        status: new.status,
        block: new.block,
        version: new.version,
    }))
}

/// The stored values a wallet's orders are judged on, each read from the table once however
/// many orders name it (orders of one token share its balance, and usually their spender).
struct StoredValues<'a> {
    table: &'a Table,
    chain_id: u64,
    owner: &'a Address,
    read: HashMap<BalanceKey, (U256, u64)>,
}

impl<'a> StoredValues<'a> {
    fn new(table: &'a Table, chain_id: u64, owner: &'a Address) -> Self {
        Self {
            table,
            chain_id,
            owner,
            read: HashMap::new(),
        }
    }

    /// The stored value of `key` (zero when absent — sparse — or unreadable) and the block it
    /// was read at (0 when absent).
    async fn get(&mut self, key: BalanceKey) -> Result<(U256, u64), StorageError> {
        if let Some(value) = self.read.get(&key) {
            return Ok(*value);
        }
        let value = self
            .table
            .balance(self.chain_id, self.owner, &key)
            .await?
            .map(|item| (item.read.value().unwrap_or_default(), item.block))
            .unwrap_or_default();
        self.read.insert(key, value);
        Ok(value)
    }

    /// The order judged on the values the table holds now, and the block of the newer of the
    /// two. Not on the record's value: the fanout runs behind the table, and a record handled
    /// late (a retried batch starts again from its first failed record) would judge on a value
    /// the table has since left, recording a crossing back to a status the order is no longer
    /// in.
    async fn judge(&mut self, state: &OrderState) -> Result<(Fillability, u64), StorageError> {
        let order = &state.order;
        let mut values = HashMap::new();
        let mut block = 0;
        for key in order.value_keys() {
            let (value, read_at) = self.get(key).await?;
            values.insert(key, value);
            block = block.max(read_at);
        }
        let status = order.judge(|key| values.get(key).copied().unwrap_or_default());
        Ok((status, block))
    }
}

/// Re-judges the wallet's open orders a change of any of `changed` can affect; records each
/// status that crossed. Returns how many orders changed status. Safe to repeat: a status
/// already recorded does not cross again.
pub async fn reassess(
    table: &Table,
    chain_id: u64,
    owner: &Address,
    changed: &[BalanceKey],
) -> Result<usize, StorageError> {
    // Orders sell tokens with allowances; the native currency has none (it is sold wrapped).
    let changed: Vec<&BalanceKey> = changed
        .iter()
        .filter(|key| key.token() != NATIVE_TOKEN)
        .collect();
    if changed.is_empty() {
        return Ok(0);
    }
    let now = unix_now();
    let mut changed_status = 0;
    let mut values = StoredValues::new(table, chain_id, owner);
    for state in table.orders(chain_id, owner).await? {
        if !state.order.is_open(now) || !changed.iter().any(|key| state.order.depends_on(key)) {
            continue;
        }
        let (status, block) = values.judge(&state).await?;
        if !state.status.crossed(&status) {
            continue;
        }
        if table.set_order_status(&state, &status, block, now).await? == Written::Yes {
            changed_status += 1;
            tracing::debug!(chain = chain_id, owner = %owner, order = %state.order.id, fillable = status.fillable(), block, "order status crossed");
        }
    }
    Ok(changed_status)
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::dynamodb::Event;
    use serde_json::{Value, json};

    use live_balances::domain::model::FeedPosition;
    use live_balances::storage::stream_record;

    use super::*;
    use crate::entry_for;

    const OWNER: &str = "0xd8da6bf26964af9d7eed9e03e53415d37aa96045";
    const TOKEN: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";

    fn order_image(short: &str, amount: &str, version: u64) -> Value {
        json!({
            "pk": { "S": format!("B#1#{OWNER}") },
            "sk": { "S": "O#0xabc" },
            "chain_id": { "N": "1" },
            "owner": { "S": OWNER },
            "order_id": { "S": "0xabc" },
            "token": { "S": TOKEN },
            "spender": { "S": "0xc92e8bdf79f0507f65a392b0ab4667716bfe0110" },
            "amount": { "S": amount },
            "valid_to": { "N": "1900000000" },
            "ttl": { "N": "1900000000" },
            "short": { "S": short },
            "balance_shortfall": { "S": if short == "none" { "0" } else { "40" } },
            "allowance_shortfall": { "S": "0" },
            "block": { "N": "12" },
            "updated_at": { "N": "1700000000" },
            "version": { "N": version.to_string() },
        })
    }

    /// `new`'s stream record (a modification of `old`, else an insert).
    fn record(new: Value, old: Option<Value>) -> EventRecord {
        let record = stream_record(new, old, Some("700"), 1_700_000_000);
        let event: Event = serde_json::from_value(json!({ "Records": [record] })).unwrap();
        event.records.into_iter().next().unwrap()
    }

    #[test]
    fn a_registration_and_a_crossing_become_order_status_entries_at_their_own_position() {
        let insert = record(order_image("none", "100", 1), None);
        let entry = order_entry_for(&insert).unwrap().unwrap();
        assert_eq!(entry.position, FeedPosition::parse("700").unwrap());
        assert!(entry.status.fillable());
        assert_eq!((entry.block, entry.version), (12, 1));
        assert_eq!(entry.order.id.as_str(), "0xabc");
        // An order item is never taken for a balance.
        assert!(entry_for(&insert).unwrap().is_none());

        let crossed = record(
            order_image("balance", "100", 2),
            Some(order_image("none", "100", 1)),
        );
        let entry = order_entry_for(&crossed).unwrap().unwrap();
        assert_eq!(
            entry.status.short,
            Some(live_balances::domain::order::Short::Balance)
        );
        assert_eq!(entry.status.balance_shortfall, U256::from(40));
        // New terms are news too; a write that changed neither is not.
        let replaced = record(
            order_image("none", "90", 2),
            Some(order_image("none", "100", 1)),
        );
        assert!(order_entry_for(&replaced).unwrap().is_some());
        let same = record(
            order_image("none", "100", 2),
            Some(order_image("none", "100", 1)),
        );
        assert!(order_entry_for(&same).unwrap().is_none());
    }

    #[test]
    fn a_corrupt_order_item_is_an_error_and_balances_are_not_orders() {
        let mut bad = order_image("maybe", "100", 1);
        bad["short"] = json!({ "S": "maybe" });
        assert!(order_entry_for(&record(bad, None)).is_err());
        let balance = json!({
            "pk": { "S": format!("B#1#{OWNER}") },
            "sk": { "S": format!("T#{TOKEN}") },
            "chain_id": { "N": "1" },
            "owner": { "S": OWNER },
            "token": { "S": TOKEN },
            "read": { "S": "5" },
            "block": { "N": "3" },
            "updated_at": { "N": "1700000000" },
        });
        assert!(order_entry_for(&record(balance, None)).unwrap().is_none());
    }
}
