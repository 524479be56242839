//! Server-Sent Events: the wire shapes of every event and their framing.
//!
//! Amounts are decimal strings, addresses lowercase. Every data event carries an `id` (its
//! feed position) so `EventSource` can resume with `Last-Event-ID`; `ping` carries none, so it
//! never moves the client's position.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;

use alloy::primitives::{Address, U256};

use crate::address::lower;
use crate::model::{
    BalanceItem, BalanceKey, FeedEntry, FeedKind, FeedPosition, OrderStatusEntry, TokenRead,
};
use crate::order::{Fillability, Order, OrderState};
use crate::pairs::WalletPair;
use crate::token_metadata::TokenMetadata;

/// `all_balances`: the full state of a wallet's tracked values.
///
/// Every tracked token is in `balances` (zeros included) or, when it cannot be read, in
/// `errors`. `allowances` and `tokens` (metadata) hold every tracked token too while the
/// session is small (see [`WalletView::full_detail`]); for larger sessions they hold the
/// tokens the session names by address (custom, discovered, native, wrapped native) and every
/// token with a non-zero balance or allowance — a list token at zero has zero allowances and
/// its metadata is in the list the client named. `spenders` says whose allowances are
/// tracked: an absent allowance is zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AllBalances {
    pub balances: BTreeMap<String, String>,
    pub allowances: BTreeMap<String, BTreeMap<String, String>>,
    pub block_number: u64,
    /// Values whose read fails (reverting or non-standard token): token -> reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, String>,
    /// How to render each token's amounts, where known: token -> symbol, name, decimals.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, TokenMetadata>,
    /// The allowance spenders tracked for this wallet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spenders: Vec<String>,
    /// Every open order of the wallet with its fillability judged on these values (absent
    /// when it has none; expired orders are left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<OrderStatus>,
}

/// What a wallet's snapshot is built from.
pub struct WalletView<'a> {
    /// Every tracked token.
    pub tokens: &'a BTreeSet<Address>,
    pub spenders: &'a BTreeSet<Address>,
    /// Tokens the session names by address: always given in detail.
    pub named: &'a BTreeSet<Address>,
    /// The wallet's stored values (sparse: an absent value is zero).
    pub items: &'a [BalanceItem],
    /// Tokens whose reads fail on this chain for every holder.
    pub unreadable: &'a BTreeSet<Address>,
    pub metadata: &'a dyn Fn(&Address) -> Option<&'a TokenMetadata>,
    /// Whether every token gets its allowances and metadata (a small session), or only the
    /// named and the held ones.
    pub full_detail: bool,
    /// The newest block the wallet's values are known at, whatever the items say.
    pub block: u64,
}

impl fmt::Debug for WalletView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletView")
            .field("tokens", &self.tokens.len())
            .field("items", &self.items.len())
            .field("full_detail", &self.full_detail)
            .finish_non_exhaustive()
    }
}

impl WalletView<'_> {
    /// The stored values by key, and the tokens given in detail.
    fn detail(&self) -> (HashMap<BalanceKey, &TokenRead>, BTreeSet<Address>) {
        let values: HashMap<BalanceKey, &TokenRead> =
            self.items.iter().map(|i| (i.key, &i.read)).collect();
        let detailed = if self.full_detail {
            self.tokens.clone()
        } else {
            let held = self
                .items
                .iter()
                .filter(|i| i.read.value().is_some_and(|v| !v.is_zero()))
                .map(|i| i.key.token());
            self.named
                .iter()
                .copied()
                .chain(held)
                .filter(|t| self.tokens.contains(t))
                .collect()
        };
        (values, detailed)
    }
}

