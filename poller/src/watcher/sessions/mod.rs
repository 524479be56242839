//! Keeping a watcher's watched set current at the cost of what changed: every session is
//! listed once, at start (`listing`); from then on the poller reads the chain's session log
//! once a step (`log`: one small query) and applies each change it names — reading only the
//! sessions that changed, taking a stream's vouch or a re-read request from the entry itself,
//! loading a list only when it has a new version. Sessions past their expiry are read again
//! alone (an open stream may have pushed it). A session written is watched at the next step,
//! within a block.
//!
//! The safety net for an entry the poller never saw (see `session_log.rs`): a background pass
//! (`pass`) that pages through every session once per `SESSION_PASS_SECS`, a page a step, and
//! applies whatever differs from what the poller watches.

mod listing;
mod log;
mod pass;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use live_balances::chain::OwnerTopics;
use live_balances::domain::model::{CURSOR_RECENT_BLOCKS, FirstValues, Session};
use live_balances::runtime::clock::unix_now;
use tokio::time::Instant;
use tracing::{info, warn};

use super::ChainWatcher;
use super::report::WatchedCounts;
use crate::error::PollerError;
use crate::watched::{ListTokens, WatchChange, WatchedSet};
use listing::Learner;
use log::LogTail;
use pass::Pass;

/// How far before the api's read of a new session its events are caught up on. Two
/// additions to one wallet that this poller picks up in one step were made within a block
/// or two of each other, while the later one's read block is the one recorded: the margin
/// covers the earlier one with room.
pub(super) const CATCH_UP_MARGIN: u64 = CURSOR_RECENT_BLOCKS as u64;
/// How long a session whose writer has not finished storing its values is left to it before
/// the poller reads them itself (the writer failed).
const WRITER_GRACE: Duration = Duration::from_secs(10);
/// Most expired sessions read again in one step; the rest wait for the next.
const EXPIRED_PER_STEP: usize = 1_000;
/// Shortest gap between two writes of the live session count (the api's cap reads it).
const LIVE_COUNT_EVERY: Duration = Duration::from_secs(10);

/// The watched set, and where the watcher stands with the chain's sessions that keep it
/// current.
#[derive(Debug)]
pub(super) struct Watching {
    set: WatchedSet,
    /// Every session was listed once (at start).
    listed: bool,
    log: LogTail,
    /// Sessions whose writer is still storing their values, with when they were first seen.
    waiting: HashMap<Address, Instant>,
    pass: Pass,
    /// The background learning of the wallets listed at start, while it runs.
    learner: Option<Learner>,
    live_count: LiveCount,
}

/// The chain's live session count as last stored for the api's cap, and when a write was last
/// tried.
#[derive(Debug, Default)]
struct LiveCount {
    stored: Option<u64>,
    tried_at: Option<Instant>,
}

impl LiveCount {
    /// Whether `count` is to be written now: it changed, and no write was tried within
    /// [`LIVE_COUNT_EVERY`].
    fn due(&self, count: u64) -> bool {
        self.stored != Some(count)
            && self
                .tried_at
                .is_none_or(|at| at.elapsed() >= LIVE_COUNT_EVERY)
    }
}

impl Watching {
    /// `weth`: the chain's wrapped native token, every wallet's; `pass_interval`: how often
    /// the background pass reads every session.
    pub(super) fn new(weth: Option<Address>, pass_interval: Duration) -> Self {
        Self {
            set: WatchedSet::new(weth),
            listed: false,
            log: LogTail::default(),
            waiting: HashMap::new(),
            pass: Pass::new(pass_interval),
            learner: None,
            live_count: LiveCount::default(),
        }
    }

    /// The wallets watched and what each tracks.
    pub(super) fn set(&self) -> &WatchedSet {
        &self.set
    }

    /// The wallets that began streaming since the last call.
    pub(super) fn take_fresh_streams(&mut self) -> BTreeSet<Address> {
        self.set.take_fresh_streams()
    }

    /// Every watched owner as the log topics that name it (changed as wallets come and go).
    pub(super) fn owner_topics(&self) -> Arc<OwnerTopics> {
        self.set.owner_topics()
    }

    /// A token found by discovery joins `owner`'s tracked tokens.
    pub(super) fn add_discovered(&mut self, owner: &Address, token: Address) {
        self.set.add_discovered(owner, token);
    }
}

