//! Item mapping: the serde shapes of table items and their conversion to and from domain
//! types. Nothing outside the storage module sees these. Parts several shapes share are in
//! [`super::item_parts`].

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use super::error::StorageError;
use super::item_parts::{ItemKey, TokenMetadataAttributes, ValueIdentity};
use super::keys;
use crate::domain::address::parse_address;
use crate::domain::api_key::Tenant;
use crate::domain::model::{
    BalanceItem, ChainCursor, FeedEntry, FeedPosition, FirstValues, Revisions, Session,
    SessionAsks, SessionMark, Spender, TokenRead,
};

/// Stored in `read` when the value could not be read.
const READ_FAILED: &str = "failed";

/// A session. Written attribute by attribute (see `sessions/`), read whole. Flat: serde's
/// flattening would buffer every attribute first, and the poller decodes one with every
/// changed session.
#[derive(Debug, Default, Serialize, Deserialize)]
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
    /// When the session started, when it ends, and until when a stream vouches for it (Unix
    /// seconds).
    pub created_at: u64,
    pub expires_at: u64,
    #[serde(default)]
    pub streaming_until: u64,
    /// The first revision's values: a JSON object of balance sort key -> stored `read`. One
    /// string, not a map attribute: the poller reads it with every changed session, and a
    /// map of a hundred attributes costs the SDK's parser far more than one string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_nothing"
    )]
    pub first_values: Option<String>,
    /// The revision whose writer recorded `first_values`: a record of any other revision is
    /// not the session's (a writer that predates the record did not remove it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_values_revision: Option<u64>,
}

/// A session as the background pass reads it (a [`SessionMark`]): the attributes it compares,
/// by projection. Flat: serde's flattening would buffer every attribute first.
#[derive(Debug, Deserialize)]
pub(crate) struct SessionMarkRecord {
    pub sk: String,
    #[serde(default)]
    pub revision: u64,
    #[serde(default)]
    pub complete_revision: u64,
    #[serde(default)]
    pub discovered: BTreeSet<String>,
    #[serde(default)]
    pub lists: BTreeMap<String, u64>,
    #[serde(default)]
    pub token_lists: BTreeSet<String>,
    pub expires_at: u64,
    #[serde(default)]
    pub streaming_until: u64,
}

impl SessionMarkRecord {
    /// The attributes read, for the projection.
    pub const ATTRIBUTES: [&str; 8] = [
        "sk",
        "revision",
        "complete_revision",
        "discovered",
        "lists",
        "token_lists",
        "expires_at",
        "streaming_until",
    ];
}

impl TryFrom<SessionMarkRecord> for SessionMark {
    type Error = StorageError;

    fn try_from(r: SessionMarkRecord) -> Result<Self, StorageError> {
        Ok(SessionMark {
            owner: address(&r.sk, "sk", &r.sk)?,
            revisions: Revisions {
                latest: r.revision,
                complete: r.complete_revision,
            },
            discovered: r.discovered.len(),
            lists: lists_followed(r.lists, r.token_lists).len(),
            expires_at: r.expires_at,
            streaming_until: r.streaming_until,
        })
    }
}

/// The lists a stored session follows: by reference (URL -> generation), and those of
/// sessions written before references (generation unknown: 0), each once.
fn lists_followed(
    mut lists: BTreeMap<String, u64>,
    legacy: BTreeSet<String>,
) -> BTreeMap<String, u64> {
    for url in legacy {
        lists.entry(url).or_insert(0);
    }
    lists
}

/// A stored value of a wallet. Its `Deserialize` is written out ([`super::value_decoding`]):
/// it is on every snapshot's path, where serde's flattening would buffer every attribute.
#[derive(Debug, Serialize)]
pub(crate) struct BalanceRecord {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub identity: ValueIdentity,
    /// Decimal value, or `failed`. One attribute so a conditional write compares one thing.
    pub read: String,
    pub block: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    pub updated_at: u64,
    /// Rendering metadata of the token, kept on its balance item so a snapshot is still one
    /// query. Written by the api with the initial value; the poller's writes leave it alone.
    #[serde(flatten)]
    pub metadata: TokenMetadataAttributes,
    /// Writes of a value so far, counted by DynamoDB itself (`ADD`), never written as a
    /// whole: it orders the item's changes exactly, which blocks cannot after a reorg.
    #[serde(skip_serializing)]
    pub version: u64,
    /// Set by a write that is the first read of a newly tracked value, so the change feed can
    /// tell "seen for the first time" (no previous value) from "was zero" (an absent item is
    /// a zero, so an insert is otherwise a change from zero).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub first: bool,
}

