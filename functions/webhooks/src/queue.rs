//! One subscription's deliveries in a batch, in feed order, within its time budget: each sent
//! (signed, with retries) or parked behind a backlog, each failure recorded, and the
//! subscription disabled once it has failed for the disable period.

use alloy::primitives::Address;
use lambda_runtime::tracing;
use live_balances::config::WebhookSettings;
use live_balances::domain::model::FeedEvent;
use live_balances::domain::webhook::{Delivery, ParkedDelivery, Subscription, SubscriptionStatus};
use live_balances::runtime::clock::unix_now;
use live_balances::storage::{StorageError, Written};
use tokio::time::Instant;

use crate::work::Work;
use crate::{State, telemetry};

/// How long one subscription's deliveries may go on in this batch: from when its turn came,
/// at most `WEBHOOK_BATCH_SECS`, and never past the batch's own end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    until: Instant,
}

impl Budget {
    pub(crate) fn starting_now(settings: &WebhookSettings, batch_ends: Instant) -> Self {
        Self {
            until: (Instant::now() + settings.delivery.batch_budget).min(batch_ends),
        }
    }

    pub(crate) fn spent(&self) -> bool {
        Instant::now() >= self.until
    }
}

/// One subscription's work, in order; on a table failure, the index of the record it met.
pub(crate) async fn run_queue(
    state: &State,
    mut sub: Subscription,
    work: Vec<(usize, Work)>,
    batch_ends: Instant,
) -> Result<(), usize> {
    let budget = Budget::starting_now(&state.settings, batch_ends);
    // Once the target failed a delivery in this batch (or used up its time), the batch's
    // later changes are parked untried: a target that hangs costs one delivery's retries per
    // batch, not a timeout per change, and one that answers slowly its budget, so its batch
    // ends long before the function's timeout and the shard's other subscriptions are not held
    // up. The next batch tries the backlog first.
    let mut held_back = false;
    let secrets = match open_secrets(state, &sub).await {
        Ok(secrets) => secrets,
        Err(error) => {
            tracing::error!(subscription = %sub.id, %error, "signing secrets cannot be opened; retrying from this batch");
            return Err(work.first().map_or(0, |(index, _)| *index));
        }
    };
    let mut queue = Queue {
        state,
        sub: &mut sub,
        secrets: &secrets,
        budget,
    };
    for (index, work) in work {
        let outcome = match &work {
            Work::Deliver(entry) => queue.deliver(entry, &mut held_back).await,
            Work::Replay => queue
                .drain(state.settings.delivery.attempts)
                .await
                .map(|_| ()),
        };
        if let Err(error) = outcome {
            tracing::error!(subscription = %queue.sub.id, %error, "webhook state could not be stored; retrying from this record");
            return Err(index);
        }
    }
    Ok(())
}

/// The secrets that sign the subscription's deliveries now, opened (the current one first).
async fn open_secrets(
    state: &State,
    sub: &Subscription,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let key = state.data_key.for_opening().await;
    sub.secrets
        .at(unix_now())
        .into_iter()
        .map(|sealed| match (sealed, &key) {
            // Stored in the clear by an older version: no key needed.
            (live_balances::runtime::sealing::SealedSecret::Legacy(plain), _) => Ok(plain.clone()),
            (sealed, Ok(key)) => Ok(key.open(sealed, &sub.id)?),
            (_, Err(e)) => Err(e.to_string().into()),
        })
        .collect()
}

/// One subscription's deliveries in this batch: the subscription as it now stands, its
/// secrets in the clear, its time.
pub(crate) struct Queue<'a> {
    pub(crate) state: &'a State,
    pub(crate) sub: &'a mut Subscription,
    pub(crate) secrets: &'a [String],
    pub(crate) budget: Budget,
}

