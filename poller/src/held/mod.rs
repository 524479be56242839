//! The values a chain's poller holds: every tracked value that is not zero (and the rare read
//! that fails for one wallet only), as last written or found stored. Sparse like the table: a
//! value not held is zero. Its size follows what wallets hold, not what their lists name.
//!
//! Ordered by (owner, key), so a wallet's values are one range and the sweeps walk them with
//! a cursor; tokens known to change without events (rebasing) keep their own index for the
//! frequent sweep.
//!
//! Beside the values, the chain's facts about tokens that decide how they are read: tokens
//! whose reads fail for every holder (unreadable: never read per wallet) and tokens seen
//! changing without events (silent: swept often).
//!
//! With the values, when the Permit2 allowances among them lapse (`expiries`): the schedule
//! follows every change of a held value, so nothing else keeps it.
//!
//! A wallet's values are known once they are learned from the table. At start every listed
//! wallet is learned in the background; until then a wallet is *unlearned*, and a step that
//! is about to compare a value of it learns it first.

mod expiries;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;

use alloy::primitives::{Address, U256};
use live_balances::domain::model::{BalanceKey, TokenRead};

use expiries::Expiries;

pub type ValueId = (Address, BalanceKey);

#[derive(Debug, Default)]
pub struct HeldValues {
    values: BTreeMap<ValueId, TokenRead>,
    /// Tokens seen changing without an event.
    silent: BTreeSet<Address>,
    /// The held values of silent tokens.
    silent_held: BTreeMap<ValueId, ()>,
    /// Watched wallets whose values are not learned yet.
    unlearned: HashSet<Address>,
    /// Tokens whose reads fail for every holder on this chain: never read per wallet.
    unreadable: BTreeSet<Address>,
    /// When the live Permit2 allowances held lapse.
    expiries: Expiries,
}

impl HeldValues {
    /// What the poller knows of a value: `Value(0)` when it holds nothing for it.
    pub fn get(&self, owner: &Address, key: &BalanceKey) -> TokenRead {
        self.values
            .get(&(*owner, *key))
            .cloned()
            .unwrap_or(TokenRead::Value(U256::ZERO))
    }

    #[cfg(test)]
    pub fn holds(&self, owner: &Address, key: &BalanceKey) -> bool {
        self.values.contains_key(&(*owner, *key))
    }

    /// Records a value as now known; a zero is forgotten.
    pub fn set(&mut self, owner: Address, key: BalanceKey, read: TokenRead) {
        let id = (owner, key);
        self.expiries.note(id, &read);
        if read == TokenRead::Value(U256::ZERO) {
            self.values.remove(&id);
            self.silent_held.remove(&id);
            return;
        }
        if self.silent.contains(&key.token()) {
            self.silent_held.insert(id, ());
        }
        self.values.insert(id, read);
    }

    /// Replaces what is held for `owner` by what the table holds: the wallet is learned.
    pub fn replace_wallet(
        &mut self,
        owner: Address,
        stored: impl IntoIterator<Item = (BalanceKey, TokenRead)>,
    ) {
        self.drop_wallet(&owner);
        for (key, read) in stored {
            self.set(owner, key, read);
        }
    }

    pub fn drop_wallet(&mut self, owner: &Address) {
        self.unlearned.remove(owner);
        self.expiries.forget_wallet(owner);
        for id in self.wallet_ids(owner) {
            self.values.remove(&id);
            self.silent_held.remove(&id);
        }
    }

    /// Marks wallets whose values are yet to be learned from the table.
    pub fn mark_unlearned(&mut self, owners: impl IntoIterator<Item = Address>) {
        self.unlearned.extend(owners);
    }

    pub fn is_learned(&self, owner: &Address) -> bool {
        !self.unlearned.contains(owner)
    }

    /// How many watched wallets are yet to be learned.
    pub fn unlearned(&self) -> usize {
        self.unlearned.len()
    }

