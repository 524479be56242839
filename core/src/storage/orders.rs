//! Open orders (`B#{chain}#{owner}` / `O#{order id}`) and their `order_status` feed entries
//! (`F#{chain}#{owner}` / `{feed position}`, `kind = order_status`).
//!
//! An order lives in its wallet's value partition on purpose: the snapshot reads it in the
//! same query as the values it is judged on, and its stream records (registration, each
//! status change) are ordered with the value changes that caused them — one partition, one
//! stream shard — so its feed entries take positions in the wallet's feed order. Its TTL is
//! its `validTo`; since TTL deletes late, every read filters expired orders out as well.

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use super::item_parts::ItemKey;
use super::keys::{self, ORDER_SK_PREFIX, order_sk};
use super::records::{address, amount, tenant};
use super::{StorageError, Table, Written, from_item, n, s, to_item, written};
use crate::domain::address::lower;
use crate::domain::api_key::Tenant;
use crate::domain::model::{FeedPosition, OrderStatusEntry, Spender};
use crate::domain::order::{Fillability, Order, OrderId, OrderState, Short};

/// `kind` of an `order_status` feed item (value-change items have none).
const ORDER_STATUS_KIND: &str = "order_status";
/// `short` of a fillable order.
const NOT_SHORT: &str = "none";

/// An order with its last judged status, as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OrderRecord {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub order: OrderAttributes,
    #[serde(flatten)]
    pub status: FillabilityAttributes,
    pub block: u64,
    /// Counted by DynamoDB (`ADD`), never written whole.
    #[serde(default, skip_serializing)]
    pub version: u64,
    /// The tenant whose API key registered it (absent on orders from before keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// An `order_status` feed item: the order item's attributes as they were, and the entry's.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OrderFeedRecord {
    #[serde(flatten)]
    pub key: ItemKey,
    pub kind: String,
    #[serde(flatten)]
    pub order: OrderAttributes,
    #[serde(flatten)]
    pub status: FillabilityAttributes,
    pub block: u64,
    pub version: u64,
    pub ttl: u64,
}

/// An order's terms as stored: whose, which, what it sells through which spender, until when.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OrderAttributes {
    pub chain_id: u64,
    pub owner: String,
    pub order_id: String,
    pub token: String,
    pub spender: String,
    /// The spender spends through Permit2 (absent: the token's own allowance).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permit2: bool,
    pub amount: String,
    pub valid_to: u64,
}

/// An order's judged status as stored: how it is short, and by how much.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FillabilityAttributes {
    pub short: String,
    pub balance_shortfall: String,
    pub allowance_shortfall: String,
}

fn short_text(status: &Fillability) -> &'static str {
    status.short.map_or(NOT_SHORT, Short::as_str)
}

impl OrderAttributes {
    fn new(order: &Order) -> Self {
        Self {
            chain_id: order.chain_id,
            owner: lower(&order.owner),
            order_id: order.id.to_string(),
            token: lower(&order.sell_token),
            spender: lower(&order.spender.address()),
            permit2: matches!(order.spender, Spender::Permit2(_)),
            amount: order.sell_amount.to_string(),
            valid_to: order.valid_to,
        }
    }

    fn decode(&self, key: &str) -> Result<Order, StorageError> {
        Ok(Order {
            chain_id: self.chain_id,
            owner: address(key, "owner", &self.owner)?,
            id: OrderId::parse(&self.order_id).map_err(|e| StorageError::corrupt(key, e))?,
            sell_token: address(key, "token", &self.token)?,
            sell_amount: amount(key, &self.amount)?,
            spender: match (address(key, "spender", &self.spender)?, self.permit2) {
                (spender, false) => Spender::Erc20(spender),
                (spender, true) => Spender::Permit2(spender),
            },
            valid_to: self.valid_to,
        })
    }
}

impl FillabilityAttributes {
    fn new(status: &Fillability) -> Self {
        Self {
            short: short_text(status).into(),
            balance_shortfall: status.balance_shortfall.to_string(),
            allowance_shortfall: status.allowance_shortfall.to_string(),
        }
    }

