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
//! Failing for `WEBHOOK_DISABLE_AFTER_SECS` disables the subscription (still parking, never
//! sending) until an operator replays it. Only a table failure fails the batch, from the
//! record it met, so Lambda retries from there.
//!
//! Modules: this file (the batch: queues per subscription, delivering, parking, draining) and
//! `send` (one signed POST with its retries).

mod send;

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::Address;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent, tracing};
use live_balances::clock::unix_now;
use live_balances::model::FeedEvent;
use live_balances::storage::{
    StorageError, Table, feed_event_from_image, webhook_replay_requested,
};
use live_balances::webhook::{
    Delivery, EventKind, ParkedDelivery, Subscription, SubscriptionStatus, WebhookSettings,
};

pub use send::{Failure, Sender};

/// Parked deliveries read per step of a drain.
const DRAIN_PAGE: i32 = 25;

/// What the handler needs, built once per container.
#[derive(Debug, Clone)]
pub struct State {
    pub table: Table,
    pub settings: WebhookSettings,
    pub sender: Sender,
}

impl State {
    pub fn new(table: Table, settings: &WebhookSettings) -> Result<Self, reqwest::Error> {
        Ok(Self {
            table,
            settings: settings.clone(),
            sender: Sender::new(settings)?,
        })
    }
}

/// What one stream record asks of one subscription.
#[derive(Debug, Clone)]
enum Work {
    Deliver(Box<FeedEvent>),
    Replay,
}

/// What a record is to this function.
enum Found {
    Entry(Box<FeedEvent>),
    Replay(String),
    Nothing,
}

fn found(record: &EventRecord) -> Result<Found, StorageError> {
    let change = &record.change;
    if let Some(id) = webhook_replay_requested(&change.old_image, &change.new_image) {
        return Ok(Found::Replay(id));
    }
    // Feed entries are only ever inserted (an expiry is a REMOVE, with no new image).
    if record.event_name != "INSERT" {
        return Ok(Found::Nothing);
    }
    Ok(feed_event_from_image(&change.new_image)?
        .map_or(Found::Nothing, |event| Found::Entry(Box::new(event))))
}

/// The kind a feed event is delivered as, by its SSE event's name.
fn kind_of(event: &FeedEvent) -> Option<EventKind> {
    EventKind::parse(live_balances::sse::event_data(event).0)
}

/// The token a feed event is about: the value's token, or what the order sells.
fn token_of(event: &FeedEvent) -> Address {
    match event {
        FeedEvent::Value(entry) => entry.key.token(),
        FeedEvent::Order(entry) => entry.order.sell_token,
    }
}

/// The subscriptions looked up so far in this batch.
#[derive(Default)]
struct Lookups {
    wallets: HashMap<(u64, Address), Vec<String>>,
    subscriptions: HashMap<String, Option<Subscription>>,
}

impl Lookups {
    async fn subscription(
        &mut self,
        table: &Table,
        id: &str,
    ) -> Result<Option<Subscription>, StorageError> {
        if let Some(sub) = self.subscriptions.get(id) {
            return Ok(sub.clone());
        }
        let sub = table.webhook(id).await?;
        self.subscriptions.insert(id.to_string(), sub.clone());
        Ok(sub)
    }

    async fn of_wallet(
        &mut self,
        table: &Table,
        chain_id: u64,
        owner: Address,
    ) -> Result<Vec<String>, StorageError> {
        if let Some(ids) = self.wallets.get(&(chain_id, owner)) {
            return Ok(ids.clone());
        }
        let ids = table.webhooks_of_wallet(chain_id, &owner).await?;
        self.wallets.insert((chain_id, owner), ids.clone());
        Ok(ids)
    }
}

/// Each subscription's work in this batch, in record order, with the record's index; and
/// the index of the first record whose lookup failed (nothing from it on is queued).
async fn queues(
    state: &State,
    records: &[EventRecord],
) -> (
    BTreeMap<String, (Subscription, Vec<(usize, Work)>)>,
    Option<usize>,
) {
    let mut lookups = Lookups::default();
    let mut queues: BTreeMap<String, (Subscription, Vec<(usize, Work)>)> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        let outcome: Result<Vec<(Subscription, Work)>, StorageError> = async {
            match found(record)? {
                Found::Nothing => Ok(vec![]),
                Found::Replay(id) => Ok(lookups
                    .subscription(&state.table, &id)
                    .await?
                    .map(|sub| (sub, Work::Replay))
                    .into_iter()
                    .collect()),
                Found::Entry(event) => {
                    let Some(kind) = kind_of(&event) else {
                        return Ok(vec![]);
                    };
                    let (token, owner) = (token_of(&event), event.owner());
                    let mut wanted = vec![];
                    for id in lookups
                        .of_wallet(&state.table, event.chain_id(), owner)
                        .await?
                    {
                        if let Some(sub) = lookups.subscription(&state.table, &id).await?
                            && sub.wants(kind, &owner, Some(&token))
                        {
                            wanted.push((sub, Work::Deliver(event.clone())));
                        }
                    }
                    Ok(wanted)
                }
            }
        }
        .await;
        match outcome {
            Ok(work) => {
                for (sub, work) in work {
                    queues
                        .entry(sub.id.clone())
                        .or_insert_with(|| (sub, vec![]))
                        .1
                        .push((index, work));
                }
            }
            Err(error) => {
                tracing::error!(event_id = %record.event_id, %error, "subscription lookup failed; retrying from this record");
                return (queues, Some(index));
            }
        }
    }
    (queues, None)
}