/// A token's metadata cached per chain (`M#{chain}` / `{token}`), so a custom token is read on
/// chain once. `symbol` absent: the address has no usable metadata (cached too, with a TTL).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenMetadataRecord {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub metadata: TokenMetadataAttributes,
    pub ttl: u64,
}

/// A value change in a wallet's feed. Its `Deserialize` is written out
/// ([`super::value_decoding`]): every stream reads the entries after its position.
#[derive(Debug, Serialize)]
pub(crate) struct FeedRecord {
    #[serde(flatten)]
    pub key: ItemKey,
    #[serde(flatten)]
    pub identity: ValueIdentity,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub block: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    pub ttl: u64,
    /// The balance item's version this change made (0: written before versions existed).
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

/// The tenant an item belongs to (an order's, a subscription's), if it names one.
pub(super) fn tenant(key: &str, value: Option<&str>) -> Result<Option<Tenant>, StorageError> {
    value
        .map(Tenant::parse)
        .transpose()
        .map_err(|e| StorageError::corrupt(key, e))
}

fn hash(key: &str, value: &str) -> Result<B256, StorageError> {
    B256::from_str(value).map_err(|e| StorageError::corrupt(key, format!("hash: {e}")))
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
        let token_lists = lists_followed(r.lists, r.token_lists);
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
            first_values: r
                .first_values
                .filter(|_| r.first_values_revision == Some(r.revision))
                .and_then(|text| first_values_of(&text)),
        })
    }
}

/// A session's first values as recorded; `None` when the record cannot be read. It only
/// spares the poller a query of the wallet, so a record that is not what this version wrote
/// leaves the wallet to that query instead of making the session unreadable. Parsed in place
/// (the poller decodes one with every new wallet): the keys and values this version writes
/// hold nothing JSON escapes, and a record whose strings do is one it did not write.
fn first_values_of(text: &str) -> Option<FirstValues> {
    let values: BTreeMap<&str, &str> = serde_json::from_str(text).ok()?;
    values
        .into_iter()
        .map(|(sk, read)| Some((keys::parse_balance_sk(sk)?, parse_read(sk, read).ok()?)))
        .collect()
}

/// A string attribute's text, and nothing for an attribute of another type.
fn text_or_nothing<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrOther {
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<TextOrOther>::deserialize(deserializer)? {
        Some(TextOrOther::Text(text)) => Some(text),
        Some(TextOrOther::Other(_)) | None => None,
    })
}

/// The stored shape of a session's first values (see `SessionRecord::first_values`).
pub(super) fn first_values_text(values: &FirstValues) -> String {
    serde_json::Value::from_iter(values.iter().map(|(key, read)| {
        (
            keys::balance_sk(key),
            serde_json::Value::String(read_text(read)),
        )
    }))
    .to_string()
}

