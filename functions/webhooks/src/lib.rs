//! The webhooks handler: the table's stream, read beside the fanout's (its own event source
//! mapping, so a slow target never holds up SSE). Each new feed entry — whatever kind the
//! fanout appended — goes to the subscriptions of its wallet that want it; a subscription
//! item whose replay count went up has its parked deliveries sent again.
//!
//! Each subscription's deliveries of a batch go out one at a time in feed order; different
//! subscriptions are served at once (`WEBHOOK_CONCURRENCY`). Per subscription and wallet the
//! newest delivered position is stored, so a retried batch never delivers a change twice
//! (and a receiver deduplicates what a lost answer made us resend by `webhook-id`).
//!
//! A delivery still failing after its attempts is parked in the table and the subscription
//! becomes backlogged: later changes are parked behind it so order holds, and each new batch
//! first tries the oldest parked one once — the backlog drains itself when the target is back.
//! A target that answers, but slowly, is held to `WEBHOOK_BATCH_SECS` a batch (and the batch to
//! the invocation's deadline): past it the rest is parked the same way, untried, so no target
//! can hold its shard up. Failing for `WEBHOOK_DISABLE_AFTER_SECS` disables the subscription:
//! nothing is sent or parked for it any more (its changes are dropped) until an operator
//! replays it, which sends what was parked before. Only a table failure fails the batch, from
//! the record it met, so Lambda retries from there.
//!
//! Modules: this file (the state and the batch's handler), `work` (what each stream record
//! asks of which subscription), `queue` (one subscription's deliveries in a batch: sending,
//! parking, failing), `drain` (sending the parked ones under the drain lease), `send` (one
//! signed POST with its retries).

mod drain;
mod queue;
mod send;
mod telemetry;
mod work;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent};
use live_balances::config::WebhookSettings;
use live_balances::runtime::kms::DataKey;
use live_balances::storage::Table;
use tokio::time::Instant;

use crate::queue::run_queue;
use crate::work::queues;

pub use send::{Failure, Sender};

/// What the handler needs, built once per container.
#[derive(Debug, Clone)]
pub struct State {
    pub table: Table,
    pub settings: WebhookSettings,
    pub sender: Sender,
    /// Opens the subscriptions' sealed signing secrets.
    pub data_key: DataKey,
    /// How long a session lives on once nothing holds it (`SESSION_TTL_SECS`): a disabled
    /// subscription lets go of its wallets' sessions.
    pub session_idle: Duration,
}

impl State {
    pub fn new(
        table: Table,
        settings: &WebhookSettings,
        data_key: DataKey,
        session_idle: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            table,
            settings: settings.clone(),
            sender: Sender::new(settings)?,
            data_key,
            session_idle,
        })
    }
}

/// Time kept free before the invocation's deadline: one delivery's worst case (every attempt
/// timing out, with the pauses between) on top of a few seconds for the table.
fn deadline_margin(settings: &WebhookSettings) -> Duration {
    let delivery = &settings.delivery;
    let attempts = delivery.attempts.max(1);
    delivery.timeout * attempts + delivery.retry_max * (attempts - 1) + Duration::from_secs(5)
}

/// Time left until an invocation's deadline. Lambda gives it in Unix milliseconds; `cargo
/// lambda watch` gives the timeout itself (e.g. `600000`), which no real deadline can be.
fn time_left(deadline_ms: u64) -> Duration {
    const EARLIEST_REAL_DEADLINE_MS: u64 = 1_000_000_000_000; // 2001-09-09
    if deadline_ms < EARLIEST_REAL_DEADLINE_MS {
        return Duration::from_millis(deadline_ms);
    }
    let deadline = std::time::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
}

pub async fn handle(
    state: &State,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let started = Instant::now();
    let batch_ends = started
        + time_left(event.context.deadline).saturating_sub(deadline_margin(&state.settings));
    let records = &event.payload.records;
    let (queues, mut failed_at) = queues(state, records).await;
    let outcomes: Vec<Result<(), usize>> = futures::stream::iter(queues.into_values())
        .map(|(sub, work)| run_queue(state, sub, work, batch_ends))
        .buffer_unordered(state.settings.delivery.concurrency)
        .collect()
        .await;
    for failed in outcomes.into_iter().filter_map(Result::err) {
        failed_at = Some(failed_at.map_or(failed, |at| at.min(failed)));
    }
    let mut response = DynamoDbEventResponse::default();
    if let Some(index) = failed_at {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = records[index].change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    telemetry::batch_took(started.elapsed());
    Ok(response)
}
