//! Work a watcher owes its next step beyond what the next blocks call for: first reads of
//! newly tracked values and re-reads (after a rewind, for a session whose writer failed), the
//! catch-up of wallets learned since the last step, the whole-token-set re-reads streams asked
//! for, and incoming tokens for wallets with discovery on. Each is queued when it becomes
//! known and taken whole by the next step that does it, and given back if that step fails.

use std::collections::{BTreeSet, VecDeque};

use alloy::primitives::Address;
use live_balances::domain::model::BalanceKey;
use live_balances::domain::plan::ReadPlan;

/// Most whole-token-set re-reads (asked for by streams opening) in one step, in values: the
/// rest wait for the next step, so one block's work stays bounded.
const RESCAN_READS_PER_STEP: usize = 12_000;

#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// First reads of newly tracked values, re-reads.
    reads: ReadPlan,
    /// Wallets learned since the last step whose events between the api's read and this
    /// poller's cursor must be caught up on, with the block to start from.
    catch_up: Vec<(Address, u64)>,
    /// Wallets whose streams asked for a re-read of their whole token set, in order.
    rescans: VecDeque<Address>,
    /// Incoming transfers of tokens a wallet with discovery on does not track yet.
    discoveries: BTreeSet<(Address, Address)>,
}

impl Backlog {
    /// Queues `plan`'s reads (first reads keep their reason).
    pub(crate) fn queue_reads(&mut self, plan: ReadPlan) {
        self.reads.merge(plan);
    }

    /// Queues a re-read of a value the chain may have changed (a dropped branch wrote it).
    pub(crate) fn queue_reread(&mut self, owner: Address, key: BalanceKey) {
        self.reads.add_touched(owner, key, None);
    }

    /// The queued reads: the step's plan starts from them.
    pub(crate) fn take_reads(&mut self) -> ReadPlan {
        std::mem::take(&mut self.reads)
    }

    /// Queues `owner`'s catch-up on its events from block `from`.
    pub(crate) fn queue_catch_up(&mut self, owner: Address, from: u64) {
        self.catch_up.push((owner, from));
    }

    /// The queued catch-ups.
    pub(crate) fn take_catch_up(&mut self) -> Vec<(Address, u64)> {
        std::mem::take(&mut self.catch_up)
    }

    /// Catch-ups a failed step had taken, queued again (before any queued since).
    pub(crate) fn give_back_catch_up(&mut self, mut taken: Vec<(Address, u64)>) {
        taken.append(&mut self.catch_up);
        self.catch_up = taken;
    }

    /// Queues a re-read of `owner`'s whole token set; whether it was not queued already.
    pub(crate) fn queue_rescan(&mut self, owner: Address) -> bool {
        if self.rescans.contains(&owner) {
            return false;
        }
        self.rescans.push_back(owner);
        true
    }

    /// Adds this step's re-reads of whole token sets to `plan`, in the order asked, within
    /// the step's budget (the first one whole, however large). `tokens_of`: what a wallet
    /// tracks; `readable`: whether a token is worth reading per wallet.
    pub(crate) fn rescan_reads(
        &mut self,
        tokens_of: impl Fn(&Address) -> BTreeSet<Address>,
        readable: impl Fn(&Address) -> bool,
        plan: &mut ReadPlan,
    ) {
        let mut done = BTreeSet::new();
        let mut budget = RESCAN_READS_PER_STEP;
        while let Some(owner) = self.rescans.front().copied() {
            let tokens = tokens_of(&owner);
            if !done.is_empty() && tokens.len() > budget {
                break;
            }
            self.rescans.pop_front();
            budget = budget.saturating_sub(tokens.len());
            for token in tokens.into_iter().filter(|t| readable(t)) {
                plan.add(owner, BalanceKey::Balance { token });
            }
            done.insert(owner);
        }
    }

    /// Notes an incoming transfer of `token`, which `owner` does not track, for discovery.
    pub(crate) fn note_discovery(&mut self, owner: Address, token: Address) {
        self.discoveries.insert((owner, token));
    }

