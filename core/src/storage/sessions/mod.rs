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
//!
//! Files: this one (the api's whole-session write and its completion), `reads` (one session,
//! a chain's, a page of them, a set of wallets'), `upkeep` (what streams and the poller add:
//! keep-alives, discovered tokens, re-read requests, and the chain's live count).

mod reads;
mod upkeep;

use std::collections::HashMap;

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Update};

use crate::domain::address::lower;
use crate::domain::model::Session;
use crate::storage::session_log::SessionChange;
use crate::storage::{StorageError, Table, Written, keys, n, records, s, written};

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
        let mut request = whole_session(self.session_update(next.chain_id, &next.owner), next)
            .expression_attribute_names("#first", "first_values")
            .expression_attribute_names("#first_revision", "first_values_revision");
        // The record of the first revision's values, under that revision (a reader takes it
        // only while it is the session's), which any later revision drops.
        match next.first_values.as_ref().filter(|_| fresh) {
            Some(values) => {
                sets.push("#first = :first");
                sets.push("#first_revision = :revision");
                request = request
                    .expression_attribute_values(":first", s(records::first_values_text(values)));
            }
            None => removes.extend(["#first", "#first_revision"]),
        }
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
}
