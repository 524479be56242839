//! Rolling upgrades: every kind of item a released version wrote is read by this one.
//!
//! During a deploy the old and the new poller, functions and server run side by side on one
//! table, and after it the new version reads everything the old one left. The rule (see the
//! operating guide, *Upgrades*): an item's attributes are only ever added, each new one with a
//! default for items that lack it; none is renamed, retyped or given a new meaning, and no key
//! format changes. `tests/upgrade/items-<version>.json` holds one item of every kind exactly as
//! that version wrote it (scanned from DynamoDB Local after `make dev` with a session over a
//! token list, custom and discovered tokens, an approval, an order, a failing and a working
//! webhook subscription); this test writes them into a table of their own and reads each back
//! through the storage module's public reads and the stream decoders, as the new binaries do.

use std::collections::HashMap;

use alloy::primitives::{Address, U256, address};
use e2e::Environment;
use live_balances::domain::model::{BalanceKey, FeedEvent, FeedPosition, TokenRead};
use live_balances::storage::{
    StreamImage, Table, TokenFact, balance_item_from_image, feed_event_from_image, order_from_image,
};

/// Every released version whose items this version must read.
const RELEASES: &[(&str, &str)] = &[("0.1.0", include_str!("../upgrade/items-0.1.0.json"))];

/// What the 0.1.0 fixtures were written about.
const CHAIN: u64 = 31337;
const OWNER: Address = address!("0x70997970c51812dc3a010c7d01b50e0d17dc79c8");
const TOKEN: Address = address!("0xc476db56c4de92ec866ca279af20dd0860849b35");
const SPENDER: Address = address!("0x1111111111111111111111111111111111111111");
const VAULT_RELAYER: Address = address!("0xc92e8bdf79f0507f65a392b0ab4667716bfe0110");
const UNREADABLE: Address = address!("0x000000000000000000000000000000000000dead");
const LIST_URL: &str = "http://127.0.0.1:18777/list.json";
/// When they were written (Unix seconds): reads that take a clock are asked as of then.
const WRITTEN_AT: u64 = 1_796_442_200;
const WORKING_HOOK: &str = "8fd1939f908716df689a0e98fc7affb8";
const FAILING_HOOK: &str = "f92e4a0b4729a391fbe301968c34f2d7";

/// A table of its own on the stack's DynamoDB Local, holding `items` as written.
async fn table_with(
    env: &Environment,
    release: &str,
    items: &[StreamImage],
) -> anyhow::Result<Table> {
    let stack_table = env.stack.table().await;
    let name = format!(
        "upgrade-{}-{}",
        release.replace('.', "-"),
        rand::random::<u32>()
    );
    let table = Table::new(stack_table.client().clone(), &name);
    table.create_if_missing().await?;
    // DynamoDB Local removes items whose `ttl` has passed, as DynamoDB does: the fixtures'
    // expiries are moved a day past now. Only the value moves; the attribute stays as written.
    let later = (live_balances::runtime::clock::unix_now() + 86_400).to_string();
    for item in items {
        let mut item = item.clone();
        if item.get("ttl").is_some() {
            item.insert("ttl".into(), serde_dynamo::AttributeValue::N(later.clone()));
        }
        let item: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> = item.into();
        table
            .client()
            .put_item()
            .table_name(&name)
            .set_item(Some(item))
            .send()
            .await?;
    }
    Ok(table)
}

fn image(items: &[StreamImage], pk_prefix: &str, sk_prefix: &str) -> StreamImage {
    let s = |item: &StreamImage, key: &str| match item.get(key) {
        Some(serde_dynamo::AttributeValue::S(text)) => text.clone(),
        _ => String::new(),
    };
    items
        .iter()
        .find(|i| s(i, "pk").starts_with(pk_prefix) && s(i, "sk").starts_with(sk_prefix))
        .cloned()
        .unwrap_or_else(|| panic!("no fixture item {pk_prefix}…/{sk_prefix}…"))
}

#[tokio::test(flavor = "multi_thread")]
async fn items_written_by_released_versions_are_read_by_this_one() -> anyhow::Result<()> {
    let env = Environment::get();
    for (release, json) in RELEASES {
        let items: Vec<StreamImage> = serde_json::from_str(json)?;
        let table = table_with(env, release, &items).await?;
        reads_what_0_1_0_wrote(&table, &items)
            .await
            .map_err(|e| e.context(format!("items of {release}")))?;
    }
    Ok(())
}

