//! Keeping a watcher's watched set current: one small read per step (the sessions signal),
//! and a reload of the chain's sessions and the lists they follow only when that signal
//! moved, a stream opened on a wallet it does not watch, a loaded session reaches its expiry,
//! or ten minutes have passed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use futures::{StreamExt, TryStreamExt, stream};
use live_balances::clock::unix_now;
use live_balances::model::{CURSOR_RECENT_BLOCKS, Session};
use live_balances::storage::TokenFact;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::error::PollerError;
use crate::watched::{ListTokens, WatchedSet};
use crate::watcher::ChainWatcher;

/// Sessions are reloaded in full at least this often, even when their version says nothing
/// changed: the safety net for a lost version bump (the api's bump after a session write is
/// advisory). Ten minutes, not one: a full reload of 10,000 sessions costs about 200 ms of
/// CPU, which once a minute was most of an idle 12 s block's work (`make bench`). A lost bump
/// of a wallet that opens a stream is caught sooner: the stream's re-read request names it.
const FULL_RELOAD: Duration = Duration::from_secs(600);
/// How many table reads of a reload run at once.
const READ_CONCURRENCY: usize = 16;
/// How far before the api's read of a new session its events are caught up on. Two
/// additions to one wallet that this poller picks up in one reload were made within a block
/// or two of each other, while the later one's read block is the one recorded: the margin
/// covers the earlier one with room.
const CATCH_UP_MARGIN: u64 = CURSOR_RECENT_BLOCKS as u64;

impl ChainWatcher {
    /// Brings the watched set up to date if the sessions may have changed; queues the
    /// re-reads streams asked for. `cursor_block`: the last block processed.
    pub(crate) async fn refresh_watched(&mut self, cursor_block: u64) -> Result<(), PollerError> {
        let now = unix_now();
        let signal = self.table.sessions_signal(self.chain_id).await?;
        // A stream asking for a re-read of a wallet this poller does not watch: its session
        // was stored without the version bump reaching the signal.
        let unknown_stream = signal
            .rescans
            .iter()
            .any(|owner| self.watched.wallet(owner).is_none());
        for owner in signal.rescans {
            if !self.rescans.contains(&owner) {
                self.rescans.push_back(owner);
            }
        }
        if self.sessions_version != Some(signal.version)
            || unknown_stream
            || self.last_full_reload.elapsed() >= FULL_RELOAD
        {
            return self.reload(signal.version, cursor_block).await;
        }
        if now >= self.next_expiry {
            self.recheck_expiring(now, cursor_block).await?;
        }
        Ok(())
    }

    /// Loaded sessions past their expiry: an open stream may have pushed it forward (without
    /// a version bump), so each is read again, alone; the others end.
    async fn recheck_expiring(&mut self, now: u64, cursor_block: u64) -> Result<(), PollerError> {
        let expiring: Vec<Address> = self
            .watched
            .wallets()
            .filter(|(_, w)| w.expires_at <= now)
            .map(|(o, _)| *o)
            .collect();
        let table = &self.table;
        let chain_id = self.chain_id;
        let sessions: Vec<Option<Session>> = stream::iter(expiring.iter().copied())
            .map(|owner| async move { table.session(chain_id, &owner).await })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut live: Vec<Session> = self.loaded_sessions(&expiring);
        live.extend(
            sessions
                .into_iter()
                .flatten()
                .filter(|s| s.expires_at > now),
        );
        let version = self.sessions_version.unwrap_or(0);
        let count = live.len() as u64;
        self.apply_sessions(live, version, cursor_block).await?;
        if self.live_count_stored != Some(count) {
            self.store_live_count(count).await;
        }
        Ok(())
    }

    /// Stores the live session count. The api refuses new sessions past
    /// MAX_SESSIONS_PER_CHAIN by it. Advisory: a failed write is retried at the next reload,
    /// and never holds the set back.
    async fn store_live_count(&mut self, count: u64) {
        match self.table.set_live_sessions(self.chain_id, count).await {
            Ok(()) => self.live_count_stored = Some(count),
            Err(error) => warn!(chain = self.chain_id, %error, "live session count not stored"),
        }
    }

