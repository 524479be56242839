//! Reading a step's plan at one block and writing what changed: a value that differs from
//! what the poller holds is written (conditionally: never over a later block); a token whose
//! reads fail for every holder becomes a per-chain fact instead of a value per wallet; a
//! change no event announced marks its token as silent (swept often from then on); tokens
//! found by discovery join their wallet's session.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, U256};
use futures::{StreamExt, stream};
use live_balances::NATIVE_TOKEN;
use live_balances::domain::model::{BalanceItem, BalanceKey, TokenRead};
use live_balances::domain::plan::ReadPlan;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::{StorageError, TokenFact, ValueWrite, Written, retry};
use tracing::{info, warn};

use super::ChainWatcher;
use crate::error::PollerError;
use crate::held::ValueId;

/// How many table writes run at once.
const WRITE_CONCURRENCY: usize = 16;
/// How long "this token's reads fail" holds before the token is tried again.
const UNREADABLE_FOR_SECS: u64 = live_balances::storage::UNREADABLE_FOR_SECS;
/// How long "this token changes silently" holds without being seen again.
const SILENT_FOR_SECS: u64 = 30 * 86_400;

impl ChainWatcher {
    /// Reads the plan at `block` and writes what changed. Returns how many items were written.
    pub(super) async fn apply(
        &mut self,
        plan: &ReadPlan,
        block: u64,
        rewound_above: Option<u64>,
    ) -> Result<usize, PollerError> {
        if plan.is_empty() {
            return Ok(0);
        }
        // What is compared below must be known: wallets listed at start and not learned yet
        // are learned first.
        self.learn_now(plan.reads.keys().map(|(owner, _)| *owner))
            .await?;
        let ids: Vec<ValueId> = plan.reads.keys().copied().collect();
        let reads = self.reader.read(&ids, block).await?;
        let now = unix_now();
        let unreadable = self.find_unreadable(&ids, &reads, block, now).await?;
        let how = |first_read| ValueWrite {
            first_read,
            rewound_above,
            tombstone_expires_at: now + self.settings.feed_ttl.as_secs(),
        };
        let mut writes = vec![];
        let mut silent = BTreeSet::new();
        for ((owner, key), read) in ids.into_iter().zip(reads) {
            let reason = plan.reads[&(owner, key)];
            if unreadable.contains(&key.token()) {
                self.held.set(owner, key, TokenRead::Value(U256::ZERO));
                continue;
            }
            let known = self.held.get(&owner, &key);
            let zero = read == TokenRead::Value(U256::ZERO);
            if known == read {
                // A zero where nothing is held needs no write — unless the chain touched it:
                // then a value stored by another writer may be stale, and a tombstone write
                // (which only lands on an existing non-zero item) puts it right.
                if !(zero && reason.touched) {
                    continue;
                }
            } else if !reason.touched
                && !reason.first_read
                && read != TokenRead::Failed
                && known != TokenRead::Failed
                && matches!(key, BalanceKey::Balance { token } if token != NATIVE_TOKEN)
            {
                silent.insert(key.token());
            }
            let item = BalanceItem {
                chain_id: self.chain_id,
                owner,
                key,
                read,
                block,
                tx_hash: reason.tx_hash,
            };
            writes.push((item, how(reason.first_read)));
        }
        let table = &self.table;
        let outcomes: Vec<(BalanceItem, Result<Written, StorageError>)> = stream::iter(writes)
            .map(|(item, how)| async move {
                // A passing outage is ridden out write by write; only a write still failing
                // after its attempts fails the step.
                let outcome = retry::with_retry(
                    || table.put_balance(&item, now, how),
                    |attempt, error| warn!(chain = item.chain_id, owner = %item.owner, attempt, error, "value write failed; retrying"),
                )
                .await;
                (item, outcome)
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        // What landed is kept even when another write failed: the step is retried, and it
        // then writes only what is still missing. Without this, a step of many writes under a
        // lasting partial outage would start over from nothing each time and never finish.
        let mut written = vec![];
        let mut failure = None;
        let mut attempted = 0u64;
        for (item, outcome) in outcomes {
            match outcome {
                Ok(outcome) => {
                    attempted += 1;
                    if outcome == Written::Yes {
                        written.push((item.owner, item.key));
                    }
                    self.held.set(item.owner, item.key, item.read);
                }
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        let count = written.len();
        self.reorg.remember(block, written);
        self.report.writes(count, attempted as usize - count);
        if let Some(error) = failure {
            return Err(error.into());
        }
        self.mark_silent(silent, now).await?;
        Ok(count)
    }

    /// Of the tokens whose reads failed, those that fail for any holder: recorded once for
    /// the chain, never stored per wallet.
    async fn find_unreadable(
        &mut self,
        ids: &[ValueId],
        reads: &[TokenRead],
        block: u64,
        now: u64,
    ) -> Result<BTreeSet<Address>, PollerError> {
        let failed: BTreeSet<Address> = ids
            .iter()
            .zip(reads)
            .filter(|(_, read)| **read == TokenRead::Failed)
            .map(|((_, key), _)| key.token())
            .filter(|t| *t != NATIVE_TOKEN)
            .collect();
        if failed.is_empty() {
            return Ok(BTreeSet::new());
        }
        let failed: Vec<Address> = failed.into_iter().collect();
        let unreadable = self.reader.unreadable_tokens(&failed, block).await?;
        if !unreadable.is_empty() {
            self.table
                .record_token_fact(
                    self.chain_id,
                    TokenFact::Unreadable,
                    &unreadable,
                    now + UNREADABLE_FOR_SECS,
                )
                .await?;
            info!(
                chain = self.chain_id,
                tokens = unreadable.len(),
                "tokens whose reads fail for every holder"
            );
            self.held.add_unreadable(unreadable.iter().copied());
        }
        Ok(unreadable.into_iter().collect())
    }

    /// Records tokens seen changing without an event, so the frequent sweep covers them.
    async fn mark_silent(
        &mut self,
        tokens: BTreeSet<Address>,
        now: u64,
    ) -> Result<(), PollerError> {
        let new: Vec<Address> = tokens
            .into_iter()
            .filter(|t| self.held.mark_silent(*t))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        info!(chain = self.chain_id, tokens = ?new, "balances changed without an event: swept every snapshot interval from now on");
        self.table
            .record_token_fact(
                self.chain_id,
                TokenFact::Silent,
                &new,
                now + SILENT_FOR_SECS,
            )
            .await?;
        Ok(())
    }

    /// Starts tracking the tokens that came into wallets with discovery on: their metadata is
    /// read once (and cached for the api), the session records them (bounded per wallet), and
    /// their values are read as first reads in this step. If that fails, they are noted
    /// again for the step done again.
    pub(super) async fn discover(&mut self, plan: &mut ReadPlan) -> Result<(), PollerError> {
        let candidates = self.backlog.take_discoveries();
        if candidates.is_empty() {
            return Ok(());
        }
        let tracked = self.start_tracking(candidates.clone(), plan).await;
        if tracked.is_err() {
            // Noted again for the step done again (those tracked by now are passed over).
            for (owner, token) in candidates {
                self.backlog.note_discovery(owner, token);
            }
        }
        tracked
    }

    /// [`Self::discover`] for `candidates` (owner, token).
    async fn start_tracking(
        &mut self,
        candidates: BTreeSet<(Address, Address)>,
        plan: &mut ReadPlan,
    ) -> Result<(), PollerError> {
        let mut by_owner: BTreeMap<Address, BTreeSet<Address>> = BTreeMap::new();
        for (owner, token) in candidates {
            if !self.watching.set().tracks(&owner, &token) {
                by_owner.entry(owner).or_default().insert(token);
            }
        }
        let all: Vec<Address> = by_owner
            .values()
            .flatten()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let now = unix_now();
        let mut metadata = self
            .table
            .cached_token_metadata(self.chain_id, &all, now)
            .await?;
        let missing: Vec<Address> = all
            .iter()
            .filter(|t| !metadata.contains_key(*t))
            .copied()
            .collect();
        if !missing.is_empty() {
            let read = self.reader.metadata(&missing).await?;
            let entries: Vec<_> = missing.into_iter().zip(read).collect();
            self.table
                .cache_token_metadata(self.chain_id, &entries, now)
                .await?;
            metadata.extend(entries);
        }
        for (owner, tokens) in by_owner {
            let Some(wallet) = self.watching.set().wallet(&owner) else {
                continue;
            };
            let room = self
                .settings
                .max_discovered
                .saturating_sub(wallet.discovered);
            // Only tokens that describe themselves as one: an address without metadata is
            // not worth a place in the wallet's bounded set.
            let tokens: BTreeSet<Address> = tokens
                .into_iter()
                .filter(|t| metadata.get(t).is_some_and(Option::is_some))
                .take(room)
                .collect();
            if tokens.is_empty() {
                continue;
            }
            let spenders = wallet.spenders.clone();
            let added = self
                .table
                .add_discovered(self.chain_id, &owner, &tokens, self.settings.max_discovered)
                .await?;
            if added.is_none() {
                continue;
            }
            info!(chain = self.chain_id, owner = %owner, tokens = ?tokens, "discovered tokens");
            for token in tokens {
                self.watching.add_discovered(&owner, token);
                plan.add_first(owner, BalanceKey::Balance { token });
                for spender in &spenders {
                    plan.add_first(owner, spender.key(token));
                }
            }
        }
        Ok(())
    }
}