impl From<&BalanceItem> for BalanceRecord {
    fn from(item: &BalanceItem) -> Self {
        BalanceRecord {
            key: ItemKey::new(
                keys::balance_pk(item.chain_id, &item.owner),
                keys::balance_sk(&item.key),
            ),
            identity: ValueIdentity::new(item.chain_id, &item.owner, &item.key),
            read: read_text(&item.read),
            block: item.block,
            tx: item.tx_hash.map(|h| h.to_string()),
            updated_at: 0,
            metadata: TokenMetadataAttributes::default(),
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
        let at = r.key.to_string();
        let (owner, key) = r.identity.decode(&at)?;
        Ok(BalanceItem {
            chain_id: r.identity.chain_id,
            owner,
            key,
            read: parse_read(&at, &r.read)?,
            block: r.block,
            tx_hash: r.tx.as_deref().map(|t| hash(&at, t)).transpose()?,
        })
    }
}

impl FeedRecord {
    pub fn new(entry: &FeedEntry, ttl: u64) -> Self {
        FeedRecord {
            key: ItemKey::new(
                keys::feed_pk(entry.chain_id, &entry.owner),
                entry.position.to_string(),
            ),
            identity: ValueIdentity::new(entry.chain_id, &entry.owner, &entry.key),
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
        let at = r.key.to_string();
        let (owner, key) = r.identity.decode(&at)?;
        Ok(FeedEntry {
            position: FeedPosition::parse(&r.key.sk).map_err(|e| StorageError::corrupt(&at, e))?,
            chain_id: r.identity.chain_id,
            owner,
            key,
            value: amount(&at, &r.value)?,
            previous: r.previous.as_deref().map(|p| amount(&at, p)).transpose()?,
            block: r.block,
            tx_hash: r.tx.as_deref().map(|t| hash(&at, t)).transpose()?,
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
    use crate::domain::address::lower;
    use crate::domain::model::BalanceKey;
    use aws_sdk_dynamodb::types::AttributeValue;
    use std::collections::HashMap;

    type SdkItem = HashMap<String, AttributeValue>;

    fn roundtrip<R: Serialize + for<'de> Deserialize<'de>>(record: R) -> R {
        let item: SdkItem = serde_dynamo::to_item(record).unwrap();
        serde_dynamo::from_item(item).unwrap()
    }

    fn decode<R: for<'de> Deserialize<'de>>(item: SdkItem) -> Result<R, serde_dynamo::Error> {
        serde_dynamo::from_item(item)
    }

    fn names(item: &SdkItem) -> BTreeSet<&str> {
        item.keys().map(String::as_str).collect()
    }

    fn n(value: impl ToString) -> AttributeValue {
        AttributeValue::N(value.to_string())
    }

    fn s(value: &str) -> AttributeValue {
        AttributeValue::S(value.into())
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
            first_values: Some(
                [
                    (
                        BalanceKey::Balance {
                            token: Address::repeat_byte(2),
                        },
                        TokenRead::Value(U256::from(7)),
                    ),
                    (
                        Spender::Permit2(Address::repeat_byte(6)).key(Address::repeat_byte(3)),
                        TokenRead::Failed,
                    ),
                ]
                .into(),
            ),
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
            first_values: session.first_values.as_ref().map(first_values_text),
            first_values_revision: Some(2),
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
            token_lists: ["https://lists.example/old.json".to_string()].into(),
            discovered: BTreeSet::new(),
            read_block: 0,
            revision: 0,
            complete_revision: 0,
            created_at: 10,
            expires_at: 20,
            streaming_until: 0,
            first_values: None,
            first_values_revision: None,
            ..SessionRecord::default()
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
    fn a_session_s_mark_is_what_its_projection_decodes_to() {
        let owner = Address::repeat_byte(1);
        let record = |lists: &[(&str, u64)], legacy: &[&str]| SessionRecord {
            pk: keys::session_pk(1),
            sk: keys::session_sk(&owner),
            chain_id: 1,
            owner: lower(&owner),
            tokens: [lower(&Address::repeat_byte(2))].into(),
            spenders: [lower(&Address::repeat_byte(4))].into(),
            token_lists: legacy.iter().map(|u| u.to_string()).collect(),
            lists: lists.iter().map(|(u, g)| (u.to_string(), *g)).collect(),
            discovered: [
                lower(&Address::repeat_byte(5)),
                lower(&Address::repeat_byte(6)),
            ]
            .into(),
            read_block: 9,
            revision: 4,
            complete_revision: 3,
            created_at: 10,
            expires_at: 20,
            streaming_until: 15,
            first_values: None,
            first_values_revision: None,
            ..SessionRecord::default()
        };
        for record in [
            record(&[("https://lists.example/a.json", 3)], &[]),
            // A list both by reference and from before references counts once.
            record(
                &[("https://lists.example/a.json", 3)],
                &[
                    "https://lists.example/a.json",
                    "https://lists.example/b.json",
                ],
            ),
            record(&[], &[]),
        ] {
            let item: SdkItem = serde_dynamo::to_item(record).unwrap();
            let session =
                Session::try_from(decode::<SessionRecord>(item.clone()).unwrap()).unwrap();
            let projected: SdkItem = item
                .into_iter()
                .filter(|(name, _)| SessionMarkRecord::ATTRIBUTES.contains(&name.as_str()))
                .collect();
            let mark = SessionMark::try_from(decode::<SessionMarkRecord>(projected).unwrap());
            assert_eq!(mark.unwrap(), session.mark());
        }
    }

    #[test]
    fn a_session_s_unreadable_first_values_are_left_out() {
        let record = |sk: &str, read: &str| SessionRecord {
            pk: keys::session_pk(1),
            sk: keys::session_sk(&Address::ZERO),
            chain_id: 1,
            owner: lower(&Address::ZERO),
            discovered: BTreeSet::new(),
            read_block: 1,
            revision: 1,
            complete_revision: 1,
            created_at: 1,
            expires_at: 2,
            streaming_until: 0,
            first_values: Some(serde_json::json!({ sk: read }).to_string()),
            first_values_revision: Some(1),
            ..SessionRecord::default()
        };
        let token = format!("T#{}", lower(&Address::repeat_byte(2)));
        assert!(Session::try_from(record(&token, "12")).is_ok());
        // A record left by an earlier revision (a writer that predates records did not remove
        // it) is not the session's.
        let stale = SessionRecord {
            revision: 2,
            ..record(&token, "12")
        };
        assert_eq!(Session::try_from(stale).unwrap().first_values, None);
        // A record this version cannot read leaves the wallet to a query: the session itself
        // still reads.
        let escaped = format!("{token}\"");
        for (sk, read) in [
            ("O#an-order", "12"),
            (token.as_str(), "twelve"),
            (escaped.as_str(), "12"),
        ] {
            assert_eq!(
                Session::try_from(record(sk, read)).unwrap().first_values,
                None
            );
        }
        let not_json = SessionRecord {
            first_values: Some("{".into()),
            ..record(&token, "12")
        };
        assert_eq!(Session::try_from(not_json).unwrap().first_values, None);
        let mut item: SdkItem = serde_dynamo::to_item(record(&token, "12")).unwrap();
        item.insert(
            "first_values".into(),
            AttributeValue::M([(token.clone(), s("12"))].into_iter().collect()),
        );
        let record: SessionRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(Session::try_from(record).unwrap().first_values, None);
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

    /// A balance item with every attribute a writer may set, as the table holds it.
    fn full_balance_item(index: u64) -> SdkItem {
        let mut item = SdkItem::from([
            ("pk".to_string(), s(&format!("B#1#0x{}", "aa".repeat(20)))),
            (
                "sk".to_string(),
                s(&format!("A#0x{index:040x}#0x{}", "c9".repeat(20))),
            ),
            ("chain_id".to_string(), n(1)),
            ("owner".to_string(), s(&format!("0x{}", "aa".repeat(20)))),
            ("token".to_string(), s(&format!("0x{index:040x}"))),
            ("spender".to_string(), s(&format!("0x{}", "c9".repeat(20)))),
            ("permit2".to_string(), AttributeValue::Bool(true)),
            (
                "read".to_string(),
                s(&(U256::MAX - U256::from(index)).to_string()),
            ),
            ("block".to_string(), n(u64::MAX)),
            ("tx".to_string(), s(&format!("0x{}", "9a".repeat(32)))),
            ("updated_at".to_string(), n(1_764_000_000_000u64)),
            ("symbol".to_string(), s("USDC")),
            ("name".to_string(), s("USD Coin")),
            ("decimals".to_string(), n(6)),
            ("version".to_string(), n(3 + index)),
            ("first".to_string(), AttributeValue::Bool(true)),
        ]);
        // Written by other writers of the partition's items; a reader passes over them.
        item.insert("ttl".into(), n(5));
        item
    }

    #[test]
    fn balance_items_keep_their_attribute_names_and_types() {
        let record: BalanceRecord = decode(full_balance_item(7)).unwrap();
        assert_eq!(record.identity.chain_id, 1);
        assert!(record.identity.permit2 && record.first);
        assert_eq!((record.block, record.version), (u64::MAX, 10));
        assert_eq!(record.metadata.metadata().unwrap().decimals, 6);
        let written: SdkItem = serde_dynamo::to_item(&record).unwrap();
        // `version` is counted by DynamoDB, never written whole.
        assert_eq!(
            names(&written),
            [
                "pk",
                "sk",
                "chain_id",
                "owner",
                "token",
                "spender",
                "permit2",
                "read",
                "block",
                "tx",
                "updated_at",
                "symbol",
                "name",
                "decimals",
                "first"
            ]
            .into()
        );
        assert_eq!(written["block"], n(u64::MAX));
        assert_eq!(written["permit2"], AttributeValue::Bool(true));
        assert_eq!(written["decimals"], n(6));
        // Optional attributes absent: not written, and read back as their defaults.
        let plain = BalanceRecord::from(&BalanceItem {
            chain_id: 1,
            owner: Address::repeat_byte(1),
            key: BalanceKey::Balance {
                token: Address::repeat_byte(2),
            },
            read: TokenRead::Failed,
            block: 1,
            tx_hash: None,
        });
        let written: SdkItem = serde_dynamo::to_item(&plain).unwrap();
        assert_eq!(
            names(&written),
            [
                "pk",
                "sk",
                "chain_id",
                "owner",
                "token",
                "read",
                "block",
                "updated_at"
            ]
            .into()
        );
        let back: BalanceRecord = decode(written).unwrap();
        assert!(!back.identity.permit2 && !back.first && back.version == 0);
        assert!(back.metadata.metadata().is_none() && back.tx.is_none());
        // A required attribute missing, or of another type, is a corrupt item.
        let mut item = full_balance_item(1);
        item.remove("read");
        assert!(decode::<BalanceRecord>(item).is_err());
        let mut item = full_balance_item(1);
        item.insert("permit2".into(), s("yes"));
        assert!(decode::<BalanceRecord>(item).is_err());
        let mut item = full_balance_item(1);
        item.insert("block".into(), n(-1));
        assert!(decode::<BalanceRecord>(item).is_err());
        let mut item = full_balance_item(1);
        item.insert("tx".into(), AttributeValue::Null(true));
        assert!(decode::<BalanceRecord>(item).unwrap().tx.is_none());
    }

    #[test]
    fn feed_items_keep_their_attribute_names_and_types() {
        let entry = FeedEntry {
            position: FeedPosition::parse("123456789").unwrap(),
            chain_id: 5,
            owner: Address::repeat_byte(1),
            key: BalanceKey::Permit2 {
                token: Address::repeat_byte(2),
                spender: Address::repeat_byte(3),
            },
            value: U256::from(10),
            previous: Some(U256::from(9)),
            block: u64::MAX,
            tx_hash: Some(B256::repeat_byte(9)),
            version: 4,
        };
        let written: SdkItem = serde_dynamo::to_item(FeedRecord::new(&entry, 1000)).unwrap();
        assert_eq!(
            names(&written),
            [
                "pk", "sk", "chain_id", "owner", "token", "spender", "permit2", "value",
                "previous", "block", "tx", "ttl", "version"
            ]
            .into()
        );
        assert_eq!(written["value"], s("10"));
        assert_eq!(written["permit2"], AttributeValue::Bool(true));
        assert_eq!(written["block"], n(u64::MAX));
        let back: FeedRecord = decode(written).unwrap();
        assert_eq!(FeedEntry::try_from(back).unwrap(), entry);
    }

    #[test]
    fn session_items_keep_their_attribute_names_through_flattening() {
        let item = SdkItem::from([
            ("pk".to_string(), s("S#1")),
            ("sk".to_string(), s(&format!("0x{}", "01".repeat(20)))),
            ("chain_id".to_string(), n(1)),
            ("owner".to_string(), s(&format!("0x{}", "01".repeat(20)))),
            (
                "tokens".to_string(),
                AttributeValue::Ss(vec![format!("0x{}", "02".repeat(20))]),
            ),
            (
                "spenders".to_string(),
                AttributeValue::Ss(vec![format!("0x{}", "03".repeat(20))]),
            ),
            (
                "permit2_spenders".to_string(),
                AttributeValue::Ss(vec![format!("0x{}", "04".repeat(20))]),
            ),
            (
                "token_lists".to_string(),
                AttributeValue::Ss(vec!["https://a.example/l.json".into()]),
            ),
            (
                "lists".to_string(),
                AttributeValue::M([("https://b.example/l.json".to_string(), n(u64::MAX))].into()),
            ),
            ("discover".to_string(), AttributeValue::Bool(true)),
            (
                "discovered".to_string(),
                AttributeValue::Ss(vec![format!("0x{}", "05".repeat(20))]),
            ),
            ("read_block".to_string(), n(9)),
            ("revision".to_string(), n(2)),
            ("complete_revision".to_string(), n(1)),
            ("created_at".to_string(), n(10)),
            ("expires_at".to_string(), n(u64::MAX)),
            ("streaming_until".to_string(), n(15)),
            (
                "first_values".to_string(),
                s(&format!(r#"{{"T#0x{}":"7"}}"#, "02".repeat(20))),
            ),
            ("first_values_revision".to_string(), n(2)),
        ]);
        let record: SessionRecord = serde_dynamo::from_item(item.clone()).unwrap();
        assert!(record.discover);
        assert_eq!(record.lists["https://b.example/l.json"], u64::MAX);
        assert_eq!(record.expires_at, u64::MAX);
        assert_eq!((record.read_block, record.streaming_until), (9, 15));
        let written: SdkItem = serde_dynamo::to_item(&record).unwrap();
        assert_eq!(names(&written), names(&item));
        assert_eq!(written["lists"], item["lists"]);
        assert_eq!(written["first_values"], item["first_values"]);
        assert_eq!(written["discover"], AttributeValue::Bool(true));
        // The attributes a session written before them lacks read as their defaults.
        let minimal: SdkItem = ["pk", "sk", "chain_id", "owner", "created_at", "expires_at"]
            .into_iter()
            .map(|name| (name.to_string(), item[name].clone()))
            .collect();
        let record: SessionRecord = serde_dynamo::from_item(minimal).unwrap();
        assert!(record.tokens.is_empty() && !record.discover);
        assert_eq!(record.streaming_until, 0);
    }

    #[test]
    fn token_metadata_items_keep_their_attribute_names() {
        let record = TokenMetadataRecord {
            key: ItemKey::new("M#1", format!("0x{}", "02".repeat(20))),
            metadata: TokenMetadataAttributes {
                symbol: Some("USDC".into()),
                name: Some("USD Coin".into()),
                decimals: Some(6),
            },
            ttl: 99,
        };
        let written: SdkItem = serde_dynamo::to_item(&record).unwrap();
        assert_eq!(
            names(&written),
            ["pk", "sk", "symbol", "name", "decimals", "ttl"].into()
        );
        assert_eq!(written["decimals"], n(6));
        let back: TokenMetadataRecord = roundtrip(record);
        assert_eq!(back.metadata.metadata().unwrap().decimals, 6);
        assert_eq!(back.ttl, 99);
    }

    /// The written-out visitor of a value item decodes every attribute as the flat derived
    /// shape did before the attributes were grouped, over a batch of items; it prints what
    /// each decode took (the dated item-decoding benchmark page has the release figures of
    /// 5,000 items: `DECODE_ITEMS=5000 cargo test -p live-balances --lib --release
    /// decode_matches -- --nocapture`).
    #[test]
    fn decode_matches_the_flat_shape_over_a_batch_of_balance_items() {
        #[derive(Deserialize)]
        struct FlatBalanceRecord {
            pk: String,
            sk: String,
            chain_id: u64,
            owner: String,
            token: String,
            #[serde(default)]
            spender: Option<String>,
            #[serde(default)]
            permit2: bool,
            read: String,
            block: u64,
            #[serde(default)]
            tx: Option<String>,
            updated_at: u64,
            #[serde(default)]
            symbol: Option<String>,
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            decimals: Option<u8>,
            #[serde(default)]
            version: u64,
            #[serde(default)]
            first: bool,
        }
        let count: u64 = std::env::var("DECODE_ITEMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        let batch = || {
            (0..count)
                .map(|i| serde_dynamo::Item::from(full_balance_item(i)))
                .collect::<Vec<_>>()
        };
        let started = std::time::Instant::now();
        let flat: Vec<FlatBalanceRecord> = batch()
            .into_iter()
            .map(|i| serde_dynamo::from_item(i).unwrap())
            .collect();
        let flat_took = started.elapsed();
        let started = std::time::Instant::now();
        let grouped: Vec<BalanceRecord> = batch()
            .into_iter()
            .map(|i| serde_dynamo::from_item(i).unwrap())
            .collect();
        let grouped_took = started.elapsed();
        assert_eq!(grouped.len(), count as usize);
        for (f, g) in flat.iter().zip(&grouped) {
            assert_eq!((&f.pk, &f.sk), (&g.key.pk, &g.key.sk));
            let id = &g.identity;
            assert_eq!(
                (f.chain_id, &f.owner, &f.token, &f.spender, f.permit2),
                (id.chain_id, &id.owner, &id.token, &id.spender, id.permit2)
            );
            assert_eq!(
                (&f.read, f.block, &f.tx, f.updated_at, f.version, f.first),
                (&g.read, g.block, &g.tx, g.updated_at, g.version, g.first)
            );
            let m = &g.metadata;
            assert_eq!(
                (&f.symbol, &f.name, f.decimals),
                (&m.symbol, &m.name, m.decimals)
            );
        }
        println!(
            "{count} balance items: flat derive {flat_took:?}, grouped {grouped_took:?}, ratio {:.2}",
            grouped_took.as_secs_f64() / flat_took.as_secs_f64()
        );
    }
}
