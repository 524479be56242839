//! How the watched set changes a wallet or a list at a time, and what each change asks of the
//! poller: learn the values the api just wrote for a session that changed (a new wallet's
//! whole, or only the few values an addition to a known wallet brought), read values nobody
//! has read yet (a list's new version, an addition whose writer has not finished, tokens found
//! by discovery), forget what is no longer tracked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy::primitives::Address;
use live_balances::NATIVE_TOKEN;
use live_balances::domain::model::{BalanceKey, FirstValues, Session, Spender};
use live_balances::domain::plan::ReadPlan;

use super::{ListTokens, WalletWatch, WatchedSet};

/// Most values an addition to a known wallet may bring and still be learned value by value
/// (a batch read of their keys, shared by every changed wallet of a step); an addition of
/// more (a list followed, a spender of many tokens) has its wallet learned whole.
pub const MAX_VALUES_LEARNED_BY_KEY: usize = 100;

/// What a change of the set asks of the poller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchChange {
    /// Wallets whose session is new or changed, with values the api has written: learn what
    /// the table holds for them, then catch up on the blocks since it read them.
    pub learn: BTreeSet<Address>,
    /// Known wallets whose session added a few values, which the api has written: learn just
    /// those from the table, then catch up on the blocks since it read them. A wallet also in
    /// `learn` is learned whole.
    pub learn_values: BTreeMap<Address, BTreeSet<BalanceKey>>,
    /// New wallets whose session records what its writer stored (see `Session::first_values`):
    /// learned from it with no read of the table, then caught up on like `learn`.
    pub learn_given: BTreeMap<Address, FirstValues>,
    /// Values nobody has read: read them at the next block (first reads).
    pub first_reads: ReadPlan,
    /// Tokens a wallet no longer tracks (a list dropped them).
    pub untracked: BTreeSet<(Address, Address)>,
}

impl WatchChange {
    pub fn merge(&mut self, other: WatchChange) {
        self.learn.extend(other.learn);
        for (owner, keys) in other.learn_values {
            self.learn_values.entry(owner).or_default().extend(keys);
        }
        self.learn_given.extend(other.learn_given);
        self.first_reads.merge(other.first_reads);
        self.untracked.extend(other.untracked);
    }
}

impl WatchedSet {
    /// Installs `tokens` as the current version of the list at `url`: every wallet following
    /// it gains what the version added (first reads) and loses what it removed, unless it
    /// tracks a token some other way.
    pub fn set_list(&mut self, url: &str, tokens: Arc<ListTokens>) -> WatchChange {
        let mut change = WatchChange::default();
        let url: Arc<str> = self
            .lists
            .get_key_value(url)
            .map_or_else(|| Arc::from(url), |(k, _)| k.clone());
        let Some(before) = self.lists.insert(url.clone(), tokens.clone()) else {
            return change;
        };
        if before.generation == tokens.generation {
            return change;
        }
        let added: Vec<Address> = tokens.tokens.difference(&before.tokens).copied().collect();
        let removed: Vec<Address> = before.tokens.difference(&tokens.tokens).copied().collect();
        self.previous.insert(url.clone(), before);
        for (owner, wallet) in &self.wallets {
            if !wallet.follows(&url) {
                continue;
            }
            let gained: BTreeSet<Address> = added
                .iter()
                .filter(|t| !self.names(wallet, t) && !self.in_lists(wallet, t, Some(&url)))
                .copied()
                .collect();
            add_first_reads(*owner, gained, &wallet.spenders, &mut change);
            for token in &removed {
                if !self.wallet_tracks(wallet, token) {
                    change.untracked.insert((*owner, *token));
                }
            }
        }
        change
    }