impl Queue<'_> {
    /// Delivers one feed event to the subscription, or parks it: backlogged, its target failed or
    /// its time ran out earlier in this batch (`held_back`, which a failure or the budget running
    /// out here sets). A disabled subscription gets nothing, parked or sent.
    async fn deliver(
        &mut self,
        event: &FeedEvent,
        held_back: &mut bool,
    ) -> Result<(), StorageError> {
        let state = self.state;
        let (owner, position) = (event.owner(), event.position().clone());
        if let SubscriptionStatus::Disabled { .. } = self.sub.health.status {
            tracing::debug!(subscription = %self.sub.id, position = %position, "subscription disabled; change not kept");
            return Ok(());
        }
        let sub = &mut *self.sub;
        let delivered = state.table.webhook_delivered(&sub.id, &owner).await?;
        if delivered.is_some_and(|d| d >= position) {
            return Ok(());
        }
        let delivery = Delivery::of(&sub.id, event);
        let mut parked = ParkedDelivery {
            subscription_id: sub.id.clone(),
            owner,
            position: position.clone(),
            kind: delivery.kind.clone(),
            body: delivery.body(),
            parked_at: unix_now(),
            attempts: 0,
            last_error: None,
        };
        if !*held_back && self.budget.spent() {
            // Out of time for this batch: what is left waits, parked in order, for the next.
            *held_back = true;
            if sub.health.status == SubscriptionStatus::Active {
                state.table.webhook_backlogged(&sub.id).await?;
                sub.health.status = SubscriptionStatus::Backlogged;
            }
            tracing::warn!(subscription = %sub.id, "delivery time for this batch used up; the rest is parked");
        }
        let clear = match sub.health.status {
            _ if *held_back => false,
            SubscriptionStatus::Active => true,
            // One try at the oldest parked delivery: the backlog goes first.
            SubscriptionStatus::Backlogged => {
                let drained = self.drain(1).await?;
                *held_back = !drained;
                drained
            }
            SubscriptionStatus::Disabled { .. } => return Ok(()),
        };
        let sub = &mut *self.sub;
        if !clear {
            return park(state, sub, &parked).await;
        }
        match state
            .sender
            .send(
                sub,
                self.secrets,
                parked.position.as_str(),
                &parked.body,
                state.settings.delivery.attempts,
            )
            .await
        {
            Ok(attempts) => {
                tracing::info!(subscription = %sub.id, owner = %owner, position = %position, kind = %parked.kind, attempts, "delivered");
                telemetry::delivery(sub.chain_id, "sent");
                delivered_now(state, sub, &owner, &position).await
            }
            Err(failure) => {
                *held_back = true;
                parked.attempts = failure.attempts;
                parked.last_error = Some(failure.error.clone());
                telemetry::delivery(sub.chain_id, "failed");
                park(state, sub, &parked).await?;
                failed(state, sub, &failure.error).await
            }
        }
    }
}

pub(crate) async fn park(
    state: &State,
    sub: &Subscription,
    parked: &ParkedDelivery,
) -> Result<(), StorageError> {
    let ttl = unix_now().saturating_add(state.settings.delivery.parked_ttl.as_secs());
    tracing::warn!(subscription = %sub.id, owner = %parked.owner, position = %parked.position, attempts = parked.attempts, status = sub.health.status.name(), "delivery parked");
    telemetry::delivery(sub.chain_id, "parked");
    state.table.park_webhook_delivery(parked, ttl).await
}

pub(crate) async fn delivered_now(
    state: &State,
    sub: &mut Subscription,
    owner: &Address,
    position: &live_balances::domain::model::FeedPosition,
) -> Result<(), StorageError> {
    state
        .table
        .mark_webhook_delivered(&sub.id, owner, position)
        .await?;
    if sub.health.failing_since.is_some() && matches!(sub.health.status, SubscriptionStatus::Active)
    {
        state.table.webhook_delivering(&sub.id).await?;
        sub.health.failing_since = None;
        sub.health.last_error = None;
    }
    Ok(())
}

/// Records a failure after the retries; disables the subscription once it has been failing
/// for the disable period.
pub(crate) async fn failed(
    state: &State,
    sub: &mut Subscription,
    error: &str,
) -> Result<(), StorageError> {
    let now = unix_now();
    match state.table.webhook_failed(&sub.id, now, error).await? {
        Some(updated) => *sub = updated,
        // Disabled meanwhile, or deleted: nothing more is sent for it in this batch.
        None => {
            *sub = match state.table.webhook(&sub.id).await? {
                Some(current) => current,
                None => {
                    let mut deleted = sub.clone();
                    deleted.health.status = SubscriptionStatus::Disabled {
                        at: now,
                        reason: "deleted".into(),
                    };
                    deleted
                }
            };
            return Ok(());
        }
    }
    if sub
        .health
        .disable_due(now, state.settings.delivery.disable_after)
    {
        let since = sub.health.failing_since.unwrap_or(now);
        let reason = format!(
            "no delivery succeeded for {} s (failing since {since}); last error: {error}",
            now.saturating_sub(since)
        );
        if state.table.disable_webhook(&sub.id, now, &reason).await? == Written::Yes {
            // Disabled, it no longer keeps its wallets tracked (a replay holds them again).
            let idle = state.session_idle.as_secs();
            state
                .table
                .hold_webhook_wallets(sub, false, now, idle)
                .await?;
        }
        tracing::warn!(subscription = %sub.id, since, "subscription disabled");
        sub.health.status = SubscriptionStatus::Disabled { at: now, reason };
    }
    Ok(())
}