/// The values `session`'s writer recorded, when they are all a poller new to the wallet needs
/// to know (`upserted`: what watching it asked):
/// - its first revision is its latest and complete, and nothing was discovered since (a
///   discovered token's values are stored by the poller that found it);
/// - the writer read every value the poller tracks: a value it did not (a list token of a
///   version it did not know, read first here) may still hold an earlier session's value in
///   the table, which only a query shows;
/// - it is recent: the catch-up re-reads what the chain's logs changed since its read, but
///   nothing re-reads what changed before the catch-up's reach (a session kept at its first
///   revision for days by a hold, its values moved on meanwhile).
fn given_values(
    session: Session,
    upserted: &WatchChange,
    cursor_block: u64,
) -> Option<FirstValues> {
    let usable = session.revisions().values_stored()
        && session.discovered.is_empty()
        && upserted.first_reads.is_empty()
        && within_catch_up(session.read_block, cursor_block);
    session.first_values.filter(|_| usable)
}

/// Whether values read at `read_block` are recent enough for a catch-up to `cursor_block` to
/// bring them up to date.
fn within_catch_up(read_block: u64, cursor_block: u64) -> bool {
    read_block + CATCH_UP_MARGIN >= cursor_block
}

impl ChainWatcher {
    /// Brings the watched set up to date with what changed since the last step; queues the
    /// re-reads streams asked for. `cursor_block`: the last block processed.
    pub(super) async fn refresh_watched(&mut self, cursor_block: u64) -> Result<(), PollerError> {
        if !self.watching.listed {
            return self.list_sessions(cursor_block).await;
        }
        self.take_learned();
        let (news, read) = self.read_log().await?;
        // Counted once applied: a step that fails before reads the same entries again.
        let (sessions_named, lists_named) = (news.sessions.len(), news.lists.len());
        let mut streaming = 0;
        self.refresh_token_facts().await?;
        let mut change = WatchChange::default();
        for url in &news.lists {
            // Only lists some watched wallet follows are loaded.
            if self.watching.set.list(url).is_some() {
                change.merge(self.reload_list(url).await?);
            }
        }
        let now = unix_now();
        for owner in &news.sessions {
            self.watching.pass.named(owner);
        }
        let mut to_read: BTreeSet<Address> = news.sessions;
        self.count_lost();
        for (owner, until, expires_at) in news.streaming {
            if self
                .watching
                .set
                .set_streaming(&owner, until, expires_at, now)
            {
                streaming += 1;
            } else {
                // A vouch for a wallet this poller does not watch: its session's own entry
                // was lost, or is yet to come.
                to_read.insert(owner);
            }
        }
        for owner in &news.rescans {
            if self.watching.set.wallet(owner).is_none() {
                to_read.insert(*owner);
            }
        }
        to_read.extend(self.watching.waiting.keys().copied());
        let expired = self.watching.set.expired(now, EXPIRED_PER_STEP);
        self.report
            .session_changes("expiry_checked", expired.len() as u64);
        to_read.extend(expired);
        if !to_read.is_empty() {
            let owners: Vec<Address> = to_read.iter().copied().collect();
            let read = self.table.sessions_of(self.chain_id, &owners).await?;
            let mut found: HashMap<Address, Session> =
                read.into_iter().map(|s| (s.owner, s)).collect();
            for owner in &owners {
                let session = found.remove(owner);
                change.merge(
                    self.apply_session(*owner, session, now, cursor_block)
                        .await?,
                );
            }
        }
        self.take_change(change, cursor_block, false).await?;
        for owner in news.rescans {
            if self.watching.set.wallet(&owner).is_some() && self.backlog.queue_rescan(owner) {
                self.report.session_changes("rescan", 1);
            }
        }
        // Applied: the entries are not applied again, and the next read looks back from here.
        self.watching.log.applied(read);
        self.report
            .session_changes("session", sessions_named as u64);
        self.report.session_changes("list", lists_named as u64);
        self.report.session_changes("streaming", streaming);
        self.pass_step(cursor_block).await?;
        self.store_live_count().await;
        self.log_summary();
        Ok(())
    }