impl AllBalances {
    /// The snapshot of a wallet's tracked tokens: stored values where there are items, zero
    /// elsewhere; stored items of tokens no longer tracked are left out.
    pub fn of_wallet(view: &WalletView<'_>) -> Self {
        let (values, detailed) = view.detail();
        let mut snapshot = Self {
            block_number: view
                .items
                .iter()
                .filter(|i| view.tokens.contains(&i.key.token()))
                .map(|i| i.block)
                .max()
                .unwrap_or(0)
                .max(view.block),
            spenders: view.spenders.iter().map(lower).collect(),
            ..Self::default()
        };
        for token in view.tokens {
            let name = lower(token);
            let balance = values.get(&BalanceKey::Balance { token: *token });
            if view.unreadable.contains(token) || matches!(balance, Some(TokenRead::Failed)) {
                snapshot.errors.insert(name, "read_failed".into());
                continue;
            }
            let amount = balance.and_then(|r| r.value()).unwrap_or_default();
            snapshot.balances.insert(name.clone(), amount.to_string());
            if detailed.contains(token)
                && let Some(metadata) = (view.metadata)(token)
            {
                snapshot.tokens.insert(name.clone(), metadata.clone());
            }
            if *token == crate::NATIVE_TOKEN {
                continue;
            }
            for spender in view.spenders {
                let key = BalanceKey::Allowance {
                    token: *token,
                    spender: *spender,
                };
                let allowance = match values.get(&key) {
                    Some(TokenRead::Value(v)) => *v,
                    Some(TokenRead::Failed) => continue,
                    None => U256::ZERO,
                };
                if detailed.contains(token) || !allowance.is_zero() {
                    snapshot
                        .allowances
                        .entry(name.clone())
                        .or_default()
                        .insert(lower(spender), allowance.to_string());
                }
            }
        }
        snapshot
    }

    /// Adds the wallet's orders open at `now`, each judged on the wallet's stored values
    /// (sparse: an absent value is zero, an unreadable one counts as zero) at the snapshot's
    /// block.
    pub fn with_orders(mut self, orders: &[OrderState], items: &[BalanceItem], now: u64) -> Self {
        let value = |key: BalanceKey| {
            items
                .iter()
                .find(|i| i.key == key)
                .and_then(|i| i.read.value())
                .unwrap_or_default()
        };
        self.orders = orders
            .iter()
            .filter(|o| o.order.is_open(now))
            .map(|o| {
                let order = &o.order;
                let token = order.sell_token;
                let status = Fillability::of(
                    order.sell_amount,
                    value(BalanceKey::Balance { token }),
                    value(BalanceKey::Allowance {
                        token,
                        spender: order.spender,
                    }),
                );
                OrderStatus::new(order, &status, self.block_number)
            })
            .collect();
        self
    }
}

/// `balance_update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BalanceUpdate {
    pub address: String,
    pub balance: String,
    pub previous_balance: Option<String>,
    pub block_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
}

/// `allowance_update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AllowanceUpdate {
    pub address: String,
    pub spender: String,
    pub allowance: String,
    pub previous_allowance: Option<String>,
    pub block_number: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
}

/// `order_status`: an open order's fillability — when it was registered, and whenever a
/// balance or allowance change crossed its amount; also each entry of `all_balances.orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OrderStatus {
    pub order_id: String,
    pub sell_token: String,
    /// What the order still sells.
    pub sell_amount: String,
    pub spender: String,
    /// Unix seconds.
    pub valid_to: u64,
    /// Balance and allowance both cover `sellAmount`.
    pub fillable: bool,
    /// Which value is short: `balance`, `allowance` or `both`; `null` when fillable.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "balance"))]
    pub short: Option<&'static str>,
    /// How much more balance the order needs (`"0"` when the balance covers it).
    pub balance_shortfall: String,
    /// How much more allowance the order needs (`"0"` when the allowance covers it).
    pub allowance_shortfall: String,
    /// Block of the values the status was judged on.
    pub block_number: u64,
}

impl OrderStatus {
    pub fn new(order: &Order, status: &Fillability, block: u64) -> Self {
        Self {
            order_id: order.id.to_string(),
            sell_token: lower(&order.sell_token),
            sell_amount: order.sell_amount.to_string(),
            spender: lower(&order.spender),
            valid_to: order.valid_to,
            fillable: status.fillable(),
            short: status.short.map(|s| s.as_str()),
            balance_shortfall: status.balance_shortfall.to_string(),
            allowance_shortfall: status.allowance_shortfall.to_string(),
            block_number: block,
        }
    }
}