    fn decode(&self, key: &str) -> Result<Fillability, StorageError> {
        let short = match self.short.as_str() {
            NOT_SHORT => None,
            other => Some(
                Short::parse(other)
                    .ok_or_else(|| StorageError::corrupt(key, format!("short: {other:?}")))?,
            ),
        };
        Ok(Fillability {
            short,
            balance_shortfall: amount(key, &self.balance_shortfall)?,
            allowance_shortfall: amount(key, &self.allowance_shortfall)?,
        })
    }
}

impl TryFrom<OrderRecord> for OrderState {
    type Error = StorageError;

    fn try_from(r: OrderRecord) -> Result<Self, StorageError> {
        let key = r.key.to_string();
        let tenant = tenant(&key, r.tenant.as_deref())?;
        Ok(OrderState {
            order: r.order.decode(&key)?,
            status: r.status.decode(&key)?,
            block: r.block,
            version: r.version,
            tenant,
        })
    }
}

impl OrderFeedRecord {
    fn new(entry: &OrderStatusEntry, ttl: u64) -> Self {
        let order = &entry.order;
        Self {
            key: ItemKey::new(
                keys::feed_pk(order.chain_id, &order.owner),
                entry.position.to_string(),
            ),
            kind: ORDER_STATUS_KIND.into(),
            order: OrderAttributes::new(order),
            status: FillabilityAttributes::new(&entry.status),
            block: entry.block,
            version: entry.version,
            ttl,
        }
    }
}

impl TryFrom<OrderFeedRecord> for OrderStatusEntry {
    type Error = StorageError;

    fn try_from(r: OrderFeedRecord) -> Result<Self, StorageError> {
        // The entry holds the order item's attributes as they were: decoded the same way.
        let key = r.key.to_string();
        Ok(OrderStatusEntry {
            position: FeedPosition::parse(&r.key.sk).map_err(|e| StorageError::corrupt(&key, e))?,
            order: r.order.decode(&key)?,
            status: r.status.decode(&key)?,
            block: r.block,
            version: r.version,
        })
    }
}

/// Whether a feed item is an `order_status` entry.
pub(crate) fn is_order_feed_item(item: &super::Item) -> bool {
    matches!(item.get("kind"), Some(AttributeValue::S(kind)) if kind == ORDER_STATUS_KIND)
}

/// Decodes an order item of the value partition.
pub(crate) fn order_from_item(item: super::Item) -> Result<OrderState, StorageError> {
    OrderState::try_from(from_item::<OrderRecord>(item)?)
}

/// Decodes an `order_status` feed item.
pub(crate) fn order_status_from_item(item: super::Item) -> Result<OrderStatusEntry, StorageError> {
    OrderStatusEntry::try_from(from_item::<OrderFeedRecord>(item)?)
}

/// Decodes the order item in a stream image (the caller checked its keys).
pub(crate) fn order_from_record(record: OrderRecord) -> Result<OrderState, StorageError> {
    OrderState::try_from(record)
}

