//! What the chain says may have changed for watched wallets, in a step's plan: the values an
//! owner-filtered log names (balances of tracked tokens, a sender's allowances of what it
//! sent, approvals to tracked spenders), every tracked value of an owner whose logs in a block
//! overflowed the provider's result cap, and incoming tokens noted for discovery — for the
//! step's range, or for the catch-up of wallets learned since the last step.

use std::collections::BTreeSet;

use alloy::primitives::{Address, B256};
use live_balances::NATIVE_TOKEN;
use live_balances::chain::{LogOverflow, OwnerLogs, OwnerTopics};
use live_balances::domain::model::BalanceKey;
use live_balances::domain::plan::{ReadPlan, touches};
use tracing::{debug, warn};

use super::ChainWatcher;
use crate::error::PollerError;

impl ChainWatcher {
    /// Adds what the range's logs touch for watched wallets: balances of tracked tokens (a
    /// zero one too), a sender's allowances of the token it sent (a spender's `transferFrom`
    /// lowers an allowance with no `Approval`), approvals to tracked spenders; and notes
    /// incoming tokens for wallets with discovery on. `catch_up`: the catch-up due before the
    /// range (`catch_up_due`), fetched beside the range's logs — one round trip to the
    /// provider, not two, so wallets just learned do not hold up the block — and planned
    /// first, so the range's own touches name each value's latest transaction. `to_hash`: the
    /// hash of the range's last block. Returns how many logs the range had.
    pub(super) async fn log_reads(
        &mut self,
        from: u64,
        (to, to_hash): (u64, B256),
        catch_up: &mut Option<CatchUp>,
        plan: &mut ReadPlan,
    ) -> Result<usize, PollerError> {
        let owners = self.watching.owner_topics();
        let range = self.reader.owner_logs(from, to, &owners);
        let (earlier, found) = match catch_up.as_ref() {
            Some(due) => match self.remembered_catch_up(due) {
                Some(remembered) => (Some((remembered, Told::Memory)), range.await?),
                None => {
                    let earlier = self.reader.owner_logs(due.from, due.through, &due.owners);
                    let (earlier, found) = tokio::try_join!(earlier, range)?;
                    (Some((earlier, Told::Provider)), found)
                }
            },
            None => (None, range.await?),
        };
        if let (Some(due), Some((earlier, told))) = (catch_up.take(), earlier) {
            self.plan_caught_up(&due, &earlier, told, plan);
        }
        self.plan_touches(&found.logs, None, plan);
        self.plan_overflows(&found.overflows, plan);
        let count = found.logs.len();
        self.recent_logs.record(from, to, to_hash, found);
        Ok(count)
    }

    /// `due`'s events told from the logs of the blocks processed last, when they hold every
    /// block of it.
    fn remembered_catch_up(&self, due: &CatchUp) -> Option<OwnerLogs> {
        self.recent_logs
            .catch_up(due.from, due.through, &due.owners)
    }

    /// Every tracked value of owners whose logs in some block were more than the provider
    /// returns: any of them may have changed there.
    fn plan_overflows(&self, overflows: &[LogOverflow], plan: &mut ReadPlan) {
        for overflow in overflows {
            let Some(wallet) = self.watching.set().wallet(&overflow.owner) else {
                continue;
            };
            let spenders = wallet.spenders.clone();
            warn!(
                chain = self.chain_id,
                block = overflow.block,
                "a watched wallet's logs in one block exceed the provider's result cap; \
                 re-reading every value it tracks"
            );
            for token in self.watching.set().tokens(&overflow.owner) {
                if self.held.is_unreadable(&token) {
                    continue;
                }
                plan.add_touched(overflow.owner, BalanceKey::Balance { token }, None);
                if token == NATIVE_TOKEN {
                    continue;
                }
                for spender in &spenders {
                    plan.add_touched(overflow.owner, spender.key(token), None);
                }
            }
        }
    }

