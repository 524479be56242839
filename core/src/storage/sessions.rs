//! Session items (`S#{chain}` / `{owner}`): written whole by the api under the revision it
//! read (optimistic concurrency), kept alive by open streams, grown by the poller's token
//! discovery, and asked for a background re-read when a stream opens.
//!
//! Every write the poller must learn of goes with its entry in the chain's session log
//! (`session_log.rs`), in the same transaction: a session written, a stream vouching for its
//! wallet, a re-read asked for. The poller reads that log once a step, never every session;
//! it lists them all only at start, and pages through them in the background as a safety net.
//!
//! Beside them, per chain, the signal item (`V#{chain}` / `SESSIONS`) holds the live session
//! count the poller last saw, which the api's `MAX_SESSIONS_PER_CHAIN` check reads.

use std::collections::{BTreeSet, HashMap};

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue, Update};

use super::records::SessionRecord;
use super::session_log::SessionChange;
use super::{
    Item, StorageError, Table, Written, from_item, is_condition_failure, keys, n, s, written,
};
use crate::domain::address::{lower, parse_address};
use crate::domain::model::Session;

/// Keys one BatchGetItem may ask for.
const BATCH_GET: usize = 100;

fn string_set<'a>(values: impl IntoIterator<Item = &'a Address>) -> Option<AttributeValue> {
    let values: Vec<String> = values.into_iter().map(lower).collect();
    // DynamoDB sets cannot be empty: an empty set is the attribute's absence.
    (!values.is_empty()).then_some(AttributeValue::Ss(values))
}

/// The names and values of the `SET` that writes `next`'s own attributes whole.
fn whole_session(update: UpdateBuilder, next: &Session) -> UpdateBuilder {
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
                next.asked
                    .token_lists
                    .iter()
                    .map(|(url, generation)| (url.clone(), n(generation)))
                    .collect::<HashMap<_, _>>(),
            ),
        )
        .expression_attribute_values(":discover", AttributeValue::Bool(next.asked.discover))
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
    /// to the one before (discovered tokens) goes, and its whole token set counts as re-read
    /// now (its writer read it).
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
            // Its writer read every value it tracks just now: the background re-read a
            // stream asks for (`request_rescan`) is due only a re-read interval from here.
            sets.push("#rescan = :created");
        }
        let mut request = whole_session(self.session_update(next.chain_id, &next.owner), next);
        for (attribute, set, placeholder, values) in [
            (
                "#tokens",
                "#tokens = :tokens",
                ":tokens",
                string_set(&next.asked.custom_tokens),
            ),
            (
                "#spenders",
                "#spenders = :spenders",
                ":spenders",
                string_set(next.erc20_spenders()),
            ),
            (
                "#permit2_spenders",
                "#permit2_spenders = :permit2_spenders",
                ":permit2_spenders",
                string_set(next.permit2_spenders()),
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
            .expression_attribute_names("#spenders", "spenders")
            .expression_attribute_names("#permit2_spenders", "permit2_spenders");
        if fresh {
            request = request
                .expression_attribute_names("#discovered", "discovered")
                .expression_attribute_names("#rescan", "rescan_at");
        }
        // An item of a version before revisions (none) counts as revision 0.
        let condition = if expected_revision == 0 {
            "attribute_not_exists(#revision) OR #revision = :expected"
        } else {
            "#revision = :expected"
        };
        let update = request
            .expression_attribute_values(":expected", n(expected_revision))
            .update_expression(format!(
                "SET {} REMOVE {}",
                sets.join(", "),
                removes.join(", ")
            ))
            .condition_expression(condition)
            .build()
            .map_err(StorageError::refused)?;
        let change = SessionChange::Session(next.owner);
        Ok(self.logged_update(next.chain_id, update, &change).await? == Written::Yes)
    }

    /// An update of a session item for a transaction; the caller adds the expressions.
    fn session_update(&self, chain_id: u64, owner: &Address) -> UpdateBuilder {
        Update::builder()
            .table_name(&self.name)
            .key("pk", s(keys::session_pk(chain_id)))
            .key("sk", s(keys::session_sk(owner)))
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

    /// Every session of a chain, expired ones included, one page at a time (decoded page by
    /// page: a chain of 100,000 sessions is never held as raw items at once).
    pub async fn sessions(&self, chain_id: u64) -> Result<Vec<Session>, StorageError> {
        let mut sessions = vec![];
        let mut after = None;
        loop {
            let (page, last) = self.sessions_page(chain_id, after.as_ref(), None).await?;
            sessions.extend(page);
            match last {
                Some(last) => after = Some(last),
                None => return Ok(sessions),
            }
        }
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
    /// `None`), at most `limit` (else up to DynamoDB's 1 MB page); with the owner to continue
    /// after, `None` when the partition is done.
    pub async fn sessions_page(
        &self,
        chain_id: u64,
        after: Option<&Address>,
        limit: Option<i32>,
    ) -> Result<(Vec<Session>, Option<Address>), StorageError> {
        let mut query = self
            .query("pk = :pk", keys::session_pk(chain_id))
            .consistent_read(true)
            .set_limit(limit);
        if let Some(after) = after {
            query = query
                .exclusive_start_key("pk", s(keys::session_pk(chain_id)))
                .exclusive_start_key("sk", s(keys::session_sk(after)));
        }
        let out = query.send().await.map_err(StorageError::from_sdk)?;
        let sessions = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| Session::try_from(from_item::<SessionRecord>(i)?))
            .collect::<Result<Vec<_>, _>>()?;
        let last = out
            .last_evaluated_key
            .and_then(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .map(|sk| parse_address(&sk).map_err(|e| StorageError::corrupt(&sk, e)))
            .transpose()?;
        Ok((sessions, last))
    }

    /// The sessions of `owners` (expired ones included; a wallet without one is absent), by
    /// consistent batch reads of 100 keys.
    pub async fn sessions_of(
        &self,
        chain_id: u64,
        owners: &[Address],
    ) -> Result<Vec<Session>, StorageError> {
        let mut sessions = Vec::with_capacity(owners.len());
        for chunk in owners.chunks(BATCH_GET) {
            let mut keys_left: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|owner| {
                    HashMap::from([
                        ("pk".to_string(), s(keys::session_pk(chain_id))),
                        ("sk".to_string(), s(keys::session_sk(owner))),
                    ])
                })
                .collect();
            let mut attempt = 0;
            while !keys_left.is_empty() {
                super::batch_backoff(&mut attempt).await?;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys_left))
                    .consistent_read(true)
                    .build()
                    .map_err(StorageError::refused)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.name, request)
                    .send()
                    .await
                    .map_err(StorageError::from_sdk)?;
                let items: Vec<Item> = out
                    .responses
                    .and_then(|mut r| r.remove(&self.name))
                    .unwrap_or_default();
                for item in items {
                    sessions.push(Session::try_from(from_item::<SessionRecord>(item)?)?);
                }
                keys_left = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.name))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(sessions)
    }

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
