//! Item mapping: the serde shapes of table items and their conversion to and from domain
//! types. Nothing outside the storage module sees these.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use super::error::StorageError;
use super::keys;
use crate::domain::address::{lower, parse_address};
use crate::domain::model::{
    BalanceItem, BalanceKey, ChainCursor, FeedEntry, FeedPosition, Session, SessionAsks, Spender,
    TokenRead,
};
use crate::domain::token_metadata::TokenMetadata;

/// Stored in `read` when the value could not be read.
const READ_FAILED: &str = "failed";

/// A session. Written attribute by attribute (see `sessions.rs`), read whole.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub pk: String,
    pub sk: String,
    pub chain_id: u64,
    pub owner: String,
    /// Custom tokens. Sessions written before lists were followed by reference hold their
    /// lists' tokens here too, which keeps them working: they are tracked as custom tokens.
    #[serde(default)]
    pub tokens: BTreeSet<String>,
    /// ERC-20 allowance spenders.
    #[serde(default)]
    pub spenders: BTreeSet<String>,
    /// Permit2 spenders.
    #[serde(default)]
    pub permit2_spenders: BTreeSet<String>,
    /// List URLs of sessions written before `lists` (their generation is not known).
    #[serde(default)]
    pub token_lists: BTreeSet<String>,
    /// Lists followed: URL -> generation read when the session started following it.
    #[serde(default)]
    pub lists: BTreeMap<String, u64>,
    #[serde(default)]
    pub discover: bool,
    #[serde(default)]
    pub discovered: BTreeSet<String>,
    #[serde(default)]
    pub read_block: u64,
    #[serde(default)]
    pub revision: u64,
    #[serde(default)]
    pub complete_revision: u64,
    pub created_at: u64,
    pub expires_at: u64,
    #[serde(default)]
    pub streaming_until: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BalanceRecord {
    pub pk: String,
    pub sk: String,
    pub chain_id: u64,
    pub owner: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spender: Option<String>,
    /// The spender's allowance is Permit2's, not the token's (see [`crate::domain::permit2`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permit2: bool,
    /// Decimal value, or `failed`. One attribute so a conditional write compares one thing.
    pub read: String,
    pub block: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    pub updated_at: u64,
    /// Rendering metadata of the token, kept on its balance item so a snapshot is still one
    /// query. Written by the api with the initial value; the poller's writes leave it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
    /// Writes of a value so far, counted by DynamoDB itself (`ADD`), never written as a
    /// whole: it orders the item's changes exactly, which blocks cannot after a reorg.
    #[serde(default, skip_serializing)]
    pub version: u64,
    /// Set by a write that is the first read of a newly tracked value, so the change feed can
    /// tell "seen for the first time" (no previous value) from "was zero" (an absent item is
    /// a zero, so an insert is otherwise a change from zero).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first: bool,
}

impl BalanceRecord {
    pub fn metadata(&self) -> Option<TokenMetadata> {
        Some(TokenMetadata {
            symbol: self.symbol.clone()?,
            name: self.name.clone().unwrap_or_default(),
            decimals: self.decimals?,
        })
    }
}