    /// What `session` (as just read; `None`: gone) asks of the watched set.
    async fn apply_session(
        &mut self,
        owner: Address,
        session: Option<Session>,
        now: u64,
        cursor_block: u64,
    ) -> Result<WatchChange, PollerError> {
        let Some(session) = session.filter(|s| s.expires_at > now) else {
            self.watching.waiting.remove(&owner);
            if self.watching.set.remove(&owner) {
                self.held.drop_wallet(&owner);
                self.report.session_changes("ended", 1);
            }
            return Ok(WatchChange::default());
        };
        if !session.revisions().values_stored() {
            // Its writer is storing the values it read; they are taken from the table once
            // it is done — or read here, should it not finish.
            let first_seen = *self
                .watching
                .waiting
                .entry(owner)
                .or_insert_with(Instant::now);
            if first_seen.elapsed() < WRITER_GRACE {
                return Ok(WatchChange::default());
            }
            warn!(chain = self.chain_id, owner = %owner, revision = session.revision, "a session's writer did not finish; reading its values here");
        }
        self.watching.waiting.remove(&owner);
        let mut change = self.load_lists_of(&session).await?;
        let mut upserted = self.watching.set.upsert(&session, false);
        if upserted.learn.contains(&owner)
            && let Some(values) = given_values(session, &upserted, cursor_block)
        {
            upserted.learn.remove(&owner);
            upserted.learn_given.insert(owner, values);
        }
        change.merge(upserted);
        Ok(change)
    }

    /// Loads the lists `session` follows that this poller lacks or holds at an older version.
    async fn load_lists_of(&mut self, session: &Session) -> Result<WatchChange, PollerError> {
        let mut change = WatchChange::default();
        for url in self.watching.set.lists_to_load(session) {
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
            .watching
            .set
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
        self.report.session_changes("list_loaded", 1);
        Ok(self.watching.set.set_list(url, tokens))
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
        // A wallet not learned yet (listed at start, its turn in the background not come)
        // is learned whole: what it held before the addition is not known either.
        let mut whole = change.learn;
        let mut by_key = vec![];
        for (owner, keys) in change.learn_values {
            if whole.contains(&owner) {
                continue;
            }
            if !self.held.is_learned(&owner) {
                whole.insert(owner);
                continue;
            }
            by_key.extend(keys.into_iter().map(|key| (owner, key)));
        }
        let mut given = BTreeSet::new();
        for (owner, values) in change.learn_given {
            if whole.contains(&owner) {
                continue;
            }
            let tracked = values
                .into_iter()
                .filter(|(key, _)| self.watching.set.tracks(&owner, &key.token()));
            self.held.replace_wallet(owner, tracked);
            given.insert(owner);
        }
        self.learn(&whole).await?;
        let keyed: BTreeSet<Address> = by_key.iter().map(|(owner, _)| *owner).collect();
        self.learn_values(&by_key).await?;
        self.queue_catch_up(&whole, cursor_block, initial);
        self.queue_catch_up(&given, cursor_block, initial);
        self.queue_catch_up(&keyed, cursor_block, initial);
        let mut first_reads = change.first_reads;
        first_reads
            .reads
            .retain(|(_, key), _| !self.held.is_unreadable(&key.token()));
        if !first_reads.is_empty() {
            info!(
                chain = self.chain_id,
                values = first_reads.len(),
                "newly tracked values to read"
            );
        }
        self.report.session_changes("learned", whole.len() as u64);
        self.report
            .session_changes("learned_from_session", given.len() as u64);
        self.report
            .session_changes("learned_by_key", keyed.len() as u64);
        self.backlog.queue_reads(first_reads);
        Ok(())
    }

    /// Queues the catch-up of `owners`, learned from the table: their logs between the block
    /// their values were read at and the cursor. `initial`: listed at start — a wallet whose
    /// values were read long before the cursor was watched by the poller before this one; a
    /// recent one may not have been.
    fn queue_catch_up(&mut self, owners: &BTreeSet<Address>, cursor_block: u64, initial: bool) {
        for owner in owners {
            let Some(wallet) = self.watching.set.wallet(owner) else {
                continue;
            };
            let recent = within_catch_up(wallet.read_block, cursor_block);
            if (!initial || recent) && wallet.read_block <= cursor_block {
                self.backlog
                    .queue_catch_up(*owner, wallet.read_block.saturating_sub(CATCH_UP_MARGIN));
            }
        }
    }

    /// Stores the live session count when it changed (at most every few seconds). The api
    /// refuses new sessions past MAX_SESSIONS_PER_CHAIN by it. Advisory: a failed write is
    /// tried again later and never holds the set back.
    async fn store_live_count(&mut self) {
        let count = self.watching.set.len() as u64;
        if !self.watching.live_count.due(count) {
            return;
        }
        self.watching.live_count.tried_at = Some(Instant::now());
        match self.table.set_live_sessions(self.chain_id, count).await {
            Ok(()) => self.watching.live_count.stored = Some(count),
            Err(error) => warn!(chain = self.chain_id, %error, "live session count not stored"),
        }
    }

    /// The session summary line, when one is due.
    fn log_summary(&mut self) {
        self.report.log_session_summary(WatchedCounts {
            wallets: self.watching.set.len(),
            waiting: self.watching.waiting.len(),
        });
    }
}
