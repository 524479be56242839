//! The items of a subscription as the table holds them, and their conversions to and from
//! the domain's [`Subscription`] and [`ParkedDelivery`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::address::{lower, parse_address};
use crate::domain::api_key::Tenant;
use crate::domain::model::FeedPosition;
use crate::domain::webhook::{EventKind, ParkedDelivery, Subscription, SubscriptionStatus};
use crate::runtime::sealing::SealedSecret;
use crate::storage::{StorageError, keys};

pub(super) const ACTIVE: &str = "active";
pub(super) const BACKLOGGED: &str = "backlogged";
pub(super) const DISABLED: &str = "disabled";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SubscriptionRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) id: String,
    pub(super) chain_id: u64,
    pub(super) url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tenant: Option<String>,
    /// Sealed (`sealed.v1.…`); in the clear only in items from before sealing.
    pub(super) secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous_secret_until: Option<u64>,
    pub(super) wallets: BTreeSet<String>,
    #[serde(default)]
    pub(super) tokens: BTreeSet<String>,
    pub(super) kinds: BTreeSet<String>,
    pub(super) created_at: u64,
    pub(super) status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) disabled_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) failing_since: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_error: Option<String>,
    #[serde(default)]
    pub(super) replays: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WalletIndexRecord {
    pub(super) pk: String,
    pub(super) sk: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DeliveredRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) position: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ParkedRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) subscription_id: String,
    pub(super) owner: String,
    pub(super) position: String,
    pub(super) kind: String,
    pub(super) body: String,
    pub(super) parked_at: u64,
    pub(super) attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_error: Option<String>,
    pub(super) ttl: u64,
}

impl From<&Subscription> for SubscriptionRecord {
    fn from(sub: &Subscription) -> Self {
        let (disabled_at, disabled_reason) = match &sub.status {
            SubscriptionStatus::Disabled { at, reason } => (Some(*at), Some(reason.clone())),
            _ => (None, None),
        };
        Self {
            pk: keys::subscription_pk(&sub.id),
            sk: keys::SUBSCRIPTION_SK.into(),
            id: sub.id.clone(),
            chain_id: sub.chain_id,
            url: sub.url.clone(),
            tenant: sub.tenant.as_ref().map(Tenant::to_string),
            secret: sub.secret.stored().to_string(),
            previous_secret: sub
                .previous_secret
                .as_ref()
                .map(|(p, _)| p.stored().to_string()),
            previous_secret_until: sub.previous_secret.as_ref().map(|(_, until)| *until),
            wallets: sub.wallets.iter().map(lower).collect(),
            tokens: sub.tokens.iter().map(lower).collect(),
            kinds: sub.kinds.iter().map(|k| k.name().to_string()).collect(),
            created_at: sub.created_at,
            status: sub.status.name().into(),
            disabled_at,
            disabled_reason,
            failing_since: sub.failing_since,
            last_error: sub.last_error.clone(),
            replays: sub.replays,
        }
    }
}

impl TryFrom<SubscriptionRecord> for Subscription {
    type Error = StorageError;

    fn try_from(r: SubscriptionRecord) -> Result<Self, StorageError> {
        let key = format!("{}/{}", r.pk, r.sk);
        let addresses = |field: &str, values: &BTreeSet<String>| {
            values
                .iter()
                .map(|v| {
                    parse_address(v)
                        .map_err(|e| StorageError::corrupt(&key, format!("{field}: {e}")))
                })
                .collect::<Result<BTreeSet<_>, _>>()
        };
        let kinds = r
            .kinds
            .iter()
            .map(|k| {
                EventKind::parse(k).ok_or_else(|| StorageError::corrupt(&key, format!("kind {k}")))
            })
            .collect::<Result<_, _>>()?;
        let status = match (r.status.as_str(), r.disabled_at) {
            (ACTIVE, _) => SubscriptionStatus::Active,
            (BACKLOGGED, _) => SubscriptionStatus::Backlogged,
            (DISABLED, at) => SubscriptionStatus::Disabled {
                at: at.unwrap_or(0),
                reason: r.disabled_reason.clone().unwrap_or_default(),
            },
            (other, _) => return Err(StorageError::corrupt(&key, format!("status {other}"))),
        };
        let tenant = r
            .tenant
            .as_deref()
            .map(Tenant::parse)
            .transpose()
            .map_err(|e| StorageError::corrupt(&key, e))?;
        let previous_secret = match (r.previous_secret, r.previous_secret_until) {
            (Some(text), Some(until)) => Some((SealedSecret::from_stored(text), until)),
            _ => None,
        };
        Ok(Subscription {
            wallets: addresses("wallets", &r.wallets)?,
            tokens: addresses("tokens", &r.tokens)?,
            id: r.id,
            chain_id: r.chain_id,
            url: r.url,
            tenant,
            secret: SealedSecret::from_stored(r.secret),
            previous_secret,
            kinds,
            created_at: r.created_at,
            status,
            failing_since: r.failing_since,
            last_error: r.last_error,
            replays: r.replays,
        })
    }
}

impl TryFrom<ParkedRecord> for ParkedDelivery {
    type Error = StorageError;

    fn try_from(r: ParkedRecord) -> Result<Self, StorageError> {
        let key = format!("{}/{}", r.pk, r.sk);
        Ok(ParkedDelivery {
            owner: parse_address(&r.owner)
                .map_err(|e| StorageError::corrupt(&key, format!("owner: {e}")))?,
            position: FeedPosition::parse(&r.position)
                .map_err(|e| StorageError::corrupt(&key, e))?,
            subscription_id: r.subscription_id,
            kind: r.kind,
            body: r.body,
            parked_at: r.parked_at,
            attempts: r.attempts,
            last_error: r.last_error,
        })
    }
}
