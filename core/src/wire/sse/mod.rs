//! Server-Sent Events: the wire shapes of every event and their framing; building a wallet's
//! `all_balances` from its stored values is [`snapshot`]'s.
//!
//! Amounts are decimal strings, addresses lowercase. Every data event carries an `id` (its
//! feed position) so `EventSource` can resume with `Last-Event-ID`; `ping` carries none, so it
//! never moves the client's position.

mod snapshot;

pub use snapshot::WalletView;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::address::lower;
use crate::domain::model::{
    BalanceKey, FeedEntry, FeedKind, FeedPosition, OrderStatusEntry, Spender,
};
use crate::domain::order::{Fillability, Order};
use crate::domain::permit2::Permit2Allowance;
use crate::domain::token_metadata::TokenMetadata;
use crate::feed::pairs::WalletPair;

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
    /// Permit2 allowances, token -> spender -> allowance, held like `allowances` (an absent one
    /// is never set: zero amount, expiration and nonce).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub permit2: BTreeMap<String, BTreeMap<String, Permit2Terms>>,
    /// The spenders whose Permit2 allowances are tracked for this wallet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permit2_spenders: Vec<String>,
    /// Every open order of the wallet with its fillability judged on these values (absent
    /// when it has none; expired orders are left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub orders: Vec<OrderStatus>,
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

/// One Permit2 allowance: what the spender may move through Permit2 and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Permit2Terms {
    pub amount: String,
    /// Unix seconds; past it Permit2 refuses to spend the amount.
    pub expiration: u64,
    /// The nonce the owner's next signed permit for this spender must carry.
    pub nonce: u64,
    /// The block's time is past `expiration` and the amount is not zero: nothing can be spent
    /// until the owner approves again.
    pub expired: bool,
}

impl From<Permit2Allowance> for Permit2Terms {
    fn from(a: Permit2Allowance) -> Self {
        Self {
            amount: a.amount.to_string(),
            expiration: a.expiration,
            nonce: a.nonce,
            expired: a.expired,
        }
    }
}

/// `permit2_allowance_update`: a Permit2 allowance changed — approved, permitted, spent,
/// locked down, its nonce moved, or its expiration passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Permit2AllowanceUpdate {
    /// The token.
    pub address: String,
    pub spender: String,
    #[serde(flatten)]
    pub terms: Permit2Terms,
    /// The allowance before (`null` when it was not tracked before).
    pub previous: Option<Permit2Terms>,
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
    /// How the spender spends: `erc20` (the token's allowance) or `permit2` (the token's
    /// allowance to Permit2, then Permit2's own to the spender).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "erc20"))]
    pub approval: &'static str,
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
            spender: lower(&order.spender.address()),
            approval: approval_name(order.spender),
            valid_to: order.valid_to,
            fillable: status.fillable(),
            short: status.short.map(|s| s.as_str()),
            balance_shortfall: status.balance_shortfall.to_string(),
            allowance_shortfall: status.allowance_shortfall.to_string(),
            block_number: block,
        }
    }
}

/// The wire name of how a spender spends.
pub fn approval_name(spender: Spender) -> &'static str {
    match spender {
        Spender::Erc20(_) => "erc20",
        Spender::Permit2(_) => "permit2",
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

impl From<crate::domain::model::FeedEvent> for SseEvent {
    fn from(event: crate::domain::model::FeedEvent) -> Self {
        match event {
            crate::domain::model::FeedEvent::Value(entry) => Self::Update(entry),
            crate::domain::model::FeedEvent::Order(entry) => Self::OrderStatus(entry),
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
    /// the stream's composite `id` (see [`crate::feed::stream_id`]) instead of its feed position.
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
    Permit2Allowance(Permit2AllowanceUpdate),
    Order(OrderStatus),
}

/// The event name and the data of one feed event's SSE event: a value's change, or an order's
/// status.
pub fn event_data(event: &crate::domain::model::FeedEvent) -> (&'static str, UpdateData) {
    match event {
        crate::domain::model::FeedEvent::Value(entry) => update_data(entry),
        crate::domain::model::FeedEvent::Order(entry) => (
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
        (FeedKind::Permit2AllowanceUpdate, BalanceKey::Permit2 { token, spender }) => (
            "permit2_allowance_update",
            UpdateData::Permit2Allowance(Permit2AllowanceUpdate {
                address: lower(&token),
                spender: lower(&spender),
                terms: Permit2Allowance::from_word(entry.value).into(),
                previous: entry
                    .previous
                    .map(|p| Permit2Allowance::from_word(p).into()),
                block_number: entry.block,
                tx_hash,
            }),
        ),
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

    #[test]
    fn permit2_allowance_update_wire_shape_unpacks_the_word() {
        let key = BalanceKey::Permit2 {
            token: Address::repeat_byte(2),
            spender: Address::repeat_byte(3),
        };
        let live = Permit2Allowance {
            amount: U256::from(700),
            expiration: 1_900_000_000,
            nonce: 4,
            expired: false,
        };
        let mut e = entry(key);
        e.value = Permit2Allowance {
            expired: true,
            ..live
        }
        .word();
        e.previous = Some(live.word());
        let text = SseEvent::Update(e).encode();
        assert!(
            text.starts_with("event: permit2_allowance_update\n"),
            "{text}"
        );
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["address"], format!("{:#x}", Address::repeat_byte(2)));
        assert_eq!(v["spender"], format!("{:#x}", Address::repeat_byte(3)));
        assert_eq!(v["amount"], "700");
        assert_eq!(v["expiration"], 1_900_000_000u64);
        assert_eq!(v["nonce"], 4);
        assert_eq!(v["expired"], true);
        assert_eq!(
            v["previous"],
            serde_json::json!({"amount": "700", "expiration": 1_900_000_000u64, "nonce": 4, "expired": false})
        );
    }

    #[test]
    fn order_status_wire_shape() {
        use crate::domain::order::OrderId;
        let order = Order {
            chain_id: 31337,
            owner: Address::repeat_byte(1),
            id: OrderId::parse("0xAB01").unwrap(),
            sell_token: Address::repeat_byte(0xcd),
            sell_amount: U256::from(100),
            spender: Spender::Erc20(Address::repeat_byte(0xef)),
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
        let text = SseEvent::from(crate::domain::model::FeedEvent::Order(entry)).encode();
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
                "approval": "erc20",
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
