//! The fanout under a poisoned stream: a malformed record fails alone (the records before it
//! land, nothing after it is skipped), the pump retries it and then parks it in the dead-letter
//! file while later records flow, and a record delivered twice yields one feed entry. And a
//! batch of one wallet's changes to several tokens re-judges exactly the orders on them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, U256};
use aws_sdk_dynamodb::types::AttributeValue;
use e2e::follow::balance_of;
use e2e::table_rows::put_first_read;
use e2e::{DEADLINE, Environment, fresh_owner};
use live_balances::domain::address::lower;
use live_balances::domain::api_key::Tenant;
use live_balances::domain::model::{BalanceKey, FeedPosition, Spender};
use live_balances::domain::order::{Order, OrderId};
use live_balances::runtime::clock::unix_now_ms;
use live_balances::storage::{keys, stream_record};
use serde_json::{Value, json};

use crate::watched_clients;

const TOKEN: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";

/// A balance item's stream record as Lambda delivers it; `read` may be anything.
fn record(
    chain: u64,
    owner: &Address,
    read: &str,
    previous: Option<&str>,
    sequence: &str,
) -> Value {
    record_of(chain, owner, TOKEN, read, previous, sequence)
}

/// [`record`] of `token`'s balance.
fn record_of(
    chain: u64,
    owner: &Address,
    token: &str,
    read: &str,
    previous: Option<&str>,
    sequence: &str,
) -> Value {
    let image = |read: &str| {
        json!({
            "pk": { "S": keys::balance_pk(chain, owner) },
            "sk": { "S": format!("T#{token}") },
            "chain_id": { "N": chain.to_string() },
            "owner": { "S": lower(owner) },
            "token": { "S": token },
            "read": { "S": read },
            "block": { "N": "10" },
            "updated_at": { "N": "1700000000" },
        })
    };
    stream_record(
        image(read),
        previous.map(image),
        Some(sequence),
        1_700_000_000,
    )
}

