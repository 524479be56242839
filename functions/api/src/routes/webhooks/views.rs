//! What the webhook routes take and answer: the subscription request, and a subscription as
//! its owner sees it (never its secret), with its parked deliveries.

use live_balances::domain::address::lower;
use live_balances::domain::webhook::{ParkedDelivery, Subscription, SubscriptionStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::State;

/// Parked deliveries listed in a subscription's `GET` (the count says how many there are).
const PARKED_LISTED: i32 = 20;

/// `POST /{chain_id}/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WebhookRequest {
    /// Where deliveries are POSTed: https, a public address (after DNS and every redirect)
    #[schema(example = "https://hooks.example.com/balances")]
    pub(super) url: String,
    /// Wallet addresses whose changes are delivered (at most `WEBHOOK_MAX_WALLETS`)
    pub(super) wallets: Vec<String>,
    /// Only changes of these tokens (absent or empty: every tracked token)
    #[serde(default)]
    pub(super) tokens: Vec<String>,
    /// Kinds delivered: `balance_update`, `allowance_update`, `permit2_allowance_update`,
    /// `order_status`
    pub(super) events: Vec<String>,
}

/// A parked delivery, as an operator sees it before replaying.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ParkedView {
    /// The delivery's idempotency id (its feed position)
    pub(super) id: String,
    pub(super) owner: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    /// Unix seconds
    pub(super) parked_at: u64,
    /// Attempts made (0: parked behind an earlier one without being tried)
    pub(super) attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) last_error: Option<String>,
}

/// A subscription as its owner sees it (never its secret): what was registered, and how its
/// deliveries fare.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    #[serde(flatten)]
    pub(super) definition: WebhookDefinition,
    #[serde(flatten)]
    pub(super) health: DeliveryHealth,
}

/// What a subscription was registered with.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookDefinition {
    pub(super) id: String,
    pub(super) chain_id: u64,
    pub(super) url: String,
    pub(super) wallets: Vec<String>,
    pub(super) tokens: Vec<String>,
    pub(super) events: Vec<String>,
    /// Unix seconds
    pub(super) created_at: u64,
}

/// How a subscription's deliveries fare: its status, its failures, what is parked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeliveryHealth {
    /// `active`; `backlogged` (a delivery failed after its retries: later ones queue behind
    /// it, and each new change first tries the oldest parked one); `disabled` (failing for
    /// longer than `WEBHOOK_DISABLE_AFTER_SECS`: nothing is sent until a replay)
    pub(super) status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) disabled_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) disabled_reason: Option<String>,
    /// Unix seconds of the first failure since the last successful delivery
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) failing_since: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) last_error: Option<String>,
    /// Parked deliveries waiting for a replay
    pub(super) parked_count: u64,
    /// The oldest parked deliveries (up to 20)
    pub(super) parked: Vec<ParkedView>,
}

/// The answer to a creation: the subscription and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookCreated {
    #[serde(flatten)]
    pub(super) view: WebhookView,
    /// Signs every delivery (Standard Webhooks, HMAC-SHA256); verify with it. Shown only here
    /// (and a new one by `POST …/secret`).
    pub(super) secret: String,
}

/// The answer to a secret rotation: the new secret, this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretRotated {
    pub(super) id: String,
    /// The new signing secret: every delivery is signed with it from now on.
    pub(super) secret: String,
    /// Unix seconds until which deliveries also carry a signature by the previous secret
    /// (`webhook-signature` holds both), so a receiver can switch at any time before then.
    pub(super) previous_secret_until: u64,
}

/// The answer to a replay request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayAccepted {
    pub(super) id: String,
    /// Parked deliveries to be sent again, in order
    pub(super) parked_count: u64,
}

/// The answer to a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookDeleted {
    pub(super) id: String,
    pub(super) deleted: bool,
}

pub(super) async fn view(state: &State, sub: &Subscription) -> Result<WebhookView, ApiError> {
    let parked = state
        .table
        .parked_webhook_deliveries(&sub.id, PARKED_LISTED)
        .await?;
    let parked_count = state.table.parked_webhook_count(&sub.id).await?;
    let (disabled_at, disabled_reason) = match &sub.health.status {
        SubscriptionStatus::Disabled { at, reason } => (Some(*at), Some(reason.clone())),
        _ => (None, None),
    };
    Ok(WebhookView {
        definition: WebhookDefinition {
            id: sub.id.clone(),
            chain_id: sub.chain_id,
            url: sub.url.clone(),
            wallets: sub.filter.wallets.iter().map(lower).collect(),
            tokens: sub.filter.tokens.iter().map(lower).collect(),
            events: sub
                .filter
                .kinds
                .iter()
                .map(|k| k.name().to_string())
                .collect(),
            created_at: sub.created_at,
        },
        health: DeliveryHealth {
            status: sub.health.status.name().to_string(),
            disabled_at,
            disabled_reason,
            failing_since: sub.health.failing_since,
            last_error: sub.health.last_error.clone(),
            parked_count,
            parked: parked.iter().map(parked_view).collect(),
        },
    })
}

fn parked_view(p: &ParkedDelivery) -> ParkedView {
    ParkedView {
        id: p.position.to_string(),
        owner: lower(&p.owner),
        kind: p.kind.clone(),
        parked_at: p.parked_at,
        attempts: p.attempts,
        last_error: p.last_error.clone(),
    }
}
