//! What each stream record of a batch asks of which subscription: a new feed entry is a
//! delivery to the subscriptions of its wallet that want its kind and token; a bumped replay
//! count is a replay of that subscription's parked deliveries.

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::Address;
use aws_lambda_events::event::dynamodb::EventRecord;
use lambda_runtime::tracing;
use live_balances::domain::model::FeedEvent;
use live_balances::domain::webhook::{EventKind, Subscription};
use live_balances::storage::{
    StorageError, Table, feed_event_from_image, webhook_replay_requested,
};

use crate::State;

/// What one stream record asks of one subscription.
#[derive(Debug, Clone)]
pub(crate) enum Work {
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
pub(crate) async fn queues(
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
                            && sub.filter.wants(kind, &owner, Some(&token))
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

#[cfg(test)]
mod tests {
    use aws_lambda_events::event::dynamodb::Event;
    use live_balances::domain::webhook::Delivery;
    use live_balances::storage::stream_record;
    use serde_json::{Value, json};

    use super::*;

    const OWNER: &str = "0xd8da6bf26964af9d7eed9e03e53415d37aa96045";
    const TOKEN: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";

    /// `new`'s stream record (a modification of `old`, else an insert).
    fn record(new: Value, old: Option<Value>) -> EventRecord {
        let record = stream_record(new, old, Some("4000000000000000000000009"), 1_700_000_000);
        let event: Event = serde_json::from_value(json!({ "Records": [record] })).unwrap();
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
        let Found::Entry(entry) = found(&record(feed_item(), None)).unwrap() else {
            panic!("a feed insert is an entry");
        };
        assert_eq!(kind_of(&entry), Some(EventKind::BalanceUpdate));
        let body: Value = serde_json::from_str(&Delivery::of("s", &entry).body()).unwrap();
        assert_eq!(body["id"], format!("{:0>40}", 7));
        assert_eq!(body["data"]["balance"], "1500000");
        // The same item expiring (a removal) or rewritten is nothing to deliver.
        assert!(matches!(
            found(&record(feed_item(), Some(feed_item()))).unwrap(),
            Found::Nothing
        ));
    }

    #[test]
    fn a_replay_is_a_bumped_replay_count_and_nothing_else() {
        let bumped = record(subscription_item(2), Some(subscription_item(1)));
        assert!(matches!(found(&bumped).unwrap(), Found::Replay(id) if id == "a".repeat(32)));
        let other = record(subscription_item(1), Some(subscription_item(1)));
        assert!(matches!(found(&other).unwrap(), Found::Nothing));
        let created = record(subscription_item(0), None);
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
            found(&record(balance, None)).unwrap(),
            Found::Nothing
        ));
    }
}
