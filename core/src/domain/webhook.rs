//! Webhook subscriptions: a back end's standing request to be told, by signed HTTP POST, of
//! the changes in some wallets' feeds — which changes it wants, how a subscription that keeps
//! failing is parked and disabled, and the delivery's JSON body.
//!
//! Delivery follows the feed: every entry the fanout appends (whatever its kind) is delivered
//! to the subscriptions of its wallet that want its kind, with the entry's feed position as
//! the idempotency id. Signing is in [`crate::wire::webhook_signature`].

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use alloy::primitives::Address;
use serde::Serialize;

use crate::domain::address::lower;
use crate::domain::api_key::Tenant;
use crate::domain::model::{FeedEvent, FeedPosition};
use crate::runtime::sealing::SealedSecret;

/// The kinds of feed entries a subscription can ask for: the names of their SSE events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    BalanceUpdate,
    AllowanceUpdate,
    /// A Permit2 allowance changed (or its expiration passed).
    Permit2AllowanceUpdate,
    /// An open order going fillable or unfillable (appended by the fanout's order tracking).
    OrderStatus,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::BalanceUpdate,
        EventKind::AllowanceUpdate,
        EventKind::Permit2AllowanceUpdate,
        EventKind::OrderStatus,
    ];

    /// The event's name, as in SSE and in the delivery's `type`.
    pub fn name(self) -> &'static str {
        match self {
            Self::BalanceUpdate => "balance_update",
            Self::AllowanceUpdate => "allowance_update",
            Self::Permit2AllowanceUpdate => "permit2_allowance_update",
            Self::OrderStatus => "order_status",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every kind's name, comma-separated (what a refusal lists).
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a subscription is being delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// Deliveries go out as changes arrive.
    Active,
    /// A delivery failed after its retries and was parked: later ones are parked behind it (so
    /// the receiver still gets them in order), and each new batch first tries the oldest
    /// parked delivery once — when the target answers again, the backlog drains by itself.
    Backlogged,
    /// Failing for longer than the disable period: nothing is sent (changes are still parked)
    /// until an operator replays the subscription.
    Disabled { at: u64, reason: String },
}

impl SubscriptionStatus {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Backlogged => "backlogged",
            Self::Disabled { .. } => "disabled",
        }
    }
}

/// One webhook subscription: where to POST which changes of which wallets of one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// 32 lowercase hex characters, random.
    pub id: String,
    pub chain_id: u64,
    /// The target; checked against the destination rules when created and at every delivery.
    pub url: String,
    /// Whose it is: only API keys of this tenant see or change it (`None`: made before keys,
    /// no key's).
    pub tenant: Option<Tenant>,
    pub secrets: SigningSecrets,
    pub filter: SubscriptionFilter,
    /// Unix seconds.
    pub created_at: u64,
    pub health: DeliveryHealth,
    /// Replays asked for so far: bumping it is what starts a replay (the delivery function
    /// sees the change on the table's stream).
    pub replays: u64,
}

/// The keys that sign a subscription's deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSecrets {
    /// The signing key (`whsec_…`), sealed ([`crate::runtime::sealing`]): it signs deliveries
    /// and is no credential. Shown once, when created or rotated.
    pub current: SealedSecret,
    /// The key it replaced, still signing beside it until `Unix seconds` (a rotation's
    /// overlap): a receiver that has not switched yet still verifies every delivery.
    pub previous: Option<(SealedSecret, u64)>,
}

impl SigningSecrets {
    /// The sealed secrets that sign a delivery at `now`: the current one, and the one it
    /// replaced while the rotation's overlap runs.
    pub fn at(&self, now: u64) -> Vec<&SealedSecret> {
        let mut secrets = vec![&self.current];
        if let Some((previous, until)) = &self.previous
            && now < *until
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// Which changes a subscription is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionFilter {
    pub wallets: BTreeSet<Address>,
    /// Only changes of these tokens; empty: every token.
    pub tokens: BTreeSet<Address>,
    pub kinds: BTreeSet<EventKind>,
}

impl SubscriptionFilter {
    /// Whether a change of `kind` to `token` (when the change names one) of `owner`'s wallet
    /// is wanted.
    pub fn wants(&self, kind: EventKind, owner: &Address, token: Option<&Address>) -> bool {
        self.kinds.contains(&kind)
            && self.wallets.contains(owner)
            && (self.tokens.is_empty() || token.is_some_and(|t| self.tokens.contains(t)))
    }
}

/// How a subscription's deliveries are going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryHealth {
    pub status: SubscriptionStatus,
    /// Unix seconds of the first failure since the last successful delivery.
    pub failing_since: Option<u64>,
    pub last_error: Option<String>,
}

impl DeliveryHealth {
    /// Active, nothing failing.
    pub fn active() -> Self {
        Self {
            status: SubscriptionStatus::Active,
            failing_since: None,
            last_error: None,
        }
    }

    /// Whether a subscription that has been failing since `failing_since` is due to be
    /// disabled at `now`.
    pub fn disable_due(&self, now: u64, disable_after: Duration) -> bool {
        self.failing_since
            .is_some_and(|since| now.saturating_sub(since) >= disable_after.as_secs())
    }
}

