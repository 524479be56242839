//! The per-chain cache of token metadata read on chain, so a custom token's `symbol()`,
//! `name()` and `decimals()` are read once for every session that asks for it.

use std::collections::HashMap;

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::item_parts::ItemKey;
use super::records::TokenMetadataRecord;
use super::{Item, StorageError, Table, batch_backoff, from_item, keys, put_request, s};
use crate::domain::address::{lower, parse_address};
use crate::domain::token_metadata::TokenMetadata;

/// Most keys in one BatchGetItem (the DynamoDB limit).
const BATCH_GET: usize = 100;
/// Most items in one BatchWriteItem (the DynamoDB limit).
const BATCH_WRITE: usize = 25;
/// How long a token's metadata is trusted before it is read again.
const KNOWN_TTL_SECS: u64 = 30 * 86_400;
/// How long "this address has no metadata" is trusted: it may become a contract later.
const UNKNOWN_TTL_SECS: u64 = 86_400;

/// What the cache knows of a token: its metadata, or that it has none.
pub type CachedMetadata = Option<TokenMetadata>;

impl Table {
    /// Cached metadata of `tokens` on a chain; tokens the cache does not hold (or holds
    /// expired) are absent from the answer.
    pub async fn cached_token_metadata(
        &self,
        chain_id: u64,
        tokens: &[Address],
        now: u64,
    ) -> Result<HashMap<Address, CachedMetadata>, StorageError> {
        let mut found = HashMap::new();
        for chunk in tokens.chunks(BATCH_GET) {
            let mut pending: Option<KeysAndAttributes> = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(
                        chunk.iter().map(|t| metadata_key(chain_id, t)).collect(),
                    ))
                    .build()
                    .map_err(StorageError::refused)?,
            );
            // BatchGetItem may answer part of the keys; ask again for the rest, backing off.
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                batch_backoff(&mut attempt).await?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.name, request)
                    .send()
                    .await
                    .map_err(StorageError::from_sdk)?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.name))
                    .unwrap_or_default()
                {
                    let record = from_item::<TokenMetadataRecord>(item)?;
                    if record.ttl <= now {
                        continue;
                    }
                    let token = parse_address(&record.key.sk)
                        .map_err(|e| StorageError::corrupt(&record.key.sk, e))?;
                    found.insert(token, record.metadata.metadata());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.name))
                    .filter(|k| !k.keys.is_empty());
            }
        }
        Ok(found)
    }

    /// Caches what was read on chain for each token.
    pub async fn cache_token_metadata(
        &self,
        chain_id: u64,
        entries: &[(Address, CachedMetadata)],
        now: u64,
    ) -> Result<(), StorageError> {
        for chunk in entries.chunks(BATCH_WRITE) {
            let requests = chunk
                .iter()
                .map(|(token, metadata)| {
                    let record = TokenMetadataRecord {
                        key: ItemKey::new(keys::token_metadata_pk(chain_id), lower(token)),
                        metadata: metadata.as_ref().into(),
                        ttl: now
                            + if metadata.is_some() {
                                KNOWN_TTL_SECS
                            } else {
                                UNKNOWN_TTL_SECS
                            },
                    };
                    put_request(record)
                })
                .collect::<Result<Vec<_>, StorageError>>()?;
            self.batch_write(requests).await?;
        }
        Ok(())
    }
}

fn metadata_key(chain_id: u64, token: &Address) -> Item {
    Item::from([
        ("pk".to_string(), s(keys::token_metadata_pk(chain_id))),
        ("sk".to_string(), s(lower(token))),
    ])
}