/// `ping`: the stream is alive (no `id`, so it never moves the client's position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ping {
    /// Unix seconds.
    pub time: u64,
}

/// `error`: the stream is about to end for the reason given.
// The data of `resync` (a pair starts over) as well. The OpenAPI document, and the TypeScript
// client generated from it, keep the schema's name and this description: `StreamError`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = StreamError))]
pub struct StreamNotice {
    pub code: String,
    pub message: String,
}

/// One SSE event, ready to frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    AllBalances {
        position: FeedPosition,
        snapshot: AllBalances,
    },
    Update(FeedEntry),
    OrderStatus(OrderStatusEntry),
    Ping {
        time: u64,
    },
    /// The client's `Last-Event-ID` is no longer in the feed: a fresh `all_balances` follows.
    Resync(StreamNotice),
    Error(StreamNotice),
    /// Only an `id:` line: moves the client's `Last-Event-ID` past feed entries it did not
    /// need (old news after a snapshot) without an event, so a reconnect does not replay
    /// them. `EventSource` takes the id of a block even when it dispatches nothing.
    Position(FeedPosition),
}

impl From<crate::model::FeedEvent> for SseEvent {
    fn from(event: crate::model::FeedEvent) -> Self {
        match event {
            crate::model::FeedEvent::Value(entry) => Self::Update(entry),
            crate::model::FeedEvent::Order(entry) => Self::OrderStatus(entry),
        }
    }
}

/// The pair an event of a multi-wallet stream is about, named in its data: `chainId` and
/// `owner` beside the single-wallet event's fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tagged<'a, T: Serialize> {
    chain_id: u64,
    owner: String,
    #[serde(flatten)]
    data: &'a T,
}

impl SseEvent {
    /// The event framed for the wire, ending with the blank line that dispatches it.
    pub fn encode(&self) -> String {
        self.render(None, None)
    }

    /// The event framed for a multi-wallet stream: its data names `pair` (stream-wide events
    /// — `ping`, a stream's own `error` — name none), and an event that carries an id carries
    /// the stream's composite `id` (see [`crate::stream_id`]) instead of its feed position.
    pub fn encode_in(&self, pair: Option<&WalletPair>, id: &str) -> String {
        self.render(pair, Some(id))
    }

    fn render(&self, pair: Option<&WalletPair>, stream_id: Option<&str>) -> String {
        let data = |value: &dyn ErasedJson| match pair {
            Some(pair) => value.tagged(pair),
            None => value.plain(),
        };
        let id = |position: &FeedPosition| stream_id.unwrap_or(position.as_str()).to_string();
        match self {
            Self::AllBalances { position, snapshot } => {
                frame("all_balances", Some(&id(position)), &data(snapshot))
            }
            Self::Update(entry) => {
                let (event, value) = update_data(entry);
                frame(event, Some(&id(&entry.position)), &data(&value))
            }
            Self::OrderStatus(entry) => {
                let status = OrderStatus::new(&entry.order, &entry.status, entry.block);
                frame("order_status", Some(&id(&entry.position)), &data(&status))
            }
            Self::Ping { time } => frame("ping", None, &data(&Ping { time: *time })),
            Self::Resync(e) => frame("resync", None, &data(e)),
            Self::Error(e) => frame("error", None, &data(e)),
            Self::Position(position) => format!("id: {}\n\n", id(position)),
        }
    }
}

/// The `data` of the SSE event of one feed entry: what a stream sends and what a webhook
/// delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum UpdateData {
    Balance(BalanceUpdate),
    Allowance(AllowanceUpdate),
    Order(OrderStatus),
}

/// The event name and the data of one feed event's SSE event: a value's change, or an order's
/// status.
pub fn event_data(event: &crate::model::FeedEvent) -> (&'static str, UpdateData) {
    match event {
        crate::model::FeedEvent::Value(entry) => update_data(entry),
        crate::model::FeedEvent::Order(entry) => (
            "order_status",
            UpdateData::Order(OrderStatus::new(&entry.order, &entry.status, entry.block)),
        ),
    }
}

