//! Order fillability end to end, on both transports: an order registered with
//! `PUT /{chain}/orders/{owner}/{id}` goes unfillable when the wallet transfers the token away
//! and when it lowers its allowance (by `approve`, and by a spender's `transferFrom` with no
//! `Approval`), and fillable again after, each as an `order_status` event on the wallet's
//! stream (single- and multi-wallet); `all_balances` after a reconnect carries the current
//! status; an expired order is gone; bad input is refused with nothing stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::U256;
use e2e::{DEADLINE, Environment, Event, SseClient, Transport, fresh_owner};
use live_balances::domain::address::lower;
use local_stack::devnet::Wallet;
use serde_json::{Value, json};
use tokio::time::Instant;

fn now() -> anyhow::Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

/// PUTs `body` as order `id` of `owner` through `transport`; status and JSON answer.
async fn put_order(
    env: &Environment,
    transport: Transport,
    owner: &str,
    id: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let url = env.url_via(
        transport,
        &format!("/{}/orders/{owner}/{id}", env.chain_id()),
    );
    env.send_backend(reqwest::Method::PUT, &url, body.to_string())
        .await
}

async fn get_orders(
    env: &Environment,
    transport: Transport,
    owner: &str,
) -> anyhow::Result<(u16, Value)> {
    let url = env.url_via(transport, &format!("/{}/orders/{owner}", env.chain_id()));
    env.json_request(|| env.with_key(env.http.get(&url))).await
}

/// Waits for the `order_status` of `id` saying `fillable`.
async fn status(sse: &mut SseClient, id: &str, fillable: bool) -> anyhow::Result<Event> {
    sse.wait_for(&format!("order_status {id} fillable={fillable}"), |e| {
        e.event == "order_status" && e.data["orderId"] == id && e.data["fillable"] == fillable
    })
    .await
}

/// The order `id` in an `all_balances` (or `GET /orders`) list.
fn listed<'a>(orders: &'a Value, id: &str) -> Option<&'a Value> {
    orders.as_array()?.iter().find(|o| o["orderId"] == id)
}

