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
//! Modules: this file (the batch: queues per subscription, delivering, parking, draining) and
//! `send` (one signed POST with its retries).

mod send;
mod telemetry;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use alloy::primitives::Address;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::StreamExt;
use lambda_runtime::{Error, LambdaEvent, tracing};
use live_balances::domain::hold::Holder;
use live_balances::domain::model::FeedEvent;
use live_balances::domain::webhook::{
    Delivery, EventKind, ParkedDelivery, Subscription, SubscriptionStatus, WebhookSettings,
};
use live_balances::runtime::clock::unix_now;
use live_balances::runtime::kms::DataKey;
use live_balances::storage::{
    StorageError, Table, Written, feed_event_from_image, webhook_replay_requested,
};
use tokio::time::Instant;

pub use send::{Failure, Sender};

/// Parked deliveries read per step of a drain.
const DRAIN_PAGE: i32 = 25;
/// How long a drain lease holds: the function's timeout in `template.yaml`, so the lease of
/// an invocation that died runs out by the time Lambda would have given up on it.
const DRAIN_LEASE: std::time::Duration = std::time::Duration::from_secs(300);

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
    let attempts = settings.attempts.max(1);
    settings.timeout * attempts + settings.retry_max * (attempts - 1) + Duration::from_secs(5)
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

/// How long one subscription's deliveries may go on in this batch: from when its turn came,
/// at most `WEBHOOK_BATCH_SECS`, and never past the batch's own end.
#[derive(Debug, Clone, Copy)]
struct Budget {
    until: Instant,
}

impl Budget {
    fn starting_now(settings: &WebhookSettings, batch_ends: Instant) -> Self {
        Self {
            until: (Instant::now() + settings.batch_budget).min(batch_ends),
        }
    }

    fn spent(&self) -> bool {
        Instant::now() >= self.until
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
    EventKind::parse(live_balances::wire::sse::event_data(event).0)
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
    let started = Instant::now();
    let batch_ends = started
        + time_left(event.context.deadline).saturating_sub(deadline_margin(&state.settings));
    let records = &event.payload.records;
    let (queues, mut failed_at) = queues(state, records).await;
    let outcomes: Vec<Result<(), usize>> = futures::stream::iter(queues.into_values())
        .map(|(sub, work)| run_queue(state, sub, work, batch_ends))
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
    telemetry::batch_took(started.elapsed());
    Ok(response)
}

/// One subscription's work, in order; on a table failure, the index of the record it met.
async fn run_queue(
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
            Work::Replay => queue.drain(state.settings.attempts).await.map(|_| ()),
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
    sub.signing_secrets(unix_now())
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
struct Queue<'a> {
    state: &'a State,
    sub: &'a mut Subscription,
    secrets: &'a [String],
    budget: Budget,
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
        if let SubscriptionStatus::Disabled { .. } = self.sub.status {
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
            if sub.status == SubscriptionStatus::Active {
                state.table.webhook_backlogged(&sub.id).await?;
                sub.status = SubscriptionStatus::Backlogged;
            }
            tracing::warn!(subscription = %sub.id, "delivery time for this batch used up; the rest is parked");
        }
        let clear = match sub.status {
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
                state.settings.attempts,
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

async fn park(
    state: &State,
    sub: &Subscription,
    parked: &ParkedDelivery,
) -> Result<(), StorageError> {
    let ttl = unix_now().saturating_add(state.settings.parked_ttl.as_secs());
    tracing::warn!(subscription = %sub.id, owner = %parked.owner, position = %parked.position, attempts = parked.attempts, status = sub.status.name(), "delivery parked");
    telemetry::delivery(sub.chain_id, "parked");
    state.table.park_webhook_delivery(parked, ttl).await
}

async fn delivered_now(
    state: &State,
    sub: &mut Subscription,
    owner: &Address,
    position: &live_balances::domain::model::FeedPosition,
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
        if state.table.disable_webhook(&sub.id, now, &reason).await? == Written::Yes {
            // Disabled, it no longer keeps its wallets tracked (a replay holds them again).
            let holder = Holder::Webhook(&sub.id).key();
            let idle = state.session_idle.as_secs();
            state
                .table
                .hold_sessions(
                    sub.chain_id,
                    sub.wallets.iter().copied(),
                    &holder,
                    None,
                    now,
                    idle,
                )
                .await?;
        }
        tracing::warn!(subscription = %sub.id, since, "subscription disabled");
        sub.status = SubscriptionStatus::Disabled { at: now, reason };
    }
    Ok(())
}

impl Queue<'_> {
    /// Sends the parked deliveries, oldest first, each with at most `attempts` attempts, under the
    /// subscription's drain lease. `true` when none is left (the subscription is active again),
    /// `false` when one failed (it stays parked, the failure recorded), the budget ran out, or
    /// another invocation is draining (this one's change then waits parked behind what it sends).
    async fn drain(&mut self, attempts: u32) -> Result<bool, StorageError> {
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
                sub.status = SubscriptionStatus::Active;
                sub.failing_since = None;
                sub.last_error = None;
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