/// The event name and the data of one feed entry's SSE event.
pub fn update_data(entry: &FeedEntry) -> (&'static str, UpdateData) {
    let tx_hash = entry.tx_hash.map(|h| h.to_string());
    let previous = entry.previous.map(|p| p.to_string());
    match (entry.kind(), entry.key) {
        (FeedKind::AllowanceUpdate, BalanceKey::Allowance { token, spender }) => (
            "allowance_update",
            UpdateData::Allowance(AllowanceUpdate {
                address: lower(&token),
                spender: lower(&spender),
                allowance: entry.value.to_string(),
                previous_allowance: previous,
                block_number: entry.block,
                tx_hash,
            }),
        ),
        _ => (
            "balance_update",
            UpdateData::Balance(BalanceUpdate {
                address: lower(&entry.key.token()),
                balance: entry.value.to_string(),
                previous_balance: previous,
                block_number: entry.block,
                tx_hash,
            }),
        ),
    }
}

/// Serializes an event's data plain or naming its pair (object-safe, so one closure serves
/// every data type).
trait ErasedJson {
    fn plain(&self) -> String;
    fn tagged(&self, pair: &WalletPair) -> String;
}

impl<T: Serialize> ErasedJson for T {
    fn plain(&self) -> String {
        json(self)
    }

    fn tagged(&self, pair: &WalletPair) -> String {
        json(&Tagged {
            chain_id: pair.chain_id,
            owner: lower(&pair.owner),
            data: self,
        })
    }
}

/// The `retry:` field: how long `EventSource` waits before reconnecting, in milliseconds.
pub fn retry_hint(millis: u64) -> String {
    format!("retry: {millis}\n\n")
}

