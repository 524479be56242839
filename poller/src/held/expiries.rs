//! When the Permit2 allowances the poller holds lapse. Permit2 emits nothing when an
//! allowance's expiration passes, yet from that moment a spender can no longer use it (its
//! `expired` flag, part of the value, turns true): the watcher re-reads such a value at the
//! first block it processes whose timestamp is past the expiration — scheduled, not swept.
//!
//! The schedule mirrors the values the poller holds: whatever records, replaces or forgets a
//! held value tells the schedule too, so a value the chain changed (a new approval, a permit,
//! a spend, a lockdown) is rescheduled by the write that records it, and a value read as
//! expired leaves it. One entry per live Permit2 allowance held (amount above zero, not
//! expired); nothing else is kept.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::Address;
use live_balances::domain::model::{BalanceKey, TokenRead};
use live_balances::domain::permit2::Permit2Allowance;

use super::ValueId;

/// The live Permit2 allowances held, by when each lapses.
#[derive(Debug, Default)]
pub(crate) struct Expiries {
    /// In expiration order: the values due at a timestamp are a prefix.
    by_time: BTreeSet<(u64, ValueId)>,
    /// Each scheduled value's expiration, in (owner, key) order: a wallet's are one range.
    of: BTreeMap<ValueId, u64>,
}

impl Expiries {
    /// Follows a value as the poller now holds it: a live Permit2 allowance is scheduled at
    /// its expiration (replacing what was scheduled for it); anything else is not scheduled.
    pub(crate) fn note(&mut self, id: ValueId, read: &TokenRead) {
        if !matches!(id.1, BalanceKey::Permit2 { .. }) {
            return;
        }
        let live = match read {
            TokenRead::Value(word) => Permit2Allowance::from_word(*word).lapses_at(),
            TokenRead::Failed => None,
        };
        match live {
            Some(expiration) => {
                if let Some(before) = self.of.insert(id, expiration) {
                    self.by_time.remove(&(before, id));
                }
                self.by_time.insert((expiration, id));
            }
            None => self.unschedule(&id),
        }
    }

    /// Forgets every value of `owner` (no longer watched, or about to be learned again).
    pub(crate) fn forget_wallet(&mut self, owner: &Address) {
        for id in self.wallet_ids(owner) {
            self.unschedule(&id);
        }
    }

    /// Forgets `owner`'s values of `token` (no longer tracked).
    pub(crate) fn forget_token(&mut self, owner: &Address, token: &Address) {
        for id in self.wallet_ids(owner) {
            if id.1.token() == *token {
                self.unschedule(&id);
            }
        }
    }

