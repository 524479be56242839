//! Keeping a watcher's watched set current at the cost of what changed: every session is
//! listed once, at start; from then on the poller reads the chain's session log once a step
//! (one small query) and applies each change it names — reading only the sessions that
//! changed, taking a stream's vouch or a re-read request from the entry itself, loading a list
//! only when it has a new version. Sessions past their expiry are read again alone (an open
//! stream may have pushed it). A session written is watched at the next step, within a block.
//!
//! The safety net for an entry the poller never saw (see `session_log.rs`): a background pass
//! that pages through every session once per `SESSION_PASS_SECS`, a page a step, and applies
//! whatever differs from what the poller watches.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use futures::{StreamExt, TryStreamExt, stream};
use live_balances::clock::{unix_now, unix_now_ms};
use live_balances::model::{CURSOR_RECENT_BLOCKS, Session};
use live_balances::storage::{SESSION_LOG_READ_OVERLAP_MS, SessionChange, TokenFact};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::error::PollerError;
use crate::watched::{ListTokens, WatchChange};
use crate::watcher::ChainWatcher;

/// How many table reads of a listing or a learn run at once.
const READ_CONCURRENCY: usize = 16;
/// How far before the api's read of a new session its events are caught up on. Two
/// additions to one wallet that this poller picks up in one step were made within a block
/// or two of each other, while the later one's read block is the one recorded: the margin
/// covers the earlier one with room.
const CATCH_UP_MARGIN: u64 = CURSOR_RECENT_BLOCKS as u64;
/// How long a session whose writer has not finished storing its values is left to it before
/// the poller reads them itself (the writer failed).
const WRITER_GRACE: Duration = Duration::from_secs(10);
/// Most expired sessions read again in one step; the rest wait for the next.
const EXPIRED_PER_STEP: usize = 1_000;
/// Most sessions the background pass reads in one step.
const PASS_PAGE_MAX: usize = 1_000;
/// How often the chain's token facts (unreadable, silent) are read again.
const FACTS_EVERY: Duration = Duration::from_secs(600);
/// Shortest gap between two writes of the live session count (the api's cap reads it).
const LIVE_COUNT_EVERY: Duration = Duration::from_secs(10);
/// How often a summary of the changes applied is logged (when there were any).
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// Where a watcher stands with the chain's sessions.
#[derive(Debug)]
pub(crate) struct SessionTail {
    /// Every session was listed once (at start).
    listed: bool,
    /// The start of the last read of the log: the next one looks back an overlap before it.
    read_from_ms: u64,
    /// Entries already applied, by key, with their stamps (kept for an overlap).
    seen: HashMap<String, u64>,
    /// Sessions whose writer is still storing their values, with when they were first seen.
    waiting: HashMap<Address, Instant>,
    pass: Pass,
    facts_read: Option<Instant>,
    live_count_stored: Option<u64>,
    live_count_at: Option<Instant>,
    applied: BTreeMap<&'static str, u64>,
    summary_at: Instant,
}

/// The background pass over the sessions.
#[derive(Debug)]
struct Pass {
    interval: Duration,
    /// The last owner read; the next page starts after it (`None`: from the start).
    after: Option<Address>,
    last: Instant,
    /// Sessions owed from earlier steps, so small steps still add up.
    carry: f64,
}

impl SessionTail {
    pub(crate) fn new(pass_interval: Duration) -> Self {
        Self {
            listed: false,
            read_from_ms: 0,
            seen: HashMap::new(),
            waiting: HashMap::new(),
            pass: Pass {
                interval: pass_interval,
                after: None,
                last: Instant::now(),
                carry: 0.0,
            },
            facts_read: None,
            live_count_stored: None,
            live_count_at: None,
            applied: BTreeMap::new(),
            summary_at: Instant::now(),
        }
    }
}

/// One read of the log: when it started, and the keys of the entries it found new.
#[derive(Debug)]
struct LogRead {
    at_ms: u64,
    keys: Vec<(String, u64)>,
}

