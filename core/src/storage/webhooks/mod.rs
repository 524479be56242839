//! Webhook subscriptions in the table: the subscription, the per-wallet index the delivery
//! function looks subscriptions up by, what each subscription got delivered, and its parked
//! deliveries (their keys are in `keys.rs`, with the rest of the table's layout).
//!
//! A subscription and its index items are written and deleted in one transaction, so the
//! delivery function never finds half a subscription.
//!
//! Files: `records` (the items), `subscriptions` (creating, reading, deleting a subscription
//! and the hold on its wallets), `deliveries` (what was delivered, what is parked, failures,
//! the drain lease and the status a delivery run moves a subscription through).

mod deliveries;
mod records;
mod subscriptions;

use super::{StreamImage, keys};

pub use subscriptions::WebhookCreation;

/// The subscription whose replay an operator asked for, when a stream record is that request:
/// a subscription item whose replay count went up.
pub fn webhook_replay_requested(old: &StreamImage, new: &StreamImage) -> Option<String> {
    let text = |image: &StreamImage, name: &str| match image.get(name) {
        Some(serde_dynamo::AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    let count = |image: &StreamImage| match image.get("replays") {
        Some(serde_dynamo::AttributeValue::N(n)) => n.parse::<u64>().unwrap_or(0),
        _ => 0,
    };
    let pk = text(new, "pk")?;
    if !pk.starts_with(keys::SUBSCRIPTION_PREFIX)
        || text(new, "sk").as_deref() != Some(keys::SUBSCRIPTION_SK)
    {
        return None;
    }
    (count(new) > count(old)).then(|| text(new, "id")).flatten()
}
