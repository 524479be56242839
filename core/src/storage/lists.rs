//! The token-list cache: one fetched list, filtered to one chain, kept in the table so every
//! session (in every Lambda container) that names it shares one fetch per TTL.
//!
//! A list is a head item (`L#{chain}#{url hash}` / `HEAD`: URL, validators for revalidation,
//! when it was fetched, which generation of pages is current, a fetch lease) and pages of
//! tokens (`P#{generation}#{page}`; the key formats are in [`super::keys`]). A refetch writes a new generation before moving the head
//! to it, so a reader never mixes two versions; old generations expire by TTL.

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::ReturnValue;
use serde::{Deserialize, Serialize};

use super::item_parts::ItemKey;
use super::keys::{LIST_HEAD_SK, list_page_sk, list_pages_prefix, list_pk};
use super::{StorageError, Table, Written, from_item, n, s, written};
use crate::domain::address::{lower, parse_address};
use crate::domain::list_document::SkippedEntries;
use crate::domain::token_metadata::TokenMetadata;

/// Tokens per page item: well under DynamoDB's 400 KB item limit with bounded symbol and name.
const PAGE_TOKENS: usize = 500;
/// How long an unused list stays in the table.
const RETAIN_SECS: u64 = 30 * 86_400;

/// A cached list's head: what was fetched, when, and how to revalidate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedListHead {
    pub url: String,
    pub list_name: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub fetched_at: u64,
    pub generation: u64,
    pub token_count: usize,
    pub skipped: SkippedEntries,
    /// Unix seconds until which one fetcher holds the right to refresh it.
    pub lease_until: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ListHeadRecord {
    #[serde(flatten)]
    key: ItemKey,
    url: String,
    #[serde(default)]
    list_name: String,
    #[serde(flatten)]
    validators: ListValidators,
    #[serde(default)]
    fetched_at: u64,
    #[serde(default)]
    generation: u64,
    #[serde(default)]
    token_count: usize,
    #[serde(flatten)]
    skipped: SkippedAttributes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_until: Option<u64>,
    ttl: u64,
}

/// What a refetch sends to revalidate a list (absent: the server gave none).
#[derive(Debug, Default, Serialize, Deserialize)]
struct ListValidators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
}

/// How many of a list's entries were left out, and why.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SkippedAttributes {
    #[serde(default)]
    skipped_invalid: usize,
    #[serde(default)]
    skipped_duplicate: usize,
}

/// One page: `[address, symbol, name, decimals]` rows as compact JSON.
#[derive(Debug, Serialize, Deserialize)]
struct ListPageRecord {
    pk: String,
    sk: String,
    tokens: String,
    ttl: u64,
}

type PageRow = (String, String, String, u8);

impl From<ListHeadRecord> for CachedListHead {
    fn from(r: ListHeadRecord) -> Self {
        Self {
            url: r.url,
            list_name: r.list_name,
            etag: r.validators.etag,
            last_modified: r.validators.last_modified,
            fetched_at: r.fetched_at,
            generation: r.generation,
            token_count: r.token_count,
            skipped: SkippedEntries {
                invalid: r.skipped.skipped_invalid,
                duplicate: r.skipped.skipped_duplicate,
            },
            lease_until: r.lease_until,
        }
    }
}

impl Table {
    /// The cached head of a list for a chain, if it was ever fetched or claimed.
    pub async fn list_head(
        &self,
        chain_id: u64,
        url: &str,
    ) -> Result<Option<CachedListHead>, StorageError> {
        let out = self
            .read_item(list_pk(chain_id, url), LIST_HEAD_SK)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        out.item
            .map(|i| Ok(from_item::<ListHeadRecord>(i)?.into()))
            .transpose()
    }

