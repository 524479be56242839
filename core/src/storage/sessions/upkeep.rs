//! What streams and the poller write to sessions beside the api: an open stream's keep-alive
//! (and its vouch that the wallet is streamed), the poller's discovered tokens, a stream's
//! request for a background re-read, and the live session count of a chain.

use std::collections::BTreeSet;

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::ReturnValue;

use super::string_set;
use crate::domain::model::Session;
use crate::storage::records::SessionRecord;
use crate::storage::session_log::SessionChange;
use crate::storage::{
    StorageError, Table, Written, from_item, is_condition_failure, keys, n, written,
};

impl Table {
    /// Pushes a live session's expiry forward to `expires_at` (an open stream keeps it alive)
    /// and, with `vouch`, marks it as streamed until that time — which the poller learns within
    /// a block (a log entry in the same transaction), so a write only when the vouch it made
    /// last is about to lapse. Returns `false` when the session is gone or has already
    /// expired: the stream must end.
    pub async fn keep_session_alive(
        &self,
        chain_id: u64,
        owner: &Address,
        now: u64,
        expires_at: u64,
        vouch: Option<u64>,
    ) -> Result<bool, StorageError> {
        let outcome = match vouch {
            Some(until) => {
                // Written even when another stream pushed the expiry a moment further: a
                // vouch must land, and an expiry a second earlier is no loss. A session held
                // further (`crate::domain::hold`) keeps its expiry: the vouch alone is written.
                let vouch = |with_expiry: bool| {
                    let update = self
                        .session_update(chain_id, owner)
                        .expression_attribute_names("#expires", "expires_at")
                        .expression_attribute_names("#streaming", "streaming_until")
                        .expression_attribute_values(":exp", n(expires_at))
                        .expression_attribute_values(":now", n(now))
                        .expression_attribute_values(":streaming", n(until));
                    let update = if with_expiry {
                        update
                            .update_expression(
                                "SET #expires = :exp, #ttl = :exp, #streaming = :streaming",
                            )
                            .condition_expression(
                                "attribute_exists(pk) AND #expires > :now AND (attribute_not_exists(holds) OR #expires <= :exp)",
                            )
                            .expression_attribute_names("#ttl", "ttl")
                    } else {
                        update
                            .update_expression("SET #streaming = :streaming")
                            .condition_expression(
                                "attribute_exists(pk) AND #expires > :now AND #expires > :exp",
                            )
                    };
                    update.build().map_err(StorageError::refused)
                };
                let change = SessionChange::Streaming {
                    owner: *owner,
                    until,
                    expires_at,
                };
                match self.logged_update(chain_id, vouch(true)?, &change).await? {
                    Written::Yes => Written::Yes,
                    Written::Skipped => {
                        self.logged_update(chain_id, vouch(false)?, &change).await?
                    }
                }
            }
            None => {
                let result = self
                    .update(keys::session_pk(chain_id), keys::session_sk(owner))
                    .update_expression("SET #expires = :exp, #ttl = :exp")
                    .condition_expression(
                        "attribute_exists(pk) AND #expires > :now AND #expires < :exp",
                    )
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_names("#expires", "expires_at")
                    .expression_attribute_values(":exp", n(expires_at))
                    .expression_attribute_values(":now", n(now))
                    .send()
                    .await;
                written(result)?
            }
        };
        match outcome {
            Written::Yes => Ok(true),
            // Gone, expired, or already kept alive further by another stream.
            Written::Skipped => Ok(self.live_session(chain_id, owner, now).await?.is_some()),
        }
    }

    /// Adds tokens found by discovery to a live session, unless it already holds `max` of
    /// them. Returns the session as it is now, `None` when nothing was added (no session, or
    /// no room).
    pub async fn add_discovered(
        &self,
        chain_id: u64,
        owner: &Address,
        tokens: &BTreeSet<Address>,
        max: usize,
    ) -> Result<Option<Session>, StorageError> {
        let Some(set) = string_set(tokens) else {
            return Ok(None);
        };
        // Room for the whole addition is checked against the size before it: a bounded
        // overshoot of one batch at most, never unbounded growth.
        let result = self
            .update(keys::session_pk(chain_id), keys::session_sk(owner))
            .update_expression("ADD #discovered :tokens")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#discovered) OR size(#discovered) < :max)",
            )
            .expression_attribute_names("#discovered", "discovered")
            .expression_attribute_values(":tokens", set)
            .expression_attribute_values(":max", n(max))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                let session = Session::try_from(from_item::<SessionRecord>(item)?)?;
                // Another poller of the chain learns of the tokens from the log; this one
                // knows them already (it found them).
                self.record_session_change(chain_id, owner).await?;
                Ok(Some(session))
            }
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StorageError::from_sdk(e)),
        }
    }

    /// Asks the poller to re-read the wallet's whole token set in the background, unless
    /// that was asked within the last `every` seconds. Returns whether it was asked now.
    pub async fn request_rescan(
        &self,
        chain_id: u64,
        owner: &Address,
        now: u64,
        every: u64,
    ) -> Result<bool, StorageError> {
        let update = self
            .session_update(chain_id, owner)
            .update_expression("SET #rescan = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#rescan) OR #rescan <= :due)",
            )
            .expression_attribute_names("#rescan", "rescan_at")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":due", n(now.saturating_sub(every)))
            .build()
            .map_err(StorageError::refused)?;
        let asked = self
            .logged_update(chain_id, update, &SessionChange::Rescan(*owner))
            .await?;
        Ok(asked == Written::Yes)
    }

    /// Records how many live sessions the poller watches on the chain.
    pub async fn set_live_sessions(&self, chain_id: u64, live: u64) -> Result<(), StorageError> {
        self.update(keys::version_pk(chain_id), keys::SESSIONS_SIGNAL_SK)
            .update_expression("SET live = :live")
            .expression_attribute_values(":live", n(live))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Live sessions on the chain as the poller last counted them (0 before it did).
    pub async fn live_sessions(&self, chain_id: u64) -> Result<u64, StorageError> {
        self.number(keys::version_pk(chain_id), keys::SESSIONS_SIGNAL_SK, "live")
            .await
    }
}
