//! The items of a subscription as the table holds them, and their conversions to and from
//! the domain's [`Subscription`] and [`ParkedDelivery`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::address::{lower, parse_address};
use crate::domain::api_key::Tenant;
use crate::domain::model::FeedPosition;
use crate::domain::webhook::{
    DeliveryHealth, EventKind, ParkedDelivery, SigningSecrets, Subscription, SubscriptionFilter,
    SubscriptionStatus,
};
use crate::runtime::sealing::SealedSecret;
use crate::storage::item_parts::ItemKey;
use crate::storage::records::tenant;
use crate::storage::{StorageError, keys};

pub(super) const ACTIVE: &str = "active";
pub(super) const BACKLOGGED: &str = "backlogged";
pub(super) const DISABLED: &str = "disabled";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SubscriptionRecord {
    #[serde(flatten)]
    pub(super) key: ItemKey,
    pub(super) id: String,
    pub(super) chain_id: u64,
    pub(super) url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tenant: Option<String>,
    #[serde(flatten)]
    pub(super) secrets: SecretsAttributes,
    #[serde(flatten)]
    pub(super) filter: FilterAttributes,
    pub(super) created_at: u64,
    #[serde(flatten)]
    pub(super) health: HealthAttributes,
    #[serde(default)]
    pub(super) replays: u64,
}

/// A subscription's signing secrets as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SecretsAttributes {
    /// Sealed (`sealed.v1.…`); in the clear only in items from before sealing.
    pub(super) secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) previous_secret_until: Option<u64>,
}

/// Which changes a subscription is for, as stored (lowercase addresses, event names).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FilterAttributes {
    pub(super) wallets: BTreeSet<String>,
    #[serde(default)]
    pub(super) tokens: BTreeSet<String>,
    pub(super) kinds: BTreeSet<String>,
}

/// How a subscription's deliveries are going, as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct HealthAttributes {
    pub(super) status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) disabled_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) failing_since: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) last_error: Option<String>,
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
        Self {
            key: ItemKey::new(keys::subscription_pk(&sub.id), keys::SUBSCRIPTION_SK),
            id: sub.id.clone(),
            chain_id: sub.chain_id,
            url: sub.url.clone(),
            tenant: sub.tenant.as_ref().map(Tenant::to_string),
            secrets: SecretsAttributes::from(&sub.secrets),
            filter: FilterAttributes::from(&sub.filter),
            created_at: sub.created_at,
            health: HealthAttributes::from(&sub.health),
            replays: sub.replays,
        }
    }
}

impl From<&SigningSecrets> for SecretsAttributes {
    fn from(secrets: &SigningSecrets) -> Self {
        Self {
            secret: secrets.current.stored().to_string(),
            previous_secret: secrets
                .previous
                .as_ref()
                .map(|(p, _)| p.stored().to_string()),
            previous_secret_until: secrets.previous.as_ref().map(|(_, until)| *until),
        }
    }
}

impl From<SecretsAttributes> for SigningSecrets {
    fn from(a: SecretsAttributes) -> Self {
        Self {
            current: SealedSecret::from_stored(a.secret),
            previous: match (a.previous_secret, a.previous_secret_until) {
                (Some(text), Some(until)) => Some((SealedSecret::from_stored(text), until)),
                _ => None,
            },
        }
    }
}

impl From<&SubscriptionFilter> for FilterAttributes {
    fn from(filter: &SubscriptionFilter) -> Self {
        Self {
            wallets: filter.wallets.iter().map(lower).collect(),
            tokens: filter.tokens.iter().map(lower).collect(),
            kinds: filter.kinds.iter().map(|k| k.name().to_string()).collect(),
        }
    }
}

