//! Domain types: sessions, tracked balance items, change-feed entries and chain cursors.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use alloy::primitives::{Address, B256, U256};
use thiserror::Error;

use crate::domain::order::{Fillability, Order};

/// What a set of browser clients asked to watch for one wallet on one chain. Shared by every
/// client of that wallet: what it tracks only ever grows until the session expires.
///
/// A session follows its token lists by reference: the tokens of a list live once per chain in
/// the list cache, and a session tracks whatever the list's current version holds. So a
/// session stays small whatever its lists hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub chain_id: u64,
    pub owner: Address,
    /// What its clients asked to track, every request's additions together.
    pub asked: SessionAsks,
    /// Tokens found by discovery.
    pub discovered: BTreeSet<Address>,
    /// Block at which the values of the latest addition were read.
    pub read_block: u64,
    /// How many additions changed the session: a write goes through only if the revision is
    /// still the one its request read, so concurrent requests never lose each other's tokens
    /// and the token limit holds exactly.
    pub revision: u64,
    /// The newest revision whose initial values are all stored. Below `revision`, an addition's
    /// values are still being written (or their writer failed): the poller reads them itself.
    pub complete_revision: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; past this the session is dropped by the poller and by TTL.
    pub expires_at: u64,
    /// Unix seconds until which an open stream vouches for the session (refreshed while it
    /// streams): wallets with a stream open are read more often where that costs per wallet.
    pub streaming_until: u64,
    /// The values the writer of a session that started over stored, every one not zero, when
    /// they were at most [`MAX_FIRST_VALUES`]: kept while that first revision is the session's
    /// latest (which a hold or keep-alive can make days). A poller new to the wallet learns a
    /// recent record instead of reading the table (see `FirstValues`).
    pub first_values: Option<FirstValues>,
}

/// Most values a session's first writer records in the session for the poller; a wallet
/// holding more is learned by a query of its values.
pub const MAX_FIRST_VALUES: usize = 100;

/// The non-zero values (and failed reads) the writer of a session's first revision stored,
/// read at the session's `read_block`. Shortly after that block, with the poller's catch-up
/// from it, they stand for what the table holds for the values the writer read: another writer
/// of them is a later revision (whose write drops the record; a record of another revision
/// than the session's is ignored) or a poller writing what the chain's logs changed since,
/// which the catch-up reads again. An old record, or a wallet with values the writer did not
/// read, is learned from the table instead. Zero is left out, as in the table.
pub type FirstValues = BTreeMap<BalanceKey, TokenRead>;

/// What the poller's background pass compares of a stored session with what it watches: its
/// revisions, how much it follows and found, and how long it lives. Not what it asks for: only
/// a session that differs needs that, and is read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMark {
    pub owner: Address,
    pub revisions: Revisions,
    /// Tokens discovery found (`Session::discovered`).
    pub discovered: usize,
    /// Lists followed (`SessionAsks::token_lists`).
    pub lists: usize,
    pub expires_at: u64,
    pub streaming_until: u64,
}

/// Where a session's writers stand: its latest revision, and the newest whose values are all
/// stored. What a poller compares to tell that a session changed, and waits on before it
/// learns a wallet's values from the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revisions {
    pub latest: u64,
    pub complete: u64,
}

impl Revisions {
    /// Whether every addition's values are stored: no writer is still storing what it read.
    pub fn values_stored(self) -> bool {
        self.complete >= self.latest
    }
}

impl Session {
    /// Where this session's writers stand.
    pub fn revisions(&self) -> Revisions {
        Revisions {
            latest: self.revision,
            complete: self.complete_revision,
        }
    }

    /// What the background pass compares of this session.
    pub fn mark(&self) -> SessionMark {
        SessionMark {
            owner: self.owner,
            revisions: self.revisions(),
            discovered: self.discovered.len(),
            lists: self.asked.token_lists.len(),
            expires_at: self.expires_at,
            streaming_until: self.streaming_until,
        }
    }

