//! The logs of the blocks a poller processed last, kept when its queries asked for every log
//! of the watched events (above `MAX_FILTERED_OWNERS` owners): the catch-up of wallets
//! learned since — their events between the api's read of their values and the cursor — is
//! then told from memory instead of asked of the provider. Under session churn a catch-up is
//! due in most steps, and each costs two owner-filtered queries over the catch-up margin's
//! 64 blocks (more under a provider's range cap).
//!
//! Only an unbroken run of processed blocks is kept, up to the catch-up's reach and a bound on
//! the logs held; a range that does not continue it starts it again, an answer that is not
//! every owner's (a busy block asked by owner, an overflow) empties it, and a rewind drops the
//! blocks it unwinds. A catch-up reaching outside the run is asked of the provider.

use std::collections::VecDeque;

use alloy::primitives::B256;
use alloy::rpc::types::Log;
use live_balances::chain::{OwnerLogs, OwnerTopics};

use super::sessions::CATCH_UP_MARGIN;

/// Blocks kept: a catch-up starts the margin before the api's read of a wallet, which is at
/// most a few blocks behind the cursor when the poller keeps up.
const KEPT_BLOCKS: u64 = CATCH_UP_MARGIN + 16;
/// Most logs kept (about 400 bytes each with their topics and data: 80 MB at most): on a
/// chain busier than that over the kept blocks, the oldest blocks go, and catch-ups reaching
/// them are asked of the provider.
const KEPT_LOGS: usize = 200_000;

#[derive(Debug, Default)]
pub(super) struct RecentLogs {
    /// The first and last block whose every log of the watched events is held.
    blocks: Option<(u64, u64)>,
    /// Those logs, oldest first.
    logs: VecDeque<Log>,
}

impl RecentLogs {
    /// Keeps what a step's query found for its range `[from, to]`, which the poller processed;
    /// `to_hash`: the hash of block `to` as the step knows it. A log of another block `to` (a
    /// provider's node answering from a branch the step's header is not on) is not kept.
    pub(super) fn record(&mut self, from: u64, to: u64, to_hash: B256, found: OwnerLogs) {
        let off_branch = |log: &Log| {
            log.block_number == Some(to) && log.block_hash.is_some_and(|hash| hash != to_hash)
        };
        if !found.every_owner
            || !found.overflows.is_empty()
            || found
                .logs
                .iter()
                .any(|log| log.block_number.is_none() || off_branch(log))
        {
            self.clear();
            return;
        }
        let first = match self.blocks {
            // The range continues the run (or replaces its end: a step done again).
            Some((first, last)) if (first..=last.saturating_add(1)).contains(&from) => {
                self.drop_from(from);
                first
            }
            _ => {
                self.logs.clear();
                from
            }
        };
        self.logs.extend(found.logs);
        self.blocks = Some((first, to));
        self.trim();
    }

    /// The logs of `[from, through]` naming `owners`, when every block of it is held.
    pub(super) fn catch_up(
        &self,
        from: u64,
        through: u64,
        owners: &OwnerTopics,
    ) -> Option<OwnerLogs> {
        let (first, last) = self.blocks?;
        if from < first || through > last {
            return None;
        }
        let start = self.logs.partition_point(|log| block_of(log) < from);
        let end = self.logs.partition_point(|log| block_of(log) <= through);
        Some(OwnerLogs {
            logs: owners.named_in(self.logs.range(start..end)),
            overflows: vec![],
            every_owner: false,
        })
    }

    /// A rewind to `ancestor`: the blocks after it are no longer the chain's.
    pub(super) fn rewind_to(&mut self, ancestor: u64) {
        match self.blocks {
            Some((first, _)) if first <= ancestor => {
                self.drop_from(ancestor + 1);
                self.blocks = self.blocks.map(|(first, last)| (first, last.min(ancestor)));
            }
            _ => self.clear(),
        }
    }

    /// Forgets every block: none of them may be the chain's any more (a reorg deeper than the
    /// cursor's history).
    pub(super) fn clear(&mut self) {
        self.blocks = None;
        self.logs.clear();
    }

    /// Drops the logs of `block` and after.
    fn drop_from(&mut self, block: u64) {
        let keep = self.logs.partition_point(|log| block_of(log) < block);
        self.logs.truncate(keep);
    }

    /// Lets the oldest blocks go past [`KEPT_BLOCKS`] or [`KEPT_LOGS`].
    fn trim(&mut self) {
        let Some((mut first, last)) = self.blocks else {
            return;
        };
        first = first.max((last + 1).saturating_sub(KEPT_BLOCKS));
        if self.logs.len() > KEPT_LOGS {
            // Whole blocks go: the first kept is the one the bound falls in, plus one.
            let excess = self.logs.len() - KEPT_LOGS;
            first = first.max(block_of(&self.logs[excess - 1]) + 1);
        }
        let drop = self.logs.partition_point(|log| block_of(log) < first);
        self.logs.drain(..drop);
        self.blocks = (first <= last).then_some((first, last));
        if self.blocks.is_none() {
            self.logs.clear();
        }
    }
}

