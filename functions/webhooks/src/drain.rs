//! Draining a backlogged subscription: its parked deliveries sent oldest first under a lease
//! (so two invocations never drain one subscription at once), until one fails or the
//! subscription's time runs out.

use lambda_runtime::tracing;
use live_balances::domain::webhook::DeliveryHealth;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::{StorageError, Written};

use crate::queue::{Queue, failed, park};
use crate::telemetry;

/// Parked deliveries read per step of a drain.
const DRAIN_PAGE: i32 = 25;
/// How long a drain lease holds: the function's timeout in `template.yaml`, so the lease of
/// an invocation that died runs out by the time Lambda would have given up on it.
const DRAIN_LEASE: std::time::Duration = std::time::Duration::from_secs(300);

impl Queue<'_> {
    /// Sends the parked deliveries, oldest first, each with at most `attempts` attempts, under the
    /// subscription's drain lease. `true` when none is left (the subscription is active again),
    /// `false` when one failed (it stays parked, the failure recorded), the budget ran out, or
    /// another invocation is draining (this one's change then waits parked behind what it sends).
    pub(crate) async fn drain(&mut self, attempts: u32) -> Result<bool, StorageError> {
        let state = self.state;
        let now = unix_now();
        let until = now + DRAIN_LEASE.as_secs();
        if state
            .table
            .claim_webhook_drain(&self.sub.id, now, until)
            .await?
            == Written::Skipped
        {
            tracing::info!(subscription = %self.sub.id, "another invocation is draining; parked behind it");
            return Ok(false);
        }
        let drained = self.drain_leased(attempts).await;
        if let Err(error) = state.table.release_webhook_drain(&self.sub.id, until).await {
            // It runs out by itself.
            tracing::warn!(subscription = %self.sub.id, %error, "drain lease not given back");
        }
        drained
    }

    /// [`Self::drain`]'s work, the lease held.
    async fn drain_leased(&mut self, attempts: u32) -> Result<bool, StorageError> {
        let (state, secrets, budget) = (self.state, self.secrets, self.budget);
        let sub = &mut *self.sub;
        loop {
            let parked = state
                .table
                .parked_webhook_deliveries(&sub.id, DRAIN_PAGE)
                .await?;
            if parked.is_empty() {
                state.table.webhook_recovered(&sub.id).await?;
                sub.health = DeliveryHealth::active();
                return Ok(true);
            }
            for mut item in parked {
                if budget.spent() {
                    tracing::warn!(subscription = %sub.id, "delivery time for this batch used up while draining");
                    return Ok(false);
                }
                let delivered = state.table.webhook_delivered(&sub.id, &item.owner).await?;
                if delivered.is_none_or(|d| d < item.position) {
                    match state
                        .sender
                        .send(sub, secrets, item.position.as_str(), &item.body, attempts)
                        .await
                    {
                        Ok(tries) => {
                            tracing::info!(subscription = %sub.id, owner = %item.owner, position = %item.position, attempts = tries, "parked delivery delivered");
                            telemetry::delivery(sub.chain_id, "sent");
                            state
                                .table
                                .mark_webhook_delivered(&sub.id, &item.owner, &item.position)
                                .await?;
                        }
                        Err(failure) => {
                            item.attempts = item.attempts.saturating_add(failure.attempts);
                            item.last_error = Some(failure.error.clone());
                            telemetry::delivery(sub.chain_id, "failed");
                            park(state, sub, &item).await?;
                            failed(state, sub, &failure.error).await?;
                            return Ok(false);
                        }
                    }
                }
                state.table.unpark_webhook_delivery(&item).await?;
            }
        }
    }
}