fn json(value: &impl Serialize) -> String {
    // Serializing these plain structs cannot fail; an empty object is a safe fallback.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

/// Frames one event. Data containing newlines is split over several `data:` lines, which the
/// client joins back; an id or event name can never contain a newline here.
pub fn frame(event: &str, id: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str("event: ");
    out.push_str(event);
    out.push('\n');
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, B256, U256};

    fn entry(key: BalanceKey) -> FeedEntry {
        FeedEntry {
            position: FeedPosition::parse("7").unwrap(),
            chain_id: 1,
            owner: Address::repeat_byte(1),
            key,
            value: U256::from(1500000),
            previous: Some(U256::from(1000000)),
            block: 124,
            tx_hash: Some(B256::repeat_byte(0xab)),
            version: 1,
        }
    }

    #[test]
    fn frames_multiline_data_and_optional_id() {
        assert_eq!(
            frame("x", Some("1"), "a\nb"),
            "event: x\nid: 1\ndata: a\ndata: b\n\n"
        );
        assert_eq!(frame("ping", None, "{}"), "event: ping\ndata: {}\n\n");
        assert_eq!(retry_hint(3000), "retry: 3000\n\n");
        let position = FeedPosition::parse("42").unwrap();
        assert_eq!(
            SseEvent::Position(position).encode(),
            format!("id: {:0>40}\n\n", 42)
        );
    }

    #[test]
    fn balance_update_wire_shape() {
        let token = Address::repeat_byte(0xcd);
        let text = SseEvent::Update(entry(BalanceKey::Balance { token })).encode();
        let (head, data) = text.split_once("data: ").unwrap();
        assert_eq!(head, format!("event: balance_update\nid: {:0>40}\n", 7));
        let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
        assert_eq!(v["address"], format!("{token:#x}"));
        assert_eq!(v["balance"], "1500000");
        assert_eq!(v["previousBalance"], "1000000");
        assert_eq!(v["blockNumber"], 124);
        assert_eq!(v["txHash"], format!("{}", B256::repeat_byte(0xab)));
    }

    #[test]
    fn a_multi_wallet_stream_names_the_pair_and_carries_its_own_id() {
        let token = Address::repeat_byte(0xcd);
        let e = entry(BalanceKey::Balance { token });
        let pair = WalletPair {
            chain_id: e.chain_id,
            owner: e.owner,
        };
        let text = SseEvent::Update(e).encode_in(Some(&pair), "m1.0badf00d.7");
        assert!(
            text.starts_with("event: balance_update\nid: m1.0badf00d.7\n"),
            "{text}"
        );
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["chainId"], 1);
        assert_eq!(v["owner"], lower(&Address::repeat_byte(1)));
        assert_eq!(v["balance"], "1500000");
        assert_eq!(
            SseEvent::Position(FeedPosition::start()).encode_in(None, "m1.x"),
            "id: m1.x\n\n"
        );
        let ping = SseEvent::Ping { time: 5 }.encode_in(None, "m1.x");
        assert_eq!(
            ping, "event: ping\ndata: {\"time\":5}\n\n",
            "no id, no pair"
        );
    }

    #[test]
    fn allowance_update_wire_shape() {
        let key = BalanceKey::Allowance {
            token: Address::repeat_byte(2),
            spender: Address::repeat_byte(3),
        };
        let mut e = entry(key);
        e.previous = None;
        let text = SseEvent::Update(e).encode();
        assert!(text.starts_with("event: allowance_update\n"));
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["spender"], format!("{:#x}", Address::repeat_byte(3)));
        assert_eq!(v["allowance"], "1500000");
        assert!(v["previousAllowance"].is_null());
    }

    fn wallet_item(owner: Address, key: BalanceKey, read: TokenRead, block: u64) -> BalanceItem {
        BalanceItem {
            chain_id: 1,
            owner,
            key,
            read,
            block,
            tx_hash: None,
        }
    }

    #[test]
    fn a_sparse_wallet_lists_every_tracked_token_and_details_small_sessions() {
        let owner = Address::repeat_byte(1);
        let held = Address::repeat_byte(2);
        let zero = Address::repeat_byte(3);
        let dead = Address::repeat_byte(4);
        let gone = Address::repeat_byte(5);
        let spender = Address::repeat_byte(9);
        let tokens: BTreeSet<Address> = [held, zero, dead, crate::NATIVE_TOKEN].into();
        let items = [
            wallet_item(
                owner,
                BalanceKey::Balance { token: held },
                TokenRead::Value(U256::from(5)),
                7,
            ),
            // A token no longer tracked (its list dropped it): left out.
            wallet_item(
                owner,
                BalanceKey::Balance { token: gone },
                TokenRead::Value(U256::from(1)),
                9,
            ),
        ];
        let metadata = TokenMetadata::new("Z", "Zero", 6).unwrap();
        let lookup = |_: &Address| Some(&metadata);
        let spenders: BTreeSet<Address> = [spender].into();
        let named: BTreeSet<Address> = [crate::NATIVE_TOKEN].into();
        let unreadable: BTreeSet<Address> = [dead].into();
        let view = |full_detail| WalletView {
            tokens: &tokens,
            spenders: &spenders,
            named: &named,
            items: &items,
            unreadable: &unreadable,
            metadata: &lookup,
            full_detail,
            block: 8,
        };
        let full = AllBalances::of_wallet(&view(true));
        assert_eq!(full.balances[&lower(&held)], "5");
        assert_eq!(full.balances[&lower(&zero)], "0", "an absent value is zero");
        assert!(!full.balances.contains_key(&lower(&gone)));
        assert_eq!(full.errors[&lower(&dead)], "read_failed");
        assert_eq!(full.allowances[&lower(&zero)][&lower(&spender)], "0");
        assert!(!full.allowances.contains_key(&lower(&crate::NATIVE_TOKEN)));
        assert!(full.tokens.contains_key(&lower(&zero)));
        assert_eq!(
            full.block_number, 8,
            "the session's read block when items are older"
        );
        assert_eq!(full.spenders, vec![lower(&spender)]);

        // A large session: detail only for named and held tokens.
        let large = AllBalances::of_wallet(&view(false));
        assert_eq!(large.balances, full.balances);
        assert!(!large.allowances.contains_key(&lower(&zero)));
        assert_eq!(large.allowances[&lower(&held)][&lower(&spender)], "0");
        assert!(!large.tokens.contains_key(&lower(&zero)));
        assert!(large.tokens.contains_key(&lower(&held)));
        assert!(large.tokens.contains_key(&lower(&crate::NATIVE_TOKEN)));
    }

    #[test]
    fn snapshot_groups_balances_allowances_and_errors() {
        let owner = Address::repeat_byte(1);
        let token = Address::repeat_byte(2);
        let bad = Address::repeat_byte(4);
        let spender = Address::repeat_byte(3);
        let item = |key, read, block| BalanceItem {
            chain_id: 1,
            owner,
            key,
            read,
            block,
            tx_hash: None,
        };
        let items = [
            item(
                BalanceKey::Balance { token },
                TokenRead::Value(U256::from(5)),
                10,
            ),
            item(
                BalanceKey::Allowance { token, spender },
                TokenRead::Value(U256::from(9)),
                12,
            ),
            item(BalanceKey::Balance { token: bad }, TokenRead::Failed, 11),
        ];
        let usd = TokenMetadata::new("<b>USD</b>", "Dollar", 6).unwrap();
        let metadata = |t: &Address| (*t == token).then_some(&usd);
        let snap = AllBalances::of_wallet(&WalletView {
            tokens: &BTreeSet::from([token, bad]),
            spenders: &BTreeSet::from([spender]),
            named: &BTreeSet::new(),
            items: &items,
            unreadable: &BTreeSet::new(),
            metadata: &metadata,
            full_detail: true,
            block: 0,
        });
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["balances"][format!("{token:#x}")], "5");
        assert_eq!(
            v["tokens"][format!("{token:#x}")],
            serde_json::json!({"symbol": "<b>USD</b>", "name": "Dollar", "decimals": 6})
        );
        assert_eq!(
            v["allowances"][format!("{token:#x}")][format!("{spender:#x}")],
            "9"
        );
        assert_eq!(v["errors"][format!("{bad:#x}")], "read_failed");
        assert_eq!(v["blockNumber"], 12);
        let framed = SseEvent::AllBalances {
            position: FeedPosition::start(),
            snapshot: snap,
        }
        .encode();
        assert!(framed.starts_with(&format!("event: all_balances\nid: {}\n", "0".repeat(40))));
    }

    #[test]
    fn order_status_wire_shape() {
        use crate::order::OrderId;
        let order = Order {
            chain_id: 31337,
            owner: Address::repeat_byte(1),
            id: OrderId::parse("0xAB01").unwrap(),
            sell_token: Address::repeat_byte(0xcd),
            sell_amount: U256::from(100),
            spender: Address::repeat_byte(0xef),
            valid_to: 1_900_000_000,
        };
        let status = Fillability::of(U256::from(100), U256::from(60), U256::from(100));
        let entry = OrderStatusEntry {
            position: FeedPosition::parse("9").unwrap(),
            order: order.clone(),
            status,
            block: 130,
            version: 2,
        };
        let text = SseEvent::from(crate::model::FeedEvent::Order(entry)).encode();
        let (head, data) = text.split_once("data: ").unwrap();
        assert_eq!(head, format!("event: order_status\nid: {:0>40}\n", 9));
        let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "orderId": "0xab01",
                "sellToken": format!("{:#x}", Address::repeat_byte(0xcd)),
                "sellAmount": "100",
                "spender": format!("{:#x}", Address::repeat_byte(0xef)),
                "validTo": 1_900_000_000u64,
                "fillable": false,
                "short": "balance",
                "balanceShortfall": "40",
                "allowanceShortfall": "0",
                "blockNumber": 130,
            })
        );
        let fillable = OrderStatus::new(
            &order,
            &Fillability::of(U256::from(1), U256::from(1), U256::from(1)),
            5,
        );
        let v = serde_json::to_value(&fillable).unwrap();
        assert_eq!(
            (v["fillable"].clone(), v["short"].clone()),
            (serde_json::json!(true), serde_json::Value::Null)
        );
    }
}
