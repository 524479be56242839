//! How the watched set changes a wallet or a list at a time, and what each change asks of the
//! poller: learn the values the api just wrote for a session that changed, read values nobody
//! has read yet (a list's new version, an addition whose writer has not finished, tokens found
//! by discovery), forget what is no longer tracked.

use std::collections::BTreeSet;
use std::sync::Arc;

use alloy::primitives::Address;
use live_balances::NATIVE_TOKEN;
use live_balances::domain::model::{BalanceKey, Session, Spender};
use live_balances::domain::plan::ReadPlan;

use super::{ListTokens, WalletWatch, WatchedSet};

/// What a change of the set asks of the poller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchChange {
    /// Wallets whose session is new or changed, with values the api has written: learn what
    /// the table holds for them, then catch up on the blocks since it read them.
    pub learn: BTreeSet<Address>,
    /// Values nobody has read: read them at the next block (first reads).
    pub first_reads: ReadPlan,
    /// Tokens a wallet no longer tracks (a list dropped them).
    pub untracked: BTreeSet<(Address, Address)>,
}

impl WatchChange {
    pub fn merge(&mut self, other: WatchChange) {
        self.learn.extend(other.learn);
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
        let session_changed = before.is_none_or(|b| {
            (b.revision, b.complete_revision) != (wallet.revision, wallet.complete_revision)
        });
        if session_changed {
            change.learn.insert(owner);
        }
        match before {
            None if initial => {}
            None => self.new_wallet(owner, &wallet, &mut change),
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
        self.wallets.insert(owner, wallet);
        change
    }

    /// A wallet this set did not watch.
    fn new_wallet(&self, owner: Address, wallet: &WalletWatch, change: &mut WatchChange) {
        if wallet.complete() {
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
        if wallet.complete() {
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
        let new_spenders: Vec<Spender> = wallet
            .spenders
            .iter()
            .filter(|s| !before.spenders.contains(s))
            .copied()
            .collect();
        for token in known_tokens.into_iter().filter(|t| *t != NATIVE_TOKEN) {
            for spender in &new_spenders {
                change.first_reads.add_first(owner, spender.key(token));
            }
        }
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