    /// A new, empty session (before its first addition is applied).
    pub fn new(chain_id: u64, owner: Address, now: u64) -> Self {
        Self {
            chain_id,
            owner,
            asked: SessionAsks::default(),
            discovered: BTreeSet::new(),
            read_block: 0,
            revision: 0,
            complete_revision: 0,
            created_at: now,
            expires_at: now,
            streaming_until: 0,
            first_values: None,
        }
    }

    /// Every token the session tracks, given the current tokens of each list it follows: its
    /// lists' tokens, its custom and discovered tokens, the native currency, and the chain's
    /// wrapped native token when there is one. A list not known (yet) contributes nothing.
    pub fn tracked_tokens<'a>(
        &self,
        list_tokens: impl Fn(&str) -> Option<&'a [Address]>,
        weth: Option<Address>,
    ) -> BTreeSet<Address> {
        let mut tokens: BTreeSet<Address> = self
            .asked
            .token_lists
            .keys()
            .filter_map(|url| list_tokens(url))
            .flatten()
            .copied()
            .collect();
        tokens.extend(self.named_tokens(weth));
        tokens
    }

    /// The tokens the session names by address rather than through a list: custom and
    /// discovered tokens, the native currency, the chain's wrapped native token.
    pub fn named_tokens(&self, weth: Option<Address>) -> BTreeSet<Address> {
        let mut tokens: BTreeSet<Address> = self
            .asked
            .custom_tokens
            .union(&self.discovered)
            .copied()
            .collect();
        tokens.insert(crate::NATIVE_TOKEN);
        tokens.extend(weth);
        tokens
    }

    /// The addresses of its ERC-20 allowance spenders.
    pub fn erc20_spenders(&self) -> impl Iterator<Item = &Address> {
        self.asked.spenders.iter().filter_map(|s| match s {
            Spender::Erc20(a) => Some(a),
            Spender::Permit2(_) => None,
        })
    }

    /// The addresses of its Permit2 spenders.
    pub fn permit2_spenders(&self) -> impl Iterator<Item = &Address> {
        self.asked.spenders.iter().filter_map(|s| match s {
            Spender::Permit2(a) => Some(a),
            Spender::Erc20(_) => None,
        })
    }

    /// The session with `addition` applied (nothing is ever removed).
    pub fn with(&self, addition: &SessionAsks) -> Self {
        let mut next = self.clone();
        next.asked.add(addition);
        // The record is of the first revision's values only.
        next.first_values = None;
        next
    }
}

/// What clients ask a wallet's session to track: one request's addition, or a session's every
/// addition together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionAsks {
    /// Tokens asked for by address (`customTokens`).
    pub custom_tokens: BTreeSet<Address>,
    /// Whose allowances are tracked, for every tracked token.
    pub spenders: BTreeSet<Spender>,
    /// Token-list URLs followed (the list cache's key), each with the generation of the list
    /// whose tokens were read when the session started following it (0: not recorded).
    pub token_lists: BTreeMap<String, u64>,
    /// Opt-in discovery: a `Transfer` into the wallet of a token it does not track starts
    /// tracking that token.
    pub discover: bool,
}

impl SessionAsks {
    /// Adds what `more` asks (nothing is ever removed; a list keeps the generation it was
    /// first followed at).
    pub fn add(&mut self, more: &SessionAsks) {
        self.custom_tokens
            .extend(more.custom_tokens.iter().copied());
        self.spenders.extend(more.spenders.iter().copied());
        for (url, generation) in &more.token_lists {
            self.token_lists.entry(url.clone()).or_insert(*generation);
        }
        self.discover |= more.discover;
    }
}

/// Whose allowance a session tracks, and through what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Spender {
    /// The token's own `allowance(owner, spender)`.
    Erc20(Address),
    /// Permit2's `allowance(owner, token, spender)` (see [`crate::domain::permit2`]); the token's
    /// allowance to Permit2 itself is an [`Spender::Erc20`] of [`crate::domain::permit2::PERMIT2`].
    Permit2(Address),
}