    /// The values whose expiration a block at `timestamp` is past (Permit2 checks
    /// `block.timestamp > expiration`), soonest first. They stay scheduled until the read's
    /// outcome is recorded: a step that fails before then finds them due again.
    pub(crate) fn due(&self, timestamp: u64) -> impl Iterator<Item = ValueId> + '_ {
        self.by_time
            .iter()
            .take_while(move |(expiration, _)| *expiration < timestamp)
            .map(|(_, id)| *id)
    }

    /// How many allowances are scheduled.
    pub(crate) fn len(&self) -> usize {
        self.of.len()
    }

    fn unschedule(&mut self, id: &ValueId) {
        if let Some(expiration) = self.of.remove(id) {
            self.by_time.remove(&(expiration, *id));
        }
    }

    fn wallet_ids(&self, owner: &Address) -> Vec<ValueId> {
        // Only Permit2 keys are scheduled: the least of them starts the wallet's range.
        let first = BalanceKey::Permit2 {
            token: Address::ZERO,
            spender: Address::ZERO,
        };
        self.of
            .range((*owner, first)..)
            .take_while(|((o, _), _)| o == owner)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;

    use super::*;

    const ALICE: Address = Address::repeat_byte(0xa1);
    const BOB: Address = Address::repeat_byte(0xb0);
    const TOKEN: Address = Address::repeat_byte(0x70);
    const OTHER: Address = Address::repeat_byte(0x71);
    const ROUTER: Address = Address::repeat_byte(0x5e);

    fn key(token: Address) -> BalanceKey {
        BalanceKey::Permit2 {
            token,
            spender: ROUTER,
        }
    }

    fn word(amount: u64, expiration: u64, expired: bool) -> TokenRead {
        TokenRead::Value(
            Permit2Allowance {
                amount: U256::from(amount),
                expiration,
                nonce: 1,
                expired,
            }
            .word(),
        )
    }

    fn due(expiries: &Expiries, timestamp: u64) -> Vec<ValueId> {
        expiries.due(timestamp).collect()
    }

    #[test]
    fn a_live_allowance_is_due_at_the_first_timestamp_past_its_expiration() {
        let mut expiries = Expiries::default();
        expiries.note((ALICE, key(TOKEN)), &word(5, 100, false));
        expiries.note((BOB, key(TOKEN)), &word(5, 50, false));
        assert_eq!(expiries.len(), 2);
        assert!(due(&expiries, 50).is_empty(), "not past: still spendable");
        assert_eq!(due(&expiries, 51), [(BOB, key(TOKEN))]);
        assert_eq!(
            due(&expiries, 1_000),
            [(BOB, key(TOKEN)), (ALICE, key(TOKEN))],
            "soonest first"
        );
        // Due values stay scheduled until their read is recorded.
        assert_eq!(due(&expiries, 51).len(), 1);
        expiries.note((BOB, key(TOKEN)), &word(5, 50, true));
        assert!(due(&expiries, 1_000).iter().all(|(o, _)| *o == ALICE));
        assert_eq!(expiries.len(), 1);
    }

    #[test]
    fn only_live_permit2_allowances_are_scheduled() {
        let mut expiries = Expiries::default();
        // Nothing to lapse: no amount, lapsed already, unreadable, not a Permit2 value.
        expiries.note((ALICE, key(TOKEN)), &word(0, 100, false));
        expiries.note((ALICE, key(OTHER)), &word(5, 100, true));
        expiries.note((BOB, key(TOKEN)), &TokenRead::Failed);
        expiries.note(
            (BOB, BalanceKey::Balance { token: TOKEN }),
            &TokenRead::Value(U256::from(100)),
        );
        expiries.note(
            (
                BOB,
                BalanceKey::Allowance {
                    token: TOKEN,
                    spender: ROUTER,
                },
            ),
            &TokenRead::Value(U256::from(100)),
        );
        assert_eq!(expiries.len(), 0);
        assert!(due(&expiries, u64::MAX).is_empty());
    }

    #[test]
    fn a_change_of_the_value_reschedules_it() {
        let mut expiries = Expiries::default();
        let id = (ALICE, key(TOKEN));
        expiries.note(id, &word(5, 100, false));
        // A new approval moves the expiration later: not due at the old one any more.
        expiries.note(id, &word(7, 300, false));
        assert!(due(&expiries, 200).is_empty());
        assert_eq!(due(&expiries, 301), [id]);
        assert_eq!(expiries.len(), 1, "one entry per allowance");
        // A spend keeps the expiration; a lockdown (amount zero) ends the schedule.
        expiries.note(id, &word(2, 300, false));
        assert_eq!(due(&expiries, 301), [id]);
        expiries.note(id, &word(0, 300, false));
        assert!(due(&expiries, 301).is_empty());
        assert_eq!(expiries.len(), 0);
    }

    #[test]
    fn forgotten_wallets_and_tokens_leave_the_schedule() {
        let mut expiries = Expiries::default();
        for owner in [ALICE, BOB] {
            for token in [TOKEN, OTHER] {
                expiries.note((owner, key(token)), &word(5, 100, false));
            }
        }
        expiries.forget_token(&ALICE, &TOKEN);
        assert_eq!(expiries.len(), 3);
        expiries.forget_wallet(&BOB);
        assert_eq!(due(&expiries, 101), [(ALICE, key(OTHER))]);
    }
}
