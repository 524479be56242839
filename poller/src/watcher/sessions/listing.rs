//! The start: every session of the chain listed once (the sixteenths of the partition read at
//! once), then what the table holds for each listed wallet learned in the background — the
//! watcher hands a learner task the wallets still to be learned a batch at a time and takes
//! what it read at each step — so blocks are processed as soon as the sessions are known. A
//! wallet a step needs sooner is learned on demand.

use std::collections::{BTreeSet, HashMap, HashSet};

use alloy::primitives::{Address, U256};
use futures::{StreamExt, TryStreamExt, stream};
use live_balances::domain::model::{BalanceKey, TokenRead};
use live_balances::runtime::clock::{unix_now, unix_now_ms};
use live_balances::storage::{Table, retry};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::ChainWatcher;
use crate::error::PollerError;
use crate::watched::WatchChange;

/// How many table reads of a learn run at once.
const READ_CONCURRENCY: usize = 16;
/// How many sixteenths of the sessions partition the listing at start reads at once.
const LISTING_CONCURRENCY: usize = 4;
/// How many wallets the background learner reads at once.
const LEARN_CONCURRENCY: usize = 32;
/// Wallets handed to the background learner at a time; it runs up to two batches ahead of
/// the watcher's steps (their results wait in memory for the next step).
const LEARN_BATCH: usize = 8_192;

/// What the table holds for one wallet's values.
type StoredReads = Vec<(BalanceKey, TokenRead)>;

/// The background learner of the wallets listed at start: the watcher hands it the wallets
/// still to be learned a batch at a time (none it learned meanwhile), it reads each one's
/// stored values (a few queries at once) and sends them back for the watcher's next step.
#[derive(Debug)]
pub(super) struct Learner {
    asks: mpsc::UnboundedSender<Vec<Address>>,
    /// Each wallet handed over, with its stored values (`None`: its reads failed).
    learned: mpsc::UnboundedReceiver<(Address, Option<StoredReads>)>,
    /// Wallets handed over and not yet back.
    in_flight: usize,
    handed: HashSet<Address>,
    started: Instant,
}

impl Learner {
    fn start(table: Table, chain_id: u64) -> Self {
        let (asks, mut asked) = mpsc::unbounded_channel::<Vec<Address>>();
        let (send, learned) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(batch) = asked.recv().await {
                let mut stored = stream::iter(batch)
                    .map(|owner| {
                        let table = &table;
                        async move {
                            let items = retry::with_retry(
                                || table.stored_reads(chain_id, &owner),
                                |attempt, error| {
                                    warn!(
                                        chain = chain_id,
                                        attempt, error, "learning a wallet failed; retrying"
                                    )
                                },
                            )
                            .await;
                            (owner, items)
                        }
                    })
                    .buffer_unordered(LEARN_CONCURRENCY);
                while let Some((owner, items)) = stored.next().await {
                    let items = items
                        .inspect_err(|error| warn!(chain = chain_id, owner = %owner, %error, "wallet not learned in the background"))
                        .ok();
                    if send.send((owner, items)).is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            asks,
            learned,
            in_flight: 0,
            handed: HashSet::new(),
            started: Instant::now(),
        }
    }
}

impl ChainWatcher {
    /// Lists every session of the chain (at start): the watched set from nothing. The
    /// sixteenths of the partition are read at once; what the table holds for each wallet is
    /// learned in the background (see [`Self::take_learned`]), so blocks are processed as
    /// soon as the sessions are known.
    pub(super) async fn list_sessions(&mut self, cursor_block: u64) -> Result<(), PollerError> {
        let started = Instant::now();
        // Entries written while the listing runs are read (again) by the first log read.
        self.watching.log.start_at(unix_now_ms());
        self.refresh_token_facts().await?;
        let now = unix_now();
        let table = &self.table;
        let chain_id = self.chain_id;
        let mut parts = stream::iter("0123456789abcdef".chars())
            .map(|digit| table.sessions_by_digit(chain_id, digit))
            .buffer_unordered(LISTING_CONCURRENCY);
        let mut listed = 0usize;
        let mut change = WatchChange::default();
        let mut loaded = vec![];
        while let Some(part) = parts.try_next().await? {
            listed += part.len();
            loaded.push(part);
        }
        drop(parts);
        for session in loaded.into_iter().flatten().filter(|s| s.expires_at > now) {
            change.merge(self.load_lists_of(&session).await?);
            change.merge(self.watching.set.upsert(&session, true));
        }
        let listing = started.elapsed();
        // Learned in the background; a wallet a step needs sooner is learned then.
        let listed_owners = std::mem::take(&mut change.learn);
        self.queue_catch_up(&listed_owners, cursor_block, true);
        self.held.mark_unlearned(listed_owners);
        self.watching.learner = Some(Learner::start(self.table.clone(), self.chain_id));
        self.take_learned();
        self.take_change(change, cursor_block, true).await?;
        self.watching.listed = true;
        self.watching.pass.restart();
        self.report.session_changes("full_listing", 1);
        info!(
            chain = self.chain_id,
            sessions = listed,
            wallets = self.watching.set.len(),
            listing_ms = listing.as_millis() as u64,
            "sessions listed; learning their values in the background"
        );
        Ok(())
    }

