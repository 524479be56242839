//! Facts about a token on a chain, kept once per chain rather than per wallet
//! (`K#{chain}` / `U#{token}`, `R#{token}`):
//!
//! - *unreadable*: its `balanceOf` fails for any holder (no code on this chain, a reverting
//!   contract) — a property of the token, not a value of each wallet; kept with a TTL, so a
//!   token that starts working is read again.
//! - *silent*: its balances were seen changing without an event (a rebasing token): the
//!   poller's frequent sweep re-reads the held values of such tokens only.

use std::collections::BTreeSet;

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use super::{StorageError, Table, from_item, keys, put_request, s};
use crate::domain::address::parse_address;

/// How long "this token's reads fail for every holder" holds before the token is tried again
/// (a token may start working: a proxy upgraded, a contract deployed). Whoever finds a token
/// unreadable — the api on a session's first read, the poller on a block's — records it for
/// this long.
pub const UNREADABLE_FOR_SECS: u64 = 86_400;

/// Most items in one BatchWriteItem (the DynamoDB limit).
const BATCH_WRITE: usize = 25;

#[derive(Debug, Serialize, Deserialize)]
struct TokenFactRecord {
    pk: String,
    sk: String,
    ttl: u64,
}

/// Which fact an item records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFact {
    Unreadable,
    Silent,
}

impl TokenFact {
    fn prefix(self) -> &'static str {
        match self {
            Self::Unreadable => keys::UNREADABLE_TOKEN_PREFIX,
            Self::Silent => keys::SILENT_TOKEN_PREFIX,
        }
    }
}

impl Table {
    /// Records `fact` for each token until `until` (Unix seconds).
    pub async fn record_token_fact(
        &self,
        chain_id: u64,
        fact: TokenFact,
        tokens: &[Address],
        until: u64,
    ) -> Result<(), StorageError> {
        for chunk in tokens.chunks(BATCH_WRITE) {
            let requests = chunk
                .iter()
                .map(|token| {
                    let record = TokenFactRecord {
                        pk: keys::token_facts_pk(chain_id),
                        sk: keys::token_fact_sk(fact.prefix(), token),
                        ttl: until,
                    };
                    put_request(record)
                })
                .collect::<Result<Vec<_>, StorageError>>()?;
            self.batch_write(requests).await?;
        }
        if !tokens.is_empty() {
            // A counter of the chain's recorded facts: a reader holding a copy of the facts
            // reads this one small item to know whether its copy still holds.
            self.update(keys::token_facts_pk(chain_id), keys::TOKEN_FACTS_VERSION_SK)
                .update_expression("ADD #version :one")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":one", super::n(1))
                .send()
                .await
                .map_err(StorageError::from_sdk)?;
        }
        Ok(())
    }

    /// How many times facts were recorded on the chain (0 before any).
    pub async fn token_facts_version(&self, chain_id: u64) -> Result<u64, StorageError> {
        self.number(
            keys::token_facts_pk(chain_id),
            keys::TOKEN_FACTS_VERSION_SK,
            "version",
        )
        .await
    }

    /// The tokens of the chain `fact` holds for now.
    pub async fn token_facts(
        &self,
        chain_id: u64,
        fact: TokenFact,
        now: u64,
    ) -> Result<BTreeSet<Address>, StorageError> {
        let query = self
            .query(
                "pk = :pk AND begins_with(sk, :prefix)",
                keys::token_facts_pk(chain_id),
            )
            .expression_attribute_values(":prefix", s(fact.prefix()));
        let mut tokens = BTreeSet::new();
        for item in self.query_items(query).await? {
            let record = from_item::<TokenFactRecord>(item)?;
            // TTL deletion lags: an expired fact no longer holds.
            if record.ttl <= now {
                continue;
            }
            let token = record.sk.get(fact.prefix().len()..).unwrap_or_default();
            tokens.insert(parse_address(token).map_err(|e| StorageError::corrupt(&record.sk, e))?);
        }
        Ok(tokens)
    }
}
