//! The write half of the session route: a checked request applied — the session read once,
//! the lists resolved, every value it starts tracking read on chain, then the session stored
//! if nobody changed it meanwhile (else read again and retried), then its non-zero values.
//! Every route that writes a session goes through [`apply`].

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use alloy::primitives::{Address, U256};
use futures::{StreamExt, TryStreamExt, stream};
use live_balances::NATIVE_TOKEN;
use live_balances::chain::BalanceReader;
use live_balances::domain::model::{
    BalanceItem, BalanceKey, FirstValues, MAX_FIRST_VALUES, Session, SessionAsks, Spender,
    TokenRead,
};
use live_balances::runtime::clock::unix_now;
use live_balances::storage::{TokenFact, UNREADABLE_FOR_SECS, ValueWrite};

use super::checked::CheckedRequest;
use super::{SessionView, Upsert, held_tokens, named_metadata};
use crate::catalog::ListVersion;
use crate::error::ApiError;
use crate::limits;
use crate::request::Request;
use crate::requested_tokens::{self, RequestedTokens};
use crate::state::State;
use crate::telemetry;
use crate::tracked::list_versions;

/// How many table writes run at once for the initial values.
const WRITE_CONCURRENCY: usize = 32;
/// Attempts at writing a session that concurrent requests keep changing.
const WRITE_ATTEMPTS: usize = 4;

/// Creates the session or adds to it (see [`super::upsert`]): the one way every route writes
/// one. The session is read once (again only when a concurrent write won the race).
pub async fn apply(
    state: &State,
    req: &Request,
    checked: &CheckedRequest,
    mode: Upsert,
) -> Result<SessionView, ApiError> {
    let (chain_id, owner) = (checked.chain_id, checked.owner);
    let reader = state.reader(chain_id)?;
    limits::admit_session_write(state, req, chain_id, &owner).await?;
    let mut stored = state.table.session(chain_id, &owner).await?;
    match (live(&stored, unix_now()), mode) {
        (None, Upsert::AddOnly) => return Err(ApiError::SessionNotFound),
        (None, Upsert::CreateOrAdd) => limits::admit_new_session(state, chain_id).await?,
        (Some(_), _) => {}
    }
    let started = std::time::Instant::now();
    let requested =
        requested_tokens::resolve(state, chain_id, reader, &checked.custom, &checked.lists).await?;
    let addition = SessionAsks {
        custom_tokens: checked.custom.clone(),
        spenders: checked.spenders.clone(),
        token_lists: requested
            .lists
            .iter()
            .map(|l| (l.url.clone(), l.generation))
            .collect(),
        discover: checked.discover,
    };
    let resolved = started.elapsed();
    let write = Write {
        state,
        reader,
        addition: &addition,
        requested: &requested,
        mode,
        started,
    };
    for attempt in 0..WRITE_ATTEMPTS {
        if attempt > 0 {
            stored = state.table.session(chain_id, &owner).await?;
        }
        if let Some(mut view) = write.attempt(chain_id, owner, stored.take()).await? {
            view.lists = requested.summaries;
            tracing::debug!(chain = chain_id, owner = %owner, resolve_ms = resolved.as_millis() as u64, "lists resolved");
            return Ok(view);
        }
    }
    Err(ApiError::SessionBusy)
}

/// The session as stored, if it is live at `now`.
fn live(stored: &Option<Session>, now: u64) -> Option<&Session> {
    stored.as_ref().filter(|s| s.expires_at > now)
}

/// What every attempt of one request shares.
struct Write<'a> {
    state: &'a State,
    reader: &'a BalanceReader,
    addition: &'a SessionAsks,
    requested: &'a RequestedTokens,
    mode: Upsert,
    started: std::time::Instant,
}

/// What one attempt starts from: the session as stored (`live` when it has not expired), the
/// session it becomes, and the tokens tracked before and after.
struct Attempt {
    now: u64,
    live: Option<Session>,
    /// The session the addition applies to: the live one, or a new one.
    base: Session,
    next: Session,
    weth: Option<Address>,
    versions: HashMap<String, Arc<ListVersion>>,
    before: BTreeSet<Address>,
    after: BTreeSet<Address>,
    /// The values the addition starts tracking: read on chain before anything is stored.
    keys: Vec<BalanceKey>,
}

