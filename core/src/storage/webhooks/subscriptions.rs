//! A subscription's life in the table: created with its wallet index and its tenant's count
//! in one transaction, read, its secret rotated, deleted the same way, and the hold it keeps
//! on its wallets' sessions.

use std::collections::HashMap;

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, Put, TransactWriteItem, WriteRequest,
};

use super::records::{SubscriptionRecord, WalletIndexRecord};
use crate::domain::api_key::Tenant;
use crate::domain::hold::{HOLD_FOREVER, Holder};
use crate::domain::webhook::Subscription;
use crate::runtime::sealing::SealedSecret;
use crate::storage::{StorageError, Table, Written, from_item, keys, n, s, to_item, written};

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
        for owner in &sub.filter.wallets {
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
        for owner in &sub.filter.wallets {
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

    /// The subscription holds its wallets' sessions for as long as it lives (`held`), or lets
    /// go of them (deleted, disabled): a wallet no other holder keeps then lives `idle` seconds
    /// past `now`. The api's routes and the delivery function both call this.
    pub async fn hold_webhook_wallets(
        &self,
        sub: &Subscription,
        held: bool,
        now: u64,
        idle: u64,
    ) -> Result<(), StorageError> {
        self.hold_sessions(
            sub.chain_id,
            sub.filter.wallets.iter().copied(),
            &Holder::Webhook(&sub.id).key(),
            held.then_some(HOLD_FOREVER),
            now,
            idle,
        )
        .await
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
    item: crate::storage::Item,
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
