//! Session items (`S#{chain}` / `{owner}`): written whole by the api under the revision it
//! read (optimistic concurrency), kept alive by open streams, grown by the poller's token
//! discovery, and asked for a background re-read when a stream opens.
//!
//! Beside them, per chain, the signal item (`V#{chain}` / `SESSIONS`) the poller reads once
//! per block instead of every session: a version bumped whenever a session is created or grows
//! (or a list it follows changes), the wallets whose streams asked for a background re-read,
//! and the live session count the poller last saw.

use std::collections::{BTreeSet, HashMap};

use alloy::primitives::Address;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::records::SessionRecord;
use super::{StorageError, Table, Written, from_item, is_condition_failure, keys, n, s, written};
use crate::address::{lower, parse_address};
use crate::model::Session;

fn string_set<'a>(values: impl IntoIterator<Item = &'a Address>) -> Option<AttributeValue> {
    let values: Vec<String> = values.into_iter().map(lower).collect();
    // DynamoDB sets cannot be empty: an empty set is the attribute's absence.
    (!values.is_empty()).then_some(AttributeValue::Ss(values))
}

/// The names and values of the `SET` that writes `next`'s own attributes whole.
fn whole_session(update: UpdateItemFluentBuilder, next: &Session) -> UpdateItemFluentBuilder {
    update
        .expression_attribute_names("#owner", "owner")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_names("#chain", "chain_id")
        .expression_attribute_names("#created", "created_at")
        .expression_attribute_names("#expires", "expires_at")
        .expression_attribute_names("#lists", "lists")
        .expression_attribute_names("#discover", "discover")
        .expression_attribute_names("#read_block", "read_block")
        .expression_attribute_names("#revision", "revision")
        .expression_attribute_names("#token_lists", "token_lists")
        .expression_attribute_values(":chain", n(next.chain_id))
        .expression_attribute_values(":owner", s(lower(&next.owner)))
        .expression_attribute_values(":created", n(next.created_at))
        .expression_attribute_values(":exp", n(next.expires_at))
        .expression_attribute_values(
            ":lists",
            AttributeValue::M(
                next.token_lists
                    .iter()
                    .map(|(url, generation)| (url.clone(), n(generation)))
                    .collect::<HashMap<_, _>>(),
            ),
        )
        .expression_attribute_values(":discover", AttributeValue::Bool(next.discover))
        .expression_attribute_values(":read_block", n(next.read_block))
        .expression_attribute_values(":revision", n(next.revision))
}

impl Table {
    /// Stores `next` (a session read at `expected_revision`, 0 for none, with an addition
    /// applied) if nobody changed the session since: `false` when another request did — read
    /// it again and retry. The poller's own attributes (discovered tokens) and stream
    /// keep-alives are left as they are.
    ///
    /// `fresh`: the session starts over (there was none, or it expired): what the poller added
    /// to the one before (discovered tokens) goes.
    pub async fn write_session(
        &self,
        next: &Session,
        expected_revision: u64,
        fresh: bool,
    ) -> Result<bool, StorageError> {
        // Every name goes through a placeholder: several are DynamoDB reserved words.
        let mut sets = vec![
            "#chain = :chain",
            "#owner = :owner",
            "#created = :created",
            "#expires = :exp",
            "#ttl = :exp",
            "#lists = :lists",
            "#discover = :discover",
            "#read_block = :read_block",
            "#revision = :revision",
        ];
        // The URL set of sessions written before `lists` now lives in `lists`.
        let mut removes = vec!["#token_lists"];
        if fresh {
            removes.push("#discovered");
        }
        let update = self.update(
            keys::session_pk(next.chain_id),
            keys::session_sk(&next.owner),
        );
        let mut request = whole_session(update, next);
        for (attribute, set, placeholder, values) in [
            (
                "#tokens",
                "#tokens = :tokens",
                ":tokens",
                string_set(&next.custom_tokens),
            ),
            (
                "#spenders",
                "#spenders = :spenders",
                ":spenders",
                string_set(&next.spenders),
            ),
        ] {
            match values {
                Some(values) => {
                    sets.push(set);
                    request = request.expression_attribute_values(placeholder, values);
                }
                None => removes.push(attribute),
            }
        }
        request = request
            .expression_attribute_names("#tokens", "tokens")
            .expression_attribute_names("#spenders", "spenders");
        if fresh {
            request = request.expression_attribute_names("#discovered", "discovered");
        }
        // An item of a version before revisions (none) counts as revision 0.
        let condition = if expected_revision == 0 {
            "attribute_not_exists(#revision) OR #revision = :expected"
        } else {
            "#revision = :expected"
        };
        request = request.expression_attribute_values(":expected", n(expected_revision));
        let result = request
            .update_expression(format!(
                "SET {} REMOVE {}",
                sets.join(", "),
                removes.join(", ")
            ))
            .condition_expression(condition)
            .send()
            .await;
        Ok(written(result)? == Written::Yes)
    }