impl FilterAttributes {
    fn decode(&self, key: &str) -> Result<SubscriptionFilter, StorageError> {
        let addresses = |field: &str, values: &BTreeSet<String>| {
            values
                .iter()
                .map(|v| {
                    parse_address(v)
                        .map_err(|e| StorageError::corrupt(key, format!("{field}: {e}")))
                })
                .collect::<Result<BTreeSet<_>, _>>()
        };
        let kinds = self
            .kinds
            .iter()
            .map(|k| {
                EventKind::parse(k).ok_or_else(|| StorageError::corrupt(key, format!("kind {k}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(SubscriptionFilter {
            wallets: addresses("wallets", &self.wallets)?,
            tokens: addresses("tokens", &self.tokens)?,
            kinds,
        })
    }
}

impl From<&DeliveryHealth> for HealthAttributes {
    fn from(health: &DeliveryHealth) -> Self {
        let (disabled_at, disabled_reason) = match &health.status {
            SubscriptionStatus::Disabled { at, reason } => (Some(*at), Some(reason.clone())),
            _ => (None, None),
        };
        Self {
            status: health.status.name().into(),
            disabled_at,
            disabled_reason,
            failing_since: health.failing_since,
            last_error: health.last_error.clone(),
        }
    }
}

impl HealthAttributes {
    fn decode(self, key: &str) -> Result<DeliveryHealth, StorageError> {
        let status = match (self.status.as_str(), self.disabled_at) {
            (ACTIVE, _) => SubscriptionStatus::Active,
            (BACKLOGGED, _) => SubscriptionStatus::Backlogged,
            (DISABLED, at) => SubscriptionStatus::Disabled {
                at: at.unwrap_or(0),
                reason: self.disabled_reason.unwrap_or_default(),
            },
            (other, _) => return Err(StorageError::corrupt(key, format!("status {other}"))),
        };
        Ok(DeliveryHealth {
            status,
            failing_since: self.failing_since,
            last_error: self.last_error,
        })
    }
}

impl TryFrom<SubscriptionRecord> for Subscription {
    type Error = StorageError;

    fn try_from(r: SubscriptionRecord) -> Result<Self, StorageError> {
        let key = r.key.to_string();
        let tenant = tenant(&key, r.tenant.as_deref())?;
        Ok(Subscription {
            filter: r.filter.decode(&key)?,
            health: r.health.decode(&key)?,
            id: r.id,
            chain_id: r.chain_id,
            url: r.url,
            tenant,
            secrets: r.secrets.into(),
            created_at: r.created_at,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use alloy::primitives::Address;
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::storage::Item;

    fn subscription(health: DeliveryHealth) -> Subscription {
        Subscription {
            id: "ab".repeat(16),
            chain_id: 1,
            url: "https://hooks.example/x".into(),
            tenant: Tenant::parse("dex").ok(),
            secrets: SigningSecrets {
                current: SealedSecret::from_stored("sealed.v1.new".into()),
                previous: Some((SealedSecret::from_stored("sealed.v1.old".into()), u64::MAX)),
            },
            filter: SubscriptionFilter {
                wallets: [Address::repeat_byte(1)].into(),
                tokens: [Address::repeat_byte(2)].into(),
                kinds: [EventKind::BalanceUpdate, EventKind::OrderStatus].into(),
            },
            created_at: 10,
            health,
            replays: u64::MAX,
        }
    }

    fn roundtrip(sub: &Subscription) -> (Item, Subscription) {
        let item: Item = serde_dynamo::to_item(SubscriptionRecord::from(sub)).unwrap();
        let back: SubscriptionRecord = serde_dynamo::from_item(item.clone()).unwrap();
        (item, Subscription::try_from(back).unwrap())
    }

    #[test]
    fn subscriptions_keep_their_attribute_names_through_flattening() {
        let disabled = subscription(DeliveryHealth {
            status: SubscriptionStatus::Disabled {
                at: u64::MAX,
                reason: "gone".into(),
            },
            failing_since: Some(5),
            last_error: Some("503".into()),
        });
        let (item, back) = roundtrip(&disabled);
        assert_eq!(back, disabled);
        let names: BTreeSet<&str> = item.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "pk",
                "sk",
                "id",
                "chain_id",
                "url",
                "tenant",
                "secret",
                "previous_secret",
                "previous_secret_until",
                "wallets",
                "tokens",
                "kinds",
                "created_at",
                "status",
                "disabled_at",
                "disabled_reason",
                "failing_since",
                "last_error",
                "replays"
            ]
            .into()
        );
        assert_eq!(item["status"], AttributeValue::S(DISABLED.into()));
        assert_eq!(item["disabled_at"], AttributeValue::N(u64::MAX.to_string()));
        // Active and never failing, never rotated: those attributes are not written at all.
        let mut active = subscription(DeliveryHealth::active());
        active.secrets.previous = None;
        let (item, back) = roundtrip(&active);
        assert_eq!(back, active);
        for absent in [
            "previous_secret",
            "previous_secret_until",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "last_error",
        ] {
            assert!(!item.contains_key(absent), "{absent}");
        }
    }
}