/// What one step learned from the log, to apply.
#[derive(Debug, Default)]
struct LogNews {
    sessions: BTreeSet<Address>,
    lists: BTreeSet<String>,
    rescans: Vec<Address>,
    streaming: Vec<(Address, u64, u64)>,
}

impl ChainWatcher {
    /// Brings the watched set up to date with what changed since the last step; queues the
    /// re-reads streams asked for. `cursor_block`: the last block processed.
    pub(crate) async fn refresh_watched(&mut self, cursor_block: u64) -> Result<(), PollerError> {
        if !self.sessions.listed {
            return self.list_sessions(cursor_block).await;
        }
        let (news, read) = self.read_log().await?;
        self.refresh_facts().await?;
        let mut change = WatchChange::default();
        for url in &news.lists {
            // Only lists some watched wallet follows are loaded.
            if self.watched.list(url).is_some() {
                change.merge(self.reload_list(url).await?);
            }
        }
        let now = unix_now();
        let mut to_read: BTreeSet<Address> = news.sessions;
        for (owner, until, expires_at) in news.streaming {
            if self.watched.set_streaming(&owner, until, expires_at) {
                self.note("streaming", 1);
            } else {
                // A vouch for a wallet this poller does not watch: its session's own entry
                // was lost, or is yet to come.
                to_read.insert(owner);
            }
        }
        for owner in &news.rescans {
            if self.watched.wallet(owner).is_none() {
                to_read.insert(*owner);
            }
        }
        to_read.extend(self.sessions.waiting.keys().copied());
        let expired = self.watched.expired(now, EXPIRED_PER_STEP);
        self.note("expiry_checked", expired.len() as u64);
        to_read.extend(expired);
        if !to_read.is_empty() {
            let owners: Vec<Address> = to_read.iter().copied().collect();
            let read = self.table.sessions_of(self.chain_id, &owners).await?;
            let mut found: HashMap<Address, Session> =
                read.into_iter().map(|s| (s.owner, s)).collect();
            for owner in &owners {
                let session = found.remove(owner);
                change.merge(self.apply_session(*owner, session, now).await?);
            }
        }
        self.take_change(change, cursor_block, false).await?;
        for owner in news.rescans {
            if self.watched.wallet(&owner).is_some() && !self.rescans.contains(&owner) {
                self.note("rescan", 1);
                self.rescans.push_back(owner);
            }
        }
        // Applied: the entries are not applied again, and the next read looks back from here.
        self.sessions.read_from_ms = read.at_ms;
        self.sessions.seen.extend(read.keys);
        let keep_after = read.at_ms.saturating_sub(2 * SESSION_LOG_READ_OVERLAP_MS);
        self.sessions.seen.retain(|_, at| *at >= keep_after);
        self.pass_step(cursor_block).await?;
        self.store_live_count().await;
        self.log_summary();
        Ok(())
    }

