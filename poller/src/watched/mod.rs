//! The watched set of one chain: which wallets the poller watches, and which tokens and
//! spenders each one tracks — built from the live sessions and the current version of every
//! token list they follow (a list's tokens are held once, however many wallets follow it).
//!
//! It changes a wallet or a list at a time, as the session log tells the poller: each change
//! says what the poller must do — learn the values the api just wrote for a session that
//! changed, read values nobody has read yet (a list's new version, an addition whose writer
//! has not finished), forget what is no longer tracked. Nothing here is linear in the wallets
//! but a list's new version, which every follower of the list gains.
//!
//! The changes and what each asks of the poller are computed in `changes`.
//!
//! Compact, for 100,000 wallets in a few tens of MB: a wallet holds its custom and discovered
//! tokens only (the native currency and the chain's WETH are every wallet's), and shares its
//! list references and its spender set with every wallet that has the same (interned).

mod changes;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use alloy::primitives::Address;
use live_balances::NATIVE_TOKEN;
use live_balances::chain::OwnerTopics;
use live_balances::domain::model::{Revisions, Session, Spender};

pub use changes::WatchChange;

/// One version of a token list on this chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListTokens {
    pub generation: u64,
    pub tokens: HashSet<Address>,
}

/// The lists a wallet follows: URL and the generation the api read when the session started
/// following it.
pub type FollowedLists = Arc<[(Arc<str>, u64)]>;

/// A wallet's allowance spenders (ERC-20 and Permit2), shared by every wallet with the same
/// set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spenders(Arc<[Spender]>);

impl std::ops::Deref for Spenders {
    type Target = [Spender];