    /// Watches `session` (new or changed; its lists loaded): what the poller must do for it.
    /// `initial`: this poller is listing every session at start — what the table holds is the
    /// baseline.
    pub fn upsert(&mut self, session: &Session, initial: bool) -> WatchChange {
        let mut change = WatchChange::default();
        let owner = session.owner;
        let wallet = self.watch_of(session);
        let before = self.wallets.get(&owner);
        let session_changed = before.is_none_or(|b| b.revisions != wallet.revisions);
        match before {
            None if initial => {
                change.learn.insert(owner);
            }
            None => {
                change.learn.insert(owner);
                self.new_wallet(owner, &wallet, &mut change);
            }
            Some(before) => self.known_wallet(owner, before, &wallet, session_changed, &mut change),
        }
        let streamed_before = match self.wallets.get(&owner) {
            Some(before) => {
                self.expiries.remove(&(before.expires_at, owner));
                before.streaming_until
            }
            None => 0,
        };
        self.expiries.insert((wallet.expires_at, owner));
        self.index_streaming(owner, streamed_before, wallet.streaming_until);
        if self.wallets.insert(owner, wallet).is_none() {
            Arc::make_mut(&mut self.owner_topics).insert(&owner);
        }
        change
    }

    /// A wallet this set did not watch.
    fn new_wallet(&self, owner: Address, wallet: &WalletWatch, change: &mut WatchChange) {
        if wallet.revisions.values_stored() {
            // The api read every token of the new session at the versions it names.
            for (url, read) in wallet.lists.iter() {
                self.read_unread_list_tokens(owner, wallet, url, *read, change);
            }
        } else {
            // Its writer has not finished (or failed): read everything.
            add_first_reads(owner, self.wallet_tokens(wallet), &wallet.spenders, change);
        }
    }

    /// A wallet this set watched already: what discovery found, what a new revision of its
    /// session added, what it no longer follows (a session that expired and started over).
    fn known_wallet(
        &self,
        owner: Address,
        before: &WalletWatch,
        wallet: &WalletWatch,
        session_changed: bool,
        change: &mut WatchChange,
    ) {
        // What the session no longer names (it started over): forgotten unless tracked
        // another way. Sessions only grow otherwise, so this is rare and small.
        let dropped_lists = before.lists.iter().any(|(u, _)| !wallet.follows(u));
        let dropped_named: Vec<Address> = before
            .named
            .iter()
            .filter(|t| wallet.named.binary_search(t).is_err())
            .copied()
            .collect();
        if dropped_lists || !dropped_named.is_empty() {
            let now = self.wallet_tokens(wallet);
            for token in self.wallet_tokens(before).difference(&now) {
                change.untracked.insert((owner, *token));
            }
        }
        // Tokens named without a new revision were found by discovery (by this poller or
        // another): read them, the writer's value is not known here.
        let discovered: BTreeSet<Address> = wallet
            .named
            .iter()
            .filter(|t| before.named.binary_search(t).is_err())
            .filter(|t| !self.wallet_tracks(before, t))
            .copied()
            .collect();
        if !session_changed {
            add_first_reads(owner, discovered, &wallet.spenders, change);
            return;
        }
        match self.added_values(before, wallet) {
            Some(added) if added.is_empty() => {}
            Some(added) => {
                change.learn_values.insert(owner, added);
            }
            None => {
                change.learn.insert(owner);
            }
        }
        if wallet.revisions.values_stored() {
            // The api read the addition; lists it started following may have moved on
            // since it read them.
            for (url, read) in wallet.lists.iter() {
                if !before.follows(url) {
                    self.read_unread_list_tokens(owner, wallet, url, *read, change);
                }
            }
            return;
        }
        // The addition's writer has not finished: read its values ourselves — new tokens in
        // full, and new spenders' allowances of the tokens known before.
        let known_tokens = self.wallet_tokens(before);
        let new_tokens: BTreeSet<Address> = self
            .wallet_tokens(wallet)
            .difference(&known_tokens)
            .copied()
            .collect();
        add_first_reads(owner, new_tokens, &wallet.spenders, change);
        let new_spenders = new_spenders(before, wallet);
        for token in known_tokens.into_iter().filter(|t| *t != NATIVE_TOKEN) {
            for spender in &new_spenders {
                change.first_reads.add_first(owner, spender.key(token));
            }
        }
    }