    /// At most `limit` of the wallets yet to be learned.
    pub fn unlearned_wallets(&self, limit: usize) -> Vec<Address> {
        self.unlearned.iter().take(limit).copied().collect()
    }

    /// Forgets a token of a wallet: its balance and every allowance.
    pub fn drop_token(&mut self, owner: &Address, token: &Address) {
        let ids: Vec<ValueId> = self
            .wallet_ids(owner)
            .into_iter()
            .filter(|(_, key)| key.token() == *token)
            .collect();
        self.expiries.forget_token(owner, token);
        for id in ids {
            self.values.remove(&id);
            self.silent_held.remove(&id);
        }
    }

    fn wallet_ids(&self, owner: &Address) -> Vec<ValueId> {
        let from = (
            *owner,
            BalanceKey::Balance {
                token: Address::ZERO,
            },
        );
        self.values
            .range((Bound::Included(from), Bound::Unbounded))
            .take_while(|((o, _), _)| o == owner)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The held Permit2 allowances whose expiration a block at `timestamp` is past, soonest
    /// first (they stay scheduled until a read of them is recorded).
    pub fn lapsed(&self, timestamp: u64) -> impl Iterator<Item = ValueId> + '_ {
        self.expiries.due(timestamp)
    }

    /// How many held Permit2 allowances are scheduled to lapse.
    pub fn lapsing(&self) -> usize {
        self.expiries.len()
    }

    /// Marks `token` as changing without events; returns whether it is new.
    pub fn mark_silent(&mut self, token: Address) -> bool {
        if !self.silent.insert(token) {
            return false;
        }
        for id in self.values.keys().filter(|(_, key)| key.token() == token) {
            self.silent_held.insert(*id, ());
        }
        true
    }

    /// Whether `token`'s reads fail for every holder: it is not read per wallet.
    pub fn is_unreadable(&self, token: &Address) -> bool {
        self.unreadable.contains(token)
    }

    /// Replaces the unreadable tokens by the chain's facts as just read.
    pub fn set_unreadable(&mut self, tokens: BTreeSet<Address>) {
        self.unreadable = tokens;
    }

    /// Adds tokens found unreadable.
    pub fn add_unreadable(&mut self, tokens: impl IntoIterator<Item = Address>) {
        self.unreadable.extend(tokens);
    }

    /// Every held value, ordered: what the slow sweep walks.
    pub fn all(&self) -> &BTreeMap<ValueId, TokenRead> {
        &self.values
    }

