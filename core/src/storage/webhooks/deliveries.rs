//! What a delivery run records about a subscription: the last position delivered per wallet,
//! parked deliveries, failures (and disabling after too many), the drain lease, and the
//! active/backlogged status.

use alloy::primitives::Address;
use aws_sdk_dynamodb::types::ReturnValue;

use super::records::{
    ACTIVE, BACKLOGGED, DISABLED, DeliveredRecord, ParkedRecord, SubscriptionRecord,
};
use crate::domain::address::lower;
use crate::domain::model::FeedPosition;
use crate::domain::webhook::{ParkedDelivery, Subscription};
use crate::storage::{
    StorageError, Table, Written, from_item, is_condition_failure, keys, n, s, to_item, written,
};

impl Table {
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
            .expression_attribute_values(":now", n(now))
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
            Err(e) if is_condition_failure(&e) => Ok(None),
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
            .expression_attribute_values(":now", n(now))
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
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
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
            .expression_attribute_values(":until", n(until))
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
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        written(result)
    }
}
