//! Webhook subscriptions in the table: the subscription, the per-wallet index the delivery
//! function looks subscriptions up by, what each subscription got delivered, and its parked
//! deliveries (their keys are in `keys.rs`, with the rest of the table's layout).
//!
//! A subscription and its index items are written and deleted in one transaction, so the
//! delivery function never finds half a subscription.

use std::collections::{BTreeSet, HashMap};

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, ReturnValue, TransactWriteItem, WriteRequest,
};
use serde::{Deserialize, Serialize};

use super::{StorageError, StreamImage, Table, Written, from_item, keys, n, s, to_item, written};
use crate::domain::address::{lower, parse_address};
use crate::domain::api_key::Tenant;
use crate::domain::model::FeedPosition;
use crate::domain::webhook::{EventKind, ParkedDelivery, Subscription, SubscriptionStatus};
use crate::runtime::sealing::SealedSecret;

#[derive(Debug, Serialize, Deserialize)]
struct SubscriptionRecord {
    pk: String,
    sk: String,
    id: String,
    chain_id: u64,
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    /// Sealed (`sealed.v1.…`); in the clear only in items from before sealing.
    secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_secret_until: Option<u64>,
    wallets: BTreeSet<String>,
    #[serde(default)]
    tokens: BTreeSet<String>,
    kinds: BTreeSet<String>,
    created_at: u64,
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failing_since: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(default)]
    replays: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct WalletIndexRecord {
    pk: String,
    sk: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct DeliveredRecord {
    pk: String,
    sk: String,
    position: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ParkedRecord {
    pk: String,
    sk: String,
    subscription_id: String,
    owner: String,
    position: String,
    kind: String,
    body: String,
    parked_at: u64,
    attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    ttl: u64,
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
            ("active", _) => SubscriptionStatus::Active,
            ("backlogged", _) => SubscriptionStatus::Backlogged,
            ("disabled", at) => SubscriptionStatus::Disabled {
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

const ACTIVE: &str = "active";
const BACKLOGGED: &str = "backlogged";
const DISABLED: &str = "disabled";

/// Why a subscription was not created.
#[derive(Debug)]
pub enum WebhookCreation {
    Created,
    /// Its tenant holds `max` subscriptions already.
    TenantFull,
}

impl Table {
    /// Stores a new subscription and its wallet index in one transaction — with its tenant's
    /// count, which must stay within `max_for_tenant` (checked in the same transaction, so
    /// concurrent creations cannot pass the quota together).
    pub async fn create_webhook(
        &self,
        sub: &Subscription,
        max_for_tenant: u64,
    ) -> Result<WebhookCreation, StorageError> {
        let mut items = vec![put(
            &self.name,
            to_item(SubscriptionRecord::from(sub))?,
            Some("attribute_not_exists(pk)"),
        )?];
        if let Some(tenant) = &sub.tenant {
            items.push(tenant_count(&self.name, tenant, 1, Some(max_for_tenant))?);
        }
        for owner in &sub.wallets {
            let index = WalletIndexRecord {
                pk: keys::webhook_wallet_pk(sub.chain_id, owner),
                sk: sub.id.clone(),
            };
            items.push(put(&self.name, to_item(index)?, None)?);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(WebhookCreation::Created),
            // The only condition that can fail on a random new id is the tenant's count.
            Err(e) if is_transaction_condition_failure(&e) => Ok(WebhookCreation::TenantFull),
            Err(e) => Err(StorageError::from_sdk(e)),
        }
    }

    /// Replaces the subscription's signing secret `current` by `secret`; `previous` (the
    /// current one, sealed) keeps signing beside it until `overlap_until`. `Skipped` when the
    /// subscription is gone or its secret is no longer `current`.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &SealedSecret,
        current: &SealedSecret,
        previous: &SealedSecret,
        overlap_until: u64,
    ) -> Result<Written, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression(
                "SET secret = :secret, previous_secret = :previous, previous_secret_until = :until",
            )
            // Rotated against the secret read: two rotations at once cannot lose one.
            .condition_expression("attribute_exists(pk) AND secret = :current")
            .expression_attribute_values(":secret", s(secret.stored()))
            .expression_attribute_values(":previous", s(previous.stored()))
            .expression_attribute_values(":current", s(current.stored()))
            .expression_attribute_values(":until", n(overlap_until))
            .send()
            .await;
        written(result)
    }

    /// One subscription by id (a consistent read).
    pub async fn webhook(&self, id: &str) -> Result<Option<Subscription>, StorageError> {
        self.get::<SubscriptionRecord, Subscription>(
            keys::subscription_pk(id),
            keys::SUBSCRIPTION_SK,
        )
        .await
    }

    /// The ids of the subscriptions covering a wallet.
    pub async fn webhooks_of_wallet(
        &self,
        chain_id: u64,
        owner: &Address,
    ) -> Result<Vec<String>, StorageError> {
        let items = self
            .query_all(keys::webhook_wallet_pk(chain_id, owner))
            .await?;
        items
            .into_iter()
            .map(|i| from_item::<WalletIndexRecord>(i).map(|r| r.sk))
            .collect()
    }

    /// Deletes a subscription with its index (in one transaction), then what it delivered and
    /// parked.
    pub async fn delete_webhook(&self, sub: &Subscription) -> Result<(), StorageError> {
        let key = |pk: String, sk: String| -> Result<TransactWriteItem, StorageError> {
            let delete = Delete::builder()
                .table_name(&self.name)
                .key("pk", s(pk))
                .key("sk", s(sk))
                .build()
                .map_err(StorageError::refused)?;
            Ok(TransactWriteItem::builder().delete(delete).build())
        };
        let mut items = vec![key(
            keys::subscription_pk(&sub.id),
            keys::SUBSCRIPTION_SK.into(),
        )?];
        for owner in &sub.wallets {
            items.push(key(
                keys::webhook_wallet_pk(sub.chain_id, owner),
                sub.id.clone(),
            )?);
        }
        if let Some(tenant) = &sub.tenant {
            items.push(tenant_count(&self.name, tenant, -1, None)?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        let rest = self.query_all(keys::subscription_pk(&sub.id)).await?;
        for chunk in rest.chunks(25) {
            let requests = chunk
                .iter()
                .map(|item| {
                    let keys: HashMap<String, AttributeValue> = item
                        .iter()
                        .filter(|(k, _)| *k == "pk" || *k == "sk")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let delete = DeleteRequest::builder()
                        .set_key(Some(keys))
                        .build()
                        .map_err(StorageError::refused)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<Vec<_>, StorageError>>()?;
            self.batch_write(requests).await?;
        }
        Ok(())
    }

    /// The newest position delivered to a subscription from one wallet's feed.
    pub async fn webhook_delivered(
        &self,
        id: &str,
        owner: &Address,
    ) -> Result<Option<FeedPosition>, StorageError> {
        let out = self
            .read_item(keys::subscription_pk(id), keys::delivered_sk(owner))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        out.item
            .map(|i| {
                let record = from_item::<DeliveredRecord>(i)?;
                FeedPosition::parse(&record.position)
                    .map_err(|e| StorageError::corrupt(record.sk, e))
            })
            .transpose()
    }

    /// Records that `position` of a wallet's feed was delivered (never moving backwards).
    pub async fn mark_webhook_delivered(
        &self,
        id: &str,
        owner: &Address,
        position: &FeedPosition,
    ) -> Result<Written, StorageError> {
        let record = DeliveredRecord {
            pk: keys::subscription_pk(id),
            sk: keys::delivered_sk(owner),
            position: position.to_string(),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(to_item(record)?))
            .condition_expression("attribute_not_exists(pk) OR #position < :position")
            .expression_attribute_names("#position", "position")
            .expression_attribute_values(":position", s(position.as_str()))
            .send()
            .await;
        written(result)
    }

    /// Parks a delivery until it is replayed or `ttl` (Unix seconds) passes. Parking the same
    /// change again (a retried batch) overwrites it.
    pub async fn park_webhook_delivery(
        &self,
        parked: &ParkedDelivery,
        ttl: u64,
    ) -> Result<(), StorageError> {
        self.put(ParkedRecord {
            pk: keys::subscription_pk(&parked.subscription_id),
            sk: keys::parked_sk(&parked.position, &parked.owner),
            subscription_id: parked.subscription_id.clone(),
            owner: lower(&parked.owner),
            position: parked.position.to_string(),
            kind: parked.kind.clone(),
            body: parked.body.clone(),
            parked_at: parked.parked_at,
            attempts: parked.attempts,
            last_error: parked.last_error.clone(),
            ttl,
        })
        .await
    }

    /// A subscription's parked deliveries, oldest position first, at most `limit`.
    pub async fn parked_webhook_deliveries(
        &self,
        id: &str,
        limit: i32,
    ) -> Result<Vec<ParkedDelivery>, StorageError> {
        let out = self
            .parked_query(id)
            .limit(limit)
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| ParkedDelivery::try_from(from_item::<ParkedRecord>(i)?))
            .collect()
    }

    /// How many deliveries a subscription has parked.
    pub async fn parked_webhook_count(&self, id: &str) -> Result<u64, StorageError> {
        let keys = self
            .query_items(self.parked_query(id).projection_expression("sk"))
            .await?;
        Ok(keys.len() as u64)
    }

    /// The query of a subscription's parked deliveries, oldest position first.
    fn parked_query(
        &self,
        id: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.query(
            "pk = :pk AND begins_with(sk, :parked)",
            keys::subscription_pk(id),
        )
        .expression_attribute_values(":parked", s(keys::PARKED_PREFIX))
        .consistent_read(true)
    }

    /// Removes a parked delivery (it was delivered).
    pub async fn unpark_webhook_delivery(
        &self,
        parked: &ParkedDelivery,
    ) -> Result<(), StorageError> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(keys::subscription_pk(&parked.subscription_id)))
            .key("sk", s(keys::parked_sk(&parked.position, &parked.owner)))
            .send()
            .await
            .map_err(StorageError::from_sdk)?;
        Ok(())
    }

    /// Records a delivery that failed after its retries: the subscription is backlogged (not
    /// if disabled), and failing since its first such failure. Returns it as it now is, or
    /// `None` when it is gone or disabled.
    pub async fn webhook_failed(
        &self,
        id: &str,
        now: u64,
        error: &str,
    ) -> Result<Option<Subscription>, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression(
                "SET failing_since = if_not_exists(failing_since, :now), last_error = :error, #status = :backlogged",
            )
            .condition_expression("attribute_exists(pk) AND #status <> :disabled")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", super::n(now))
            .expression_attribute_values(":error", s(error))
            .expression_attribute_values(":backlogged", s(BACKLOGGED))
            .expression_attribute_values(":disabled", s(DISABLED))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => out
                .attributes
                .map(|a| Subscription::try_from(from_item::<SubscriptionRecord>(a)?))
                .transpose(),
            Err(e) if super::is_condition_failure(&e) => Ok(None),
            Err(e) => Err(StorageError::from_sdk(e)),
        }
    }

    /// Disables a subscription (unless it is gone or already disabled).
    pub async fn disable_webhook(
        &self,
        id: &str,
        now: u64,
        reason: &str,
    ) -> Result<Written, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression(
                "SET #status = :disabled, disabled_at = :now, disabled_reason = :reason",
            )
            .condition_expression("attribute_exists(pk) AND #status <> :disabled")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":disabled", s(DISABLED))
            .expression_attribute_values(":now", super::n(now))
            .expression_attribute_values(":reason", s(reason))
            .send()
            .await;
        written(result)
    }

    /// Takes the subscription's drain lease until `until` (Unix seconds), unless another
    /// holder's lease is still running at `now`: one drain at a time, so a parked delivery is
    /// never sent twice at once or after a later one of its wallet. `Skipped` when taken, or
    /// when the subscription is gone.
    pub async fn claim_webhook_drain(
        &self,
        id: &str,
        now: u64,
        until: u64,
    ) -> Result<Written, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression("SET draining_until = :until")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(draining_until) OR draining_until < :now)",
            )
            .expression_attribute_values(":until", super::n(until))
            .expression_attribute_values(":now", super::n(now))
            .send()
            .await;
        written(result)
    }

    /// Gives back the drain lease taken until `until` (not one another holder took since).
    pub async fn release_webhook_drain(
        &self,
        id: &str,
        until: u64,
    ) -> Result<Written, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression("REMOVE draining_until")
            .condition_expression("draining_until = :until")
            .expression_attribute_values(":until", super::n(until))
            .send()
            .await;
        written(result)
    }

    /// Marks an active subscription backlogged without a failure: deliveries it had no time for
    /// in a batch were parked, and the next batch must send them first.
    pub async fn webhook_backlogged(&self, id: &str) -> Result<Written, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression("SET #status = :backlogged")
            .condition_expression("attribute_exists(pk) AND #status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s(ACTIVE))
            .expression_attribute_values(":backlogged", s(BACKLOGGED))
            .send()
            .await;
        written(result)
    }

    /// Marks a backlogged subscription active again once its backlog is delivered.
    pub async fn webhook_recovered(&self, id: &str) -> Result<Written, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression("SET #status = :active REMOVE failing_since, last_error")
            .condition_expression("attribute_exists(pk) AND #status = :backlogged")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s(ACTIVE))
            .expression_attribute_values(":backlogged", s(BACKLOGGED))
            .send()
            .await;
        written(result)
    }

    /// Clears the failure record of a subscription that delivered again.
    pub async fn webhook_delivering(&self, id: &str) -> Result<Written, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression("REMOVE failing_since, last_error")
            .condition_expression("attribute_exists(failing_since)")
            .send()
            .await;
        written(result)
    }

    /// Asks for a replay of the parked deliveries: the subscription is re-enabled (backlogged
    /// until they are delivered, its failure clock restarted) and its replay count bumped,
    /// which the delivery function sees on the stream. `Skipped` when it is gone.
    pub async fn request_webhook_replay(&self, id: &str) -> Result<Written, StorageError> {
        let result = self
            .update(keys::subscription_pk(id), keys::SUBSCRIPTION_SK)
            .update_expression(
                "SET #status = :backlogged ADD replays :one REMOVE failing_since, disabled_at, disabled_reason",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":backlogged", s(BACKLOGGED))
            .expression_attribute_values(":one", super::n(1))
            .send()
            .await;
        written(result)
    }
}

/// Adds `delta` to a tenant's subscription count, within `max` when one is given.
fn tenant_count(
    table: &str,
    tenant: &Tenant,
    delta: i64,
    max: Option<u64>,
) -> Result<TransactWriteItem, StorageError> {
    let update = aws_sdk_dynamodb::types::Update::builder()
        .table_name(table)
        .key("pk", s(keys::TENANTS_PK))
        .key("sk", s(tenant.as_str()))
        .update_expression("ADD webhooks :delta")
        .expression_attribute_values(":delta", n(delta))
        .set_condition_expression(
            max.map(|_| "attribute_not_exists(webhooks) OR webhooks < :max".to_string()),
        );
    let update = match max {
        Some(max) => update.expression_attribute_values(":max", n(max)),
        None => update,
    };
    let update = update.build().map_err(StorageError::refused)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Whether a transaction was cancelled by a failed condition (and nothing else).
fn is_transaction_condition_failure<R>(
    err: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

fn put(
    table: &str,
    item: super::Item,
    condition: Option<&str>,
) -> Result<TransactWriteItem, StorageError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .set_condition_expression(condition.map(str::to_string))
        .build()
        .map_err(StorageError::refused)?;
    Ok(TransactWriteItem::builder().put(put).build())
}