    /// The incoming tokens noted since the last step.
    pub(crate) fn take_discoveries(&mut self) -> BTreeSet<(Address, Address)> {
        std::mem::take(&mut self.discoveries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn tokens(count: usize) -> BTreeSet<Address> {
        (0..count)
            .map(|n| {
                let mut bytes = [0u8; 20];
                bytes[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
                Address::from(bytes)
            })
            .collect()
    }

    #[test]
    fn rescans_are_bounded_per_step_and_keep_their_order() {
        let mut backlog = Backlog::default();
        for owner in [1, 2, 3] {
            assert!(backlog.queue_rescan(address(owner)));
        }
        assert!(!backlog.queue_rescan(address(2)), "queued once");
        // The first two fit the budget together; the third waits for the next step.
        let size = |o: &Address| match o.0[0] {
            1 => 10_000,
            2 => 2_000,
            _ => 5_000,
        };
        let mut plan = ReadPlan::default();
        backlog.rescan_reads(|o| tokens(size(o)), |_| true, &mut plan);
        assert_eq!(plan.len(), 12_000);
        let mut next = ReadPlan::default();
        backlog.rescan_reads(|o| tokens(size(o)), |_| true, &mut next);
        assert_eq!(next.len(), 5_000);
        assert!(next.reads.keys().all(|(owner, _)| *owner == address(3)));
    }

    #[test]
    fn a_rescan_larger_than_the_budget_still_runs_alone_and_skips_unreadable_tokens() {
        let mut backlog = Backlog::default();
        backlog.queue_rescan(address(1));
        backlog.queue_rescan(address(2));
        let all = tokens(RESCAN_READS_PER_STEP + 1);
        let unreadable = *all.iter().next().expect("a token");
        let mut plan = ReadPlan::default();
        backlog.rescan_reads(|_| all.clone(), |t| *t != unreadable, &mut plan);
        assert_eq!(plan.len(), RESCAN_READS_PER_STEP);
        assert!(!plan.contains(&address(1), &BalanceKey::Balance { token: unreadable }));
        assert!(backlog.queue_rescan(address(1)), "done, so queued anew");
        assert!(!backlog.queue_rescan(address(2)), "still waiting");
    }

    #[test]
    fn queued_work_is_taken_once() {
        let mut backlog = Backlog::default();
        let key = BalanceKey::Balance { token: address(9) };
        let mut first = ReadPlan::default();
        first.add_first(address(1), key);
        backlog.queue_reads(first);
        backlog.queue_reread(address(1), key);
        backlog.queue_catch_up(address(1), 40);
        backlog.note_discovery(address(1), address(9));
        let reads = backlog.take_reads();
        let reason = reads.reads[&(address(1), key)];
        assert!(reason.first_read && reason.touched, "both reasons kept");
        assert_eq!(backlog.take_catch_up(), vec![(address(1), 40)]);
        assert_eq!(backlog.take_discoveries().len(), 1);
        assert!(backlog.take_reads().is_empty());
        assert!(backlog.take_catch_up().is_empty());
        assert!(backlog.take_discoveries().is_empty());
    }

    #[test]
    fn work_a_failed_step_gives_back_is_taken_again_before_what_came_since() {
        let mut backlog = Backlog::default();
        let key = BalanceKey::Balance { token: address(9) };
        backlog.queue_catch_up(address(1), 40);
        backlog.queue_reread(address(1), key);
        let (taken, reads) = (backlog.take_catch_up(), backlog.take_reads());
        // The step fails after a new wallet arrived.
        backlog.queue_catch_up(address(2), 50);
        backlog.give_back_catch_up(taken);
        backlog.queue_reads(reads);
        assert_eq!(
            backlog.take_catch_up(),
            vec![(address(1), 40), (address(2), 50)]
        );
        assert!(backlog.take_reads().reads[&(address(1), key)].touched);
    }
}
