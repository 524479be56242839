//! Back-end watches hold: a back end that registered an order and a webhook subscription for a
//! wallet, and holds no stream, keeps getting the wallet's deliveries — `balance_update` and
//! `order_status` — long past the session's own lifetime; once its subscription and order are
//! gone, the wallet's tracking ends by the usual rules. The back end talks to a server whose
//! `SESSION_TTL_SECS` is a few seconds, so "past the TTL" is seconds away.

use std::time::Duration;

use alloy::primitives::U256;
use anyhow::Context;
use e2e::webhook_receiver::Receiver;
use e2e::{DEADLINE, Environment, SseClient, fresh_owner};
use live_balances::domain::address::lower;
use live_balances::domain::model::BalanceKey;
use live_balances::runtime::clock::unix_now;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The back end's server's session lifetime.
const TTL: u64 = 6;

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_only_back_end_keeps_its_wallet_tracked_until_its_order_and_subscription_end()
-> anyhow::Result<()> {
    let env = Environment::get();
    let port = local_stack::process::free_port()?;
    let name = format!("server-holds-{port}");
    let base = env
        .stack
        .start_server_as(&name, port, &[("SESSION_TTL_SECS".into(), TTL.to_string())])
        .await?;
    let outcome = held_then_let_go(env, &base).await;
    env.stack.stop_service(&name)?;
    outcome
}

async fn held_then_let_go(env: &'static Environment, base: &str) -> anyhow::Result<()> {
    let chain = env.chain_id();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = fresh_owner();
    let (owner_hex, token_hex) = (lower(&owner), lower(&token));
    let backend = |method: reqwest::Method, path: String, body: Option<Value>| {
        let request = env.with_key(env.http.request(method, format!("{base}{path}")));
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => request,
        };
        async move {
            let response = request.send().await?;
            anyhow::Ok((response.status().as_u16(), response.json::<Value>().await?))
        }
    };
    let session = || async {
        let url = env.url(&format!("/{chain}/sessions/{owner_hex}"));
        let response = env.http.get(&url).send().await?;
        anyhow::Ok((response.status().as_u16(), response.json::<Value>().await?))
    };

    // The back end: an order selling 50 (nothing held yet: short of both), and a subscription.
    let receiver = Receiver::start().await?;
    let order_path = format!("/{chain}/orders/{owner_hex}/held-order");
    let order = json!({"sellToken": token_hex, "sellAmount": "50", "validTo": unix_now() + 3600});
    let (status, answer) = backend(reqwest::Method::PUT, order_path.clone(), Some(order)).await?;
    anyhow::ensure!(status == 200, "order: {answer}");
    assert_eq!(answer["short"], "both", "{answer}");
    let subscription = json!({
        "url": receiver.url,
        "wallets": [owner_hex],
        "events": ["balance_update", "order_status"],
    });
    let (status, created) = backend(
        reqwest::Method::POST,
        format!("/{chain}/webhooks"),
        Some(subscription),
    )
    .await?;
    anyhow::ensure!(status == 201, "subscription: {created}");
    receiver.set_secret(created["secret"].as_str().context("secret")?);
    let id = created["id"].as_str().context("id")?.to_string();
    let registered = unix_now();
    let (status, held) = session().await?;
    assert_eq!(status, 200, "{held}");
    assert!(
        held["expiresAt"].as_u64().unwrap_or(0) > registered + 1_000,
        "held past its own {TTL} s: {held}"
    );

    // Long past the session's own lifetime, with no stream ever opened: a transfer that covers
    // the order's balance is delivered, and so is the order's new status.
    let until = Instant::now() + DEADLINE;
    while unix_now() <= registered + 2 * TTL {
        anyhow::ensure!(Instant::now() < until, "clock");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    actor.transfer(token, owner, U256::from(100)).await?;
    let accepted = receiver
        .wait_accepted("the transfer and the order's new status", DEADLINE, |a| {
            let kinds: Vec<Value> = a.iter().map(|r| r.json()).collect();
            kinds
                .iter()
                .any(|b| b["type"] == "balance_update" && b["data"]["balance"] == "100")
                && kinds
                    .iter()
                    .any(|b| b["type"] == "order_status" && b["data"]["short"] == "allowance")
        })
        .await?;
    assert!(accepted.iter().all(|r| r.verified));
    let (status, _) = session().await?;
    assert_eq!(
        status,
        200,
        "still tracked {} s after",
        unix_now() - registered
    );
    let (status, listed) = backend(
        reqwest::Method::GET,
        format!("/{chain}/orders/{owner_hex}"),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(listed["orders"][0]["short"], "allowance", "{listed}");

    // The order goes: the subscription still holds the wallet.
    let (status, _) = backend(reqwest::Method::DELETE, order_path, None).await?;
    assert_eq!(status, 200);
    let (status, _) = session().await?;
    assert_eq!(status, 200, "the subscription holds it");
    // The subscription goes too: the session lives its idle lifetime, then ends.
    let (status, _) = backend(
        reqwest::Method::DELETE,
        format!("/{chain}/webhooks/{id}"),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let (status, released) = session().await?;
    assert_eq!(status, 200, "{released}");
    assert!(
        released["expiresAt"].as_u64().unwrap_or(u64::MAX) <= unix_now() + TTL,
        "back to the usual rules: {released}"
    );
    let until = Instant::now() + DEADLINE;
    loop {
        let (status, _) = session().await?;
        if status == 404 {
            break;
        }
        anyhow::ensure!(Instant::now() < until, "the session did not end");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // And the poller stops: a transfer to the wallet is not read, while one to a wallet still
    // tracked (mined after it) reaches that wallet's stream.
    let control = lower(&fresh_owner());
    env.watch(&control, &format!(r#"{{"customTokens":["{token_hex}"]}}"#))
        .await?;
    let mut stream = SseClient::connect(env, &control, None).await?;
    stream
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    // The poller drops the wallet within a step of its session's end: a transfer read before
    // that moves the stored value, and the next one no longer does.
    let dropped_at = Instant::now();
    let table = env.stack.table().await;
    let key = BalanceKey::Balance { token };
    let stored = || async {
        anyhow::Ok(
            table
                .balance(chain, &owner, &key)
                .await?
                .and_then(|item| item.read.value())
                .unwrap_or_default(),
        )
    };
    let mut before = stored().await?;
    loop {
        actor.transfer(token, owner, U256::from(5)).await?;
        actor
            .transfer(token, control.parse()?, U256::from(1))
            .await?;
        stream
            .wait_for("the control's update", |e| {
                e.event == "balance_update" && e.data["address"] == token_hex.as_str()
            })
            .await?;
        let after = stored().await?;
        if after == before {
            break;
        }
        anyhow::ensure!(
            dropped_at.elapsed() < DEADLINE,
            "the wallet is still read: {after}"
        );
        before = after;
    }
    Ok(())
}
