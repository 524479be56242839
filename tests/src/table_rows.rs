//! Rows put straight into the table as the api stores them, past the storage module: a
//! session with no session-log entry (as something that bypassed the storage module would
//! leave it), and a value as a session's first read stores it. For tests of how the service
//! finds what its log never named.

use alloy::primitives::{Address, U256};
use aws_sdk_dynamodb::types::AttributeValue;
use live_balances::domain::address::lower;
use live_balances::domain::model::{BalanceItem, BalanceKey, TokenRead};
use live_balances::storage::{Table, ValueWrite};

/// `owner`'s session on `chain` watching `token`, read at `block`, complete at revision 1,
/// expiring in an hour — and no log entry naming it.
pub async fn put_session_without_log(
    table: &Table,
    chain: u64,
    owner: Address,
    token: Address,
    block: u64,
    now: u64,
) -> anyhow::Result<()> {
    let number = |v: u64| AttributeValue::N(v.to_string());
    let text = AttributeValue::S;
    table
        .client()
        .put_item()
        .table_name(table.name())
        .item("pk", text(live_balances::storage::keys::session_pk(chain)))
        .item("sk", text(lower(&owner)))
        .item("chain_id", number(chain))
        .item("owner", text(lower(&owner)))
        .item("tokens", AttributeValue::Ss(vec![lower(&token)]))
        .item("revision", number(1))
        .item("complete_revision", number(1))
        .item("read_block", number(block))
        .item("created_at", number(now))
        .item("expires_at", number(now + 3_600))
        .item("ttl", number(now + 3_600))
        .send()
        .await?;
    Ok(())
}

/// `owner`'s `key` on `chain` stored as `value`, read at `block`, as a session's first read.
pub async fn put_first_read(
    table: &Table,
    chain: u64,
    owner: Address,
    key: BalanceKey,
    value: U256,
    block: u64,
    now: u64,
) -> anyhow::Result<()> {
    let item = BalanceItem {
        chain_id: chain,
        owner,
        key,
        read: TokenRead::Value(value),
        block,
        tx_hash: None,
    };
    let how = ValueWrite {
        first_read: true,
        rewound_above: None,
        tombstone_expires_at: now + 3_600,
    };
    table.put_balance(&item, now, how).await?;
    Ok(())
}