on_both_transports!(
    an_order_follows_transfers_approvals_and_transfer_from,
    fillability_test
);
async fn fillability_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = Wallet::fresh(&env.stack.rpc_url).await?;
    let spender = Wallet::fresh(&env.stack.rpc_url).await?;
    let (owner_hex, token_hex, spender_hex) = (
        lower(&owner.address),
        lower(&token),
        lower(&spender.address),
    );
    actor
        .transfer(token, owner.address, U256::from(500))
        .await?;
    owner
        .approve(token, spender.address, U256::from(300))
        .await?;

    // Registering creates the session: no session request before it.
    let id = format!("0x{}", "ab".repeat(56));
    let (code, order) = put_order(
        env,
        transport,
        &owner_hex,
        &id.to_uppercase().replacen("0X", "0x", 1),
        &json!({"sellToken": token_hex, "sellAmount": "200", "spender": spender_hex, "validTo": now()? + 3600}),
    )
    .await?;
    anyhow::ensure!(code == 200, "{order}");
    assert_eq!(order["orderId"], id.as_str(), "hex ids have one spelling");
    assert_eq!(order["fillable"], true, "{order}");
    assert_eq!(order["short"], Value::Null);
    assert_eq!(order["chainId"], env.chain_id());

    let mut sse = SseClient::connect_via(env, transport, &owner_hex, None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let shown = listed(&snapshot.data["orders"], &id).cloned();
    assert_eq!(
        shown.as_ref().map(|o| o["fillable"].clone()),
        Some(json!(true)),
        "{}",
        snapshot.data
    );
    assert_eq!(
        snapshot.data["allowances"][&token_hex][&spender_hex], "300",
        "the session tracks the order's spender"
    );

    // The wallet sends the token away: its balance no longer covers the order.
    let away = owner
        .transfer(token, actor.address, U256::from(400))
        .await?;
    let short = status(&mut sse, &id, false).await?;
    assert_eq!(short.data["short"], "balance", "{:?}", short.data);
    assert_eq!(short.data["balanceShortfall"], "100");
    assert_eq!(short.data["allowanceShortfall"], "0");
    assert_eq!(short.data["sellToken"], token_hex.as_str());
    assert!(short.id.is_some(), "order_status has its own position");
    assert!(
        short.data["blockNumber"].as_u64().unwrap_or(0) >= away.block_number.unwrap_or(u64::MAX),
        "{:?}",
        short.data
    );
    // And back: fillable again.
    actor
        .transfer(token, owner.address, U256::from(400))
        .await?;
    let fillable = status(&mut sse, &id, true).await?;
    assert_eq!(fillable.data["short"], Value::Null);
    assert!(fillable.id > short.id, "{fillable:?} after {short:?}");

    // The wallet lowers its allowance, then approves again.
    owner
        .approve(token, spender.address, U256::from(50))
        .await?;
    let short = status(&mut sse, &id, false).await?;
    let allowance_short_id = short.id.clone();
    assert_eq!(short.data["short"], "allowance", "{:?}", short.data);
    assert_eq!(short.data["allowanceShortfall"], "150");
    owner
        .approve(token, spender.address, U256::from(300))
        .await?;
    status(&mut sse, &id, true).await?;

    // A spender's transferFrom lowers the allowance below the amount with no Approval event.
    spender
        .transfer_from(token, owner.address, actor.address, U256::from(150))
        .await?;
    let short = status(&mut sse, &id, false).await?;
    assert_eq!(short.data["short"], "allowance", "{:?}", short.data);
    assert_eq!(short.data["allowanceShortfall"], "50");
    drop(sse);

    // Each order_status has its own feed position: a reconnect with the id of the event that
    // said fillable again (Last-Event-ID) replays what followed, in order, at its own ids.
    let mut replay =
        SseClient::connect_via(env, transport, &owner_hex, fillable.id.as_deref()).await?;
    let replayed = status(&mut replay, &id, false).await?;
    assert_eq!(replayed.id, allowance_short_id, "{replayed:?}");
    assert_eq!(replayed.data["short"], "allowance");
    let replayed = status(&mut replay, &id, true).await?;
    assert!(replayed.id > allowance_short_id, "{replayed:?}");
    drop(replay);

    // A new connection's snapshot carries the current status.
    let mut again = SseClient::connect_via(env, transport, &owner_hex, None).await?;
    let snapshot = again
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let order = listed(&snapshot.data["orders"], &id)
        .cloned()
        .unwrap_or_default();
    assert_eq!(order["fillable"], false, "{}", snapshot.data);
    assert_eq!(order["short"], "allowance");
    assert_eq!(order["allowanceShortfall"], "50");
    assert_eq!(order["balanceShortfall"], "0");

    // The multi-wallet stream carries the wallet's order events too, naming the pair.
    let mut many =
        SseClient::connect_many(env, transport, &[(env.chain_id(), owner_hex.clone())], None)
            .await?;
    many.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    owner
        .approve(token, spender.address, U256::from(1000))
        .await?;
    let back = status(&mut many, &id, true).await?;
    assert_eq!(back.data["owner"], owner_hex.as_str());
    assert_eq!(back.data["chainId"], env.chain_id());
    Ok(())
}

