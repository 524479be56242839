//! The per-chain cache of token metadata read on chain, so a custom token's `symbol()`,
//! `name()` and `decimals()` are read once for every session that asks for it.

use std::collections::HashMap;

use alloy::primitives::Address;

use super::item_parts::ItemKey;
use super::records::TokenMetadataRecord;
use super::{StorageError, Table, from_item, item_key_of, keys, put_request};
use crate::domain::address::{lower, parse_address};
use crate::domain::token_metadata::TokenMetadata;

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
        let keys = tokens
            .iter()
            .map(|t| item_key_of(keys::token_metadata_pk(chain_id), lower(t)))
            .collect();
        let mut found = HashMap::new();
        for item in self.batch_get(keys, |request| request).await? {
            let record = from_item::<TokenMetadataRecord>(item)?;
            if record.ttl <= now {
                continue;
            }
            let token = parse_address(&record.key.sk)
                .map_err(|e| StorageError::corrupt(&record.key.sk, e))?;
            found.insert(token, record.metadata.metadata());
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