    /// The sessions of the watched set as loaded, but for `except`.
    fn loaded_sessions(&self, except: &[Address]) -> Vec<Session> {
        // Rebuilt from the watched set: nothing but the expiry of `except` changes here.
        self.watched_sessions
            .iter()
            .filter(|s| !except.contains(&s.owner))
            .cloned()
            .collect()
    }

    /// Reloads every live session of the chain and the lists they follow.
    async fn reload(&mut self, version: u64, cursor_block: u64) -> Result<(), PollerError> {
        let now = unix_now();
        let sessions = self.table.sessions(self.chain_id).await?;
        let live: Vec<Session> = sessions
            .into_iter()
            .filter(|s| s.expires_at > now)
            .collect();
        // Stored when it changed, and at every full reload even when it did not (a count
        // written by anything else is corrected within FULL_RELOAD).
        let count = live.len() as u64;
        if self.live_count_stored != Some(count) || self.last_full_reload.elapsed() >= FULL_RELOAD {
            self.store_live_count(count).await;
        }
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
        self.apply_sessions(live, version, cursor_block).await?;
        self.last_full_reload = Instant::now();
        Ok(())
    }

    /// Makes `live` the watched set: loads the lists it follows, learns what changed
    /// sessions' values are, queues first reads and catch-ups, forgets what is gone.
    /// `cursor_block`: the last block processed.
    async fn apply_sessions(
        &mut self,
        live: Vec<Session>,
        version: u64,
        cursor_block: u64,
    ) -> Result<(), PollerError> {
        let lists = self.load_lists(&live).await?;
        let next = WatchedSet::new(&live, lists, self.settings.weth);
        let initial = self.sessions_version.is_none();
        let change = self.watched.changes(&next, initial);
        for owner in &change.dropped {
            self.held.drop_wallet(owner);
        }
        if !change.dropped.is_empty() {
            info!(
                chain = self.chain_id,
                wallets = change.dropped.len(),
                "sessions expired; no longer watched"
            );
        }
        for (owner, token) in &change.untracked {
            self.held.drop_token(owner, token);
        }
        self.learn(&change.learn, &next).await?;
        for owner in &change.learn {
            let Some(wallet) = next.wallet(owner) else {
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
        self.pending.merge(first_reads);
        self.next_expiry = live.iter().map(|s| s.expires_at).min().unwrap_or(u64::MAX);
        self.watched = next;
        self.watched_sessions = live;
        // Marked as loaded only now: a reload that failed half-way is tried again next step.
        self.sessions_version = Some(version);
        Ok(())
    }

    /// The current version of every list `sessions` follow: kept from the last load when its
    /// generation has not moved, else read from the list cache.
    async fn load_lists(
        &self,
        sessions: &[Session],
    ) -> Result<HashMap<String, Arc<ListTokens>>, PollerError> {
        let urls: BTreeSet<&String> = sessions.iter().flat_map(|s| s.token_lists.keys()).collect();
        let mut lists = HashMap::new();
        for url in urls {
            let head = self.table.list_head(self.chain_id, url).await?;
            let Some(head) = head.filter(|h| h.generation > 0) else {
                // Not in the cache (never fetched, or expired unused): the version this
                // poller knows, if any, stands.
                if let Some(known) = self.watched.list(url) {
                    lists.insert(url.clone(), known.clone());
                }
                continue;
            };
            match self.watched.list(url) {
                Some(known) if known.generation == head.generation => {
                    lists.insert(url.clone(), known.clone());
                }
                _ => {
                    let tokens = self.table.list_tokens(self.chain_id, &head).await?;
                    lists.insert(
                        url.clone(),
                        Arc::new(ListTokens {
                            generation: head.generation,
                            tokens: tokens.into_iter().map(|(token, _)| token).collect(),
                        }),
                    );
                }
            }
        }
        Ok(lists)
    }

    /// Replaces what is held for each of `owners` by what the table holds for the tokens it
    /// tracks (the api wrote their initial values): one query per wallet, folded in as it
    /// arrives.
    async fn learn(
        &mut self,
        owners: &BTreeSet<Address>,
        next: &WatchedSet,
    ) -> Result<(), PollerError> {
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
            let tracked = items
                .into_iter()
                .filter(|i| next.tracks(&owner, &i.key.token()))
                .map(|i| (i.key, i.read));
            self.held.replace_wallet(owner, tracked);
        }
        Ok(())
    }
}