    /// Takes the right to fetch a list until `lease_until`, unless another fetcher holds an
    /// unexpired lease or the list was fetched after `stale_before` (someone refreshed it
    /// since it was last looked at). Creates the head if it does not exist.
    pub async fn claim_list_fetch(
        &self,
        chain_id: u64,
        url: &str,
        now: u64,
        stale_before: u64,
        lease_until: u64,
    ) -> Result<Written, StorageError> {
        let result = self
            .update(list_pk(chain_id, url), LIST_HEAD_SK)
            .update_expression(
                "SET #url = :url, lease_until = :lease, #ttl = if_not_exists(#ttl, :ttl)",
            )
            .condition_expression(
                "(attribute_not_exists(lease_until) OR lease_until < :now) \
                 AND (attribute_not_exists(fetched_at) OR fetched_at <= :stale)",
            )
            .expression_attribute_values(":stale", n(stale_before))
            .expression_attribute_names("#url", "url")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":url", s(url))
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":ttl", n(now + RETAIN_SECS))
            .return_values(ReturnValue::None)
            .send()
            .await;
        written(result)
    }

    /// Gives a lease up after a failed fetch, so the next request may try at once.
    pub async fn release_list_fetch(&self, chain_id: u64, url: &str) -> Result<(), StorageError> {
        let result = self
            .update(list_pk(chain_id, url), LIST_HEAD_SK)
            .update_expression("REMOVE lease_until")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        written(result).map(|_| ())
    }

    /// The list answered 304: its cached version is fresh again.
    pub async fn revalidated_list(
        &self,
        chain_id: u64,
        url: &str,
        now: u64,
    ) -> Result<(), StorageError> {
        self.update(list_pk(chain_id, url), LIST_HEAD_SK)
            .update_expression("SET fetched_at = :now, #ttl = :ttl REMOVE lease_until")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":ttl", n(now + RETAIN_SECS))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Stores a freshly fetched list: its pages under a new generation first, then the head
    /// pointing at them (which also ends the lease) — with, for a version replacing another,
    /// its entry in the chain's session log (in one transaction).
    pub async fn store_list(
        &self,
        chain_id: u64,
        head: &CachedListHead,
        tokens: &[(Address, TokenMetadata)],
        now: u64,
    ) -> Result<(), StorageError> {
        let pk = list_pk(chain_id, &head.url);
        let ttl = now + RETAIN_SECS;
        for (page, chunk) in tokens.chunks(PAGE_TOKENS).enumerate() {
            let rows: Vec<PageRow> = chunk
                .iter()
                .map(|(a, m)| (lower(a), m.symbol.clone(), m.name.clone(), m.decimals))
                .collect();
            let record = ListPageRecord {
                pk: pk.clone(),
                sk: list_page_sk(head.generation, page),
                tokens: serde_json::to_string(&rows).map_err(|e| StorageError::corrupt(&pk, e))?,
                ttl,
            };
            self.put(record).await?;
        }
        let record = ListHeadRecord {
            key: ItemKey::new(pk, LIST_HEAD_SK),
            url: head.url.clone(),
            list_name: head.list_name.clone(),
            validators: ListValidators {
                etag: head.etag.clone(),
                last_modified: head.last_modified.clone(),
            },
            fetched_at: head.fetched_at,
            generation: head.generation,
            token_count: tokens.len(),
            skipped: SkippedAttributes {
                skipped_invalid: head.skipped.invalid,
                skipped_duplicate: head.skipped.duplicate,
            },
            lease_until: None,
            ttl,
        };
        if head.generation <= 1 {
            return self.put(record).await;
        }
        // A new version replacing another: every poller of the chain learns of it from the
        // session log, written with the head that makes it current.
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.name)
            .set_item(Some(super::to_item(record)?))
            .build()
            .map_err(StorageError::refused)?;
        let change = super::SessionChange::List {
            url: head.url.clone(),
        };
        self.logged_transaction(
            chain_id,
            aws_sdk_dynamodb::types::TransactWriteItem::builder()
                .put(put)
                .build(),
            &change,
        )
        .await
        .map(|_| ())
    }

    /// The tokens of a cached list's current generation, in list order.
    pub async fn list_tokens(
        &self,
        chain_id: u64,
        head: &CachedListHead,
    ) -> Result<Vec<(Address, TokenMetadata)>, StorageError> {
        let query = self
            .query(
                "pk = :pk AND begins_with(sk, :prefix)",
                list_pk(chain_id, &head.url),
            )
            .expression_attribute_values(":prefix", s(list_pages_prefix(head.generation)))
            .consistent_read(true);
        let mut tokens = Vec::with_capacity(head.token_count);
        for item in self.query_items(query).await? {
            let page = from_item::<ListPageRecord>(item)?;
            let rows: Vec<PageRow> = serde_json::from_str(&page.tokens)
                .map_err(|e| StorageError::corrupt(&page.sk, e))?;
            for (address, symbol, name, decimals) in rows {
                let address =
                    parse_address(&address).map_err(|e| StorageError::corrupt(&page.sk, e))?;
                tokens.push((
                    address,
                    TokenMetadata {
                        symbol,
                        name,
                        decimals,
                    },
                ));
            }
        }
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::storage::Item;

    #[test]
    fn list_heads_keep_their_attribute_names_through_flattening() {
        let record = ListHeadRecord {
            key: ItemKey::new(list_pk(1, "https://a.example/l.json"), LIST_HEAD_SK),
            url: "https://a.example/l.json".into(),
            list_name: "A".into(),
            validators: ListValidators {
                etag: Some("\"v1\"".into()),
                last_modified: Some("Sat, 05 Dec 2026 10:00:00 GMT".into()),
            },
            fetched_at: 10,
            generation: u64::MAX,
            token_count: 500,
            skipped: SkippedAttributes {
                skipped_invalid: 2,
                skipped_duplicate: 3,
            },
            lease_until: Some(u64::MAX),
            ttl: 99,
        };
        let item: Item = serde_dynamo::to_item(&record).unwrap();
        let names: BTreeSet<&str> = item.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "pk",
                "sk",
                "url",
                "list_name",
                "etag",
                "last_modified",
                "fetched_at",
                "generation",
                "token_count",
                "skipped_invalid",
                "skipped_duplicate",
                "lease_until",
                "ttl"
            ]
            .into()
        );
        let head = CachedListHead::from(from_item::<ListHeadRecord>(item).unwrap());
        assert_eq!(head.etag.as_deref(), Some("\"v1\""));
        assert_eq!(
            (head.generation, head.lease_until),
            (u64::MAX, Some(u64::MAX))
        );
        assert_eq!((head.skipped.invalid, head.skipped.duplicate), (2, 3));
        // A head only claimed, never fetched: every optional attribute absent.
        let claimed: Item = [
            ("pk", record.key.pk.as_str()),
            ("sk", LIST_HEAD_SK),
            ("url", "https://a.example/l.json"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), s(v)))
        .chain([("ttl".to_string(), n(5))])
        .collect();
        let head = CachedListHead::from(from_item::<ListHeadRecord>(claimed).unwrap());
        assert_eq!(
            (head.etag, head.token_count, head.skipped.invalid),
            (None, 0, 0)
        );
    }
}
