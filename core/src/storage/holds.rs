//! Holds on session items ([`crate::domain::hold`]): the session's `holds` map (holder -> until) and its
//! expiry (and TTL) moved with it, in one conditional write logged in the chain's session log
//! (`session_log.rs`), so the poller learns the new expiry within a block. A hold on a wallet
//! without a session (a subscription naming a wallet nobody watches yet) makes a session of its
//! own, tracking what every session tracks (the native currency, the chain's WETH) until a
//! session request adds tokens.

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::AttributeValue;

use super::session_log::SessionChange;
use super::{StorageError, Table, Written, keys, n, s};
use crate::domain::address::lower;
use crate::domain::hold::{holds_after, next_expiry};

/// Attempts at a hold's write that other writes of the session keep overtaking.
const ATTEMPTS: usize = 5;

/// What a hold's write starts from.
struct Held {
    expires_at: u64,
    holds: BTreeMap<String, u64>,
    /// Counted by every hold write: the condition that nobody changed the holds meanwhile.
    version: u64,
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Wallets' sessions held (or let go of) at once.
const CONCURRENCY: usize = 8;

impl Table {
    /// [`Self::hold_session`] for each of `owners` (a subscription's wallets), a few at once;
    /// the first failure, after every one was tried.
    pub async fn hold_sessions(
        &self,
        chain_id: u64,
        owners: impl IntoIterator<Item = Address>,
        holder: &str,
        until: Option<u64>,
        now: u64,
        idle: u64,
    ) -> Result<(), StorageError> {
        use futures::StreamExt;
        let writes: Vec<_> = owners
            .into_iter()
            .map(|owner| async move {
                self.hold_session(chain_id, &owner, holder, until, now, idle)
                    .await
            })
            .collect();
        let outcomes: Vec<Result<(), StorageError>> = futures::stream::iter(writes)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        outcomes.into_iter().collect()
    }

    /// `holder` holds the wallet's session until `until` (Unix seconds), or lets go of it
    /// (`None`); the session's expiry follows ([`next_expiry`], `idle` being the session TTL).
    pub async fn hold_session(
        &self,
        chain_id: u64,
        owner: &Address,
        holder: &str,
        until: Option<u64>,
        now: u64,
        idle: u64,
    ) -> Result<(), StorageError> {
        for _ in 0..ATTEMPTS {
            let written = match self.held(chain_id, owner).await? {
                None if until.is_none() => return Ok(()),
                None => {
                    self.held_session_created(chain_id, owner, holder, until.unwrap_or(0), now)
                        .await?
                }
                Some(held) => {
                    let holds = holds_after(&held.holds, holder, until, now);
                    let expires_at = next_expiry(held.expires_at, &holds, now, idle);
                    self.holds_written(chain_id, owner, &held, &holds, expires_at)
                        .await?
                }
            };
            if written == Written::Yes {
                return Ok(());
            }
        }
        Err(StorageError::unavailable(std::io::Error::other(
            "the session kept changing while its holds were written",
        )))
    }

    /// The session's expiry and holds, if it has an item.
    async fn held(&self, chain_id: u64, owner: &Address) -> Result<Option<Held>, StorageError> {
        let out = self
            .read_item(keys::session_pk(chain_id), keys::session_sk(owner))
            .projection_expression("#expires, #holds, #version")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#holds", "holds")
            .expression_attribute_names("#version", "holds_version")
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(out.item.map(|item| {
            let holds = match item.get("holds") {
                Some(AttributeValue::M(map)) => map
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_n().ok()?.parse().ok()?)))
                    .collect(),
                _ => BTreeMap::new(),
            };
            Held {
                expires_at: number(&item, "expires_at"),
                holds,
                version: number(&item, "holds_version"),
            }
        }))
    }

    /// An update of the wallet's session item (to go in a logged transaction).
    fn session_item(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        aws_sdk_dynamodb::types::Update::builder()
            .table_name(&self.name)
            .key("pk", s(keys::session_pk(chain_id)))
            .key("sk", s(keys::session_sk(owner)))
    }

    async fn holds_written(
        &self,
        chain_id: u64,
        owner: &Address,
        held: &Held,
        holds: &BTreeMap<String, u64>,
        expires_at: u64,
    ) -> Result<Written, StorageError> {
        let expression = if holds.is_empty() {
            "SET #expires = :exp, #ttl = :exp REMOVE #holds ADD #version :one"
        } else {
            "SET #expires = :exp, #ttl = :exp, #holds = :holds ADD #version :one"
        };
        let mut update = self
            .session_item(chain_id, owner)
            .update_expression(expression)
            // Nobody changed the holds or the expiry since they were read.
            .condition_expression(
                "attribute_exists(pk) AND #expires = :read_exp AND (attribute_not_exists(#version) OR #version = :read_version)",
            )
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#version", "holds_version")
            .expression_attribute_names("#holds", "holds")
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":read_exp", n(held.expires_at))
            .expression_attribute_values(":read_version", n(held.version));
        if !holds.is_empty() {
            update = update.expression_attribute_values(":holds", holds_map(holds));
        }
        let update = update.build().map_err(StorageError::refused)?;
        self.logged_update(chain_id, update, &SessionChange::Session(*owner))
            .await
    }

    /// A session of its own for a wallet that had none, held by `holder` until `until`.
    async fn held_session_created(
        &self,
        chain_id: u64,
        owner: &Address,
        holder: &str,
        until: u64,
        now: u64,
    ) -> Result<Written, StorageError> {
        let holds = BTreeMap::from([(holder.to_string(), until)]);
        let update = self
            .session_item(chain_id, owner)
            .update_expression(
                "SET #chain = :chain, #owner = :owner, #created = :now, #expires = :until, \
                 #ttl = :until, #holds = :holds, #version = :one",
            )
            .condition_expression("attribute_not_exists(pk)")
            .expression_attribute_names("#chain", "chain_id")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#created", "created_at")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#holds", "holds")
            .expression_attribute_names("#version", "holds_version")
            .expression_attribute_values(":chain", n(chain_id))
            .expression_attribute_values(":owner", s(lower(owner)))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":holds", holds_map(&holds))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(StorageError::refused)?;
        self.logged_update(chain_id, update, &SessionChange::Session(*owner))
            .await
    }
}

fn holds_map(holds: &BTreeMap<String, u64>) -> AttributeValue {
    AttributeValue::M(holds.iter().map(|(k, v)| (k.clone(), n(v))).collect())
}
