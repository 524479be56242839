//! Balance and allowance items (`B#{chain}#{owner}` / `T#{token}`, `A#{token}#{spender}`,
//! `P#{token}#{spender}`).
//!
//! Values are sparse: only a value that is not zero is stored. A zero is the absence of an
//! item — except where a stored value drops to zero: the item is kept with `read = "0"` (a
//! tombstone, with a TTL) so that its write count, which orders its changes for streams, does
//! not start over. Every write is conditional: only a changed value is written, never over a
//! value read at a later block (unless that block is on a branch a reorg dropped).

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::Address;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

use super::records::{BalanceRecord, read_text};
use super::{StorageError, Table, Written, from_item, keys, n, s, written};
use crate::domain::address::lower;
use crate::domain::model::{BalanceItem, BalanceKey, TokenRead};
use crate::domain::order::OrderState;
use crate::domain::token_metadata::TokenMetadata;

/// How a value write is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueWrite {
    /// The first read of a newly tracked value (not a change from zero): the change feed
    /// reports it without a previous value.
    pub first_read: bool,
    /// Values stored from blocks above this one are on a branch a reorg dropped: they may be
    /// replaced by a value read at a lower block.
    pub rewound_above: Option<u64>,
    /// Unix time a tombstone (a value that dropped to zero) is deleted at.
    pub tombstone_expires_at: u64,
}

/// A wallet's stored values, with what the table knows beside them.
#[derive(Debug, Clone, Default)]
pub struct WalletValues {
    pub items: Vec<BalanceItem>,
    /// Metadata stored on balance items by versions before token metadata moved to the lists
    /// and the per-chain cache; used only where nothing newer describes the token.
    pub metadata: BTreeMap<Address, TokenMetadata>,
    /// Each item's version (see [`crate::domain::model::FeedEntry::version`]).
    pub versions: HashMap<BalanceKey, u64>,
    /// The wallet's stored orders (expired ones included: callers filter).
    pub orders: Vec<OrderState>,
}

/// An update expression setting `sets`, removing `removes` and counting the write in the
/// item's version.
fn versioned_update(sets: &[&str], removes: &[&str]) -> String {
    let mut update = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        update.push_str(" REMOVE ");
        update.push_str(&removes.join(", "));
    }
    update.push_str(" ADD #version :one");
    update
}

impl Table {
    /// Writes a value if it changed: a non-zero value (or a failed read) is stored; a zero
    /// turns an existing item into a tombstone and stores nothing where no item exists.
    pub async fn put_balance(
        &self,
        item: &BalanceItem,
        now: u64,
        how: ValueWrite,
    ) -> Result<Written, StorageError> {
        let zero = item.read == TokenRead::Value(alloy::primitives::U256::ZERO);
        let mut request = self.value_update(item, now, &how);
        // Every name goes through a placeholder: several are DynamoDB reserved words.
        let mut sets = vec![
            "#chain = :chain",
            "#owner = :owner",
            "#token = :token",
            "#read = :read",
            "#block = :block",
            "#updated = :now",
        ];
        let mut removes = vec![];
        if let Some(spender) = item.key.spender() {
            sets.push("#spender = :spender");
            request = request
                .expression_attribute_names("#spender", "spender")
                .expression_attribute_values(":spender", s(lower(&spender.address())));
        }
        if let BalanceKey::Permit2 { .. } = item.key {
            // What tells a Permit2 allowance from the token's own to the same spender in the
            // item itself (and in its stream images).
            sets.push("#permit2 = :permit2");
            request = request
                .expression_attribute_names("#permit2", "permit2")
                .expression_attribute_values(":permit2", AttributeValue::Bool(true));
        }
        match item.tx_hash {
            Some(tx) => {
                sets.push("#tx = :tx");
                request = request.expression_attribute_values(":tx", s(tx.to_string()));
            }
            None => removes.push("#tx"),
        }
        let condition = if zero {
            sets.push("#ttl = :expires");
            removes.push("#first");
            request = request.expression_attribute_values(":expires", n(how.tombstone_expires_at));
            "attribute_exists(pk) AND #read <> :read AND (#block <= :block OR #block > :rewound)"
        } else {
            removes.push("#ttl");
            if how.first_read {
                sets.push("#first = :first");
                request = request.expression_attribute_values(
                    ":first",
                    aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                );
            } else {
                removes.push("#first");
            }
            "attribute_not_exists(pk) OR (#read <> :read AND (#block <= :block OR #block > :rewound))"
        };
        let result = request
            .update_expression(versioned_update(&sets, &removes))
            .condition_expression(condition)
            .send()
            .await;
        written(result)
    }

