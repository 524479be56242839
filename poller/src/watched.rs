//! The watched set of one chain: which wallets the poller watches, and which tokens and
//! spenders each one tracks — built from the live sessions and the current version of every
//! token list they follow (a list's tokens are held once, however many wallets follow it).
//!
//! Comparing the set before and after a reload says what the poller must do: learn the
//! values the api just wrote for a session that changed, read values nobody has read yet (a
//! list's new version, an addition whose writer has not finished), and forget what is no
//! longer tracked.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::Address;
use live_balances::NATIVE_TOKEN;
use live_balances::model::{BalanceKey, Session};
use live_balances::plan::ReadPlan;

/// One version of a token list on this chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListTokens {
    pub generation: u64,
    pub tokens: HashSet<Address>,
}

/// What one wallet's session asks to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletWatch {
    /// List URL -> the generation the api read when the session started following it.
    pub lists: BTreeMap<String, u64>,
    /// Tokens named by address: custom and discovered tokens, native, wrapped native.
    pub named: BTreeSet<Address>,
    pub spenders: BTreeSet<Address>,
    pub discover: bool,
    pub discovered: usize,
    pub revision: u64,
    pub complete_revision: u64,
    pub read_block: u64,
    pub expires_at: u64,
    pub streaming_until: u64,
}

impl WalletWatch {
    pub fn of(session: &Session, weth: Option<Address>) -> Self {
        Self {
            lists: session.token_lists.clone(),
            named: session.named_tokens(weth),
            spenders: session.spenders.clone(),
            discover: session.discover,
            discovered: session.discovered.len(),
            revision: session.revision,
            complete_revision: session.complete_revision,
            read_block: session.read_block,
            expires_at: session.expires_at,
            streaming_until: session.streaming_until,
        }
    }

    fn complete(&self) -> bool {
        self.complete_revision >= self.revision
    }
}

/// Every wallet a chain's poller watches.
#[derive(Debug, Clone, Default)]
pub struct WatchedSet {
    wallets: HashMap<Address, WalletWatch>,
    lists: HashMap<String, Arc<ListTokens>>,
}

/// A wallet both sets watch, as [`WatchedSet::changes`] compares it.
#[derive(Clone, Copy)]
struct KnownWallet<'a> {
    owner: Address,
    before: &'a WalletWatch,
    wallet: &'a WalletWatch,
    session_changed: bool,
}

/// What a reload asks of the poller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchChange {
    /// Wallets whose session is new or changed, with values the api has written: learn what
    /// the table holds for them, then catch up on the blocks since it read them.
    pub learn: BTreeSet<Address>,
    /// Values nobody has read: read them at the next block (first reads).
    pub first_reads: ReadPlan,
    /// Wallets no longer watched.
    pub dropped: BTreeSet<Address>,
    /// Tokens a wallet no longer tracks (a list dropped them).
    pub untracked: BTreeSet<(Address, Address)>,
}

impl WatchedSet {
    /// The set of `sessions` (live ones) over the lists' current versions.
    pub fn new(
        sessions: &[Session],
        lists: HashMap<String, Arc<ListTokens>>,
        weth: Option<Address>,
    ) -> Self {
        Self {
            wallets: sessions
                .iter()
                .map(|s| (s.owner, WalletWatch::of(s, weth)))
                .collect(),
            lists,
        }
    }

    pub fn len(&self) -> usize {
        self.wallets.len()
    }

    pub fn wallet(&self, owner: &Address) -> Option<&WalletWatch> {
        self.wallets.get(owner)
    }

    pub fn wallets(&self) -> impl Iterator<Item = (&Address, &WalletWatch)> {
        self.wallets.iter()
    }

    /// The current version of a list, if loaded.
    pub fn list(&self, url: &str) -> Option<&Arc<ListTokens>> {
        self.lists.get(url)
    }

    /// Whether `owner` tracks `token`.
    pub fn tracks(&self, owner: &Address, token: &Address) -> bool {
        self.wallets
            .get(owner)
            .is_some_and(|w| self.wallet_tracks(w, token))
    }

    fn wallet_tracks(&self, wallet: &WalletWatch, token: &Address) -> bool {
        wallet.named.contains(token)
            || wallet.lists.keys().any(|url| {
                self.lists
                    .get(url)
                    .is_some_and(|l| l.tokens.contains(token))
            })
    }