impl Spender {
    /// The value this spender's allowance of `token` is.
    pub fn key(self, token: Address) -> BalanceKey {
        match self {
            Self::Erc20(spender) => BalanceKey::Allowance { token, spender },
            Self::Permit2(spender) => BalanceKey::Permit2 { token, spender },
        }
    }

    pub fn address(self) -> Address {
        match self {
            Self::Erc20(a) | Self::Permit2(a) => a,
        }
    }
}

/// Which value of a wallet a [`BalanceItem`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BalanceKey {
    /// `balanceOf(owner)` of `token`, or the native balance for [`crate::NATIVE_TOKEN`].
    Balance { token: Address },
    /// `allowance(owner, spender)` of `token`.
    Allowance { token: Address, spender: Address },
    /// Permit2's allowance of `token` to `spender`, as a [`crate::domain::permit2::Permit2Allowance`]
    /// word.
    Permit2 { token: Address, spender: Address },
}

impl BalanceKey {
    pub fn token(&self) -> Address {
        match self {
            Self::Balance { token }
            | Self::Allowance { token, .. }
            | Self::Permit2 { token, .. } => *token,
        }
    }

    /// The spender whose allowance this is (`None` for a balance).
    pub fn spender(&self) -> Option<Spender> {
        match *self {
            Self::Balance { .. } => None,
            Self::Allowance { spender, .. } => Some(Spender::Erc20(spender)),
            Self::Permit2 { spender, .. } => Some(Spender::Permit2(spender)),
        }
    }
}

/// The outcome of reading one value on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRead {
    Value(U256),
    /// The call reverted or returned something that is not a uint256.
    Failed,
}

impl TokenRead {
    pub fn value(&self) -> Option<U256> {
        match self {
            Self::Value(v) => Some(*v),
            Self::Failed => None,
        }
    }
}

/// One tracked value of one wallet, as last read on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceItem {
    pub chain_id: u64,
    pub owner: Address,
    pub key: BalanceKey,
    pub read: TokenRead,
    /// Block the value was read at.
    pub block: u64,
    /// The last transaction known to have touched it, when a log told us.
    pub tx_hash: Option<B256>,
}

/// Position in an owner's change feed; the SSE `id`. It is the DynamoDB stream sequence number
/// of the change, zero-padded to a fixed width so that string order is numeric order: positions
/// of one owner increase with time, and a record delivered twice maps to the same position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedPosition(String);

/// Width of a [`FeedPosition`]: DynamoDB stream sequence numbers have at most 40 digits.
pub const FEED_POSITION_WIDTH: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("feed position must be 1 to {FEED_POSITION_WIDTH} decimal digits")]
pub struct FeedPositionError;

impl FeedPosition {
    /// The position before every entry.
    pub fn start() -> Self {
        Self("0".repeat(FEED_POSITION_WIDTH))
    }

    /// Parses a stream sequence number or a client's `Last-Event-ID`.
    pub fn parse(input: &str) -> Result<Self, FeedPositionError> {
        let digits = input.trim();
        if digits.is_empty()
            || digits.len() > FEED_POSITION_WIDTH
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(FeedPositionError);
        }
        Ok(Self(format!("{digits:0>FEED_POSITION_WIDTH$}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeedPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Kind of change a [`FeedEntry`] reports; names the SSE event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    BalanceUpdate,
    AllowanceUpdate,
    Permit2AllowanceUpdate,
}

/// One change of one value of one wallet, as appended to that wallet's change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub position: FeedPosition,
    pub chain_id: u64,
    pub owner: Address,
    pub key: BalanceKey,
    pub value: U256,
    /// `None` when the value was not tracked (or not readable) before.
    pub previous: Option<U256>,
    pub block: u64,
    pub tx_hash: Option<B256>,
    /// The balance item's version after this change: orders it against a snapshot of the
    /// item exactly (0 for entries from before versions were counted).
    pub version: u64,
}

impl FeedEntry {
    pub fn kind(&self) -> FeedKind {
        match self.key {
            BalanceKey::Balance { .. } => FeedKind::BalanceUpdate,
            BalanceKey::Allowance { .. } => FeedKind::AllowanceUpdate,
            BalanceKey::Permit2 { .. } => FeedKind::Permit2AllowanceUpdate,
        }
    }
}

/// One `order_status` entry of a wallet's change feed: an order's fillability as it changed
/// (or as it was registered), at its own feed position — the sequence number of the order
/// item's own stream record, so it is ordered with the wallet's value changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderStatusEntry {
    pub position: FeedPosition,
    pub order: Order,
    pub status: Fillability,
    /// Block of the values the status was judged on.
    pub block: u64,
    /// The order item's version after this change (see [`crate::domain::order::OrderState::version`]).
    pub version: u64,
}

/// One entry of a wallet's change feed: a value's change or an order's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    Value(FeedEntry),
    Order(OrderStatusEntry),
}