/// A token's metadata cached per chain (`M#{chain}` / `{token}`), so a custom token is read on
/// chain once. `symbol` absent: the address has no usable metadata (cached too, with a TTL).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenMetadataRecord {
    pub pk: String,
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
    pub ttl: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FeedRecord {
    pub pk: String,
    pub sk: String,
    pub chain_id: u64,
    pub owner: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spender: Option<String>,
    /// The spender's allowance is Permit2's (see [`crate::domain::permit2`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permit2: bool,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub block: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    pub ttl: u64,
    /// The balance item's version this change made (0: written before versions existed).
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RecentBlock {
    pub n: u64,
    pub h: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CursorRecord {
    pub pk: String,
    pub sk: String,
    pub chain_id: u64,
    pub block: u64,
    pub hash: String,
    #[serde(default)]
    pub recent: Vec<RecentBlock>,
    pub updated_at: u64,
}

pub(super) fn address(key: &str, field: &str, value: &str) -> Result<Address, StorageError> {
    parse_address(value).map_err(|e| StorageError::corrupt(key, format!("{field}: {e}")))
}

pub(super) fn amount(key: &str, value: &str) -> Result<U256, StorageError> {
    U256::from_str_radix(value, 10).map_err(|e| StorageError::corrupt(key, format!("amount: {e}")))
}

fn hash(key: &str, value: &str) -> Result<B256, StorageError> {
    B256::from_str(value).map_err(|e| StorageError::corrupt(key, format!("hash: {e}")))
}

fn balance_key(
    key: &str,
    token: &str,
    spender: Option<&str>,
    permit2: bool,
) -> Result<BalanceKey, StorageError> {
    let token = address(key, "token", token)?;
    let spender = spender.map(|s| address(key, "spender", s)).transpose()?;
    match (spender, permit2) {
        (None, false) => Ok(BalanceKey::Balance { token }),
        (None, true) => Err(StorageError::corrupt(
            key,
            "a Permit2 value names no spender",
        )),
        (Some(spender), false) => Ok(BalanceKey::Allowance { token, spender }),
        (Some(spender), true) => Ok(BalanceKey::Permit2 { token, spender }),
    }
}

/// The attributes that name a value: its token, its spender, whether the spender's allowance
/// is Permit2's.
fn key_attributes(key: &BalanceKey) -> (String, Option<String>, bool) {
    match *key {
        BalanceKey::Balance { token } => (lower(&token), None, false),
        BalanceKey::Allowance { token, spender } => (lower(&token), Some(lower(&spender)), false),
        BalanceKey::Permit2 { token, spender } => (lower(&token), Some(lower(&spender)), true),
    }
}

impl TryFrom<SessionRecord> for Session {
    type Error = StorageError;

    fn try_from(r: SessionRecord) -> Result<Self, StorageError> {
        let key = format!("{}/{}", r.pk, r.sk);
        let set = |field, values: &BTreeSet<String>| {
            values
                .iter()
                .map(|v| address(&key, field, v))
                .collect::<Result<BTreeSet<_>, _>>()
        };
        let mut token_lists = r.lists;
        for url in r.token_lists {
            token_lists.entry(url).or_insert(0);
        }
        Ok(Session {
            chain_id: r.chain_id,
            owner: address(&key, "owner", &r.owner)?,
            asked: SessionAsks {
                custom_tokens: set("tokens", &r.tokens)?,
                spenders: set("spenders", &r.spenders)?
                    .into_iter()
                    .map(Spender::Erc20)
                    .chain(
                        set("permit2_spenders", &r.permit2_spenders)?
                            .into_iter()
                            .map(Spender::Permit2),
                    )
                    .collect(),
                token_lists,
                discover: r.discover,
            },
            discovered: set("discovered", &r.discovered)?,
            read_block: r.read_block,
            revision: r.revision,
            complete_revision: r.complete_revision,
            created_at: r.created_at,
            expires_at: r.expires_at,
            streaming_until: r.streaming_until,
        })
    }
}

impl From<&BalanceItem> for BalanceRecord {
    fn from(item: &BalanceItem) -> Self {
        let (token, spender, permit2) = key_attributes(&item.key);
        BalanceRecord {
            pk: keys::balance_pk(item.chain_id, &item.owner),
            sk: keys::balance_sk(&item.key),
            chain_id: item.chain_id,
            owner: lower(&item.owner),
            token,
            spender,
            permit2,
            read: read_text(&item.read),
            block: item.block,
            tx: item.tx_hash.map(|h| h.to_string()),
            updated_at: 0,
            symbol: None,
            name: None,
            decimals: None,
            version: 0,
            first: false,
        }
    }
}

pub(crate) fn read_text(read: &TokenRead) -> String {
    match read {
        TokenRead::Value(v) => v.to_string(),
        TokenRead::Failed => READ_FAILED.to_string(),
    }
}

/// A stored `read` attribute: a decimal value, or `failed`.
pub(super) fn parse_read(key: &str, text: &str) -> Result<TokenRead, StorageError> {
    Ok(if text == READ_FAILED {
        TokenRead::Failed
    } else {
        TokenRead::Value(amount(key, text)?)
    })
}

impl TryFrom<BalanceRecord> for BalanceItem {
    type Error = StorageError;

    fn try_from(r: BalanceRecord) -> Result<Self, StorageError> {
        let key = format!("{}/{}", r.pk, r.sk);
        let read = parse_read(&key, &r.read)?;
        Ok(BalanceItem {
            chain_id: r.chain_id,
            owner: address(&key, "owner", &r.owner)?,
            key: balance_key(&key, &r.token, r.spender.as_deref(), r.permit2)?,
            read,
            block: r.block,
            tx_hash: r.tx.as_deref().map(|t| hash(&key, t)).transpose()?,
        })
    }
}

impl FeedRecord {
    pub fn new(entry: &FeedEntry, ttl: u64) -> Self {
        let (token, spender, permit2) = key_attributes(&entry.key);
        FeedRecord {
            pk: keys::feed_pk(entry.chain_id, &entry.owner),
            sk: entry.position.to_string(),
            chain_id: entry.chain_id,
            owner: lower(&entry.owner),
            token,
            spender,
            permit2,
            value: entry.value.to_string(),
            previous: entry.previous.map(|p| p.to_string()),
            block: entry.block,
            tx: entry.tx_hash.map(|h| h.to_string()),
            ttl,
            version: entry.version,
        }
    }
}

impl TryFrom<FeedRecord> for FeedEntry {
    type Error = StorageError;

    fn try_from(r: FeedRecord) -> Result<Self, StorageError> {
        let key = format!("{}/{}", r.pk, r.sk);
        Ok(FeedEntry {
            position: FeedPosition::parse(&r.sk).map_err(|e| StorageError::corrupt(&key, e))?,
            chain_id: r.chain_id,
            owner: address(&key, "owner", &r.owner)?,
            key: balance_key(&key, &r.token, r.spender.as_deref(), r.permit2)?,
            value: amount(&key, &r.value)?,
            previous: r.previous.as_deref().map(|p| amount(&key, p)).transpose()?,
            block: r.block,
            tx_hash: r.tx.as_deref().map(|t| hash(&key, t)).transpose()?,
            version: r.version,
        })
    }
}

impl From<&ChainCursor> for CursorRecord {
    fn from(c: &ChainCursor) -> Self {
        CursorRecord {
            pk: keys::cursor_pk(c.chain_id),
            sk: keys::CURSOR_SK.into(),
            chain_id: c.chain_id,
            block: c.block,
            hash: c.hash.to_string(),
            recent: c
                .recent
                .iter()
                .map(|(n, h)| RecentBlock {
                    n: *n,
                    h: h.to_string(),
                })
                .collect(),
            updated_at: c.updated_at,
        }
    }
}

impl TryFrom<CursorRecord> for ChainCursor {
    type Error = StorageError;

    fn try_from(r: CursorRecord) -> Result<Self, StorageError> {
        let key = format!("{}/{}", r.pk, r.sk);
        Ok(ChainCursor {
            chain_id: r.chain_id,
            block: r.block,
            hash: hash(&key, &r.hash)?,
            recent: r
                .recent
                .iter()
                .map(|b| Ok((b.n, hash(&key, &b.h)?)))
                .collect::<Result<_, StorageError>>()?,
            updated_at: r.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use std::collections::HashMap;

    type SdkItem = HashMap<String, AttributeValue>;

    fn roundtrip<R: Serialize + for<'de> Deserialize<'de>>(record: R) -> R {
        let item: SdkItem = serde_dynamo::to_item(record).unwrap();
        serde_dynamo::from_item(item).unwrap()
    }

    #[test]
    fn balance_item_roundtrips_through_a_dynamodb_item() {
        for (key, read) in [
            (
                BalanceKey::Balance {
                    token: Address::repeat_byte(2),
                },
                TokenRead::Value(U256::MAX),
            ),
            (
                BalanceKey::Allowance {
                    token: Address::repeat_byte(2),
                    spender: Address::repeat_byte(3),
                },
                TokenRead::Failed,
            ),
            (
                BalanceKey::Permit2 {
                    token: Address::repeat_byte(2),
                    spender: Address::repeat_byte(3),
                },
                TokenRead::Value(U256::from(7) << 255),
            ),
        ] {
            let item = BalanceItem {
                chain_id: 10,
                owner: Address::repeat_byte(1),
                key,
                read,
                block: 99,
                tx_hash: Some(B256::repeat_byte(9)),
            };
            let back = BalanceItem::try_from(roundtrip(BalanceRecord::from(&item))).unwrap();
            assert_eq!(back, item);
        }
    }

    #[test]
    fn balance_item_stores_plain_attributes() {
        let item = BalanceItem {
            chain_id: 1,
            owner: Address::repeat_byte(0xAA),
            key: BalanceKey::Balance {
                token: Address::repeat_byte(0xBB),
            },
            read: TokenRead::Value(U256::from(12345)),
            block: 7,
            tx_hash: None,
        };
        let sdk: SdkItem = serde_dynamo::to_item(BalanceRecord::from(&item)).unwrap();
        assert_eq!(sdk["read"], AttributeValue::S("12345".into()));
        assert_eq!(sdk["block"], AttributeValue::N("7".into()));
        assert_eq!(
            sdk["pk"],
            AttributeValue::S(format!("B#1#0x{}", "aa".repeat(20)))
        );
        assert!(!sdk.contains_key("tx"));
    }

    #[test]
    fn feed_entry_roundtrips() {
        let entry = FeedEntry {
            position: FeedPosition::parse("123456789").unwrap(),
            chain_id: 5,
            owner: Address::repeat_byte(1),
            key: BalanceKey::Balance {
                token: Address::repeat_byte(2),
            },
            value: U256::from(10),
            previous: None,
            block: 3,
            tx_hash: None,
            version: 4,
        };
        let back = FeedEntry::try_from(roundtrip(FeedRecord::new(&entry, 1000))).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn session_and_cursor_roundtrip() {
        let session = Session {
            asked: SessionAsks {
                custom_tokens: [Address::repeat_byte(2), Address::repeat_byte(3)].into(),
                spenders: [
                    Spender::Erc20(Address::repeat_byte(4)),
                    Spender::Permit2(Address::repeat_byte(6)),
                ]
                .into(),
                token_lists: [("https://lists.example/a.json".to_string(), 3)].into(),
                discover: true,
            },
            discovered: [Address::repeat_byte(5)].into(),
            read_block: 9,
            revision: 2,
            complete_revision: 1,
            expires_at: 20,
            streaming_until: 15,
            ..Session::new(1, Address::repeat_byte(1), 10)
        };
        let record = SessionRecord {
            pk: keys::session_pk(1),
            sk: keys::session_sk(&session.owner),
            chain_id: 1,
            owner: lower(&session.owner),
            tokens: session.asked.custom_tokens.iter().map(lower).collect(),
            spenders: session.erc20_spenders().map(lower).collect(),
            permit2_spenders: session.permit2_spenders().map(lower).collect(),
            token_lists: BTreeSet::new(),
            lists: session.asked.token_lists.clone(),
            discover: true,
            discovered: session.discovered.iter().map(lower).collect(),
            read_block: 9,
            revision: 2,
            complete_revision: 1,
            created_at: 10,
            expires_at: 20,
            streaming_until: 15,
        };
        assert_eq!(Session::try_from(roundtrip(record)).unwrap(), session);

        // A session written before lists were followed by reference: its URLs are kept
        // (generation unknown) and its expanded tokens are tracked as custom tokens.
        let legacy = SessionRecord {
            pk: keys::session_pk(1),
            sk: keys::session_sk(&session.owner),
            chain_id: 1,
            owner: lower(&session.owner),
            tokens: [lower(&Address::repeat_byte(2))].into(),
            spenders: BTreeSet::new(),
            permit2_spenders: BTreeSet::new(),
            token_lists: ["https://lists.example/old.json".to_string()].into(),
            lists: BTreeMap::new(),
            discover: false,
            discovered: BTreeSet::new(),
            read_block: 0,
            revision: 0,
            complete_revision: 0,
            created_at: 10,
            expires_at: 20,
            streaming_until: 0,
        };
        let legacy = Session::try_from(roundtrip(legacy)).unwrap();
        assert_eq!(
            legacy.asked.token_lists["https://lists.example/old.json"],
            0
        );
        assert_eq!(legacy.asked.custom_tokens.len(), 1);

        let cursor = ChainCursor {
            chain_id: 1,
            block: 5,
            hash: B256::repeat_byte(5),
            recent: vec![(4, B256::repeat_byte(4)), (5, B256::repeat_byte(5))],
            updated_at: 77,
        };
        assert_eq!(
            ChainCursor::try_from(roundtrip(CursorRecord::from(&cursor))).unwrap(),
            cursor
        );
    }

    #[test]
    fn corrupt_items_are_reported_not_panicked() {
        let mut record = BalanceRecord::from(&BalanceItem {
            chain_id: 1,
            owner: Address::repeat_byte(1),
            key: BalanceKey::Balance {
                token: Address::repeat_byte(2),
            },
            read: TokenRead::Value(U256::from(1)),
            block: 1,
            tx_hash: None,
        });
        record.read = "12abc".into();
        assert!(matches!(
            BalanceItem::try_from(record),
            Err(StorageError::Corrupt { .. })
        ));
    }
}