    /// The update of one value item with every name and value that each of its writes uses.
    fn value_update(
        &self,
        item: &BalanceItem,
        now: u64,
        how: &ValueWrite,
    ) -> UpdateItemFluentBuilder {
        self.update(
            keys::balance_pk(item.chain_id, &item.owner),
            keys::balance_sk(&item.key),
        )
        .expression_attribute_names("#read", "read")
        .expression_attribute_names("#block", "block")
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_names("#chain", "chain_id")
        .expression_attribute_names("#token", "token")
        .expression_attribute_names("#updated", "updated_at")
        .expression_attribute_names("#tx", "tx")
        .expression_attribute_names("#first", "first")
        .expression_attribute_names("#version", "version")
        .expression_attribute_values(":read", s(read_text(&item.read)))
        .expression_attribute_values(":block", n(item.block))
        .expression_attribute_values(":rewound", n(how.rewound_above.unwrap_or(u64::MAX)))
        .expression_attribute_values(":chain", n(item.chain_id))
        .expression_attribute_values(":owner", s(lower(&item.owner)))
        .expression_attribute_values(":token", s(lower(&item.key.token())))
        .expression_attribute_values(":now", n(now))
        .expression_attribute_values(":one", n(1))
    }

    /// One stored value of a wallet, if stored.
    pub async fn balance(
        &self,
        chain_id: u64,
        owner: &Address,
        key: &BalanceKey,
    ) -> Result<Option<BalanceItem>, StorageError> {
        self.get::<BalanceRecord, BalanceItem>(
            keys::balance_pk(chain_id, owner),
            keys::balance_sk(key),
        )
        .await
    }

    /// Every stored value of a wallet (one consistent query; tombstones included, as zeros).
    pub async fn balances(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<Vec<BalanceItem>, StorageError> {
        Ok(self.wallet_values(chain_id, owner).await?.items)
    }

    /// What the table holds for a wallet's values — only each item's key and value, for the
    /// poller to learn what it holds (one consistent query of the partition, its orders and
    /// tombstones left out). Lighter than [`Self::balances`]: nothing else is decoded.
    pub async fn stored_reads(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<Vec<(BalanceKey, TokenRead)>, StorageError> {
        let pk = keys::balance_pk(chain_id, owner);
        let query = self
            .query("pk = :pk", pk.clone())
            .projection_expression("sk, #read")
            .expression_attribute_names("#read", "read")
            .consistent_read(true);
        let mut reads = vec![];
        for item in self.query_items(query).await? {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
            let (Some(sk), Some(read)) = (text("sk"), text("read")) else {
                continue;
            };
            let Some(key) = keys::parse_balance_sk(sk) else {
                continue;
            };
            let read = super::records::parse_read(&format!("{pk}/{sk}"), read)?;
            if read != TokenRead::Value(alloy::primitives::U256::ZERO) {
                reads.push((key, read));
            }
        }
        Ok(reads)
    }

    /// What the table holds for some values of some wallets — the non-zero ones (a value not
    /// stored, or a tombstone, is zero and left out) — by consistent batch reads of their keys
    /// projected to the key and the value: how the poller learns the few values a session
    /// change added, for every changed wallet of a step at once, instead of a query of each
    /// wallet's whole partition.
    pub async fn stored_reads_by_key(
        &self,
        chain_id: u64,
        values: &[(Address, BalanceKey)],
    ) -> Result<Vec<(Address, BalanceKey, TokenRead)>, StorageError> {
        let mut asked: HashMap<(String, String), (Address, BalanceKey)> =
            HashMap::with_capacity(values.len());
        for (owner, key) in values {
            asked.insert(
                (keys::balance_pk(chain_id, owner), keys::balance_sk(key)),
                (*owner, *key),
            );
        }
        let request_keys = asked
            .keys()
            .map(|(pk, sk)| super::item_key_of(pk.clone(), sk.clone()))
            .collect();
        let items = self
            .batch_get(request_keys, |request| {
                request
                    .consistent_read(true)
                    .projection_expression("pk, sk, #read")
                    .expression_attribute_names("#read", "read")
            })
            .await?;
        let mut reads = Vec::with_capacity(items.len());
        for item in items {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
            let (Some(pk), Some(sk), Some(read)) = (text("pk"), text("sk"), text("read")) else {
                continue;
            };
            let Some((owner, key)) = asked.get(&(pk.clone(), sk.clone())) else {
                continue;
            };
            let read = super::records::parse_read(&format!("{pk}/{sk}"), read)?;
            if read != TokenRead::Value(alloy::primitives::U256::ZERO) {
                reads.push((*owner, *key, read));
            }
        }
        Ok(reads)
    }

    /// Every stored value of a wallet with their versions, and its orders (one consistent
    /// query).
    pub async fn wallet_values(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<WalletValues, StorageError> {
        let items = self.query_all(keys::balance_pk(chain_id, owner)).await?;
        let mut values = WalletValues::default();
        for item in items {
            // The wallet's open orders share its partition (see `orders.rs`).
            if item
                .get("sk")
                .and_then(|sk| sk.as_s().ok())
                .is_some_and(|sk| keys::is_order_sk(sk))
            {
                values.orders.push(super::orders::order_from_item(item)?);
                continue;
            }
            let record = from_item::<BalanceRecord>(item)?;
            let metadata = record.metadata.metadata();
            let version = record.version;
            let item = BalanceItem::try_from(record)?;
            values.versions.insert(item.key, version);
            if let Some(metadata) = metadata {
                values.metadata.insert(item.key.token(), metadata);
            }
            values.items.push(item);
        }
        Ok(values)
    }
}