impl FeedEvent {
    pub fn position(&self) -> &FeedPosition {
        match self {
            Self::Value(entry) => &entry.position,
            Self::Order(entry) => &entry.position,
        }
    }

    pub fn chain_id(&self) -> u64 {
        match self {
            Self::Value(entry) => entry.chain_id,
            Self::Order(entry) => entry.order.chain_id,
        }
    }

    pub fn owner(&self) -> Address {
        match self {
            Self::Value(entry) => entry.owner,
            Self::Order(entry) => entry.order.owner,
        }
    }
}

/// How far the poller got on one chain: the last fully processed block, and the hashes of the
/// blocks before it so a reorg can be rewound to the common ancestor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCursor {
    pub chain_id: u64,
    pub block: u64,
    pub hash: B256,
    /// `(number, hash)` of recent processed blocks, oldest first, `block` last.
    pub recent: Vec<(u64, B256)>,
    /// Unix seconds of the last write: the poller's heartbeat.
    pub updated_at: u64,
}

/// How many recent block hashes a cursor keeps: the deepest reorg rewound exactly.
pub const CURSOR_RECENT_BLOCKS: usize = 64;

impl ChainCursor {
    /// The cursor after processing `block` with `hash`, keeping a bounded history.
    pub fn advanced(&self, block: u64, hash: B256, now: u64) -> Self {
        let mut recent: Vec<(u64, B256)> = self
            .recent
            .iter()
            .copied()
            .filter(|(n, _)| *n < block)
            .collect();
        recent.push((block, hash));
        let excess = recent.len().saturating_sub(CURSOR_RECENT_BLOCKS);
        recent.drain(..excess);
        Self {
            chain_id: self.chain_id,
            block,
            hash,
            recent,
            updated_at: now,
        }
    }