/// Invokes the fanout as the pump does and returns its `batchItemFailures` identifiers.
async fn invoke(env: &Environment, records: Vec<Value>) -> anyhow::Result<Vec<String>> {
    let reply: Value = env
        .http
        .post(&env.stack.endpoints.fanout_invoke)
        .json(&json!({ "Records": records }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(reply["batchItemFailures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

async fn feed_positions(
    env: &Environment,
    chain: u64,
    owner: &Address,
) -> anyhow::Result<Vec<String>> {
    let table = env.stack.table().await;
    let entries = table
        .feed_after(chain, owner, &FeedPosition::start(), 100)
        .await?;
    Ok(entries
        .iter()
        .map(|e| e.position().as_str().trim_start_matches('0').to_string())
        .collect())
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_poison_and_duplicate() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let chain = env.chain_id();

    // A record delivered twice (a retried batch) yields one feed entry.
    let owner = fresh_owner();
    let once = record(chain, &owner, "1500", Some("1000"), "100");
    assert_eq!(invoke(env, vec![once.clone()]).await?, Vec::<String>::new());
    assert_eq!(invoke(env, vec![once]).await?, Vec::<String>::new());
    assert_eq!(feed_positions(env, chain, &owner).await?, ["100"]);

    // A poison record in the middle of a batch: the batch item failure names exactly it, the
    // record before it is in the feed, the one after it is left for the retry (not skipped).
    let batch = vec![
        record(chain, &owner, "1600", Some("1500"), "101"),
        record(chain, &owner, "not-a-number", Some("1600"), "102"),
        record(chain, &owner, "1700", Some("1600"), "103"),
    ];
    assert_eq!(invoke(env, batch).await?, ["102"]);
    assert_eq!(feed_positions(env, chain, &owner).await?, ["100", "101"]);

    // Through the real stream: a poison item written to the table is retried by the pump,
    // then parked in the dead-letter file; records after it flow.
    let dead_letter = env.stack.options.log_dir.join("pump-dead-letter.jsonl");
    let pump_log = env.stack.log_of("pump");
    let retries_before = count(&std::fs::read_to_string(&pump_log)?, "retrying batch");
    let poisoned = fresh_owner();
    let table = env.stack.table().await;
    table
        .client()
        .put_item()
        .table_name(table.name())
        .item("pk", AttributeValue::S(keys::balance_pk(chain, &poisoned)))
        .item("sk", AttributeValue::S(format!("T#{TOKEN}")))
        .item("chain_id", AttributeValue::N(chain.to_string()))
        .item("owner", AttributeValue::S(lower(&poisoned)))
        .item("token", AttributeValue::S(TOKEN.into()))
        .item("read", AttributeValue::S("not-a-number".into()))
        .item("block", AttributeValue::N("1".into()))
        .item("updated_at", AttributeValue::N("1".into()))
        .send()
        .await?;
    let parked = local_stack::stack::wait_for(
        "the poison record parked",
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(&dead_letter).unwrap_or_default();
            let line = text
                .lines()
                .find(|l| l.contains(&lower(&poisoned)))
                .map(str::to_string);
            line.ok_or_else(|| anyhow::anyhow!("not parked yet"))
        },
    )
    .await?;
    let parked: Value = serde_json::from_str(&parked)?;
    assert_eq!(parked["dynamodb"]["NewImage"]["read"]["S"], "not-a-number");
    let retries = count(&std::fs::read_to_string(&pump_log)?, "retrying batch") - retries_before;
    assert!(retries >= 3, "retried before parking ({retries} retries)");

    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = fresh_owner();
    let mut clients = watched_clients(env, token, &[owner]).await?;
    actor.transfer(token, owner, U256::from(42)).await?;
    let want = balance_of(env, token, owner).await?.to_string();
    let (sse, trail) = &mut clients[0];
    trail.follow_to(sse, &want, DEADLINE).await?;
    eprintln!("poison record parked after {retries} retries; later records flowed");
    Ok(())
}

/// `owner`'s order selling 100 of `token` through `spender`, stored as fillable, once the
/// values it is judged on are in the table and the fanout has handled their records (so only
/// the test's own batches judge it).
async fn order_on_stored_values(
    env: &Environment,
    owner: Address,
    token: Address,
    balance: u64,
) -> anyhow::Result<OrderId> {
    let chain = env.chain_id();
    let table = env.stack.table().await;
    let spender = Address::repeat_byte(0x5e);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let keys = [
        BalanceKey::Balance { token },
        Spender::Erc20(spender).key(token),
    ];
    let since = unix_now_ms();
    for (key, value) in keys.iter().zip([balance, 1_000]) {
        put_first_read(&table, chain, owner, *key, U256::from(value), 10, now).await?;
    }
    // Done once the change log names the wallet at its newest entry: the fanout names a
    // wallet after judging its orders, so no invocation still to judge them can see the order.
    local_stack::stack::wait_for("the values handled by the fanout", DEADLINE, || async {
        let told = table
            .feed_after(chain, &owner, &FeedPosition::start(), 100)
            .await?;
        anyhow::ensure!(
            told.len() == keys.len(),
            "{} of {} entries",
            told.len(),
            keys.len()
        );
        let newest = told.iter().map(|e| e.position()).max();
        let named = table
            .chain_log_since(chain, since, unix_now_ms())
            .await?
            .into_iter()
            .any(|e| e.owner == owner && Some(&e.position) >= newest);
        anyhow::ensure!(named, "the wallet is not named in the change log yet");
        Ok(())
    })
    .await?;
    let id = OrderId::parse(&format!("order-{}", lower(&owner)))?;
    let order = Order {
        chain_id: chain,
        owner,
        id: id.clone(),
        sell_token: token,
        sell_amount: U256::from(100),
        spender: Spender::Erc20(spender),
        valid_to: now + 3_600,
    };
    let tenant = Tenant::parse("fanout-test")?;
    // Stored as judged on ample values: the table's own would not keep it fillable.
    let fillable = order.judge(|_| U256::MAX);
    table.put_order(&order, &tenant, &fillable, 10, now).await?;
    Ok(id)
}

/// Whether `owner`'s order `id` is stored as fillable.
async fn stored_fillable(env: &Environment, owner: &Address, id: &OrderId) -> anyhow::Result<bool> {
    let table = env.stack.table().await;
    let orders = table.orders(env.chain_id(), owner).await?;
    let order = orders
        .iter()
        .find(|o| &o.order.id == id)
        .ok_or_else(|| anyhow::anyhow!("order {id:?} not stored"))?;
    Ok(order.status.fillable())
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_judges_a_wallets_orders_once_on_all_its_changes() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let sold = Address::repeat_byte(0xa1);
    let other = "0x00000000000000000000000000000000000000b2";

    // A batch changing another token, then the sold one: the order is judged on the table's
    // balance (50 of the 100 it sells) and crosses, whatever came before in the batch.
    let owner = fresh_owner();
    let id = order_on_stored_values(env, owner, sold, 50).await?;
    assert!(stored_fillable(env, &owner, &id).await?);
    let batch = vec![
        record_of(chain, &owner, other, "7", Some("6"), "201"),
        record_of(chain, &owner, &lower(&sold), "50", Some("500"), "202"),
        record_of(chain, &owner, other, "8", Some("7"), "203"),
    ];
    assert_eq!(invoke(env, batch).await?, Vec::<String>::new());
    assert!(
        !stored_fillable(env, &owner, &id).await?,
        "the order crossed"
    );
    // Every entry of the batch is in the feed, in order, beside the stored values' own.
    let told = feed_positions(env, chain, &owner).await?;
    let batch_told: Vec<&str> = told
        .iter()
        .map(String::as_str)
        .filter(|p| ["201", "202", "203"].contains(p))
        .collect();
    assert_eq!(batch_told, ["201", "202", "203"]);

    // A batch changing only other tokens leaves the order as stored, though the table's values
    // would cross it: only a change to a value it is judged on re-judges it.
    let owner = fresh_owner();
    let id = order_on_stored_values(env, owner, sold, 50).await?;
    let batch = vec![
        record_of(chain, &owner, other, "7", Some("6"), "301"),
        record_of(chain, &owner, other, "8", Some("7"), "302"),
    ];
    assert_eq!(invoke(env, batch).await?, Vec::<String>::new());
    assert!(
        stored_fillable(env, &owner, &id).await?,
        "no value of the order changed"
    );
    Ok(())
}