    /// Lists every session of the chain (at start): the watched set from nothing.
    async fn list_sessions(&mut self, cursor_block: u64) -> Result<(), PollerError> {
        let started = Instant::now();
        // Entries written while the listing runs are read (again) by the first log read.
        self.sessions.read_from_ms = unix_now_ms();
        self.refresh_facts().await?;
        let now = unix_now();
        let mut change = WatchChange::default();
        let mut after = None;
        let mut listed = 0usize;
        loop {
            let (page, last) = self
                .table
                .sessions_page(self.chain_id, after.as_ref(), None)
                .await?;
            listed += page.len();
            for session in page.into_iter().filter(|s| s.expires_at > now) {
                change.merge(self.load_lists_of(&session).await?);
                change.merge(self.watched.upsert(&session, true));
            }
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        let listing = started.elapsed();
        self.take_change(change, cursor_block, true).await?;
        self.sessions.listed = true;
        self.sessions.pass.last = Instant::now();
        self.note("full_listing", 1);
        info!(
            chain = self.chain_id,
            sessions = listed,
            wallets = self.watched.len(),
            held = self.held.len(),
            listing_ms = listing.as_millis() as u64,
            learning_ms = (started.elapsed() - listing).as_millis() as u64,
            "sessions listed"
        );
        Ok(())
    }

    /// The log's entries since the last read, less those already applied, sorted by kind;
    /// with what to remember once they are applied.
    async fn read_log(&mut self) -> Result<(LogNews, LogRead), PollerError> {
        let at_ms = unix_now_ms();
        let since = self
            .sessions
            .read_from_ms
            .saturating_sub(SESSION_LOG_READ_OVERLAP_MS);
        let entries = self
            .table
            .session_log_since(self.chain_id, since, at_ms)
            .await?;
        let mut news = LogNews::default();
        let mut keys = vec![];
        for entry in entries {
            if self.sessions.seen.contains_key(&entry.key) {
                continue;
            }
            keys.push((entry.key, entry.at_ms));
            match entry.change {
                SessionChange::Session(owner) => {
                    news.sessions.insert(owner);
                }
                SessionChange::Streaming {
                    owner,
                    until,
                    expires_at,
                } => news.streaming.push((owner, until, expires_at)),
                SessionChange::Rescan(owner) => news.rescans.push(owner),
                SessionChange::List { url } => {
                    news.lists.insert(url);
                }
            }
        }
        self.note("session", news.sessions.len() as u64);
        self.note("list", news.lists.len() as u64);
        Ok((news, LogRead { at_ms, keys }))
    }

    /// What `session` (as just read; `None`: gone) asks of the watched set.
    async fn apply_session(
        &mut self,
        owner: Address,
        session: Option<Session>,
        now: u64,
    ) -> Result<WatchChange, PollerError> {
        let Some(session) = session.filter(|s| s.expires_at > now) else {
            self.sessions.waiting.remove(&owner);
            if self.watched.remove(&owner) {
                self.held.drop_wallet(&owner);
                self.note("ended", 1);
            }
            return Ok(WatchChange::default());
        };
        if session.complete_revision < session.revision {
            // Its writer is storing the values it read; they are taken from the table once
            // it is done — or read here, should it not finish.
            let first_seen = *self
                .sessions
                .waiting
                .entry(owner)
                .or_insert_with(Instant::now);
            if first_seen.elapsed() < WRITER_GRACE {
                return Ok(WatchChange::default());
            }
            warn!(chain = self.chain_id, owner = %owner, revision = session.revision, "a session's writer did not finish; reading its values here");
        }
        self.sessions.waiting.remove(&owner);
        let mut change = self.load_lists_of(&session).await?;
        change.merge(self.watched.upsert(&session, false));
        Ok(change)
    }

    /// Loads the lists `session` follows that this poller lacks or holds at an older version.
    async fn load_lists_of(&mut self, session: &Session) -> Result<WatchChange, PollerError> {
        let mut change = WatchChange::default();
        for url in self.watched.lists_to_load(session) {
            change.merge(self.reload_list(&url).await?);
        }
        Ok(change)
    }

    /// Loads the current version of the list at `url` from the list cache when it is new to
    /// this poller or moved on: what every follower gains and loses by it.
    async fn reload_list(&mut self, url: &str) -> Result<WatchChange, PollerError> {
        let Some(head) = self
            .table
            .list_head(self.chain_id, url)
            .await?
            .filter(|h| h.generation > 0)
        else {
            // Not in the cache (never fetched, or expired unused): the version this poller
            // knows, if any, stands.
            return Ok(WatchChange::default());
        };
        if self
            .watched
            .list(url)
            .is_some_and(|known| known.generation == head.generation)
        {
            return Ok(WatchChange::default());
        }
        let tokens = self.table.list_tokens(self.chain_id, &head).await?;
        let tokens = Arc::new(ListTokens {
            generation: head.generation,
            tokens: tokens.into_iter().map(|(token, _)| token).collect(),
        });
        self.note("list_loaded", 1);
        Ok(self.watched.set_list(url, tokens))
    }

    /// Does what a change of the watched set asks: forgets untracked values, learns what the
    /// table holds for new and changed sessions, queues their catch-up and the first reads.
    /// `initial`: the listing at start, whose wallets were watched by the poller before this
    /// one (no catch-up but for recent ones).
    async fn take_change(
        &mut self,
        change: WatchChange,
        cursor_block: u64,
        initial: bool,
    ) -> Result<(), PollerError> {
        for (owner, token) in &change.untracked {
            self.held.drop_token(owner, token);
        }
        self.learn(&change.learn).await?;
        for owner in &change.learn {
            let Some(wallet) = self.watched.wallet(owner) else {
                continue;
            };
            // A wallet this poller found at start whose values were read long before its
            // cursor was watched by the poller before it; a recent one may not have been.
            let recent = wallet.read_block + CATCH_UP_MARGIN >= cursor_block;
            if (!initial || recent) && wallet.read_block <= cursor_block {
                self.catch_up
                    .push((*owner, wallet.read_block.saturating_sub(CATCH_UP_MARGIN)));
            }
        }
        let mut first_reads = change.first_reads;
        first_reads
            .reads
            .retain(|(_, key), _| !self.unreadable.contains(&key.token()));
        if !first_reads.is_empty() {
            info!(
                chain = self.chain_id,
                values = first_reads.len(),
                "newly tracked values to read"
            );
        }
        self.note("learned", change.learn.len() as u64);
        self.pending.merge(first_reads);
        Ok(())
    }

    /// The chain's token facts, read at start and every ten minutes.
    async fn refresh_facts(&mut self) -> Result<(), PollerError> {
        if self
            .sessions
            .facts_read
            .is_some_and(|at| at.elapsed() < FACTS_EVERY)
        {
            return Ok(());
        }
        let now = unix_now();
        self.unreadable = self
            .table
            .token_facts(self.chain_id, TokenFact::Unreadable, now)
            .await?;
        for token in self
            .table
            .token_facts(self.chain_id, TokenFact::Silent, now)
            .await?
        {
            self.held.mark_silent(token);
        }
        self.sessions.facts_read = Some(Instant::now());
        Ok(())
    }

    /// This step's page of the background pass: every session once per pass interval; what
    /// differs from the watched set is applied (a change whose entry was lost), and a watched
    /// wallet whose session is gone is dropped.
    async fn pass_step(&mut self, cursor_block: u64) -> Result<(), PollerError> {
        let pass = &mut self.sessions.pass;
        if pass.interval.is_zero() {
            return Ok(());
        }
        let elapsed = pass.last.elapsed();
        pass.last = Instant::now();
        // Sized on the watched set (the sessions the table holds, but for the expired ones
        // not yet removed by TTL); at least one session a step so the pass moves.
        let share = self.watched.len().max(1) as f64 * elapsed.as_secs_f64()
            / pass.interval.as_secs_f64()
            + pass.carry;
        let count = (share.floor() as usize).min(PASS_PAGE_MAX);
        pass.carry = (share - count as f64).min(1.0);
        if count == 0 {
            return Ok(());
        }
        let after = pass.after;
        let (page, last) = self
            .table
            .sessions_page(self.chain_id, after.as_ref(), Some(count as i32))
            .await?;
        let now = unix_now();
        let mut change = WatchChange::default();
        let in_page: HashSet<Address> = page.iter().map(|s| s.owner).collect();
        // Watched wallets the page passed over: their session is gone.
        let gone: Vec<Address> = self
            .watched
            .owners_between(after, last)
            .into_iter()
            .filter(|o| !in_page.contains(o))
            .collect();
        for owner in gone {
            change.merge(self.apply_session(owner, None, now).await?);
        }
        let mut lost = 0;
        for session in page {
            let owner = session.owner;
            let live = session.expires_at > now;
            let differs = match self.watched.wallet(&owner) {
                None => live,
                Some(known) => {
                    !live
                        || (known.revision, known.complete_revision, known.discovered)
                            != (
                                session.revision,
                                session.complete_revision,
                                session.discovered.len(),
                            )
                        || known.lists.len() != session.token_lists.len()
                        || known.streaming_until < session.streaming_until
                        || known.expires_at < session.expires_at
                }
            };
            if differs {
                let tracking = self.watched.wallet(&owner).is_none_or(|known| {
                    (known.revision, known.complete_revision)
                        != (session.revision, session.complete_revision)
                });
                if live && tracking && !self.sessions.waiting.contains_key(&owner) {
                    lost += 1;
                }
                change.merge(self.apply_session(owner, Some(session), now).await?);
            }
        }
        if lost > 0 {
            warn!(
                chain = self.chain_id,
                sessions = lost,
                "the background pass found session changes the log did not announce"
            );
            self.note("found_by_pass", lost);
        }
        self.take_change(change, cursor_block, false).await?;
        self.sessions.pass.after = last;
        if last.is_none() {
            // A whole pass done: what nobody refers to any more goes.
            self.watched.prune();
        }
        Ok(())
    }

    /// Stores the live session count when it changed (at most every few seconds). The api
    /// refuses new sessions past MAX_SESSIONS_PER_CHAIN by it. Advisory: a failed write is
    /// tried again later and never holds the set back.
    async fn store_live_count(&mut self) {
        let count = self.watched.len() as u64;
        if self.sessions.live_count_stored == Some(count)
            || self
                .sessions
                .live_count_at
                .is_some_and(|at| at.elapsed() < LIVE_COUNT_EVERY)
        {
            return;
        }
        self.sessions.live_count_at = Some(Instant::now());
        match self.table.set_live_sessions(self.chain_id, count).await {
            Ok(()) => self.sessions.live_count_stored = Some(count),
            Err(error) => warn!(chain = self.chain_id, %error, "live session count not stored"),
        }
    }

    /// Counts `by` changes of `kind` (`poller_session_changes_total{kind}`, and the next
    /// summary line).
    fn note(&mut self, kind: &'static str, by: u64) {
        if by > 0 {
            self.metrics.count_session_changes(self.chain_id, kind, by);
            *self.sessions.applied.entry(kind).or_default() += by;
        }
    }

    /// One log line every half minute with the changes applied since the last (if any).
    fn log_summary(&mut self) {
        if self.sessions.summary_at.elapsed() < SUMMARY_EVERY || self.sessions.applied.is_empty() {
            return;
        }
        self.sessions.summary_at = Instant::now();
        let applied = std::mem::take(&mut self.sessions.applied);
        info!(
            chain = self.chain_id,
            wallets = self.watched.len(),
            waiting = self.sessions.waiting.len(),
            changes = ?applied,
            "session changes applied"
        );
    }

    /// Replaces what is held for each of `owners` by what the table holds for the tokens it
    /// tracks (the api wrote their initial values): one query per wallet, folded in as it
    /// arrives.
    async fn learn(&mut self, owners: &BTreeSet<Address>) -> Result<(), PollerError> {
        if owners.is_empty() {
            return Ok(());
        }
        let table = &self.table;
        let chain_id = self.chain_id;
        let mut stored = stream::iter(owners.iter().copied())
            .map(|owner| async move {
                table
                    .balances(chain_id, &owner)
                    .await
                    .map(|items| (owner, items))
            })
            .buffer_unordered(READ_CONCURRENCY);
        while let Some((owner, items)) = stored.try_next().await? {
            let tracked: Vec<_> = items
                .into_iter()
                .filter(|i| self.watched.tracks(&owner, &i.key.token()))
                .map(|i| (i.key, i.read))
                .collect();
            self.held.replace_wallet(owner, tracked);
        }
        debug!(chain = self.chain_id, wallets = owners.len(), "learned");
        Ok(())
    }
}
