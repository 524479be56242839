//! Reading sessions: one wallet's, a chain's (by the owner's first hex digit, or a page of
//! what the background pass compares at a time), and those of a set of wallets in batches.

use alloy::primitives::Address;

use crate::domain::address::parse_address;
use serde::de::DeserializeOwned;

use crate::domain::model::{Session, SessionMark};
use crate::storage::records::{SessionMarkRecord, SessionRecord};
use crate::storage::{StorageError, Table, from_item, item_key_of, keys, s};

impl Table {
    /// The wallet's session, expired or not (callers compare `expires_at`).
    pub async fn session(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<Option<Session>, StorageError> {
        self.get::<SessionRecord, Session>(keys::session_pk(chain_id), keys::session_sk(owner))
            .await
    }

    /// The wallet's session if it has not expired at `now`.
    pub async fn live_session(
        &self,
        chain_id: u64,
        owner: &Address,
        now: u64,
    ) -> Result<Option<Session>, StorageError> {
        Ok(self
            .session(chain_id, owner)
            .await?
            .filter(|s| s.expires_at > now))
    }

    /// Every session of a chain whose owner's first hex digit is `digit` (`0`–`f`; a sixteenth
    /// of the partition), page after page: the listing at start reads the sixteen at once.
    pub async fn sessions_by_digit(
        &self,
        chain_id: u64,
        digit: char,
    ) -> Result<Vec<Session>, StorageError> {
        let query = self
            .query(
                "pk = :pk AND begins_with(sk, :prefix)",
                keys::session_pk(chain_id),
            )
            .expression_attribute_values(":prefix", s(format!("0x{digit}")))
            .consistent_read(true);
        let mut sessions = vec![];
        let mut pages = query.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(StorageError::from_sdk)?;
            for item in page.items.unwrap_or_default() {
                sessions.push(Session::try_from(from_item::<SessionRecord>(item)?)?);
            }
        }
        Ok(sessions)
    }

    /// One page of a chain's sessions in owner order, after `after` (from the start when
    /// `None`), at most `limit` (else up to DynamoDB's 1 MB page), with the owner to continue
    /// after (`None` when the partition is done) — as what the background pass compares: a
    /// projection of the few attributes of a [`SessionMark`], so a page of hundreds parses and
    /// decodes none of what the sessions ask for (the read units are the same: DynamoDB bills
    /// whole items).
    pub async fn session_marks_page(
        &self,
        chain_id: u64,
        after: Option<&Address>,
        limit: Option<i32>,
    ) -> Result<(Vec<SessionMark>, Option<Address>), StorageError> {
        let attributes = SessionMarkRecord::ATTRIBUTES;
        self.page_of::<SessionMarkRecord, SessionMark>(chain_id, after, limit, Some(&attributes))
            .await
    }

    /// One page of a chain's sessions as `R`, decoded to `T`; `projection`: only those
    /// attributes.
    async fn page_of<R, T>(
        &self,
        chain_id: u64,
        after: Option<&Address>,
        limit: Option<i32>,
        projection: Option<&[&str]>,
    ) -> Result<(Vec<T>, Option<Address>), StorageError>
    where
        R: DeserializeOwned,
        T: TryFrom<R, Error = StorageError>,
    {
        let mut query = self
            .query("pk = :pk", keys::session_pk(chain_id))
            .consistent_read(true)
            .set_limit(limit);
        if let Some(attributes) = projection {
            // Named by placeholders: some attribute names are reserved words.
            let names: Vec<String> = (0..attributes.len()).map(|i| format!("#a{i}")).collect();
            query = query.projection_expression(names.join(", "));
            for (name, attribute) in names.iter().zip(attributes) {
                query = query.expression_attribute_names(name, *attribute);
            }
        }
        if let Some(after) = after {
            query = query
                .exclusive_start_key("pk", s(keys::session_pk(chain_id)))
                .exclusive_start_key("sk", s(keys::session_sk(after)));
        }
        let out = query.send().await.map_err(StorageError::from_sdk)?;
        let page = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| T::try_from(from_item::<R>(i)?))
            .collect::<Result<Vec<_>, _>>()?;
        let last = out
            .last_evaluated_key
            .and_then(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .map(|sk| parse_address(&sk).map_err(|e| StorageError::corrupt(&sk, e)))
            .transpose()?;
        Ok((page, last))
    }

    /// The sessions of `owners` (expired ones included; a wallet without one is absent), by
    /// consistent batch reads.
    pub async fn sessions_of(
        &self,
        chain_id: u64,
        owners: &[Address],
    ) -> Result<Vec<Session>, StorageError> {
        let keys = owners
            .iter()
            .map(|owner| item_key_of(keys::session_pk(chain_id), keys::session_sk(owner)))
            .collect();
        self.batch_get(keys, |request| request.consistent_read(true))
            .await?
            .into_iter()
            .map(|item| Session::try_from(from_item::<SessionRecord>(item)?))
            .collect()
    }
}
