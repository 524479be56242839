//! The storage module against DynamoDB Local itself: each value write counts itself in the
//! item's version (DynamoDB's own `ADD`), a write refused by its condition does not, and the
//! snapshot read returns the versions the SSE stream orders feed entries by.

use alloy::primitives::{Address, U256};
use e2e::{Environment, fresh_owner};
use live_balances::domain::model::{BalanceItem, BalanceKey, TokenRead};
use live_balances::storage::{ValueWrite, Written};

/// A poller's write of a tracked value (not a first read), optionally after a rewind.
fn reread(rewound_above: Option<u64>) -> ValueWrite {
    ValueWrite {
        first_read: false,
        rewound_above,
        tombstone_expires_at: u64::MAX,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_value_write_counts_itself_in_the_items_version() -> anyhow::Result<()> {
    let env = Environment::get();
    let table = env.stack.table().await;
    let owner = fresh_owner();
    let key = BalanceKey::Balance {
        token: Address::repeat_byte(0x5a),
    };
    let item = |value: u64, block: u64| BalanceItem {
        chain_id: env.chain_id(),
        owner,
        key,
        read: TokenRead::Value(U256::from(value)),
        block,
        tx_hash: None,
    };
    let version = || async {
        let values = table.wallet_values(env.chain_id(), &owner).await?;
        anyhow::Ok(values.versions.get(&key).copied())
    };

    assert_eq!(
        table.put_balance(&item(5, 10), 1, reread(None)).await?,
        Written::Yes
    );
    assert_eq!(version().await?, Some(1));
    assert_eq!(
        table.put_balance(&item(7, 11), 2, reread(None)).await?,
        Written::Yes
    );
    assert_eq!(version().await?, Some(2));
    // An older block's value, and the same value again: refused, not counted.
    assert_eq!(
        table.put_balance(&item(9, 9), 3, reread(None)).await?,
        Written::Skipped
    );
    assert_eq!(
        table.put_balance(&item(7, 12), 4, reread(None)).await?,
        Written::Skipped
    );
    assert_eq!(version().await?, Some(2));
    // A reorg's rewind may store a value read at a lower block: it counts like any write.
    assert_eq!(
        table.put_balance(&item(3, 8), 5, reread(Some(7))).await?,
        Written::Yes
    );
    assert_eq!(version().await?, Some(3));
    // Sparse values: a zero where nothing is stored stores nothing; a stored value that drops
    // to zero stays as a tombstone whose version goes on counting, and a value after it too.
    let other = BalanceItem {
        key: BalanceKey::Balance {
            token: Address::repeat_byte(0x5b),
        },
        read: TokenRead::Value(U256::ZERO),
        ..item(0, 20)
    };
    assert_eq!(
        table.put_balance(&other, 6, reread(None)).await?,
        Written::Skipped
    );
    assert_eq!(
        table.put_balance(&item(0, 21), 7, reread(None)).await?,
        Written::Yes
    );
    assert_eq!(version().await?, Some(4));
    let values = table.wallet_values(env.chain_id(), &owner).await?;
    assert_eq!(values.items.len(), 1, "the untouched zero is not stored");
    assert_eq!(values.items[0].read, TokenRead::Value(U256::ZERO));
    assert_eq!(
        table.put_balance(&item(0, 22), 8, reread(None)).await?,
        Written::Skipped,
        "a zero over a tombstone is no change"
    );
    assert_eq!(
        table.put_balance(&item(4, 23), 9, reread(None)).await?,
        Written::Yes
    );
    assert_eq!(version().await?, Some(5));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn values_are_read_by_key_across_wallets_in_batches() -> anyhow::Result<()> {
    let env = Environment::get();
    let table = env.stack.table().await;
    let chain_id = env.chain_id();
    let (alice, bob) = (fresh_owner(), fresh_owner());
    let token = |n: u8| Address::repeat_byte(n);
    let write = |owner: Address, key: BalanceKey, value: u64, block: u64| BalanceItem {
        chain_id,
        owner,
        key,
        read: TokenRead::Value(U256::from(value)),
        block,
        tx_hash: None,
    };
    let held = BalanceKey::Balance { token: token(1) };
    let allowance = BalanceKey::Allowance {
        token: token(1),
        spender: token(0x5e),
    };
    let emptied = BalanceKey::Balance { token: token(2) };
    let failed = BalanceKey::Balance { token: token(3) };
    table
        .put_balance(&write(alice, held, 5, 1), 1, reread(None))
        .await?;
    table
        .put_balance(&write(bob, allowance, 7, 1), 1, reread(None))
        .await?;
    // A tombstone reads as zero.
    table
        .put_balance(&write(alice, emptied, 9, 1), 1, reread(None))
        .await?;
    table
        .put_balance(&write(alice, emptied, 0, 2), 2, reread(None))
        .await?;
    table
        .put_balance(
            &BalanceItem {
                read: TokenRead::Failed,
                ..write(bob, failed, 0, 1)
            },
            1,
            reread(None),
        )
        .await?;
    // More keys than one batch request takes, most of them never stored.
    let mut asked: Vec<(Address, BalanceKey)> = (0..250u32)
        .map(|n| {
            let mut bytes = [0x40u8; 20];
            bytes[..4].copy_from_slice(&n.to_be_bytes());
            (
                alice,
                BalanceKey::Balance {
                    token: Address::from(bytes),
                },
            )
        })
        .collect();
    asked.extend([
        (alice, held),
        (alice, emptied),
        (bob, allowance),
        (bob, failed),
        (bob, held),
    ]);
    let mut found = table.stored_reads_by_key(chain_id, &asked).await?;
    found.sort_by_key(|(owner, key, _)| (*owner, *key));
    let mut expected = vec![
        (alice, held, TokenRead::Value(U256::from(5))),
        (bob, allowance, TokenRead::Value(U256::from(7))),
        (bob, failed, TokenRead::Failed),
    ];
    expected.sort_by_key(|(owner, key, _)| (*owner, *key));
    assert_eq!(found, expected);
    assert!(table.stored_reads_by_key(chain_id, &[]).await?.is_empty());
    Ok(())
}