    /// The hash recorded for `number`, if it is still in the history.
    pub fn hash_at(&self, number: u64) -> Option<B256> {
        self.recent
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, h)| *h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_positions_order_numerically() {
        let a = FeedPosition::parse("99").unwrap();
        let b = FeedPosition::parse("100").unwrap();
        assert!(a < b);
        assert_eq!(a.as_str().len(), FEED_POSITION_WIDTH);
        assert!(FeedPosition::start() < a);
        assert_eq!(FeedPosition::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn feed_position_rejects_garbage() {
        for bad in ["", "-1", "1e5", "abc", "0x10", &"9".repeat(41), "1 2"] {
            assert!(FeedPosition::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_session_tracks_its_lists_named_tokens_native_and_weth_and_only_grows() {
        let list = [Address::repeat_byte(1), Address::repeat_byte(2)];
        let custom = Address::repeat_byte(3);
        let weth = Address::repeat_byte(4);
        let session = Session::new(1, Address::repeat_byte(9), 0).with(&SessionAsks {
            custom_tokens: [custom].into(),
            spenders: [Spender::Erc20(Address::repeat_byte(5))].into(),
            token_lists: [("https://a".to_string(), 2)].into(),
            discover: true,
        });
        let tokens =
            session.tracked_tokens(|url| (url == "https://a").then_some(&list[..]), Some(weth));
        assert_eq!(
            tokens,
            [list[0], list[1], custom, weth, crate::NATIVE_TOKEN].into()
        );
        // A list not loaded contributes nothing; an addition never removes anything, and a
        // list already followed keeps the generation first read.
        assert_eq!(session.tracked_tokens(|_| None, None).len(), 2);
        let grown = session.with(&SessionAsks {
            token_lists: [("https://a".to_string(), 7)].into(),
            ..Default::default()
        });
        assert_eq!(grown.asked.token_lists["https://a"], 2);
        assert!(grown.asked.discover);
        assert_eq!(grown.asked.custom_tokens, session.asked.custom_tokens);
    }

    #[test]
    fn cursor_keeps_bounded_history_and_drops_rewound_blocks() {
        let mut cursor = ChainCursor {
            chain_id: 1,
            block: 0,
            hash: B256::ZERO,
            recent: vec![],
            updated_at: 0,
        };
        for n in 1..=100u64 {
            cursor = cursor.advanced(n, B256::with_last_byte(n as u8), n);
        }
        assert_eq!(cursor.recent.len(), CURSOR_RECENT_BLOCKS);
        assert_eq!(
            cursor.recent.last(),
            Some(&(100, B256::with_last_byte(100)))
        );
        // Re-processing block 90 after a rewind forgets the old 90..=100.
        let rewound = cursor.advanced(90, B256::repeat_byte(0xaa), 101);
        assert_eq!(rewound.recent.last(), Some(&(90, B256::repeat_byte(0xaa))));
        assert_eq!(rewound.hash_at(95), None);
        assert_eq!(rewound.hash_at(89), Some(B256::with_last_byte(89)));
    }
}

#[cfg(test)]
mod props {
    //! Property tests of `Last-Event-ID` / sequence-number parsing: no panic, one canonical
    //! position per number, string order equals numeric order.

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn never_panics_and_accepts_only_decimal_digits(input in "\\PC{0,48}|[0-9 ]{0,45}") {
            let digits = input.trim();
            let valid = !digits.is_empty()
                && digits.len() <= FEED_POSITION_WIDTH
                && digits.bytes().all(|b| b.is_ascii_digit());
            match FeedPosition::parse(&input) {
                Ok(p) => {
                    prop_assert!(valid, "{:?}", input);
                    prop_assert_eq!(p.as_str().len(), FEED_POSITION_WIDTH);
                    prop_assert!(p.as_str().ends_with(digits));
                }
                Err(FeedPositionError) => prop_assert!(!valid, "{:?}", input),
            }
        }

        #[test]
        fn order_of_positions_is_numeric_order(a: u128, b: u128) {
            let pa = FeedPosition::parse(&a.to_string()).unwrap();
            let pb = FeedPosition::parse(&b.to_string()).unwrap();
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
        }

        /// A client echoing an id back with zero padding or surrounding whitespace resumes from
        /// the same position; the position itself round-trips.
        #[test]
        fn padded_spellings_are_the_same_position(
            n: u64,
            zeros in 0usize..8,
            space in prop::sample::select(vec!["", " ", "\t", "\r\n"]),
        ) {
            let plain = FeedPosition::parse(&n.to_string()).unwrap();
            let padded = format!("{space}{}{n}{space}", "0".repeat(zeros));
            prop_assert_eq!(FeedPosition::parse(&padded).unwrap(), plain.clone());
            prop_assert_eq!(FeedPosition::parse(plain.as_str()).unwrap(), plain);
        }

        #[test]
        fn signs_exponents_and_hex_are_refused(n: u64, form in 0usize..5) {
            let spelled = match form {
                0 => format!("-{n}"),
                1 => format!("+{n}"),
                2 => format!("{n}e1"),
                3 => format!("0x{n:x}"),
                _ => format!("{n}.0"),
            };
            prop_assert!(FeedPosition::parse(&spelled).is_err(), "{}", spelled);
        }
    }
}