impl Table {
    /// Stores `tenant`'s order (new, or replacing the one with its id) with its status as
    /// judged at `block`; its TTL is its `validTo`. `Skipped` (nothing written) when the id is
    /// another tenant's order.
    pub async fn put_order(
        &self,
        order: &Order,
        tenant: &Tenant,
        status: &Fillability,
        block: u64,
        now: u64,
    ) -> Result<Written, StorageError> {
        let update = "SET #chain = :chain, #owner = :owner, #id = :id, #token = :token, \
             #spender = :spender, #permit2 = :permit2, #amount = :amount, #valid = :valid, #ttl = :valid, \
             #short = :short, #bs = :bs, #as = :as, #block = :block, #updated = :now, \
             #tenant = :tenant ADD #version :one";
        let result = self
            .update(
                keys::balance_pk(order.chain_id, &order.owner),
                order_sk(&order.id),
            )
            .update_expression(update)
            .condition_expression("attribute_not_exists(pk) OR #tenant = :tenant")
            .expression_attribute_names("#tenant", "tenant")
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .expression_attribute_names("#chain", "chain_id")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#id", "order_id")
            .expression_attribute_names("#token", "token")
            .expression_attribute_names("#spender", "spender")
            .expression_attribute_names("#permit2", "permit2")
            .expression_attribute_names("#amount", "amount")
            .expression_attribute_names("#valid", "valid_to")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#short", "short")
            .expression_attribute_names("#bs", "balance_shortfall")
            .expression_attribute_names("#as", "allowance_shortfall")
            .expression_attribute_names("#block", "block")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":chain", n(order.chain_id))
            .expression_attribute_values(":owner", s(lower(&order.owner)))
            .expression_attribute_values(":id", s(order.id.as_str()))
            .expression_attribute_values(":token", s(lower(&order.sell_token)))
            .expression_attribute_values(":spender", s(lower(&order.spender.address())))
            .expression_attribute_values(
                ":permit2",
                AttributeValue::Bool(matches!(order.spender, Spender::Permit2(_))),
            )
            .expression_attribute_values(":amount", s(order.sell_amount.to_string()))
            .expression_attribute_values(":valid", n(order.valid_to))
            .expression_attribute_values(":short", s(short_text(status)))
            .expression_attribute_values(":bs", s(status.balance_shortfall.to_string()))
            .expression_attribute_values(":as", s(status.allowance_shortfall.to_string()))
            .expression_attribute_values(":block", n(block))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        written(result)
    }

    /// Records an order's new status, only if the order is still the one judged (its
    /// version unchanged): a replaced or deleted order is left alone.
    pub async fn set_order_status(
        &self,
        judged: &OrderState,
        status: &Fillability,
        block: u64,
        now: u64,
    ) -> Result<Written, StorageError> {
        let order = &judged.order;
        let result = self
            .update(
                keys::balance_pk(order.chain_id, &order.owner),
                order_sk(&order.id),
            )
            .update_expression(
                "SET #short = :short, #bs = :bs, #as = :as, #block = :block, #updated = :now \
                 ADD #version :one",
            )
            .condition_expression("#version = :version")
            .expression_attribute_names("#short", "short")
            .expression_attribute_names("#bs", "balance_shortfall")
            .expression_attribute_names("#as", "allowance_shortfall")
            .expression_attribute_names("#block", "block")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":short", s(short_text(status)))
            .expression_attribute_values(":bs", s(status.balance_shortfall.to_string()))
            .expression_attribute_values(":as", s(status.allowance_shortfall.to_string()))
            .expression_attribute_values(":block", n(block))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":version", n(judged.version))
            .send()
            .await;
        written(result)
    }

    /// Deletes `tenant`'s order; whether there was one (another tenant's is left alone, as
    /// if there were none).
    pub async fn delete_order(
        &self,
        chain_id: u64,
        owner: &Address,
        id: &OrderId,
        tenant: &Tenant,
    ) -> Result<bool, StorageError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(keys::balance_pk(chain_id, owner)))
            .key("sk", s(order_sk(id)))
            .condition_expression("#tenant = :tenant")
            .expression_attribute_names("#tenant", "tenant")
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        Ok(written(result)? == Written::Yes)
    }

    /// The wallet's stored orders, expired ones included (one consistent query of the order
    /// items only; callers filter by [`Order::is_open`]).
    pub async fn orders(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<Vec<OrderState>, StorageError> {
        let query = self
            .query(
                "pk = :pk AND begins_with(sk, :prefix)",
                keys::balance_pk(chain_id, owner),
            )
            .expression_attribute_values(":prefix", s(ORDER_SK_PREFIX))
            .consistent_read(true);
        self.query_items(query)
            .await?
            .into_iter()
            .map(order_from_item)
            .collect()
    }

    /// Appends an `order_status` entry to the wallet's feed. Idempotent, as value entries:
    /// a stream record delivered twice has the same position and is written once.
    pub async fn append_order_status(
        &self,
        entry: &OrderStatusEntry,
        ttl: u64,
    ) -> Result<Written, StorageError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_item(OrderFeedRecord::new(entry, ttl))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        written(result)
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;

    use super::super::keys::is_order_sk;
    use super::*;

    fn entry() -> OrderStatusEntry {
        OrderStatusEntry {
            position: FeedPosition::parse("42").unwrap(),
            order: Order {
                chain_id: 31337,
                owner: Address::repeat_byte(0xab),
                id: OrderId::parse("0xdead").unwrap(),
                sell_token: Address::repeat_byte(2),
                sell_amount: U256::from(100),
                spender: Spender::Permit2(Address::repeat_byte(3)),
                valid_to: 1_900_000_000,
            },
            status: Fillability::of(U256::from(100), U256::from(60), U256::ZERO),
            block: 7,
            version: 3,
        }
    }

    #[test]
    fn order_status_feed_items_roundtrip_and_are_told_from_value_entries() {
        let entry = entry();
        let item = to_item(OrderFeedRecord::new(&entry, 1000)).unwrap();
        assert!(is_order_feed_item(&item));
        // A consumer of the table's stream reads the same entry from the item's image.
        let image = super::super::StreamImage::from(item.clone());
        assert_eq!(
            super::super::feed_event_from_image(&image).unwrap(),
            Some(crate::domain::model::FeedEvent::Order(entry.clone()))
        );
        assert_eq!(order_status_from_item(item).unwrap(), entry);
    }

    #[test]
    fn order_items_roundtrip_and_a_bad_short_is_corrupt() {
        let e = entry();
        let record = |short: &str| OrderRecord {
            key: ItemKey::new(
                keys::balance_pk(e.order.chain_id, &e.order.owner),
                order_sk(&e.order.id),
            ),
            order: OrderAttributes {
                chain_id: e.order.chain_id,
                owner: lower(&e.order.owner),
                order_id: e.order.id.to_string(),
                token: lower(&e.order.sell_token),
                spender: lower(&e.order.spender.address()),
                permit2: true,
                amount: "100".into(),
                valid_to: e.order.valid_to,
            },
            status: FillabilityAttributes {
                short: short.into(),
                balance_shortfall: "40".into(),
                allowance_shortfall: "100".into(),
            },
            block: 7,
            version: 0,
            tenant: Some("dex".into()),
        };
        let state = OrderState::try_from(record("both")).unwrap();
        assert_eq!(state.tenant, Tenant::parse("dex").ok());
        assert_eq!((state.order, state.status), (e.order.clone(), e.status));
        assert!(OrderState::try_from(record("maybe")).is_err());
        assert!(is_order_sk(&order_sk(&e.order.id)));
        assert!(!is_order_sk("T#0xab"));
    }

    #[test]
    fn order_items_keep_their_attribute_names_through_flattening() {
        use std::collections::BTreeSet;
        let e = entry();
        let names =
            |item: &super::super::Item| -> BTreeSet<String> { item.keys().cloned().collect() };
        let feed = to_item(OrderFeedRecord::new(&e, 1000)).unwrap();
        assert_eq!(
            names(&feed),
            [
                "pk",
                "sk",
                "kind",
                "chain_id",
                "owner",
                "order_id",
                "token",
                "spender",
                "permit2",
                "amount",
                "valid_to",
                "short",
                "balance_shortfall",
                "allowance_shortfall",
                "block",
                "version",
                "ttl"
            ]
            .map(String::from)
            .into()
        );
        assert_eq!(feed["permit2"], AttributeValue::Bool(true));
        assert_eq!(feed["valid_to"], n(e.order.valid_to));
        // An order item as `put_order` writes it (its `ADD`ed version, its TTL and update
        // time beside the record's attributes), with the largest numbers a u64 holds.
        let mut item = feed.clone();
        item.remove("kind");
        item.insert("sk".into(), s(order_sk(&e.order.id)));
        item.insert("valid_to".into(), n(u64::MAX));
        item.insert("block".into(), n(u64::MAX));
        item.insert("version".into(), n(u64::MAX));
        item.insert("updated_at".into(), n(1));
        item.insert("tenant".into(), s("dex"));
        let record = from_item::<OrderRecord>(item).unwrap();
        assert!(record.order.permit2);
        assert_eq!(
            (record.order.valid_to, record.block, record.version),
            (u64::MAX, u64::MAX, u64::MAX)
        );
        let written = to_item(&record).unwrap();
        // `version` is counted by DynamoDB, never written whole; `ttl` and `updated_at` are
        // `put_order`'s own.
        assert_eq!(
            names(&written),
            [
                "pk",
                "sk",
                "chain_id",
                "owner",
                "order_id",
                "token",
                "spender",
                "permit2",
                "amount",
                "valid_to",
                "short",
                "balance_shortfall",
                "allowance_shortfall",
                "block",
                "tenant"
            ]
            .map(String::from)
            .into()
        );
        let state = OrderState::try_from(record).unwrap();
        assert_eq!(state.order.valid_to, u64::MAX);
        assert_eq!(state.status, e.status);
    }
}
