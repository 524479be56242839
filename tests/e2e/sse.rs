//! SSE that never loses an update: bursts, the stream's own end, resume, resync, several
//! clients, session expiry.

use std::time::Duration;

use alloy::primitives::U256;
use e2e::{Environment, SSE_MAX_SECS, SseClient, fresh_owner};
use live_balances::address::lower;
use tokio::time::Instant;

/// A fresh owner with a session over a fresh token it holds `start` of; returns the actor
/// that can send it more, the token and the owner.
async fn watched_owner(
    env: &Environment,
    start: u64,
) -> anyhow::Result<(local_stack::devnet::Wallet, String, String)> {
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    if start > 0 {
        actor.transfer(token, owner, U256::from(start)).await?;
    }
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    env.watch(&lower(&owner), &body).await?;
    Ok((actor, lower(&token), lower(&owner)))
}

#[tokio::test(flavor = "multi_thread")]
async fn burst_of_updates_arrives_complete_and_in_order() -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token, owner) = watched_owner(env, 0).await?;
    let mut sse = SseClient::connect(env, &owner, None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let token_address = token.parse()?;
    let owner_address = owner.parse()?;
    let mut total = 0u64;
    for i in 1..=15u64 {
        actor
            .transfer(token_address, owner_address, U256::from(i))
            .await?;
        total += i;
    }
    let steps = sse.follow_balance(&token, "0", &total.to_string()).await?;
    assert!(steps >= 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_ends_at_its_maximum_duration_and_the_reconnect_loses_nothing() -> anyhow::Result<()>
{
    let env = Environment::get();
    let (actor, token, owner) = watched_owner(env, 100).await?;
    let (token_address, owner_address) = (token.parse()?, owner.parse()?);
    let opened = Instant::now();
    let mut sse = SseClient::connect(env, &owner, None).await?;
    actor
        .transfer(token_address, owner_address, U256::from(1))
        .await?;
    let seen = sse
        .until_end(opened + Duration::from_secs(SSE_MAX_SECS + 20))
        .await?;
    let lasted = opened.elapsed();
    assert!(
        lasted >= Duration::from_secs(SSE_MAX_SECS - 1),
        "ended early: {lasted:?}"
    );
    assert_eq!(seen.first().map(|e| e.event.as_str()), Some("all_balances"));
    assert!(
        seen.iter().any(|e| e.event == "ping"),
        "pings keep the stream alive"
    );
    let last_balance = seen
        .iter()
        .rev()
        .find(|e| e.event == "balance_update" && e.data["address"] == token.as_str())
        .map(|e| e.data["balance"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| "100".into());

    // Changes while no stream is open, then resume where the last stream stopped.
    actor
        .transfer(token_address, owner_address, U256::from(10))
        .await?;
    actor
        .transfer(token_address, owner_address, U256::from(20))
        .await?;
    sse.auto_reconnect = true;
    sse.follow_balance(&token, &last_balance, "131").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_position_resyncs_with_a_fresh_snapshot() -> anyhow::Result<()> {
    let env = Environment::get();
    let (_actor, token, owner) = watched_owner(env, 42).await?;
    // A well-formed position that is not (or no longer) in this wallet's feed.
    let mut sse = SseClient::connect(env, &owner, Some("1")).await?;
    let first = sse.wait_for("resync", |e| e.event != "ping").await?;
    assert_eq!(first.event, "resync", "{first:?}");
    assert_eq!(first.data["code"], "position_expired");
    let snapshot = sse.wait_for("all_balances", |e| e.event != "ping").await?;
    assert_eq!(snapshot.event, "all_balances");
    assert_eq!(snapshot.data["balances"][&token], "42");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_of_one_wallet_both_get_everything() -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token, owner) = watched_owner(env, 0).await?;
    let mut a = SseClient::connect(env, &owner, None).await?;
    let mut b = SseClient::connect(env, &owner, None).await?;
    a.wait_for("all_balances a", |e| e.event == "all_balances")
        .await?;
    b.wait_for("all_balances b", |e| e.event == "all_balances")
        .await?;
    for amount in [3u64, 4, 5] {
        actor
            .transfer(token.parse()?, owner.parse()?, U256::from(amount))
            .await?;
    }
    let (ra, rb) = tokio::join!(
        a.follow_balance(&token, "0", "12"),
        b.follow_balance(&token, "0", "12")
    );
    ra?;
    rb?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_of_an_expired_session_ends_with_an_error_event() -> anyhow::Result<()> {
    let env = Environment::get();
    let (_actor, _token, owner) = watched_owner(env, 0).await?;
    let mut sse = SseClient::connect(env, &owner, None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;

    // Expire the session as time would: its expiry passes.
    let table = env.stack.table().await;
    let owner_address: alloy::primitives::Address = owner.parse()?;
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        - 10;
    let created = table
        .session(env.chain_id(), &owner_address)
        .await?
        .expect("session exists");
    table
        .client()
        .update_item()
        .table_name(table.name())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("S#{}", env.chain_id())),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(owner.clone()),
        )
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(
            ":past",
            aws_sdk_dynamodb::types::AttributeValue::N(past.to_string()),
        )
        .send()
        .await?;
    assert!(created.expires_at > past);

    sse.auto_reconnect = false;
    let error = sse.wait_for("error event", |e| e.event == "error").await?;
    assert_eq!(error.data["code"], "session_expired");
    let rest = sse
        .until_end(Instant::now() + Duration::from_secs(10))
        .await?;
    assert!(
        rest.iter().all(|e| e.event == "ping"),
        "nothing after the error but the end: {rest:?}"
    );
    Ok(())
}