async fn reads_what_0_1_0_wrote(table: &Table, items: &[StreamImage]) -> anyhow::Result<()> {
    // The session: lists by reference, custom, discovered tokens and spenders.
    let session = table.session(CHAIN, &OWNER).await?.expect("session");
    assert!(session.asked.custom_tokens.contains(&TOKEN));
    assert!(
        session
            .asked
            .spenders
            .contains(&live_balances::domain::model::Spender::Erc20(SPENDER))
    );
    assert!(session.asked.discover);
    assert_eq!(session.discovered.len(), 2);
    assert_eq!(session.asked.token_lists.get(LIST_URL), Some(&1));
    assert!(session.expires_at > WRITTEN_AT && session.streaming_until > 0);
    assert_eq!(table.live_sessions(CHAIN).await?, 1);

    // Values: a balance and an allowance; the order beside them.
    let values = table.balances(CHAIN, &OWNER).await?;
    let allowance = |spender| {
        values
            .iter()
            .find(|v| {
                v.key
                    == BalanceKey::Allowance {
                        token: TOKEN,
                        spender,
                    }
            })
            .map(|v| v.read.clone())
    };
    assert_eq!(allowance(SPENDER), Some(TokenRead::Value(U256::from(5000))));
    assert!(
        values
            .iter()
            .any(|v| matches!(v.key, BalanceKey::Balance { .. }))
    );
    let orders = table.orders(CHAIN, &OWNER).await?;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].order.id.as_str(), "fixture-order-1");
    assert_eq!(orders[0].order.sell_amount, U256::from(1000));
    assert_eq!(
        orders[0].order.spender,
        live_balances::domain::model::Spender::Erc20(VAULT_RELAYER)
    );

    // The feed: a balance change, an allowance change and an order's status.
    let feed = table
        .feed_after(CHAIN, &OWNER, &FeedPosition::start(), 100)
        .await?;
    assert!(feed.iter().any(|e| matches!(e, FeedEvent::Order(_))));
    let value_keys: Vec<BalanceKey> = feed
        .iter()
        .filter_map(|e| match e {
            FeedEvent::Value(entry) => Some(entry.key),
            FeedEvent::Order(_) => None,
        })
        .collect();
    assert!(
        value_keys
            .iter()
            .any(|k| matches!(k, BalanceKey::Allowance { .. }))
    );
    assert!(
        value_keys
            .iter()
            .any(|k| matches!(k, BalanceKey::Balance { .. }))
    );

    // What the stream consumers decode from the same items' images.
    assert!(balance_item_from_image(&image(items, "B#", "A#"))?.is_some());
    assert!(order_from_image(&image(items, "B#", "O#"))?.is_some());
    assert!(feed_event_from_image(&image(items, "F#", "0"))?.is_some());

    // The chain's own items: cursor, list cache, metadata cache, token facts, change log.
    let cursor = table.cursor(31338).await?.expect("cursor");
    assert!(cursor.block > 0 && !cursor.recent.is_empty());
    let head = table.list_head(CHAIN, LIST_URL).await?.expect("list head");
    assert_eq!((head.generation, head.token_count), (1, 1));
    let listed = table.list_tokens(CHAIN, &head).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, TOKEN);
    assert_eq!(listed[0].1.symbol, "FIX");
    let unreadable = table
        .token_facts(CHAIN, TokenFact::Unreadable, WRITTEN_AT)
        .await?;
    assert!(unreadable.contains(&UNREADABLE));
    let cached = table
        .cached_token_metadata(CHAIN, &[UNREADABLE], WRITTEN_AT)
        .await?;
    assert!(cached.contains_key(&UNREADABLE));
    let log = table
        .chain_log_since(CHAIN, (WRITTEN_AT - 600) * 1000, WRITTEN_AT * 1000)
        .await?;
    assert!(log.iter().any(|entry| entry.owner == OWNER));
    // Webhooks: both subscriptions, the wallet index, a delivered position, parked deliveries.
    let working = table.webhook(WORKING_HOOK).await?.expect("subscription");
    // Its secret was stored in the clear then: read as it is (and sealed when rotated).
    assert!(
        working.filter.wallets.contains(&OWNER)
            && matches!(&working.secrets.current, live_balances::runtime::sealing::SealedSecret::Legacy(s) if s.starts_with("whsec_"))
    );
    let failing = table.webhook(FAILING_HOOK).await?.expect("subscription");
    assert!(failing.health.failing_since.is_some() && failing.health.last_error.is_some());
    let indexed = table.webhooks_of_wallet(CHAIN, &OWNER).await?;
    assert_eq!(indexed, vec![WORKING_HOOK.to_string()]);
    assert!(
        table
            .webhook_delivered(WORKING_HOOK, &OWNER)
            .await?
            .is_some()
    );
    let parked = table.parked_webhook_deliveries(FAILING_HOOK, 100).await?;
    assert!(!parked.is_empty() && parked.iter().all(|p| p.owner == OWNER));
    Ok(())
}