on_both_transports!(
    orders_expire_are_deleted_and_refuse_bad_input,
    lifecycle_test
);
async fn lifecycle_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = fresh_owner();
    let owner_hex = lower(&owner);
    let token_hex = lower(&token);
    actor.transfer(token, owner, U256::from(10)).await?;
    let chain = env.chain_id();
    let good = json!({"sellToken": token_hex, "sellAmount": "5", "validTo": now()? + 3600});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().map(|o| o.remove(field));
        body
    };

    // Bad input: a 4xx with a code and a message, and nothing stored — not even a session.
    let cases: Vec<(String, Value, u16, &str)> = vec![
        (
            format!("/0/orders/{owner_hex}/o1"),
            good.clone(),
            400,
            "invalid_chain_id",
        ),
        (
            format!("/999/orders/{owner_hex}/o1"),
            good.clone(),
            404,
            "unknown_chain",
        ),
        (
            format!("/{chain}/orders/0x12/o1"),
            good.clone(),
            400,
            "invalid_owner",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/a!b"),
            good.clone(),
            400,
            "invalid_order_id",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/{}", "x".repeat(129)),
            good.clone(),
            400,
            "invalid_order_id",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("sellToken", json!("0x12")),
            400,
            "invalid_token",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("sellToken", json!(lower(&live_balances::NATIVE_TOKEN))),
            400,
            "invalid_token",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("spender", json!("nope")),
            400,
            "invalid_token",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("sellAmount", json!("1e3")),
            400,
            "invalid_order",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("sellAmount", json!("0")),
            400,
            "invalid_order",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("sellAmount", json!(5)),
            400,
            "invalid_body",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("validTo", json!(now()? - 1)),
            400,
            "invalid_order",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("validTo", json!("soon")),
            400,
            "invalid_body",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            with("price", json!("1")),
            400,
            "invalid_body",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            without("sellToken"),
            400,
            "invalid_body",
        ),
        (
            format!("/{chain}/orders/{owner_hex}/o1"),
            json!([1]),
            400,
            "invalid_body",
        ),
    ];
    for (path, body, want_status, want_code) in cases {
        let url = env.url_via(transport, &path);
        let (code, answer) = env
            .send_backend(reqwest::Method::PUT, &url, body.to_string())
            .await?;
        assert_eq!(
            (code, answer["code"].as_str()),
            (want_status, Some(want_code)),
            "{path} {body}: {answer}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let url = env.url_via(transport, &format!("/{chain}/orders/{owner_hex}/o1"));
    let (code, answer) = env
        .json_request(|| env.with_key(env.http.put(&url)).body(good.to_string()))
        .await?;
    assert_eq!(
        (code, answer["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (code, answer) = env
        .json_request(|| env.with_key(env.http.post(&url)).body(good.to_string()))
        .await?;
    assert_eq!(
        (code, answer["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (code, answer) = env
        .json_request(|| env.with_key(env.http.delete(&url)))
        .await?;
    assert_eq!(
        (code, answer["code"].as_str()),
        (404, Some("order_not_found")),
        "{answer}"
    );
    let (code, session) = env
        .json_request(|| {
            env.http
                .get(env.url_via(transport, &format!("/{chain}/sessions/{owner_hex}")))
        })
        .await?;
    assert_eq!(code, 404, "a refused order stores no session: {session}");
    let (_, listed_orders) = get_orders(env, transport, &owner_hex).await?;
    assert_eq!(listed_orders["orders"], json!([]));

    // An order that expires in a moment, one that stays, and one deleted.
    let (code, answer) = put_order(
        env,
        transport,
        &owner_hex,
        "soon",
        &with("validTo", json!(now()? + 2)),
    )
    .await?;
    anyhow::ensure!(code == 200, "{answer}");
    let (code, answer) = put_order(env, transport, &owner_hex, "stays", &good).await?;
    anyhow::ensure!(code == 200, "{answer}");
    assert_eq!(
        answer["short"], "allowance",
        "no allowance to the relayer: {answer}"
    );
    let (code, answer) = put_order(
        env,
        transport,
        &owner_hex,
        "gone",
        &with("sellAmount", json!("11")),
    )
    .await?;
    anyhow::ensure!(code == 200, "{answer}");
    assert_eq!(answer["short"], "both", "10 held, no allowance: {answer}");
    assert_eq!(answer["balanceShortfall"], "1");
    assert_eq!(
        answer["spender"],
        lower(&live_balances::config::DEFAULT_SPENDER).as_str(),
        "the chain's default order spender"
    );
    let url = env.url_via(transport, &format!("/{chain}/orders/{owner_hex}/gone"));
    let (code, answer) = env
        .json_request(|| env.with_key(env.http.delete(&url)))
        .await?;
    assert_eq!(
        (code, answer["deleted"].clone()),
        (200, json!(true)),
        "{answer}"
    );

    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, listed_orders) = get_orders(env, transport, &owner_hex).await?;
        let ids: Vec<&str> = listed_orders["orders"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["orderId"].as_str()).collect())
            .unwrap_or_default();
        if ids == ["stays"] {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "orders still {ids:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut sse = SseClient::connect_via(env, transport, &owner_hex, None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let ids: Vec<&str> = snapshot.data["orders"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["orderId"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        ids,
        ["stays"],
        "expired and deleted orders are gone: {}",
        snapshot.data
    );
    Ok(())
}