    /// The values a new revision of a known wallet's session added, when it only added a few
    /// (at most [`MAX_VALUES_LEARNED_BY_KEY`]) and both revisions were stored whole by their
    /// writers: what the api wrote for it. `None` when the wallet is to be learned whole: it
    /// follows other lists (their tokens may be thousands, and a list read at another version
    /// names other tokens), named or spent less (it started over), added a spender of more
    /// tokens than the bound, or a revision's writer did not finish.
    fn added_values(
        &self,
        before: &WalletWatch,
        wallet: &WalletWatch,
    ) -> Option<BTreeSet<BalanceKey>> {
        if !before.revisions.values_stored()
            || !wallet.revisions.values_stored()
            || before.lists != wallet.lists
        {
            return None;
        }
        if before
            .named
            .iter()
            .any(|t| wallet.named.binary_search(t).is_err())
            || before.spenders.iter().any(|s| !wallet.spenders.contains(s))
        {
            return None;
        }
        let mut added = BTreeSet::new();
        let new_spenders = new_spenders(before, wallet);
        if !new_spenders.is_empty() {
            // Every token known before gains the new spenders' allowances: bounded by a
            // count of its tokens (lists counted whole) before they are gathered.
            let most_tokens = before.named.len()
                + 2
                + before
                    .lists
                    .iter()
                    .filter_map(|(url, _)| self.lists.get(url))
                    .map(|l| l.tokens.len())
                    .sum::<usize>();
            if most_tokens * new_spenders.len() > MAX_VALUES_LEARNED_BY_KEY {
                return None;
            }
            let known = self.wallet_tokens(before);
            for token in known.into_iter().filter(|t| *t != NATIVE_TOKEN) {
                added.extend(new_spenders.iter().map(|s| s.key(token)));
            }
        }
        for token in wallet
            .named
            .iter()
            .filter(|t| before.named.binary_search(t).is_err())
            .filter(|t| !self.wallet_tracks(before, t))
        {
            added.insert(BalanceKey::Balance { token: *token });
            added.extend(wallet.spenders.iter().map(|s| s.key(*token)));
        }
        (added.len() <= MAX_VALUES_LEARNED_BY_KEY).then_some(added)
    }

    /// A list a wallet started following was read by the api at generation `read`; if the
    /// list has moved on since, read what the api could not have: the difference to the
    /// version it read when this poller still has it, else the whole list.
    fn read_unread_list_tokens(
        &self,
        owner: Address,
        wallet: &WalletWatch,
        url: &str,
        read: u64,
        change: &mut WatchChange,
    ) {
        let Some(now) = self.lists.get(url) else {
            return;
        };
        // 0: a session from before generations were recorded; its tokens were read then.
        if read == 0 || read == now.generation {
            return;
        }
        let unread: BTreeSet<Address> = match self.previous.get(url) {
            Some(old) if old.generation == read => {
                now.tokens.difference(&old.tokens).copied().collect()
            }
            _ => now.tokens.iter().copied().collect(),
        };
        add_first_reads(owner, unread, &wallet.spenders, change);
    }
}

/// The spenders `wallet` names that `before` (its previous revision) did not.
fn new_spenders(before: &WalletWatch, wallet: &WalletWatch) -> Vec<Spender> {
    wallet
        .spenders
        .iter()
        .filter(|s| !before.spenders.contains(s))
        .copied()
        .collect()
}

/// Adds the first reads of `tokens` for `owner`: each balance and its allowances.
fn add_first_reads(
    owner: Address,
    tokens: BTreeSet<Address>,
    spenders: &[Spender],
    change: &mut WatchChange,
) {
    for token in tokens {
        change
            .first_reads
            .add_first(owner, BalanceKey::Balance { token });
        if token == NATIVE_TOKEN {
            continue;
        }
        for spender in spenders {
            change.first_reads.add_first(owner, spender.key(token));
        }
    }
}