pub async fn handle(
    state: &State,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, Error> {
    let records = &event.payload.records;
    let (queues, mut failed_at) = queues(state, records).await;
    let outcomes: Vec<Result<(), usize>> = futures::stream::iter(queues.into_values())
        .map(|(sub, work)| run_queue(state, sub, work))
        .buffer_unordered(state.settings.concurrency)
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
    Ok(response)
}

/// One subscription's work, in order; on a table failure, the index of the record it met.
async fn run_queue(
    state: &State,
    mut sub: Subscription,
    work: Vec<(usize, Work)>,
) -> Result<(), usize> {
    // Once the target failed a delivery in this batch, the batch's later changes are parked
    // untried: a target that hangs costs one delivery's retries per batch, not a timeout per
    // change, so its batch ends long before the function's timeout and the shard's other
    // subscriptions are not held up. The next batch tries the backlog first.
    let mut target_failed = false;
    for (index, work) in work {
        let outcome = match &work {
            Work::Deliver(entry) => deliver(state, &mut sub, entry, &mut target_failed).await,
            Work::Replay => drain(state, &mut sub, state.settings.attempts)
                .await
                .map(|_| ()),
        };
        if let Err(error) = outcome {
            tracing::error!(subscription = %sub.id, %error, "webhook state could not be stored; retrying from this record");
            return Err(index);
        }
    }
    Ok(())
}

/// Delivers one feed event to one subscription (or parks it: disabled, backlogged, or its
/// target failed earlier in this batch — `target_failed`, which a failure here sets).
async fn deliver(
    state: &State,
    sub: &mut Subscription,
    event: &FeedEvent,
    target_failed: &mut bool,
) -> Result<(), StorageError> {
    let (owner, position) = (event.owner(), event.position().clone());
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
    let clear = match sub.status {
        SubscriptionStatus::Disabled { .. } => false,
        _ if *target_failed => false,
        SubscriptionStatus::Active => true,
        // One try at the oldest parked delivery: the backlog goes first.
        SubscriptionStatus::Backlogged => {
            let drained = drain(state, sub, 1).await?;
            *target_failed = !drained;
            drained
        }
    };
    if !clear {
        return park(state, sub, &parked).await;
    }
    match state
        .sender
        .send(
            sub,
            parked.position.as_str(),
            &parked.body,
            state.settings.attempts,
        )
        .await
    {
        Ok(attempts) => {
            tracing::info!(subscription = %sub.id, owner = %owner, position = %position, kind = %parked.kind, attempts, "delivered");
            delivered_now(state, sub, &owner, &position).await
        }
        Err(failure) => {
            *target_failed = true;
            parked.attempts = failure.attempts;
            parked.last_error = Some(failure.error.clone());
            park(state, sub, &parked).await?;
            failed(state, sub, &failure.error).await
        }
    }
}

async fn park(
    state: &State,
    sub: &Subscription,
    parked: &ParkedDelivery,
) -> Result<(), StorageError> {
    let ttl = unix_now().saturating_add(state.settings.parked_ttl.as_secs());
    tracing::warn!(subscription = %sub.id, owner = %parked.owner, position = %parked.position, attempts = parked.attempts, status = sub.status.name(), "delivery parked");
    state.table.park_webhook_delivery(parked, ttl).await
}

async fn delivered_now(
    state: &State,
    sub: &mut Subscription,
    owner: &Address,
    position: &live_balances::model::FeedPosition,
) -> Result<(), StorageError> {
    state
        .table
        .mark_webhook_delivered(&sub.id, owner, position)
        .await?;
    if sub.failing_since.is_some() && matches!(sub.status, SubscriptionStatus::Active) {
        state.table.webhook_delivering(&sub.id).await?;
        sub.failing_since = None;
        sub.last_error = None;
    }
    Ok(())
}

/// Records a failure after the retries; disables the subscription once it has been failing
/// for the disable period.
async fn failed(state: &State, sub: &mut Subscription, error: &str) -> Result<(), StorageError> {
    let now = unix_now();
    match state.table.webhook_failed(&sub.id, now, error).await? {
        Some(updated) => *sub = updated,
        // Disabled meanwhile, or deleted: nothing more is sent for it in this batch.
        None => {
            *sub = match state.table.webhook(&sub.id).await? {
                Some(current) => current,
                None => Subscription {
                    status: SubscriptionStatus::Disabled {
                        at: now,
                        reason: "deleted".into(),
                    },
                    ..sub.clone()
                },
            };
            return Ok(());
        }
    }
    if sub.disable_due(now, state.settings.disable_after) {
        let since = sub.failing_since.unwrap_or(now);
        let reason = format!(
            "no delivery succeeded for {} s (failing since {since}); last error: {error}",
            now.saturating_sub(since)
        );
        state.table.disable_webhook(&sub.id, now, &reason).await?;
        tracing::warn!(subscription = %sub.id, since, "subscription disabled");
        sub.status = SubscriptionStatus::Disabled { at: now, reason };
    }
    Ok(())
}

/// Sends the parked deliveries, oldest first, each with at most `attempts` attempts. `true`
/// when none is left (the subscription is active again), `false` when one failed (it stays
/// parked, the failure recorded).
async fn drain(state: &State, sub: &mut Subscription, attempts: u32) -> Result<bool, StorageError> {
    loop {
        let parked = state
            .table
            .parked_webhook_deliveries(&sub.id, DRAIN_PAGE)
            .await?;
        if parked.is_empty() {
            state.table.webhook_recovered(&sub.id).await?;
            sub.status = SubscriptionStatus::Active;
            sub.failing_since = None;
            sub.last_error = None;
            return Ok(true);
        }
        for mut item in parked {
            let delivered = state.table.webhook_delivered(&sub.id, &item.owner).await?;
            if delivered.is_none_or(|d| d < item.position) {
                match state
                    .sender
                    .send(sub, item.position.as_str(), &item.body, attempts)
                    .await
                {
                    Ok(tries) => {
                        tracing::info!(subscription = %sub.id, owner = %item.owner, position = %item.position, attempts = tries, "parked delivery delivered");
                        state
                            .table
                            .mark_webhook_delivered(&sub.id, &item.owner, &item.position)
                            .await?;
                    }
                    Err(failure) => {
                        item.attempts = item.attempts.saturating_add(failure.attempts);
                        item.last_error = Some(failure.error.clone());
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const OWNER: &str = "0xd8da6bf26964af9d7eed9e03e53415d37aa96045";
    const TOKEN: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";

    fn record(name: &str, new: Value, old: Option<Value>) -> EventRecord {
        let mut change = json!({
            "ApproximateCreationDateTime": 1_700_000_000,
            "Keys": { "pk": new["pk"].clone(), "sk": new["sk"].clone() },
            "NewImage": new,
            "SequenceNumber": "4000000000000000000000009",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        });
        if let Some(old) = old {
            change["OldImage"] = old;
        }
        let event: Event = serde_json::from_value(json!({ "Records": [{
            "eventID": "1",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": change,
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
        }]}))
        .unwrap();
        event.records.into_iter().next().unwrap()
    }

    fn feed_item() -> Value {
        json!({
            "pk": { "S": format!("F#1#{OWNER}") },
            "sk": { "S": format!("{:0>40}", 7) },
            "chain_id": { "N": "1" },
            "owner": { "S": OWNER },
            "token": { "S": TOKEN },
            "value": { "S": "1500000" },
            "previous": { "S": "1000000" },
            "block": { "N": "124" },
            "ttl": { "N": "1700086400" },
            "version": { "N": "2" },
        })
    }

    fn subscription_item(replays: u64) -> Value {
        json!({
            "pk": { "S": format!("H#{}", "a".repeat(32)) },
            "sk": { "S": "SUB" },
            "id": { "S": "a".repeat(32) },
            "status": { "S": "backlogged" },
            "replays": { "N": replays.to_string() },
        })
    }

    #[test]
    fn a_feed_insert_is_delivered_as_its_sse_event() {
        let Found::Entry(entry) = found(&record("INSERT", feed_item(), None)).unwrap() else {
            panic!("a feed insert is an entry");
        };
        assert_eq!(kind_of(&entry), Some(EventKind::BalanceUpdate));
        let body: Value = serde_json::from_str(&Delivery::of("s", &entry).body()).unwrap();
        assert_eq!(body["id"], format!("{:0>40}", 7));
        assert_eq!(body["data"]["balance"], "1500000");
        // The same item expiring (a removal) or rewritten is nothing to deliver.
        assert!(matches!(
            found(&record("MODIFY", feed_item(), Some(feed_item()))).unwrap(),
            Found::Nothing
        ));
    }

    #[test]
    fn a_replay_is_a_bumped_replay_count_and_nothing_else() {
        let bumped = record("MODIFY", subscription_item(2), Some(subscription_item(1)));
        assert!(matches!(found(&bumped).unwrap(), Found::Replay(id) if id == "a".repeat(32)));
        let other = record("MODIFY", subscription_item(1), Some(subscription_item(1)));
        assert!(matches!(found(&other).unwrap(), Found::Nothing));
        let created = record("INSERT", subscription_item(0), None);
        assert!(matches!(found(&created).unwrap(), Found::Nothing));
    }

    #[test]
    fn a_balance_item_is_not_a_delivery() {
        let balance = json!({
            "pk": { "S": format!("B#1#{OWNER}") },
            "sk": { "S": format!("T#{TOKEN}") },
            "read": { "S": "5" },
        });
        assert!(matches!(
            found(&record("INSERT", balance, None)).unwrap(),
            Found::Nothing
        ));
    }
}
