//! What one stream batch may cost the webhooks function, shown by invoking the stack's real
//! function (through the Invoke API, as the pump does) with batches of feed-entry records of a
//! fresh wallet: a target that answers 2xx, but slowly, gets `WEBHOOK_BATCH_SECS` of a batch and
//! the rest is parked untried — as for a failing target — then delivered in order by the next
//! batches; a disabled subscription gets nothing, sent or parked.

use std::time::Duration;

use alloy::primitives::Address;
use anyhow::Context;
use e2e::webhook_receiver::{Answer, Receiver};
use e2e::{DEADLINE, Environment, WEBHOOK_BATCH_SECS, fresh_owner};
use live_balances::domain::address::lower;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::stream_record;
use serde_json::{Value, json};
use tokio::time::Instant;

/// How long the slow target takes to answer each delivery: half the test stack's
/// `WEBHOOK_TIMEOUT_MS`, so each answer is in time even on a loaded machine.
const SLOW: Duration = Duration::from_millis(1_000);

/// A stream record inserting the feed entry at `position` of `owner`'s feed: `value` of
/// `token` (from `value - 1`).
fn feed_record(chain: u64, owner: Address, token: Address, position: u128, value: u64) -> Value {
    let pk = format!("F#{chain}#{}", lower(&owner));
    let item = json!({
        "pk": {"S": pk},
        "sk": {"S": format!("{position:040}")},
        "chain_id": {"N": chain.to_string()},
        "owner": {"S": lower(&owner)},
        "token": {"S": lower(&token)},
        "value": {"S": value.to_string()},
        "previous": {"S": (value - 1).to_string()},
        "block": {"N": "1"},
        "ttl": {"N": (unix_now() + 3600).to_string()},
        "version": {"N": value.to_string()},
    });
    stream_record(item, None, Some(&format!("{position:040}")), unix_now())
}

/// Invokes the webhooks function with `records`; how long it took.
async fn invoke(env: &Environment, records: Vec<Value>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = env
        .http
        .post(&env.stack.endpoints.webhooks_invoke)
        .json(&json!({ "Records": records }))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "{}", response.status());
    let answer: Value = response.json().await?;
    anyhow::ensure!(
        answer["batchItemFailures"]
            .as_array()
            .is_none_or(|f| f.is_empty()),
        "{answer}"
    );
    Ok(started.elapsed())
}

/// A subscription (through the api, with the stack's key) to `owner`'s balance updates.
async fn subscribe(
    env: &Environment,
    receiver: &Receiver,
    owner: Address,
) -> anyhow::Result<String> {
    let body =
        json!({"url": receiver.url, "wallets": [lower(&owner)], "events": ["balance_update"]});
    let url = env.url(&format!("/{}/webhooks", env.chain_id()));
    let (status, created) = env
        .send_backend(reqwest::Method::POST, &url, body.to_string())
        .await?;
    anyhow::ensure!(status == 201, "{created}");
    receiver.set_secret(created["secret"].as_str().context("secret")?);
    Ok(created["id"].as_str().context("id")?.to_string())
}

async fn view(env: &Environment, id: &str) -> anyhow::Result<Value> {
    let url = env.url(&format!("/{}/webhooks/{id}", env.chain_id()));
    let (status, view) = env
        .json_request(|| env.with_key(env.http.get(&url)))
        .await?;
    anyhow::ensure!(status == 200, "{view}");
    Ok(view)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_target_gets_its_batch_budget_and_the_rest_follows_in_order() -> anyhow::Result<()> {
    let env = Environment::get();
    let (owner, token) = (fresh_owner(), fresh_owner());
    let receiver = Receiver::start().await?;
    let id = subscribe(env, &receiver, owner).await?;
    receiver.script(std::iter::repeat_n(Answer::Slow(SLOW), 64));
    let chain = env.chain_id();
    let base = u128::from(unix_now()) * 1_000_000;
    let changes = 8u64;
    let records: Vec<Value> = (1..=changes)
        .map(|i| feed_record(chain, owner, token, base + u128::from(i), i))
        .collect();
    // Delivered one after the other, the eight would take 8 s; the batch ends once its budget
    // (4 s) is used up (within one more delivery), the rest parked for the next batch.
    let took = invoke(env, records).await?;
    let budget = Duration::from_secs(WEBHOOK_BATCH_SECS);
    assert!(took < budget + SLOW * 2, "the batch took {took:?}");
    let first = receiver.accepted().len();
    assert!(
        (1..changes as usize).contains(&first),
        "{first} of {changes} delivered in the first batch"
    );
    let parked = view(env, &id).await?;
    assert_eq!(parked["status"], "backlogged", "{parked}");
    assert_eq!(parked["parkedCount"], changes - first as u64, "{parked}");
    assert_eq!(
        parked["parked"][0]["attempts"], 0,
        "parked untried: {parked}"
    );
    assert!(
        parked.get("failingSince").is_none(),
        "slow is not failing: {parked}"
    );

    // The next changes' batches send the backlog first, in order, each within its budget.
    let until = Instant::now() + DEADLINE * 2;
    let mut next = changes;
    while receiver.accepted().len() < next as usize {
        anyhow::ensure!(Instant::now() < until, "not every change was delivered");
        next += 1;
        let took = invoke(
            env,
            vec![feed_record(
                chain,
                owner,
                token,
                base + u128::from(next),
                next,
            )],
        )
        .await?;
        assert!(took < budget + SLOW * 2, "a batch took {took:?}");
    }
    let values: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|r| {
            r.json()["data"]["balance"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let expected: Vec<String> = (1..=next).map(|v| v.to_string()).collect();
    assert_eq!(values, expected, "every change once, in order");
    let done = view(env, &id).await?;
    assert_eq!(
        (done["status"].clone(), done["parkedCount"].clone()),
        (json!("active"), json!(0))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_subscription_parks_nothing() -> anyhow::Result<()> {
    let env = Environment::get();
    let (owner, token) = (fresh_owner(), fresh_owner());
    let receiver = Receiver::start().await?;
    let id = subscribe(env, &receiver, owner).await?;
    let table = env.stack.table().await;
    table
        .disable_webhook(&id, unix_now(), "disabled by the test")
        .await?;
    let chain = env.chain_id();
    let base = u128::from(unix_now()) * 1_000_000;
    invoke(
        env,
        (1..=3)
            .map(|i| feed_record(chain, owner, token, base + u128::from(i), i))
            .collect(),
    )
    .await?;
    let disabled = view(env, &id).await?;
    assert_eq!(disabled["status"], "disabled", "{disabled}");
    assert_eq!(
        disabled["parkedCount"], 0,
        "nothing parked while disabled: {disabled}"
    );
    assert!(receiver.received().is_empty(), "nothing sent");
    Ok(())
}