    /// Records that every initial value of `revision` is stored.
    pub async fn complete_session(
        &self,
        chain_id: u64,
        owner: &Address,
        revision: u64,
    ) -> Result<(), StorageError> {
        let result = self
            .update(keys::session_pk(chain_id), keys::session_sk(owner))
            .update_expression("SET #complete = :rev")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#complete) OR #complete < :rev)",
            )
            .expression_attribute_names("#complete", "complete_revision")
            .expression_attribute_values(":rev", n(revision))
            .send()
            .await;
        // Skipped: a later revision was completed first, which covers this one's keys too.
        written(result).map(|_| ())
    }

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

    /// Every session of a chain, expired ones included.
    pub async fn sessions(&self, chain_id: u64) -> Result<Vec<Session>, StorageError> {
        let items = self.query_all(keys::session_pk(chain_id)).await?;
        items
            .into_iter()
            .map(|i| Session::try_from(from_item::<SessionRecord>(i)?))
            .collect()
    }

    /// Pushes a live session's expiry forward and marks it as streamed until
    /// `streaming_until` (an open stream keeps it alive). Returns `false` when the session is
    /// gone or has already expired: the stream must end.
    pub async fn keep_session_alive(
        &self,
        chain_id: u64,
        owner: &Address,
        now: u64,
        expires_at: u64,
        streaming_until: u64,
    ) -> Result<bool, StorageError> {
        let result = self
            .update(keys::session_pk(chain_id), keys::session_sk(owner))
            .update_expression("SET #expires = :exp, #ttl = :exp, #streaming = :streaming")
            .condition_expression("attribute_exists(pk) AND #expires > :now AND #expires < :exp")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#streaming", "streaming_until")
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":streaming", n(streaming_until))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Gone, expired, or already kept alive further by another stream.
            Err(e) if is_condition_failure(&e) => {
                Ok(self.live_session(chain_id, owner, now).await?.is_some())
            }
            Err(e) => Err(StorageError::from_sdk(e)),
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
                Session::try_from(from_item::<SessionRecord>(item)?).map(Some)
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
        let result = self
            .update(keys::session_pk(chain_id), keys::session_sk(owner))
            .update_expression("SET #rescan = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#rescan) OR #rescan <= :due)",
            )
            .expression_attribute_names("#rescan", "rescan_at")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":due", n(now.saturating_sub(every)))
            .send()
            .await;
        if written(result)? == Written::Skipped {
            return Ok(false);
        }
        self.add_rescan(chain_id, owner).await?;
        Ok(true)
    }
}

/// What the poller learns from the signal item each block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionsSignal {
    /// 0 before any session was ever added.
    pub version: u64,
    /// Wallets waiting for a re-read of their whole token set.
    pub rescans: BTreeSet<Address>,
}

impl Table {
    /// Marks the chain's sessions as changed.
    pub async fn bump_sessions_version(&self, chain_id: u64) -> Result<(), StorageError> {
        self.update(keys::version_pk(chain_id), keys::SESSIONS_SIGNAL_SK)
            .update_expression("ADD version :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// The chain's sessions version and pending re-reads, in one consistent read.
    pub async fn sessions_signal(&self, chain_id: u64) -> Result<SessionsSignal, StorageError> {
        let out = self
            .read_item(keys::version_pk(chain_id), keys::SESSIONS_SIGNAL_SK)
            .projection_expression("#version, #rescans")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#rescans", "rescans")
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        let item = out.item.unwrap_or_default();
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let rescans = match item.get("rescans") {
            Some(AttributeValue::Ss(owners)) => owners
                .iter()
                .map(|o| {
                    parse_address(o)
                        .map_err(|e| StorageError::corrupt(keys::version_pk(chain_id), e))
                })
                .collect::<Result<_, _>>()?,
            _ => BTreeSet::new(),
        };
        Ok(SessionsSignal { version, rescans })
    }

    /// Queues a re-read of the wallet's whole token set for the poller.
    pub(crate) async fn add_rescan(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<(), StorageError> {
        self.update(keys::version_pk(chain_id), keys::SESSIONS_SIGNAL_SK)
            .update_expression("ADD #rescans :owner")
            .expression_attribute_names("#rescans", "rescans")
            .expression_attribute_values(":owner", AttributeValue::Ss(vec![lower(owner)]))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Removes re-reads the poller has done (only those: requests added meanwhile stay).
    pub async fn take_rescans(
        &self,
        chain_id: u64,
        owners: &BTreeSet<Address>,
    ) -> Result<(), StorageError> {
        if owners.is_empty() {
            return Ok(());
        }
        self.update(keys::version_pk(chain_id), keys::SESSIONS_SIGNAL_SK)
            .update_expression("DELETE #rescans :owners")
            .expression_attribute_names("#rescans", "rescans")
            .expression_attribute_values(
                ":owners",
                AttributeValue::Ss(owners.iter().map(lower).collect()),
            )
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Records how many live sessions the poller watches on the chain (on each full reload).
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

    /// The chain's sessions version: 0 before any session was ever added.
    pub async fn sessions_version(&self, chain_id: u64) -> Result<u64, StorageError> {
        self.number(
            keys::version_pk(chain_id),
            keys::SESSIONS_SIGNAL_SK,
            "version",
        )
        .await
    }
}