    fn deref(&self) -> &[Spender] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a Spenders {
    type Item = &'a Spender;
    type IntoIter = std::slice::Iter<'a, Spender>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What one wallet's session asks to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletWatch {
    pub lists: FollowedLists,
    /// Custom and discovered tokens, sorted (native and WETH are implicit).
    pub named: Box<[Address]>,
    pub spenders: Spenders,
    pub discover: bool,
    pub discovered: usize,
    pub revisions: Revisions,
    pub read_block: u64,
    pub expires_at: u64,
    pub streaming_until: u64,
}

impl WalletWatch {
    fn follows(&self, url: &str) -> bool {
        self.lists.iter().any(|(u, _)| &**u == url)
    }
}

/// Every wallet a chain's poller watches.
#[derive(Debug, Default)]
pub struct WatchedSet {
    /// In owner order: the background pass over the sessions compares a page with a range.
    wallets: BTreeMap<Address, WalletWatch>,
    /// The wallets by expiry, to find those due without walking every wallet.
    expiries: BTreeSet<(u64, Address)>,
    /// The wallets some stream vouched for, by when the vouch ends (past ones too): the
    /// streamed are found without walking every wallet, which every step would otherwise do.
    streams: BTreeSet<(u64, Address)>,
    /// Wallets whose first stream (or first since their last one ended) was vouched for since
    /// the last [`Self::take_fresh_streams`]: their native balance, read at the poll interval
    /// until now, is read once at the next step — with or without a block.
    fresh_streams: BTreeSet<Address>,
    lists: HashMap<Arc<str>, Arc<ListTokens>>,
    /// The version each list's current one replaced: a session read at it gets the difference.
    previous: HashMap<Arc<str>, Arc<ListTokens>>,
    weth: Option<Address>,
    spender_sets: HashSet<Arc<[Spender]>>,
    list_sets: HashSet<FollowedLists>,
    /// Every watched owner as the log topics that name it, changed as a wallet comes or goes:
    /// every step asks for the logs of every owner and would otherwise copy them all, or build
    /// them again whenever wallets came or went (linear in wallets, every block under churn).
    owner_topics: Arc<OwnerTopics>,
}

impl WatchedSet {
    pub fn new(weth: Option<Address>) -> Self {
        Self {
            weth,
            ..Self::default()
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

    /// Every watched owner as the log topics that name it. The step holds this copy of the
    /// pointer only while it asks: the next change finds it unshared and edits it in place.
    pub fn owner_topics(&self) -> Arc<OwnerTopics> {
        self.owner_topics.clone()
    }

    /// The wallets in owner order, for a sweep to walk.
    pub fn by_owner(&self) -> &BTreeMap<Address, WalletWatch> {
        &self.wallets
    }

    /// Wallets with a stream open at `now` (as last vouched for).
    pub fn streamed(&self, now: u64) -> impl Iterator<Item = Address> + '_ {
        self.streams
            .range((now + 1, Address::ZERO)..)
            .map(|(_, owner)| *owner)
    }

    /// How many wallets have a stream open at `now`.
    pub fn streamed_count(&self, now: u64) -> usize {
        self.streams.range((now + 1, Address::ZERO)..).count()
    }

    /// Records when streams of `owner` vouch for it until (0: never).
    fn index_streaming(&mut self, owner: Address, before: u64, until: u64) {
        self.streams.remove(&(before, owner));
        if until > 0 {
            self.streams.insert((until, owner));
        }
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

    fn names(&self, wallet: &WalletWatch, token: &Address) -> bool {
        *token == NATIVE_TOKEN
            || self.weth == Some(*token)
            || wallet.named.binary_search(token).is_ok()
    }

    fn wallet_tracks(&self, wallet: &WalletWatch, token: &Address) -> bool {
        self.names(wallet, token) || self.in_lists(wallet, token, None)
    }

    /// Whether one of the wallet's lists (but `except`) holds `token`.
    fn in_lists(&self, wallet: &WalletWatch, token: &Address, except: Option<&str>) -> bool {
        wallet.lists.iter().any(|(url, _)| {
            Some(&**url) != except
                && self
                    .lists
                    .get(url)
                    .is_some_and(|l| l.tokens.contains(token))
        })
    }

    /// The tokens the wallet names by address: custom, discovered, native, WETH.
    fn named_tokens(&self, wallet: &WalletWatch) -> BTreeSet<Address> {
        let mut tokens: BTreeSet<Address> = wallet.named.iter().copied().collect();
        tokens.insert(NATIVE_TOKEN);
        tokens.extend(self.weth);
        tokens
    }

    /// Every token `owner` tracks.
    pub fn tokens(&self, owner: &Address) -> BTreeSet<Address> {
        let Some(wallet) = self.wallets.get(owner) else {
            return BTreeSet::new();
        };
        self.wallet_tokens(wallet)
    }

    fn wallet_tokens(&self, wallet: &WalletWatch) -> BTreeSet<Address> {
        let mut tokens = self.named_tokens(wallet);
        for (url, _) in wallet.lists.iter() {
            if let Some(list) = self.lists.get(url) {
                tokens.extend(list.tokens.iter().copied());
            }
        }
        tokens
    }

    /// Adds a token found by discovery to a wallet.
    pub fn add_discovered(&mut self, owner: &Address, token: Address) {
        if let Some(wallet) = self.wallets.get_mut(owner)
            && let Err(at) = wallet.named.binary_search(&token)
        {
            let mut named = wallet.named.to_vec();
            named.insert(at, token);
            wallet.named = named.into();
            wallet.discovered += 1;
        }
    }

    /// Whether `owner` tracks the allowance of `spender` (either kind) on `token`.
    pub fn tracks_allowance(&self, owner: &Address, token: &Address, spender: &Spender) -> bool {
        self.wallets.get(owner).is_some_and(|w| {
            *token != NATIVE_TOKEN && w.spenders.contains(spender) && self.wallet_tracks(w, token)
        })
    }

    /// The watched wallets after `after` (from the first when `None`) up to `through` (to the
    /// last when `None`), in order.
    pub fn owners_between(&self, after: Option<Address>, through: Option<Address>) -> Vec<Address> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let to = through.map_or(Bound::Unbounded, Bound::Included);
        self.wallets.range((from, to)).map(|(o, _)| *o).collect()
    }

    /// Wallets whose session expired at `now` (as last known), at most `limit`.
    pub fn expired(&self, now: u64, limit: usize) -> Vec<Address> {
        self.expiries
            .range(..(now + 1, Address::ZERO))
            .take(limit)
            .map(|(_, owner)| *owner)
            .collect()
    }

    /// The lists `session` follows that the set does not hold at the generation it read, or
    /// newer: what must be loaded before it is watched.
    pub fn lists_to_load(&self, session: &Session) -> Vec<String> {
        session
            .asked
            .token_lists
            .iter()
            .filter(|(url, read)| {
                self.lists
                    .get(url.as_str())
                    .is_none_or(|l| l.generation < **read)
            })
            .map(|(url, _)| url.clone())
            .collect()
    }

    /// Streams of `owner` vouch for it until `until` (at `now`); its session lives until
    /// `expires_at`. Returns whether the wallet is watched.
    pub fn set_streaming(
        &mut self,
        owner: &Address,
        until: u64,
        expires_at: u64,
        now: u64,
    ) -> bool {
        let Some(wallet) = self.wallets.get_mut(owner) else {
            return false;
        };
        let before = wallet.streaming_until;
        wallet.streaming_until = before.max(until);
        let after = wallet.streaming_until;
        if before <= now && after > now {
            self.fresh_streams.insert(*owner);
        }
        if expires_at > wallet.expires_at {
            self.expiries.remove(&(wallet.expires_at, *owner));
            wallet.expires_at = expires_at;
            self.expiries.insert((expires_at, *owner));
        }
        self.index_streaming(*owner, before, after);
        true
    }

    /// The wallets that began streaming since the last call (see `fresh_streams`).
    pub fn take_fresh_streams(&mut self) -> BTreeSet<Address> {
        std::mem::take(&mut self.fresh_streams)
    }

    /// Stops watching `owner`; whether it was watched.
    pub fn remove(&mut self, owner: &Address) -> bool {
        self.fresh_streams.remove(owner);
        match self.wallets.remove(owner) {
            Some(wallet) => {
                Arc::make_mut(&mut self.owner_topics).remove(owner);
                self.expiries.remove(&(wallet.expires_at, *owner));
                self.streams.remove(&(wallet.streaming_until, *owner));
                true
            }
            None => false,
        }
    }

    /// The wallet's watch, its list references and spender set shared with others'.
    fn watch_of(&mut self, session: &Session) -> WalletWatch {
        let lists: Vec<(Arc<str>, u64)> = session
            .asked
            .token_lists
            .iter()
            .map(|(url, generation)| {
                let url = match self.lists.get_key_value(url.as_str()) {
                    Some((known, _)) => known.clone(),
                    None => Arc::from(url.as_str()),
                };
                (url, *generation)
            })
            .collect();
        let lists = intern(&mut self.list_sets, lists.into());
        let spenders: Arc<[Spender]> = session.asked.spenders.iter().copied().collect();
        let spenders = Spenders(intern(&mut self.spender_sets, spenders));
        let named: Box<[Address]> = session
            .asked
            .custom_tokens
            .union(&session.discovered)
            .copied()
            .filter(|t| *t != NATIVE_TOKEN && self.weth != Some(*t))
            .collect();
        WalletWatch {
            lists,
            named,
            spenders,
            discover: session.asked.discover,
            discovered: session.discovered.len(),
            revisions: session.revisions(),
            read_block: session.read_block,
            expires_at: session.expires_at,
            streaming_until: session.streaming_until,
        }
    }

    /// Forgets what no watched wallet refers to any more: lists nobody follows, list
    /// references and spender sets nobody shares.
    pub fn prune(&mut self) {
        self.list_sets.retain(|l| Arc::strong_count(l) > 1);
        self.spender_sets.retain(|s| Arc::strong_count(s) > 1);
        let followed: HashSet<&str> = self
            .list_sets
            .iter()
            .flat_map(|lists| lists.iter().map(|(url, _)| &**url))
            .collect();
        let followed: HashSet<Arc<str>> = self
            .lists
            .keys()
            .filter(|url| followed.contains(&***url))
            .cloned()
            .collect();
        self.lists.retain(|url, _| followed.contains(url));
        self.previous.retain(|url, _| followed.contains(url));
    }
}

/// The shared copy of `value` (inserted when new).
fn intern<T: ?Sized + Eq + std::hash::Hash>(set: &mut HashSet<Arc<T>>, value: Arc<T>) -> Arc<T> {
    match set.get(&value) {
        Some(known) => known.clone(),
        None => {
            set.insert(value.clone());
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use live_balances::domain::model::{BalanceKey, SessionAsks};

    use super::changes::MAX_VALUES_LEARNED_BY_KEY;
    use super::*;

    const ALICE: Address = Address::repeat_byte(0xa1);
    const BOB: Address = Address::repeat_byte(0xb0);
    const CAROL: Address = Address::repeat_byte(0xc0);
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
            asked: SessionAsks {
                custom_tokens: custom.iter().map(|n| token(*n)).collect(),
                spenders: [Spender::Erc20(SPENDER)].into(),
                token_lists: lists.iter().map(|(u, g)| (u.to_string(), *g)).collect(),
                discover: false,
            },
            revision,
            complete_revision: revision,
            expires_at: 100,
            ..Session::new(1, owner, 0)
        }
    }

    /// A set watching `sessions` over `lists`, as listed at start.
    fn set(sessions: &[Session], lists: &[(&str, Arc<ListTokens>)]) -> WatchedSet {
        let mut set = WatchedSet::new(None);
        for (url, tokens) in lists {
            set.set_list(url, tokens.clone());
        }
        for session in sessions {
            set.upsert(session, true);
        }
        set
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
        assert!(watched.tracks_allowance(&ALICE, &token(1), &Spender::Erc20(SPENDER)));
        assert!(!watched.tracks_allowance(&ALICE, &NATIVE_TOKEN, &Spender::Erc20(SPENDER)));
        assert_eq!(watched.tokens(&ALICE).len(), 4);
    }

    #[test]
    fn a_first_load_is_the_baseline_learned_from_the_table() {
        let mut watched = set(&[], &[(URL, list(2, &[1]))]);
        let change = watched.upsert(&session(ALICE, 1, &[9], &[(URL, 1)]), true);
        assert_eq!(change.learn, [ALICE].into());
        assert!(change.first_reads.is_empty());
    }

    #[test]
    fn a_new_complete_session_is_learned_not_read() {
        let lists = [(URL, list(1, &[1, 2]))];
        let mut watched = set(&[session(BOB, 1, &[], &[(URL, 1)])], &lists);
        let change = watched.upsert(&session(ALICE, 1, &[9], &[(URL, 1)]), false);
        assert_eq!(change.learn, [ALICE].into());
        assert!(change.first_reads.is_empty(), "{change:?}");
        // The same session again changes nothing.
        let again = watched.upsert(&session(ALICE, 1, &[9], &[(URL, 1)]), false);
        assert_eq!(again, WatchChange::default());
    }

    #[test]
    fn a_list_version_reaches_every_follower_once_computed() {
        let mut watched = set(
            &[
                session(ALICE, 1, &[], &[(URL, 1)]),
                session(BOB, 1, &[2], &[(URL, 1)]),
            ],
            &[(URL, list(1, &[1, 2]))],
        );
        let change = watched.set_list(URL, list(2, &[1, 3]));
        assert!(change.learn.is_empty());
        // Token 3 is new to both; token 2 left the list but BOB names it himself.
        for owner in [ALICE, BOB] {
            assert!(change.first_reads.contains(&owner, &balance(3)));
            assert!(change.first_reads.contains(&owner, &allowance(3)));
        }
        assert_eq!(change.first_reads.len(), 4);
        assert_eq!(change.untracked, [(ALICE, token(2))].into());
        assert!(watched.tracks(&ALICE, &token(3)));
        assert!(!watched.tracks(&ALICE, &token(2)));
    }

    #[test]
    fn a_session_read_at_an_older_list_version_gets_the_difference() {
        // ALICE's session was created while the list was at generation 1; by the time the
        // poller sees it, the list is at 2.
        let mut watched = set(
            &[session(BOB, 1, &[], &[(URL, 1)])],
            &[(URL, list(1, &[1]))],
        );
        let moved = watched.set_list(URL, list(2, &[1, 4]));
        // BOB gets token 4 as a follower of the list's new version.
        assert!(moved.first_reads.contains(&BOB, &balance(4)));
        let change = watched.upsert(&session(ALICE, 1, &[], &[(URL, 1)]), false);
        assert!(change.first_reads.contains(&ALICE, &balance(4)));
        assert!(!change.first_reads.contains(&ALICE, &balance(1)));
    }

    #[test]
    fn a_permit2_spender_is_tracked_apart_from_an_erc20_one_and_read_in_both_layers() {
        let router = Spender::Permit2(BOB);
        let permit2_layer = Spender::Erc20(live_balances::domain::permit2::PERMIT2);
        let mut watched = set(&[session(ALICE, 1, &[1], &[])], &[]);
        let mut grown = session(ALICE, 2, &[1, 7], &[]);
        grown.asked.spenders.extend([router, permit2_layer]);
        grown.complete_revision = 1;
        let change = watched.upsert(&grown, false);
        // Permit2's allowance to the router and the token's to Permit2: for the new token and
        // for the token known before.
        for n in [1, 7] {
            for spender in [router, permit2_layer] {
                assert!(
                    change.first_reads.contains(&ALICE, &spender.key(token(n))),
                    "{spender:?} of {n}"
                );
            }
        }
        assert!(watched.tracks_allowance(&ALICE, &token(7), &router));
        // The same address as an ERC-20 spender is another value, not tracked.
        assert!(!watched.tracks_allowance(&ALICE, &token(7), &Spender::Erc20(BOB)));
        assert!(!watched.tracks_allowance(&ALICE, &NATIVE_TOKEN, &router));
    }

    #[test]
    fn an_unfinished_addition_is_read_by_the_poller() {
        let lists = [(URL, list(1, &[1]))];
        let mut watched = set(&[session(ALICE, 1, &[], &[(URL, 1)])], &lists);
        let mut grown = session(ALICE, 2, &[7], &[(URL, 1)]);
        grown.asked.spenders.insert(Spender::Erc20(BOB));
        grown.complete_revision = 1;
        let change = watched.upsert(&grown, false);
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
    fn a_token_added_to_a_known_wallet_is_learned_by_its_keys() {
        let lists = [(URL, list(1, &[1, 2]))];
        let mut watched = set(&[session(ALICE, 1, &[9], &[(URL, 1)])], &lists);
        let change = watched.upsert(&session(ALICE, 2, &[7, 9], &[(URL, 1)]), false);
        assert!(change.learn.is_empty(), "{change:?}");
        assert_eq!(
            change.learn_values,
            [(ALICE, [balance(7), allowance(7)].into())].into()
        );
        assert!(change.first_reads.is_empty());
        // A token its list brings already: nothing new to learn, nor to catch up on.
        let again = watched.upsert(&session(ALICE, 3, &[1, 7, 9], &[(URL, 1)]), false);
        assert_eq!(again, WatchChange::default());
    }

    #[test]
    fn a_new_spender_of_a_few_tokens_is_learned_by_key_of_many_whole() {
        let few = [(URL, list(1, &[1]))];
        let mut watched = set(&[session(ALICE, 1, &[9], &[(URL, 1)])], &few);
        let mut grown = session(ALICE, 2, &[9], &[(URL, 1)]);
        grown.asked.spenders.insert(Spender::Erc20(BOB));
        let change = watched.upsert(&grown, false);
        let by_bob = |n| BalanceKey::Allowance {
            token: token(n),
            spender: BOB,
        };
        assert!(change.learn.is_empty());
        assert_eq!(
            change.learn_values,
            [(ALICE, [by_bob(1), by_bob(9)].into())].into()
        );
        let many: Vec<u8> = (1..=MAX_VALUES_LEARNED_BY_KEY as u8).collect();
        let mut watched = set(
            &[session(ALICE, 1, &[], &[(URL, 1)])],
            &[(URL, list(1, &many))],
        );
        let mut grown = session(ALICE, 2, &[], &[(URL, 1)]);
        grown.asked.spenders.insert(Spender::Erc20(BOB));
        let change = watched.upsert(&grown, false);
        assert_eq!(change.learn, [ALICE].into());
        assert!(change.learn_values.is_empty());
    }

    #[test]
    fn a_list_followed_or_a_session_started_over_is_learned_whole() {
        let other = "https://lists.example/other.json";
        let lists = [(URL, list(1, &[1])), (other, list(1, &[2]))];
        let mut watched = set(&[session(ALICE, 1, &[9], &[(URL, 1)])], &lists);
        let change = watched.upsert(&session(ALICE, 2, &[9], &[(URL, 1), (other, 1)]), false);
        assert_eq!(change.learn, [ALICE].into());
        assert!(change.learn_values.is_empty());
        let change = watched.upsert(&session(ALICE, 3, &[8], &[(URL, 1), (other, 1)]), false);
        assert_eq!(change.learn, [ALICE].into());
        assert!(change.learn_values.is_empty());
    }

    #[test]
    fn the_owner_topics_follow_wallets_as_they_come_and_go_edited_in_place() {
        let mut watched = set(&[session(ALICE, 1, &[], &[])], &[]);
        let first = watched.owner_topics();
        assert_eq!(*first, OwnerTopics::new([ALICE].iter()));
        // A changed session of a wallet watched already leaves them as they are.
        watched.upsert(&session(ALICE, 2, &[7], &[]), false);
        assert!(Arc::ptr_eq(&first, &watched.owner_topics()));
        // A step's copy is gone before the next change: the change edits them in place.
        let at = Arc::as_ptr(&first);
        drop(first);
        watched.upsert(&session(BOB, 1, &[], &[]), false);
        watched.upsert(&session(CAROL, 1, &[], &[]), false);
        assert_eq!(Arc::as_ptr(&watched.owner_topics()), at);
        assert_eq!(watched.owner_topics().len(), 3);
        // A copy still held (a step asking) is left as it was.
        let held = watched.owner_topics();
        assert!(watched.remove(&ALICE));
        assert_eq!(held.len(), 3);
        let mut named: Vec<_> = [BOB, CAROL].iter().map(|o| o.into_word()).collect();
        let mut topics: Vec<_> = watched.owner_topics().iter().copied().collect();
        named.sort();
        topics.sort();
        assert_eq!(topics, named, "the topics name the owners watched");
        assert!(!watched.remove(&ALICE));
        assert_eq!(watched.owner_topics().len(), 2);
    }

    #[test]
    fn discovered_tokens_are_read_and_expired_wallets_found_by_expiry() {
        let mut watched = set(
            &[session(ALICE, 1, &[], &[]), session(BOB, 1, &[], &[])],
            &[],
        );
        let mut found = session(ALICE, 1, &[], &[]);
        found.discovered.insert(token(5));
        found.expires_at = 200;
        let change = watched.upsert(&found, false);
        assert!(change.learn.is_empty());
        assert!(change.first_reads.contains(&ALICE, &balance(5)));
        assert_eq!(watched.expired(150, 10), vec![BOB]);
        assert!(watched.set_streaming(&BOB, 400, 300, 150));
        assert!(watched.expired(150, 10).is_empty());
        assert_eq!(watched.expired(300, 10), vec![ALICE, BOB]);
        assert!(watched.remove(&BOB));
        assert_eq!(watched.expired(300, 10), vec![ALICE]);
        assert_eq!(watched.wallet(&ALICE).map(|w| w.streaming_until), Some(0));
        assert_eq!(
            watched.owners_between(Some(ALICE), None),
            Vec::<Address>::new()
        );
        assert_eq!(watched.owners_between(None, Some(ALICE)), vec![ALICE]);
    }

    #[test]
    fn a_stream_beginning_is_fresh_once_and_a_renewal_is_not() {
        let mut watched = set(
            &[session(ALICE, 1, &[], &[]), session(BOB, 1, &[], &[])],
            &[],
        );
        assert!(watched.set_streaming(&ALICE, 200, 0, 100));
        assert!(!watched.set_streaming(&Address::repeat_byte(0xc0), 200, 0, 100));
        assert_eq!(watched.take_fresh_streams(), BTreeSet::from([ALICE]));
        assert!(watched.take_fresh_streams().is_empty());
        // A renewal while the vouch runs is no new stream; one after it ended is.
        assert!(watched.set_streaming(&ALICE, 300, 0, 150));
        assert!(watched.take_fresh_streams().is_empty());
        assert!(watched.set_streaming(&ALICE, 500, 0, 400));
        assert!(watched.set_streaming(&BOB, 500, 0, 400));
        assert!(watched.remove(&BOB));
        assert_eq!(watched.take_fresh_streams(), BTreeSet::from([ALICE]));
    }

    #[test]
    fn a_session_started_over_forgets_what_it_no_longer_names() {
        let lists = [(URL, list(1, &[1]))];
        let mut watched = set(&[session(ALICE, 1, &[7], &[(URL, 1)])], &lists);
        let change = watched.upsert(&session(ALICE, 2, &[8], &[]), false);
        assert!(change.untracked.contains(&(ALICE, token(1))));
        assert!(change.untracked.contains(&(ALICE, token(7))));
        assert!(watched.tracks(&ALICE, &token(8)));
    }

    #[test]
    fn wallets_share_their_list_references_and_spender_sets() {
        let lists = [(URL, list(1, &[1]))];
        let mut watched = set(
            &[
                session(ALICE, 1, &[], &[(URL, 1)]),
                session(BOB, 1, &[], &[(URL, 1)]),
            ],
            &lists,
        );
        let (a, b) = (
            watched.wallet(&ALICE).unwrap(),
            watched.wallet(&BOB).unwrap(),
        );
        assert!(Arc::ptr_eq(&a.lists, &b.lists));
        assert!(Arc::ptr_eq(&a.spenders.0, &b.spenders.0));
        watched.remove(&ALICE);
        watched.remove(&BOB);
        watched.prune();
        assert!(watched.list(URL).is_none());
        assert!(watched.owners_between(None, None).is_empty());
    }
}