/// A delivery that failed after its retries (or came while its subscription was backlogged or
/// disabled), kept in the table until it is replayed or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedDelivery {
    pub subscription_id: String,
    pub owner: Address,
    pub position: FeedPosition,
    pub kind: String,
    /// The delivery's JSON body, exactly as it is sent.
    pub body: String,
    /// Unix seconds.
    pub parked_at: u64,
    /// Attempts made so far (0: parked behind an earlier one without being tried).
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Most wallets a subscription may cover: it is written with its wallet index in one
/// transaction of at most 100 items.
pub const MAX_WALLETS_LIMIT: usize = 99;

/// The JSON body of one delivery: the change as its SSE event carries it, with what the
/// receiver needs to route and deduplicate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The feed position: the idempotency id (also the `webhook-id` header). The same change
    /// always has the same id, however often it is sent.
    pub id: String,
    /// The event kind: `balance_update`, `allowance_update`, `permit2_allowance_update`,
    /// `order_status`.
    #[serde(rename = "type")]
    pub kind: String,
    pub subscription_id: String,
    pub chain_id: u64,
    /// Lowercase 0x address of the wallet.
    pub owner: String,
    /// The SSE event's `data` for this change.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: crate::wire::sse::UpdateData,
}

impl Delivery {
    /// The delivery of feed event `event` to subscription `subscription_id`.
    pub fn of(subscription_id: &str, event: &FeedEvent) -> Self {
        let (kind, data) = crate::wire::sse::event_data(event);
        Self {
            id: event.position().to_string(),
            kind: kind.to_string(),
            subscription_id: subscription_id.to_string(),
            chain_id: event.chain_id(),
            owner: lower(&event.owner()),
            data,
        }
    }

    pub fn body(&self) -> String {
        // Serializing this plain struct cannot fail; an empty object is a safe fallback.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{BalanceKey, FeedEntry};
    use alloy::primitives::{B256, U256};

    fn subscription(tokens: &[Address], kinds: &[EventKind]) -> Subscription {
        Subscription {
            id: "0".repeat(32),
            chain_id: 1,
            url: "https://hooks.example/x".into(),
            tenant: None,
            secrets: SigningSecrets {
                current: SealedSecret::Legacy("whsec_x".into()),
                previous: None,
            },
            filter: SubscriptionFilter {
                wallets: [Address::repeat_byte(1)].into(),
                tokens: tokens.iter().copied().collect(),
                kinds: kinds.iter().copied().collect(),
            },
            created_at: 0,
            health: DeliveryHealth::active(),
            replays: 0,
        }
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::parse("balance"), None);
    }

    #[test]
    fn a_subscription_wants_its_wallets_kinds_and_tokens_only() {
        let owner = Address::repeat_byte(1);
        let token = Address::repeat_byte(2);
        let all = subscription(&[], &[EventKind::BalanceUpdate]).filter;
        assert!(all.wants(EventKind::BalanceUpdate, &owner, Some(&token)));
        assert!(all.wants(EventKind::BalanceUpdate, &owner, None));
        assert!(!all.wants(EventKind::AllowanceUpdate, &owner, Some(&token)));
        assert!(!all.wants(EventKind::BalanceUpdate, &Address::repeat_byte(3), None));
        let one = subscription(&[token], &[EventKind::BalanceUpdate]).filter;
        assert!(one.wants(EventKind::BalanceUpdate, &owner, Some(&token)));
        assert!(!one.wants(EventKind::BalanceUpdate, &owner, Some(&owner)));
        assert!(!one.wants(EventKind::BalanceUpdate, &owner, None));
    }

    #[test]
    fn a_rotated_out_secret_signs_until_its_overlap_ends() {
        let mut s = subscription(&[], &[EventKind::BalanceUpdate]).secrets;
        assert_eq!(s.at(100).len(), 1);
        s.previous = Some((SealedSecret::Legacy("whsec_old".into()), 200));
        assert_eq!(
            s.at(199),
            [&s.current, &SealedSecret::Legacy("whsec_old".into())]
        );
        assert_eq!(s.at(200), [&s.current]);
    }

    #[test]
    fn disabled_only_after_failing_for_the_whole_period() {
        let mut s = subscription(&[], &[EventKind::BalanceUpdate]).health;
        let day = Duration::from_secs(86_400);
        assert!(!s.disable_due(1_000_000, day));
        s.failing_since = Some(1_000_000);
        assert!(!s.disable_due(1_000_000 + 86_399, day));
        assert!(s.disable_due(1_000_000 + 86_400, day));
    }

    #[test]
    fn a_delivery_carries_the_sse_data_and_the_feed_position() {
        let entry = FeedEntry {
            position: FeedPosition::parse("42").unwrap(),
            chain_id: 31337,
            owner: Address::repeat_byte(0xab),
            key: BalanceKey::Balance {
                token: Address::repeat_byte(2),
            },
            value: U256::from(5),
            previous: Some(U256::from(7)),
            block: 9,
            tx_hash: Some(B256::repeat_byte(1)),
            version: 3,
        };
        let delivery = Delivery::of("abc", &FeedEvent::Value(entry));
        let body: serde_json::Value = serde_json::from_str(&delivery.body()).unwrap();
        assert_eq!(body["id"], format!("{:0>40}", 42));
        assert_eq!(body["type"], "balance_update");
        assert_eq!(body["subscriptionId"], "abc");
        assert_eq!(body["chainId"], 31337);
        assert_eq!(body["owner"], format!("0x{}", "ab".repeat(20)));
        assert_eq!(body["data"]["balance"], "5");
        assert_eq!(body["data"]["previousBalance"], "7");
        assert_eq!(body["data"]["blockNumber"], 9);
    }
}