    /// The held values of silent tokens: what the frequent sweep walks.
    pub fn silent_values(&self) -> &BTreeMap<ValueId, ()> {
        &self.silent_held
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Address = Address::repeat_byte(0xa1);
    const BOB: Address = Address::repeat_byte(0xb0);
    const TOKEN: Address = Address::repeat_byte(0x70);
    const OTHER: Address = Address::repeat_byte(0x71);
    const SPENDER: Address = Address::repeat_byte(0x5e);

    fn value(v: u64) -> TokenRead {
        TokenRead::Value(U256::from(v))
    }

    fn allowance(token: Address, spender: Address) -> BalanceKey {
        BalanceKey::Allowance { token, spender }
    }

    #[test]
    fn zeros_are_not_held() {
        let mut held = HeldValues::default();
        let key = BalanceKey::Balance { token: TOKEN };
        held.set(ALICE, key, value(5));
        assert_eq!(held.get(&ALICE, &key), value(5));
        held.set(ALICE, key, value(0));
        assert!(!held.holds(&ALICE, &key));
        assert_eq!(held.get(&ALICE, &key), value(0));
        held.set(ALICE, key, TokenRead::Failed);
        assert!(held.holds(&ALICE, &key), "a failed read is not a zero");
    }

    #[test]
    fn a_wallet_and_a_token_of_it_are_dropped_whole() {
        let mut held = HeldValues::default();
        held.set(ALICE, BalanceKey::Balance { token: TOKEN }, value(1));
        held.set(ALICE, allowance(TOKEN, SPENDER), value(2));
        held.set(ALICE, allowance(TOKEN, BOB), value(3));
        held.set(ALICE, allowance(OTHER, SPENDER), value(4));
        held.set(BOB, allowance(TOKEN, SPENDER), value(5));
        held.drop_token(&ALICE, &TOKEN);
        assert_eq!(held.len(), 2);
        held.replace_wallet(BOB, [(BalanceKey::Balance { token: OTHER }, value(9))]);
        assert_eq!(held.get(&BOB, &allowance(TOKEN, SPENDER)), value(0));
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn a_wallet_is_learned_once_its_stored_values_replace_its_own() {
        let mut held = HeldValues::default();
        held.mark_unlearned([ALICE, BOB]);
        assert!(!held.is_learned(&ALICE));
        held.replace_wallet(ALICE, [(BalanceKey::Balance { token: TOKEN }, value(3))]);
        assert!(held.is_learned(&ALICE));
        held.drop_wallet(&BOB);
        assert!(
            held.is_learned(&BOB),
            "a dropped wallet is nothing to learn"
        );
        assert_eq!(held.unlearned(), 0);
    }

    #[test]
    fn unreadable_tokens_are_replaced_by_the_facts_as_read() {
        let mut held = HeldValues::default();
        held.add_unreadable([TOKEN]);
        assert!(held.is_unreadable(&TOKEN));
        held.set_unreadable([OTHER].into());
        assert!(!held.is_unreadable(&TOKEN), "its fact expired");
        assert!(held.is_unreadable(&OTHER));
    }

    #[test]
    fn silent_tokens_keep_their_own_index() {
        let mut held = HeldValues::default();
        held.set(ALICE, BalanceKey::Balance { token: TOKEN }, value(1));
        held.set(BOB, BalanceKey::Balance { token: OTHER }, value(1));
        assert!(held.mark_silent(TOKEN));
        assert!(!held.mark_silent(TOKEN));
        held.set(BOB, BalanceKey::Balance { token: TOKEN }, value(2));
        assert_eq!(held.silent_values().len(), 2);
        held.set(ALICE, BalanceKey::Balance { token: TOKEN }, value(0));
        assert_eq!(held.silent_values().len(), 1);
        held.drop_wallet(&BOB);
        assert!(held.silent_values().is_empty());
    }

    #[test]
    fn the_values_held_keep_the_permit2_schedule() {
        use live_balances::domain::permit2::Permit2Allowance;
        let permit2 = |token| BalanceKey::Permit2 {
            token,
            spender: SPENDER,
        };
        let word = |amount: u64, expiration: u64| {
            TokenRead::Value(
                Permit2Allowance {
                    amount: U256::from(amount),
                    expiration,
                    nonce: 1,
                    expired: false,
                }
                .word(),
            )
        };
        let mut held = HeldValues::default();
        held.set(ALICE, permit2(OTHER), word(5, 100));
        // Learning a wallet from the table replaces what was held, and what was scheduled.
        held.replace_wallet(
            ALICE,
            [
                (permit2(TOKEN), word(9, 40)),
                (BalanceKey::Balance { token: TOKEN }, value(1)),
            ],
        );
        assert_eq!(held.lapsing(), 1);
        assert_eq!(
            held.lapsed(1_000).collect::<Vec<_>>(),
            [(ALICE, permit2(TOKEN))]
        );
        assert_eq!(held.lapsed(40).count(), 0, "not past its expiration yet");
        // A spent-out (zero) allowance, a dropped token, a dropped wallet leave the schedule.
        held.set(BOB, permit2(TOKEN), word(3, 50));
        held.set(BOB, permit2(TOKEN), TokenRead::Value(U256::ZERO));
        held.set(ALICE, permit2(OTHER), word(2, 60));
        held.drop_token(&ALICE, &TOKEN);
        assert_eq!(
            held.lapsed(1_000).collect::<Vec<_>>(),
            [(ALICE, permit2(OTHER))]
        );
        held.drop_wallet(&ALICE);
        assert_eq!(held.lapsing(), 0);
    }
}