impl Write<'_> {
    /// One attempt at applying the addition to `stored` (the session as read): reads on chain
    /// every value it starts tracking, stores the session if nobody changed it meanwhile (`None`
    /// otherwise: read it again and retry), then its non-zero values.
    async fn attempt(
        &self,
        chain_id: u64,
        owner: Address,
        stored: Option<Session>,
    ) -> Result<Option<SessionView>, ApiError> {
        let (state, requested, started) = (self.state, self.requested, self.started);
        let attempt = self.prepare(chain_id, owner, stored).await?;
        if let Some(live) = attempt
            .live
            .as_ref()
            .filter(|l| adds_nothing(l, &attempt.next))
        {
            return keep_alive(state, &attempt, live, requested).await.map(Some);
        }
        let Attempt {
            now,
            live,
            base,
            mut next,
            weth,
            versions,
            before,
            after,
            keys,
        } = attempt;

        // Read first: if the chain cannot be read, nothing is stored.
        let (block, values, stored_values) = self.read_values(chain_id, owner, &keys).await?;
        let read_done = started.elapsed();
        let unreadable = self
            .unreadable_tokens(chain_id, &keys, &values, block)
            .await?;

        next.revision = base.revision + 1;
        next.read_block = block;
        // Never shortened: a session held by an order or a subscription (`hold`) lives on.
        next.expires_at = (now + state.settings.session_ttl.as_secs()).max(base.expires_at);
        let items = values_to_store(&next, &keys, values, &stored_values, &unreadable);
        if live.is_none() {
            next.first_values = first_values(&items);
        }
        if !store(state, &next, base.revision, live.is_none(), &items, now).await? {
            tracing::info!(chain = chain_id, owner = %owner, "session changed meanwhile; trying again");
            return Ok(None);
        }
        tracing::info!(
            chain = chain_id,
            owner = %owner,
            tokens = after.len(),
            new_tokens = after.len() - before.len(),
            lists = requested.lists.len(),
            reads = keys.len(),
            values_written = items.len(),
            unreadable = unreadable.len(),
            block,
            read_ms = read_done.as_millis() as u64,
            write_ms = (started.elapsed() - read_done).as_millis() as u64,
            "session updated"
        );
        let mut held = held_tokens(&items);
        held.extend(
            stored_values
                .iter()
                .filter(|(_, r)| r.value().is_some_and(|v| !v.is_zero()))
                .map(|(k, _)| k.token()),
        );
        let named_metadata = named_metadata(state, &next, weth, &requested.named_metadata).await?;
        Ok(Some(SessionView::new(
            state,
            &next,
            &after,
            block,
            &versions,
            &named_metadata,
            &held,
        )))
    }

    /// The values of `keys` on chain at the latest block (that block and one read per key), and
    /// what the table already holds for the wallet (a value of a token it tracked before).
    async fn read_values(
        &self,
        chain_id: u64,
        owner: Address,
        keys: &[BalanceKey],
    ) -> Result<(u64, Vec<TokenRead>, HashMap<BalanceKey, TokenRead>), ApiError> {
        let reads: Vec<(Address, BalanceKey)> = keys.iter().map(|k| (owner, *k)).collect();
        let (chain_read, items) = tokio::join!(
            self.reader.read_latest(&reads),
            self.state.table.balances(chain_id, &owner)
        );
        let (block, values) = chain_read?;
        let stored_values = items?.into_iter().map(|i| (i.key, i.read)).collect();
        Ok((block, values, stored_values))
    }

    /// Applies the addition to `stored` (or to a new session): what the attempt tracks before
    /// and after, and the values it starts tracking.
    async fn prepare(
        &self,
        chain_id: u64,
        owner: Address,
        stored: Option<Session>,
    ) -> Result<Attempt, ApiError> {
        let (state, requested) = (self.state, self.requested);
        let now = unix_now();
        let live = live(&stored, now).cloned();
        if live.is_none() && self.mode == Upsert::AddOnly {
            return Err(ApiError::SessionNotFound);
        }
        let base = live.clone().unwrap_or_else(|| Session {
            // A session that expired starts over, under the revision it reached.
            revision: stored.as_ref().map_or(0, |s| s.revision),
            ..Session::new(chain_id, owner, now)
        });
        let next = base.with(self.addition);
        let weth = state.settings.chains.get(&chain_id).and_then(|c| c.weth);
        let versions = list_versions(state, chain_id, &next, &requested.lists).await?;
        let list_tokens = |url: &str| versions.get(url).map(|v| v.tokens.as_slice());
        let before = match &live {
            Some(s) => s.tracked_tokens(list_tokens, weth),
            None => BTreeSet::new(),
        };
        let after = next.tracked_tokens(list_tokens, weth);
        let max_tokens = state.settings.limits.max_tokens_per_session;
        if after.len() > max_tokens {
            return Err(ApiError::TooManyTokens(max_tokens));
        }
        limits::check_session_size(state, &after, &next.asked.spenders)?;
        let known_spenders = live
            .as_ref()
            .map(|s| s.asked.spenders.clone())
            .unwrap_or_default();
        let keys = untracked_keys(&before, &known_spenders, &after, &next.asked.spenders);
        Ok(Attempt {
            now,
            live,
            base,
            next,
            weth,
            versions,
            before,
            after,
            keys,
        })
    }
}