    /// Every token `owner` tracks.
    pub fn tokens(&self, owner: &Address) -> BTreeSet<Address> {
        let Some(wallet) = self.wallets.get(owner) else {
            return BTreeSet::new();
        };
        let mut tokens = wallet.named.clone();
        for url in wallet.lists.keys() {
            if let Some(list) = self.lists.get(url) {
                tokens.extend(list.tokens.iter().copied());
            }
        }
        tokens
    }

    /// Adds a token found by discovery to a wallet.
    pub fn add_discovered(&mut self, owner: &Address, token: Address) {
        if let Some(wallet) = self.wallets.get_mut(owner)
            && wallet.named.insert(token)
        {
            wallet.discovered += 1;
        }
    }

    /// Whether `owner` tracks the allowance of `spender` on `token`.
    pub fn tracks_allowance(&self, owner: &Address, token: &Address, spender: &Address) -> bool {
        self.wallets.get(owner).is_some_and(|w| {
            *token != NATIVE_TOKEN && w.spenders.contains(spender) && self.wallet_tracks(w, token)
        })
    }

    /// What turning this set into `next` asks of the poller. `initial`: this poller has never
    /// loaded a set (it just started): what the table holds is the baseline.
    pub fn changes(&self, next: &WatchedSet, initial: bool) -> WatchChange {
        let mut change = WatchChange::default();
        let list_deltas = self.list_deltas(next);
        for (owner, wallet) in &next.wallets {
            let before = self.wallets.get(owner);
            let session_changed = before.is_none_or(|b| {
                (b.revision, b.complete_revision) != (wallet.revision, wallet.complete_revision)
            });
            if session_changed {
                change.learn.insert(*owner);
            }
            match before {
                None if initial => {}
                None => self.new_wallet(next, *owner, wallet, &mut change),
                Some(before) => {
                    let known = KnownWallet {
                        owner: *owner,
                        before,
                        wallet,
                        session_changed,
                    };
                    self.known_wallet(next, &known, &list_deltas, &mut change);
                }
            }
        }
        change.dropped = self
            .wallets
            .keys()
            .filter(|o| !next.wallets.contains_key(*o))
            .copied()
            .collect();
        change
    }