    /// Takes what the background learner read since the last step — each wallet still to be
    /// learned holds what the table held for it (one learned meanwhile keeps what it has) —
    /// and hands it the next wallets to learn.
    pub(super) fn take_learned(&mut self) {
        let Some(learner) = self.watching.learner.as_mut() else {
            return;
        };
        let mut taken = 0u64;
        let mut back = vec![];
        while let Ok(result) = learner.learned.try_recv() {
            learner.in_flight -= 1;
            learner.handed.remove(&result.0);
            back.push(result);
        }
        for (owner, items) in back {
            let Some(items) = items else {
                // Left unlearned: learned when a step needs it, or handed over again.
                continue;
            };
            if self.held.is_learned(&owner) || self.watching.set.wallet(&owner).is_none() {
                continue;
            }
            let tracked: Vec<_> = items
                .into_iter()
                .filter(|(key, _)| self.watching.set.tracks(&owner, &key.token()))
                .collect();
            self.held.replace_wallet(owner, tracked);
            taken += 1;
        }
        self.report.session_changes("learned_in_background", taken);
        self.report.unlearned(self.held.unlearned());
        let Some(learner) = self.watching.learner.as_mut() else {
            return;
        };
        // Ahead of the steps by a batch: results wait for the next step, not the queries.
        if learner.in_flight < LEARN_BATCH {
            let batch: Vec<Address> = self
                .held
                .unlearned_wallets(2 * LEARN_BATCH)
                .into_iter()
                .filter(|o| !learner.handed.contains(o))
                .take(LEARN_BATCH)
                .collect();
            if batch.is_empty() && learner.in_flight == 0 {
                let started = learner.started;
                self.watching.learner = None;
                info!(
                    chain = self.chain_id,
                    wallets = self.watching.set.len(),
                    held = self.held.len(),
                    learning_ms = started.elapsed().as_millis() as u64,
                    "every listed wallet learned"
                );
                return;
            }
            if batch.is_empty() {
                return;
            }
            learner.in_flight += batch.len();
            learner.handed.extend(batch.iter().copied());
            if learner.asks.send(batch).is_err() {
                self.watching.learner = None;
            }
        }
    }

    /// Learns, now, the wallets among `owners` still to be learned: a step is about to compare
    /// values of theirs with what it reads.
    pub(in crate::watcher) async fn learn_now(
        &mut self,
        owners: impl IntoIterator<Item = Address>,
    ) -> Result<(), PollerError> {
        let owners: BTreeSet<Address> = owners
            .into_iter()
            .filter(|o| !self.held.is_learned(o))
            .collect();
        if owners.is_empty() {
            return Ok(());
        }
        self.report
            .session_changes("learned_on_demand", owners.len() as u64);
        self.learn(&owners).await
    }

    /// Replaces what is held for each of `owners` by what the table holds for the tokens it
    /// tracks (the api wrote their initial values): one query per wallet, folded in as it
    /// arrives.
    pub(super) async fn learn(&mut self, owners: &BTreeSet<Address>) -> Result<(), PollerError> {
        if owners.is_empty() {
            return Ok(());
        }
        let table = &self.table;
        let chain_id = self.chain_id;
        let mut stored = stream::iter(owners.iter().copied())
            .map(|owner| async move {
                table
                    .stored_reads(chain_id, &owner)
                    .await
                    .map(|items| (owner, items))
            })
            .buffer_unordered(READ_CONCURRENCY);
        while let Some((owner, items)) = stored.try_next().await? {
            let tracked: Vec<_> = items
                .into_iter()
                .filter(|(key, _)| self.watching.set.tracks(&owner, &key.token()))
                .collect();
            self.held.replace_wallet(owner, tracked);
        }
        debug!(chain = self.chain_id, wallets = owners.len(), "learned");
        Ok(())
    }

    /// Sets what is held for each of `values` (of wallets already learned) to what the table
    /// holds for it — a value not stored is zero: batch reads of their keys, however many
    /// wallets they belong to.
    pub(super) async fn learn_values(
        &mut self,
        values: &[(Address, BalanceKey)],
    ) -> Result<(), PollerError> {
        if values.is_empty() {
            return Ok(());
        }
        let stored: HashMap<(Address, BalanceKey), TokenRead> = self
            .table
            .stored_reads_by_key(self.chain_id, values)
            .await?
            .into_iter()
            .map(|(owner, key, read)| ((owner, key), read))
            .collect();
        for (owner, key) in values {
            let read = stored
                .get(&(*owner, *key))
                .cloned()
                .unwrap_or(TokenRead::Value(U256::ZERO));
            self.held.set(*owner, *key, read);
        }
        debug!(
            chain = self.chain_id,
            values = values.len(),
            "learned by key"
        );
        Ok(())
    }
}