/// Another tab of the same wallet asking for what the session already has: it only lives
/// longer. No read, no revision, no work for the poller.
async fn keep_alive(
    state: &State,
    attempt: &Attempt,
    live: &Session,
    requested: &requested_tokens::RequestedTokens,
) -> Result<SessionView, ApiError> {
    let (chain_id, owner, now) = (live.chain_id, live.owner, attempt.now);
    let expires_at = now + state.settings.session_ttl.as_secs();
    state
        .table
        .keep_session_alive(chain_id, &owner, now, expires_at, None)
        .await?;
    let held = held_tokens(&state.table.balances(chain_id, &owner).await?);
    let named_metadata =
        named_metadata(state, live, attempt.weth, &requested.named_metadata).await?;
    let mut kept = live.clone();
    kept.expires_at = kept.expires_at.max(expires_at);
    Ok(SessionView::new(
        state,
        &kept,
        &attempt.after,
        live.read_block,
        &attempt.versions,
        &named_metadata,
        &held,
    ))
}

/// The values read for `keys` that are stored: only what is not zero — and the zero of a
/// value stored earlier, which must not linger. Tokens unreadable for any holder are not.
fn values_to_store(
    session: &Session,
    keys: &[BalanceKey],
    values: Vec<TokenRead>,
    stored: &HashMap<BalanceKey, TokenRead>,
    unreadable: &BTreeSet<Address>,
) -> Vec<BalanceItem> {
    keys.iter()
        .zip(values)
        .filter(|(key, _)| !unreadable.contains(&key.token()))
        .filter(|(key, read)| {
            *read != TokenRead::Value(U256::ZERO)
                || stored
                    .get(key)
                    .is_some_and(|s| *s != TokenRead::Value(U256::ZERO))
        })
        .map(|(key, read)| BalanceItem {
            chain_id: session.chain_id,
            owner: session.owner,
            key: *key,
            read,
            block: session.read_block,
            tx_hash: None,
        })
        .collect()
}

/// What a session that starts over records of the values it stores, for the poller to learn
/// the wallet from (none past [`MAX_FIRST_VALUES`]: the poller queries them instead).
fn first_values(items: &[BalanceItem]) -> Option<FirstValues> {
    let values: FirstValues = items
        .iter()
        .filter(|item| item.read != TokenRead::Value(U256::ZERO))
        .map(|item| (item.key, item.read.clone()))
        .collect();
    (values.len() <= MAX_FIRST_VALUES).then_some(values)
}

/// Stores `next` if it is still at `base_revision` (`false`: somebody changed it meanwhile,
/// nothing stored) — the poller learns of it from the session log entry written with it —
/// then its new values, then marks them complete (the poller waits for that before it takes
/// the values as stored).
async fn store(
    state: &State,
    next: &Session,
    base_revision: u64,
    fresh: bool,
    items: &[BalanceItem],
    now: u64,
) -> Result<bool, ApiError> {
    let (chain_id, owner) = (next.chain_id, next.owner);
    if !state
        .table
        .write_session(next, base_revision, fresh)
        .await?
    {
        return Ok(false);
    }
    store_values(state, items, now).await?;
    state
        .table
        .complete_session(chain_id, &owner, next.revision)
        .await?;
    telemetry::session_written(chain_id);
    Ok(true)
}