    /// The reads `logs` call for; `only` limits them to some wallets (a catch-up).
    fn plan_touches(
        &mut self,
        logs: &[alloy::rpc::types::Log],
        only: Option<&BTreeSet<Address>>,
        plan: &mut ReadPlan,
    ) {
        for log in logs {
            for touch in touches(&log.inner, log.transaction_hash) {
                if only.is_some_and(|o| !o.contains(&touch.owner)) {
                    continue;
                }
                let Some(wallet) = self.watching.set().wallet(&touch.owner) else {
                    continue;
                };
                let token = touch.key.token();
                if self.held.is_unreadable(&token) {
                    continue;
                }
                match touch.key {
                    BalanceKey::Balance { .. }
                        if self.watching.set().tracks(&touch.owner, &token) =>
                    {
                        plan.add_touched(touch.owner, touch.key, touch.tx_hash);
                        // Every tracked spender's: a zero one cannot go lower, but what the
                        // poller holds may lag what another writer stored.
                        if touch.sent && token != NATIVE_TOKEN {
                            for spender in &wallet.spenders {
                                plan.add_touched(touch.owner, spender.key(token), touch.tx_hash);
                            }
                        }
                    }
                    BalanceKey::Balance { .. } => {
                        if wallet.discover
                            && !touch.sent
                            && wallet.discovered < self.settings.max_discovered
                        {
                            self.backlog.note_discovery(touch.owner, token);
                        }
                    }
                    BalanceKey::Allowance { .. } | BalanceKey::Permit2 { .. } => {
                        let spender = touch.key.spender();
                        if spender.is_some_and(|spender| {
                            self.watching
                                .set()
                                .tracks_allowance(&touch.owner, &token, &spender)
                        }) {
                            plan.add_touched(touch.owner, touch.key, touch.tx_hash);
                        }
                    }
                }
            }
        }
    }

    /// For wallets learned from the table since the last step: their native balance, added
    /// to `plan`, and the catch-up due on the events between the block their values were read
    /// at and this poller's cursor (`through`), which the poller processed before it watched
    /// them — `None` when there is none.
    pub(super) fn catch_up_due(&mut self, through: u64, plan: &mut ReadPlan) -> Option<CatchUp> {
        let pending = self.backlog.take_catch_up();
        let wallets: BTreeSet<Address> = pending.iter().map(|(o, _)| *o).collect();
        // Read, not touched: what is held for these wallets is what the table holds (learned
        // from it before the comparison), so a zero read where zero is held has nothing stale
        // to correct — a touched read would write a tombstone for it, one table write per
        // session change.
        for owner in &wallets {
            plan.add(
                *owner,
                BalanceKey::Balance {
                    token: NATIVE_TOKEN,
                },
            );
        }
        let start = pending.iter().map(|(_, b)| *b).min()?;
        if start > through {
            return None;
        }
        Some(CatchUp {
            from: start.max(through.saturating_sub(self.settings.max_block_range)),
            through,
            owners: OwnerTopics::new(&wallets),
            wallets,
            pending,
        })
    }

    /// A catch-up on its own (a step without new blocks): its events fetched and planned;
    /// `catch_up` is emptied once they are (a failed fetch leaves it to be given back).
    pub(super) async fn catch_up_reads(
        &mut self,
        catch_up: &mut Option<CatchUp>,
        plan: &mut ReadPlan,
    ) -> Result<(), PollerError> {
        let Some(due) = catch_up.as_ref() else {
            return Ok(());
        };
        let (found, told) = match self.remembered_catch_up(due) {
            Some(remembered) => (remembered, Told::Memory),
            None => {
                let found = self
                    .reader
                    .owner_logs(due.from, due.through, &due.owners)
                    .await?;
                (found, Told::Provider)
            }
        };
        if let Some(due) = catch_up.take() {
            self.plan_caught_up(&due, &found, told, plan);
        }
        Ok(())
    }

    /// The reads a catch-up's events call for, for its wallets only. Counted here, once per
    /// catch-up planned (`poller_catch_ups_total{source}`): a fetch that failed gives the
    /// catch-up back to be fetched again, and is not counted.
    fn plan_caught_up(
        &mut self,
        due: &CatchUp,
        found: &OwnerLogs,
        told: Told,
        plan: &mut ReadPlan,
    ) {
        self.report.catch_up(told.source());
        self.plan_touches(&found.logs, Some(&due.wallets), plan);
        self.plan_overflows(&found.overflows, plan);
        debug!(
            chain = self.chain_id,
            wallets = due.wallets.len(),
            from = due.from,
            to = due.through,
            logs = found.logs.len(),
            "caught up"
        );
    }
}

/// Where a catch-up's events came from.
#[derive(Debug, Clone, Copy)]
enum Told {
    /// The logs of the blocks processed last (`RecentLogs`).
    Memory,
    /// The node, by owner-filtered log queries.
    Provider,
}

impl Told {
    /// Its label in `poller_catch_ups_total{source}`.
    fn source(self) -> &'static str {
        match self {
            Told::Memory => "memory",
            Told::Provider => "provider",
        }
    }
}

/// Wallets learned since the last step and the blocks of events they missed.
pub(super) struct CatchUp {
    from: u64,
    through: u64,
    wallets: BTreeSet<Address>,
    owners: OwnerTopics,
    /// What was taken from the backlog, to give back if the step fails.
    pending: Vec<(Address, u64)>,
}

impl CatchUp {
    /// The backlog's entries this catch-up was made of.
    pub(super) fn into_pending(self) -> Vec<(Address, u64)> {
        self.pending
    }
}
