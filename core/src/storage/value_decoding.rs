//! `Deserialize` for the two item shapes decoded on a hot path — a wallet's stored values
//! (every snapshot) and their change-feed entries (every stream) — written out rather than
//! derived. Their parts ([`ItemKey`], [`ValueIdentity`], [`TokenMetadataAttributes`]) sit
//! flattened at the item's top level; serde's derived `flatten` would first buffer every
//! attribute of the item and parse every number three ways, which costs about half as much
//! again per item as the flat shape did. Here each attribute goes straight to its field, by
//! the same rules the derive applies: a required attribute missing is an error, an optional
//! one absent (or `NULL`) is `None`, flags default to `false`, unknown attributes are passed
//! over.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::item_parts::{ItemKey, TokenMetadataAttributes, ValueIdentity};
use super::records::{BalanceRecord, FeedRecord};

/// A required attribute's value, or serde's missing-field error.
fn required<T, E: de::Error>(value: Option<T>, name: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(name))
}

/// The attributes of a stored value item, by name.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum BalanceAttribute {
    Pk,
    Sk,
    ChainId,
    Owner,
    Token,
    Spender,
    Permit2,
    Read,
    Block,
    Tx,
    UpdatedAt,
    Symbol,
    Name,
    Decimals,
    Version,
    First,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for BalanceRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(BalanceRecordVisitor)
    }
}

struct BalanceRecordVisitor;

impl<'de> Visitor<'de> for BalanceRecordVisitor {
    type Value = BalanceRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored value item")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BalanceRecord, A::Error> {
        let (mut pk, mut sk, mut chain_id, mut owner, mut token) = (None, None, None, None, None);
        let (mut read, mut block, mut updated_at) = (None, None, None);
        let (mut spender, mut permit2, mut tx, mut version, mut first) =
            (None, false, None, 0, false);
        let mut metadata = TokenMetadataAttributes::default();
        while let Some(attribute) = map.next_key()? {
            match attribute {
                BalanceAttribute::Pk => pk = Some(map.next_value()?),
                BalanceAttribute::Sk => sk = Some(map.next_value()?),
                BalanceAttribute::ChainId => chain_id = Some(map.next_value()?),
                BalanceAttribute::Owner => owner = Some(map.next_value()?),
                BalanceAttribute::Token => token = Some(map.next_value()?),
                BalanceAttribute::Spender => spender = map.next_value()?,
                BalanceAttribute::Permit2 => permit2 = map.next_value()?,
                BalanceAttribute::Read => read = Some(map.next_value()?),
                BalanceAttribute::Block => block = Some(map.next_value()?),
                BalanceAttribute::Tx => tx = map.next_value()?,
                BalanceAttribute::UpdatedAt => updated_at = Some(map.next_value()?),
                BalanceAttribute::Symbol => metadata.symbol = map.next_value()?,
                BalanceAttribute::Name => metadata.name = map.next_value()?,
                BalanceAttribute::Decimals => metadata.decimals = map.next_value()?,
                BalanceAttribute::Version => version = map.next_value()?,
                BalanceAttribute::First => first = map.next_value()?,
                BalanceAttribute::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(BalanceRecord {
            key: ItemKey::new(
                required::<String, _>(pk, "pk")?,
                required::<String, _>(sk, "sk")?,
            ),
            identity: ValueIdentity {
                chain_id: required(chain_id, "chain_id")?,
                owner: required(owner, "owner")?,
                token: required(token, "token")?,
                spender,
                permit2,
            },
            read: required(read, "read")?,
            block: required(block, "block")?,
            tx,
            updated_at: required(updated_at, "updated_at")?,
            metadata,
            version,
            first,
        })
    }
}

/// The attributes of a value-change feed item, by name.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum FeedAttribute {
    Pk,
    Sk,
    ChainId,
    Owner,
    Token,
    Spender,
    Permit2,
    Value,
    Previous,
    Block,
    Tx,
    Ttl,
    Version,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for FeedRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FeedRecordVisitor)
    }
}

struct FeedRecordVisitor;

impl<'de> Visitor<'de> for FeedRecordVisitor {
    type Value = FeedRecord;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value-change feed item")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FeedRecord, A::Error> {
        let (mut pk, mut sk, mut chain_id, mut owner, mut token) = (None, None, None, None, None);
        let (mut value, mut block, mut ttl) = (None, None, None);
        let (mut spender, mut permit2, mut previous, mut tx, mut version) =
            (None, false, None, None, 0);
        while let Some(attribute) = map.next_key()? {
            match attribute {
                FeedAttribute::Pk => pk = Some(map.next_value()?),
                FeedAttribute::Sk => sk = Some(map.next_value()?),
                FeedAttribute::ChainId => chain_id = Some(map.next_value()?),
                FeedAttribute::Owner => owner = Some(map.next_value()?),
                FeedAttribute::Token => token = Some(map.next_value()?),
                FeedAttribute::Spender => spender = map.next_value()?,
                FeedAttribute::Permit2 => permit2 = map.next_value()?,
                FeedAttribute::Value => value = Some(map.next_value()?),
                FeedAttribute::Previous => previous = map.next_value()?,
                FeedAttribute::Block => block = Some(map.next_value()?),
                FeedAttribute::Tx => tx = map.next_value()?,
                FeedAttribute::Ttl => ttl = Some(map.next_value()?),
                FeedAttribute::Version => version = map.next_value()?,
                FeedAttribute::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(FeedRecord {
            key: ItemKey::new(
                required::<String, _>(pk, "pk")?,
                required::<String, _>(sk, "sk")?,
            ),
            identity: ValueIdentity {
                chain_id: required(chain_id, "chain_id")?,
                owner: required(owner, "owner")?,
                token: required(token, "token")?,
                spender,
                permit2,
            },
            value: required(value, "value")?,
            previous,
            block: required(block, "block")?,
            tx,
            ttl: required(ttl, "ttl")?,
            version,
        })
    }
}