    /// Per list whose version changed: its tokens added and removed, computed once however
    /// many wallets follow it.
    fn list_deltas<'a>(
        &self,
        next: &'a WatchedSet,
    ) -> HashMap<&'a str, (Vec<Address>, Vec<Address>)> {
        let mut list_deltas = HashMap::new();
        for (url, now) in &next.lists {
            if let Some(before) = self.lists.get(url)
                && before.generation != now.generation
            {
                let added = now.tokens.difference(&before.tokens).copied().collect();
                let removed = before.tokens.difference(&now.tokens).copied().collect();
                list_deltas.insert(url.as_str(), (added, removed));
            }
        }
        list_deltas
    }

    /// A wallet this set did not watch.
    fn new_wallet(
        &self,
        next: &WatchedSet,
        owner: Address,
        wallet: &WalletWatch,
        change: &mut WatchChange,
    ) {
        if wallet.complete() {
            // The api read every token of the new session at the versions it names.
            for (url, read) in &wallet.lists {
                next.read_unread_list_tokens(owner, wallet, url, *read, self, change);
            }
        } else {
            // Its writer has not finished (or failed): read everything.
            next.add_first_reads(owner, next.tokens(&owner), &wallet.spenders, change);
        }
    }

    /// A wallet this set watched already: what its lists gained, what discovery found, what
    /// a new revision of its session added.
    fn known_wallet(
        &self,
        next: &WatchedSet,
        known: &KnownWallet,
        list_deltas: &HashMap<&str, (Vec<Address>, Vec<Address>)>,
        change: &mut WatchChange,
    ) {
        let KnownWallet {
            owner,
            before,
            wallet,
            session_changed,
        } = *known;
        // Lists followed before whose version changed: read what they gained, forget what
        // they lost (unless the wallet tracks it some other way).
        for url in before.lists.keys() {
            if let Some((added, removed)) = list_deltas.get(url.as_str()) {
                let gained: BTreeSet<Address> = added
                    .iter()
                    .filter(|t| !self.wallet_tracks(before, t))
                    .copied()
                    .collect();
                next.add_first_reads(owner, gained, &wallet.spenders, change);
                for token in removed {
                    if !next.wallet_tracks(wallet, token) {
                        change.untracked.insert((owner, *token));
                    }
                }
            }
        }
        // Tokens named without a new revision were found by discovery (by this poller or
        // another): read them, the writer's value is not known here.
        let discovered: BTreeSet<Address> = wallet
            .named
            .difference(&before.named)
            .copied()
            .filter(|t| !self.wallet_tracks(before, t))
            .collect();
        if !session_changed {
            next.add_first_reads(owner, discovered, &wallet.spenders, change);
            return;
        }
        if wallet.complete() {
            // The api read the addition; lists it started following may have moved on
            // since it read them.
            for (url, read) in &wallet.lists {
                if !before.lists.contains_key(url) {
                    next.read_unread_list_tokens(owner, wallet, url, *read, self, change);
                }
            }
            return;
        }
        // The addition's writer has not finished: read its values ourselves — new tokens in
        // full, and new spenders' allowances of the tokens known before.
        let known_tokens = self.tokens(&owner);
        let new_tokens: BTreeSet<Address> = next
            .tokens(&owner)
            .difference(&known_tokens)
            .copied()
            .collect();
        next.add_first_reads(owner, new_tokens, &wallet.spenders, change);
        let new_spenders: BTreeSet<Address> = wallet
            .spenders
            .difference(&before.spenders)
            .copied()
            .collect();
        for token in known_tokens.into_iter().filter(|t| *t != NATIVE_TOKEN) {
            for spender in &new_spenders {
                change.first_reads.add_first(
                    owner,
                    BalanceKey::Allowance {
                        token,
                        spender: *spender,
                    },
                );
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
        before: &WatchedSet,
        change: &mut WatchChange,
    ) {
        let Some(now) = self.lists.get(url) else {
            return;
        };
        // 0: a session from before generations were recorded; its tokens were read then.
        if read == 0 || read == now.generation {
            return;
        }
        let unread: BTreeSet<Address> = match before.lists.get(url) {
            Some(old) if old.generation == read => {
                now.tokens.difference(&old.tokens).copied().collect()
            }
            _ => now.tokens.iter().copied().collect(),
        };
        self.add_first_reads(owner, unread, &wallet.spenders, change);
    }

    /// Adds the first reads of `tokens` for `owner`: each balance and its allowances.
    fn add_first_reads(
        &self,
        owner: Address,
        tokens: BTreeSet<Address>,
        spenders: &BTreeSet<Address>,
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
                change.first_reads.add_first(
                    owner,
                    BalanceKey::Allowance {
                        token,
                        spender: *spender,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Address = Address::repeat_byte(0xa1);
    const BOB: Address = Address::repeat_byte(0xb0);
    const SPENDER: Address = Address::repeat_byte(0x5e);
    const URL: &str = "https://lists.example/tokens.json";

    fn token(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn list(generation: u64, tokens: &[u8]) -> Arc<ListTokens> {
        Arc::new(ListTokens {
            generation,
            tokens: tokens.iter().map(|n| token(*n)).collect(),
        })
    }

    fn session(owner: Address, revision: u64, custom: &[u8], lists: &[(&str, u64)]) -> Session {
        Session {
            custom_tokens: custom.iter().map(|n| token(*n)).collect(),
            spenders: [SPENDER].into(),
            token_lists: lists.iter().map(|(u, g)| (u.to_string(), *g)).collect(),
            revision,
            complete_revision: revision,
            expires_at: 100,
            ..Session::new(1, owner, 0)
        }
    }

    fn set(sessions: &[Session], lists: &[(&str, Arc<ListTokens>)]) -> WatchedSet {
        WatchedSet::new(
            sessions,
            lists
                .iter()
                .map(|(u, l)| (u.to_string(), l.clone()))
                .collect(),
            None,
        )
    }

    fn balance(n: u8) -> BalanceKey {
        BalanceKey::Balance { token: token(n) }
    }

    fn allowance(n: u8) -> BalanceKey {
        BalanceKey::Allowance {
            token: token(n),
            spender: SPENDER,
        }
    }

    #[test]
    fn a_wallet_tracks_its_lists_named_tokens_and_native() {
        let watched = set(
            &[session(ALICE, 1, &[9], &[(URL, 1)])],
            &[(URL, list(1, &[1, 2]))],
        );
        for t in [token(1), token(2), token(9), NATIVE_TOKEN] {
            assert!(watched.tracks(&ALICE, &t), "{t}");
        }
        assert!(!watched.tracks(&ALICE, &token(3)));
        assert!(!watched.tracks(&BOB, &token(1)));
        assert!(watched.tracks_allowance(&ALICE, &token(1), &SPENDER));
        assert!(!watched.tracks_allowance(&ALICE, &NATIVE_TOKEN, &SPENDER));
        assert_eq!(watched.tokens(&ALICE).len(), 4);
    }

    #[test]
    fn a_first_load_is_the_baseline_learned_from_the_table() {
        let next = set(
            &[session(ALICE, 1, &[9], &[(URL, 1)])],
            &[(URL, list(2, &[1]))],
        );
        let change = WatchedSet::default().changes(&next, true);
        assert_eq!(change.learn, [ALICE].into());
        assert!(change.first_reads.is_empty());
    }

    #[test]
    fn a_new_complete_session_is_learned_not_read() {
        let lists = [(URL, list(1, &[1, 2]))];
        let before = set(&[session(BOB, 1, &[], &[(URL, 1)])], &lists);
        let next = set(
            &[
                session(BOB, 1, &[], &[(URL, 1)]),
                session(ALICE, 1, &[9], &[(URL, 1)]),
            ],
            &lists,
        );
        let change = before.changes(&next, false);
        assert_eq!(change.learn, [ALICE].into());
        assert!(change.first_reads.is_empty(), "{change:?}");
        assert!(change.dropped.is_empty());
    }

    #[test]
    fn a_list_version_reaches_every_follower_once_computed() {
        let before = set(
            &[
                session(ALICE, 1, &[], &[(URL, 1)]),
                session(BOB, 1, &[2], &[(URL, 1)]),
            ],
            &[(URL, list(1, &[1, 2]))],
        );
        let next = set(
            &[
                session(ALICE, 1, &[], &[(URL, 1)]),
                session(BOB, 1, &[2], &[(URL, 1)]),
            ],
            &[(URL, list(2, &[1, 3]))],
        );
        let change = before.changes(&next, false);
        assert!(change.learn.is_empty());
        // Token 3 is new to both; token 2 left the list but BOB names it himself.
        for owner in [ALICE, BOB] {
            assert!(change.first_reads.contains(&owner, &balance(3)));
            assert!(change.first_reads.contains(&owner, &allowance(3)));
        }
        assert_eq!(change.first_reads.len(), 4);
        assert_eq!(change.untracked, [(ALICE, token(2))].into());
    }

    #[test]
    fn a_session_read_at_an_older_list_version_gets_the_difference() {
        // ALICE's session was created while the list was at generation 1; by the time the
        // poller loads it, the list is at 2.
        let before = set(
            &[session(BOB, 1, &[], &[(URL, 1)])],
            &[(URL, list(1, &[1]))],
        );
        let next = set(
            &[
                session(BOB, 1, &[], &[(URL, 1)]),
                session(ALICE, 1, &[], &[(URL, 1)]),
            ],
            &[(URL, list(2, &[1, 4]))],
        );
        let change = before.changes(&next, false);
        assert!(change.first_reads.contains(&ALICE, &balance(4)));
        assert!(!change.first_reads.contains(&ALICE, &balance(1)));
        // BOB gets token 4 as a follower of the list's new version.
        assert!(change.first_reads.contains(&BOB, &balance(4)));
    }

    #[test]
    fn an_unfinished_addition_is_read_by_the_poller() {
        let lists = [(URL, list(1, &[1]))];
        let before = set(&[session(ALICE, 1, &[], &[(URL, 1)])], &lists);
        let mut grown = session(ALICE, 2, &[7], &[(URL, 1)]);
        grown.spenders.insert(BOB);
        grown.complete_revision = 1;
        let next = set(&[grown], &lists);
        let change = before.changes(&next, false);
        assert_eq!(change.learn, [ALICE].into());
        // The new token in full, and the new spender's allowance of the token known before.
        assert!(change.first_reads.contains(&ALICE, &balance(7)));
        assert!(change.first_reads.contains(&ALICE, &allowance(7)));
        assert!(change.first_reads.contains(
            &ALICE,
            &BalanceKey::Allowance {
                token: token(1),
                spender: BOB
            }
        ));
        assert!(!change.first_reads.contains(&ALICE, &balance(1)));
    }

    #[test]
    fn discovered_tokens_are_read_and_expired_wallets_dropped() {
        let before = set(
            &[session(ALICE, 1, &[], &[]), session(BOB, 1, &[], &[])],
            &[],
        );
        let mut found = session(ALICE, 1, &[], &[]);
        found.discovered.insert(token(5));
        let next = set(&[found], &[]);
        let change = before.changes(&next, false);
        assert!(change.learn.is_empty());
        assert!(change.first_reads.contains(&ALICE, &balance(5)));
        assert_eq!(change.dropped, [BOB].into());
    }
}