/// Writes the first reads of a session's new values, `WRITE_CONCURRENCY` at once.
async fn store_values(state: &State, items: &[BalanceItem], now: u64) -> Result<(), ApiError> {
    let how = ValueWrite {
        first_read: true,
        rewound_above: None,
        tombstone_expires_at: now + state.settings.feed_ttl.as_secs(),
    };
    // The futures are built up front (they do nothing until polled): a closure in the stream
    // would be generic over the item's lifetime, which the `Send` handler cannot prove.
    let writes: Vec<_> = items
        .iter()
        .map(|item| state.table.put_balance(item, now, how))
        .collect();
    stream::iter(writes)
        .buffer_unordered(WRITE_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Whether `next` tracks nothing `live` does not.
fn adds_nothing(live: &Session, next: &Session) -> bool {
    live.asked.custom_tokens == next.asked.custom_tokens
        && live.asked.spenders == next.asked.spenders
        && live.asked.discover == next.asked.discover
        && live
            .asked
            .token_lists
            .keys()
            .eq(next.asked.token_lists.keys())
}

impl Write<'_> {
    /// Of the tokens whose reads failed, those that fail for any holder: recorded once for the
    /// chain, never stored per wallet.
    async fn unreadable_tokens(
        &self,
        chain_id: u64,
        keys: &[BalanceKey],
        values: &[TokenRead],
        block: u64,
    ) -> Result<BTreeSet<Address>, ApiError> {
        let failed: BTreeSet<Address> = keys
            .iter()
            .zip(values)
            .filter(|(key, read)| **read == TokenRead::Failed && key.token() != NATIVE_TOKEN)
            .map(|(key, _)| key.token())
            .collect();
        if failed.is_empty() {
            return Ok(failed);
        }
        let failed: Vec<Address> = failed.into_iter().collect();
        let unreadable = self.reader.unreadable_tokens(&failed, block).await?;
        if !unreadable.is_empty() {
            self.state
                .table
                .record_token_fact(
                    chain_id,
                    TokenFact::Unreadable,
                    &unreadable,
                    unix_now() + UNREADABLE_FOR_SECS,
                )
                .await?;
        }
        Ok(unreadable.into_iter().collect())
    }
}

/// The values an addition starts tracking: every value of a new token, and the allowances of
/// new spenders on tokens already tracked.
fn untracked_keys(
    before: &BTreeSet<Address>,
    known_spenders: &BTreeSet<Spender>,
    after: &BTreeSet<Address>,
    spenders: &BTreeSet<Spender>,
) -> Vec<BalanceKey> {
    let mut keys = vec![];
    for token in after {
        let new_token = !before.contains(token);
        if new_token {
            keys.push(BalanceKey::Balance { token: *token });
        }
        if *token == NATIVE_TOKEN {
            continue;
        }
        for spender in spenders {
            if new_token || !known_spenders.contains(spender) {
                keys.push(spender.key(*token));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn addr(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn value(v: u64) -> TokenRead {
        TokenRead::Value(U256::from(v))
    }

    #[test]
    fn an_addition_reads_new_tokens_whole_and_old_tokens_for_new_spenders_only() {
        let (old, new, spender, other) = (addr(1), addr(2), addr(3), addr(4));
        let keys = untracked_keys(
            &[old, NATIVE_TOKEN].into(),
            &[Spender::Erc20(spender)].into(),
            &[old, new, NATIVE_TOKEN].into(),
            &[Spender::Erc20(spender), Spender::Erc20(other)].into(),
        );
        let allowance = |token, spender| BalanceKey::Allowance { token, spender };
        assert_eq!(
            keys,
            [
                allowance(old, other),
                BalanceKey::Balance { token: new },
                allowance(new, spender),
                allowance(new, other),
            ],
            "the native currency has no allowances; what was tracked is not read again"
        );
    }

    #[test]
    fn only_values_that_are_not_zero_are_stored_and_a_stale_one_is_zeroed() {
        let mut session = Session::new(1, addr(9), NOW);
        session.read_block = 7;
        let (held, zero, was_held, unreadable, failed) =
            (addr(1), addr(2), addr(3), addr(4), addr(5));
        let balance = |token| BalanceKey::Balance { token };
        let keys = [held, zero, was_held, unreadable, failed].map(balance);
        let stored = HashMap::from([(balance(was_held), value(5))]);
        let items = values_to_store(
            &session,
            &keys,
            vec![
                value(3),
                value(0),
                value(0),
                TokenRead::Failed,
                TokenRead::Failed,
            ],
            &stored,
            &[unreadable].into(),
        );
        let written: Vec<_> = items
            .iter()
            .map(|i| (i.key.token(), i.read.clone(), i.block))
            .collect();
        assert_eq!(
            written,
            [
                (held, value(3), 7),
                (was_held, value(0), 7),
                (failed, TokenRead::Failed, 7)
            ]
        );
    }

    #[test]
    fn a_request_adds_nothing_when_the_session_tracks_all_it_names() {
        let mut live = Session::new(1, addr(9), NOW);
        live.asked.custom_tokens = [addr(1)].into();
        live.asked.spenders = [Spender::Erc20(addr(3))].into();
        live.asked.token_lists = [("https://list".to_string(), 4)].into();
        let mut same = live.clone();
        same.asked.token_lists = [("https://list".to_string(), 5)].into();
        assert!(
            adds_nothing(&live, &same),
            "a list's newer generation adds nothing"
        );
        let mut more = live.clone();
        more.asked.custom_tokens.insert(addr(2));
        assert!(!adds_nothing(&live, &more));
        let mut discovering = live.clone();
        discovering.asked.discover = true;
        assert!(!adds_nothing(&live, &discovering));
    }

    #[test]
    fn an_expired_session_is_not_live() {
        let mut session = Session::new(1, addr(9), NOW);
        session.expires_at = NOW + 1;
        let stored = Some(session);
        assert!(live(&stored, NOW).is_some());
        assert!(live(&stored, NOW + 1).is_none());
        assert!(live(&None, NOW).is_none());
    }
}