/// A recorded log's block (recorded logs all have one).
fn block_of(log: &Log) -> u64 {
    log.block_number.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, LogData, U256};
    use alloy::sol_types::SolEvent;
    use live_balances::chain::abi::IERC20;

    use super::*;

    /// The hash every test block has.
    const HASH: B256 = B256::repeat_byte(0x11);

    fn owner(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    /// A transfer from `from` to `to` in `block`.
    fn transfer(block: u64, index: u64, from: Address, to: Address) -> Log {
        Log {
            inner: alloy::primitives::Log {
                address: Address::repeat_byte(0xee),
                data: LogData::new_unchecked(
                    vec![
                        IERC20::Transfer::SIGNATURE_HASH,
                        from.into_word(),
                        to.into_word(),
                    ],
                    U256::from(1).to_be_bytes::<32>().to_vec().into(),
                ),
            },
            block_number: Some(block),
            block_hash: Some(HASH),
            log_index: Some(index),
            transaction_hash: Some(B256::repeat_byte(index as u8)),
            ..Log::default()
        }
    }

    /// Every owner's logs of `[from, to]`: one transfer from owner 1 to owner 2 a block, and
    /// one between strangers.
    fn every_owner(from: u64, to: u64) -> OwnerLogs {
        OwnerLogs {
            logs: (from..=to)
                .flat_map(|b| {
                    [
                        transfer(b, 0, owner(1), owner(2)),
                        transfer(b, 1, owner(8), owner(9)),
                    ]
                })
                .collect(),
            overflows: vec![],
            every_owner: true,
        }
    }

    fn blocks(found: &OwnerLogs) -> Vec<u64> {
        found.logs.iter().map(block_of).collect()
    }

    #[test]
    fn a_catch_up_inside_the_run_is_told_from_memory_for_its_owners_only() {
        let mut recent = RecentLogs::default();
        recent.record(10, 12, HASH, every_owner(10, 12));
        recent.record(13, 13, HASH, every_owner(13, 13));
        let receiver = OwnerTopics::new(&[owner(2)]);
        let found = recent.catch_up(11, 13, &receiver).expect("held");
        assert_eq!(blocks(&found), [11, 12, 13]);
        assert!(
            found
                .logs
                .iter()
                .all(|l| l.topics()[2] == owner(2).into_word())
        );
        let sender = OwnerTopics::new(&[owner(1)]);
        assert_eq!(
            blocks(&recent.catch_up(10, 10, &sender).expect("held")),
            [10]
        );
        assert!(
            recent
                .catch_up(10, 13, &OwnerTopics::new(&[owner(5)]))
                .expect("held")
                .logs
                .is_empty()
        );
        // Outside the run: the provider's to ask.
        assert!(recent.catch_up(9, 12, &receiver).is_none());
        assert!(recent.catch_up(12, 14, &receiver).is_none());
    }

    #[test]
    fn a_gap_an_answer_not_every_owners_or_a_rewind_shortens_the_run() {
        let mut recent = RecentLogs::default();
        recent.record(10, 12, HASH, every_owner(10, 12));
        // A step done again replaces the end of the run.
        recent.record(12, 12, HASH, every_owner(12, 12));
        assert_eq!(recent.blocks, Some((10, 12)));
        assert_eq!(recent.logs.len(), 6);
        // A gap starts the run again.
        recent.record(15, 15, HASH, every_owner(15, 15));
        assert_eq!(recent.blocks, Some((15, 15)));
        assert_eq!(recent.logs.len(), 2);
        // An answer that holds only some owners' logs empties it.
        let mut narrowed = every_owner(16, 16);
        narrowed.every_owner = false;
        recent.record(16, 16, HASH, narrowed);
        assert_eq!(recent.blocks, None);
        assert!(recent.logs.is_empty());
        // A rewind drops the unwound blocks, or the whole run when it reaches before it.
        recent.record(20, 25, HASH, every_owner(20, 25));
        recent.rewind_to(22);
        assert_eq!(recent.blocks, Some((20, 22)));
        assert_eq!(
            blocks(
                &recent
                    .catch_up(20, 22, &OwnerTopics::new(&[owner(9)]))
                    .expect("held")
            ),
            [20, 21, 22]
        );
        recent.rewind_to(19);
        assert_eq!(recent.blocks, None);
        assert!(recent.logs.is_empty());
    }

    #[test]
    fn logs_of_another_branch_of_the_last_block_are_not_kept() {
        let mut recent = RecentLogs::default();
        recent.record(10, 12, HASH, every_owner(10, 12));
        recent.record(13, 13, B256::repeat_byte(0x22), every_owner(13, 13));
        assert_eq!(recent.blocks, None);
        assert!(recent.logs.is_empty());
    }

    #[test]
    fn the_run_keeps_the_catch_up_reach_and_a_bound_on_logs() {
        let mut recent = RecentLogs::default();
        for block in 1..=200 {
            recent.record(block, block, HASH, every_owner(block, block));
        }
        assert_eq!(recent.blocks, Some((200 - KEPT_BLOCKS + 1, 200)));
        assert_eq!(recent.logs.len() as u64, 2 * KEPT_BLOCKS);
        // A block with more logs than the bound is not kept, nor anything before it.
        let busy = OwnerLogs {
            logs: (0..KEPT_LOGS as u64 + 1)
                .map(|i| transfer(201, i, owner(8), owner(9)))
                .collect(),
            overflows: vec![],
            every_owner: true,
        };
        recent.record(201, 201, HASH, busy);
        assert_eq!(recent.blocks, None);
        assert!(recent.logs.is_empty());
    }
}
