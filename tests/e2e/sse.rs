//! SSE that never loses an update, on both transports of the same api — the function URL and
//! the long-lived server: the snapshot then updates, bursts, the stream's own end, resume with
//! `Last-Event-ID`, resync, several clients, session keep-alive and expiry, no stream without a
//! session.
//! Every test runs twice, as `<name>::function_url` and `<name>::server`.

use std::time::Duration;

use alloy::primitives::U256;
use e2e::{Environment, SSE_MAX_SECS, SseClient, Transport, fresh_owner};
use live_balances::domain::address::lower;
use tokio::time::Instant;

/// A fresh owner with a session (created through `transport`) over a fresh token it holds
/// `start` of; returns the actor that can send it more, the token and the owner.
async fn watched_owner(
    env: &Environment,
    transport: Transport,
    start: u64,
) -> anyhow::Result<(local_stack::devnet::Wallet, String, String)> {
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    if start > 0 {
        actor.transfer(token, owner, U256::from(start)).await?;
    }
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    env.watch_via(transport, &lower(&owner), &body).await?;
    Ok((actor, lower(&token), lower(&owner)))
}

on_both_transports!(snapshot_then_updates, snapshot_then_updates_test);
async fn snapshot_then_updates_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token, owner) = watched_owner(env, transport, 100).await?;
    let mut sse = SseClient::connect_via(env, transport, &owner, None).await?;
    let snapshot = sse.wait_for("all_balances", |e| e.event != "ping").await?;
    assert_eq!(snapshot.event, "all_balances", "{snapshot:?}");
    assert_eq!(snapshot.data["balances"][&token], "100");
    assert!(
        snapshot.id.is_some(),
        "all_balances carries its feed position"
    );
    assert!(sse.retry_ms.is_some(), "a retry: hint comes first");
    actor
        .transfer(token.parse()?, owner.parse()?, U256::from(1))
        .await?;
    let update = sse
        .wait_for("balance_update", |e| e.event == "balance_update")
        .await?;
    assert_eq!(update.data["address"], token.as_str());
    assert_eq!(update.data["previousBalance"], "100");
    assert_eq!(update.data["balance"], "101");
    assert!(update.id > snapshot.id, "{update:?} after {snapshot:?}");
    Ok(())
}

on_both_transports!(an_open_stream_keeps_its_session_alive, keep_alive_test);
/// A session lives `SESSION_TTL` without a stream; an open one pushes its expiry forward every
/// `SSE_KEEPALIVE_SECS` (1 s on the test stack).
async fn keep_alive_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (_, _, owner) = watched_owner(env, transport, 1).await?;
    let table = env.stack.table().await;
    let address = owner.parse()?;
    let expiry = || async {
        let session = table.session(env.chain_id(), &address).await?;
        anyhow::Ok(session.map(|s| s.expires_at).unwrap_or_default())
    };
    let created = expiry().await?;
    let mut sse = SseClient::connect_via(env, transport, &owner, None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let until = Instant::now() + e2e::DEADLINE;
    while expiry().await? <= created {
        anyhow::ensure!(
            Instant::now() < until,
            "the expiry {created} not pushed forward by the open stream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

on_both_transports!(burst_of_updates_arrives_complete_and_in_order, burst_test);
async fn burst_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token, owner) = watched_owner(env, transport, 0).await?;
    let mut sse = SseClient::connect_via(env, transport, &owner, None).await?;
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

on_both_transports!(
    stream_ends_at_its_maximum_duration_and_the_reconnect_loses_nothing,
    stream_end_test
);
async fn stream_end_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token, owner) = watched_owner(env, transport, 100).await?;
    let (token_address, owner_address) = (token.parse()?, owner.parse()?);
    let opened = Instant::now();
    let mut sse = SseClient::connect_via(env, transport, &owner, None).await?;
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
    // What the client holds: its last update of the token, else its snapshot — which may
    // already show the transfer when the poller took it before the stream read the table.
    let last_balance = seen
        .iter()
        .rev()
        .find_map(|e| match e.event.as_str() {
            "balance_update" if e.data["address"] == token.as_str() => e.data["balance"].as_str(),
            "all_balances" => e.data["balances"][&token].as_str(),
            _ => None,
        })
        .unwrap_or("100")
        .to_string();

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

on_both_transports!(
    a_new_connection_with_last_event_id_replays_exactly_what_was_missed,
    resume_test
);
async fn resume_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token, owner) = watched_owner(env, transport, 0).await?;
    let (token_address, owner_address) = (token.parse()?, owner.parse()?);
    let mut first = SseClient::connect_via(env, transport, &owner, None).await?;
    first
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    actor
        .transfer(token_address, owner_address, U256::from(5))
        .await?;
    first.follow_balance(&token, "0", "5").await?;
    let last_id = first.last_id.clone().expect("an id after an update");
    drop(first);

    // Missed while disconnected.
    for amount in [6u64, 7] {
        actor
            .transfer(token_address, owner_address, U256::from(amount))
            .await?;
    }
    let mut resumed = SseClient::connect_via(env, transport, &owner, Some(&last_id)).await?;
    let next = resumed
        .wait_for("the first missed update", |e| e.event != "ping")
        .await?;
    assert_eq!(
        next.event, "balance_update",
        "no snapshot on a resume: {next:?}"
    );
    assert_eq!(next.data["previousBalance"], "5", "{next:?}");
    resumed.last_id = Some(last_id);
    let mut current = next.data["balance"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if current != "18" {
        resumed.follow_balance(&token, &current, "18").await?;
        current = "18".into();
    }
    assert_eq!(current, "18");
    Ok(())
}

on_both_transports!(expired_position_resyncs_with_a_fresh_snapshot, resync_test);
async fn resync_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (_actor, token, owner) = watched_owner(env, transport, 42).await?;
    // A well-formed position that is not (or no longer) in this wallet's feed.
    let mut sse = SseClient::connect_via(env, transport, &owner, Some("1")).await?;
    let first = sse.wait_for("resync", |e| e.event != "ping").await?;
    assert_eq!(first.event, "resync", "{first:?}");
    assert_eq!(first.data["code"], "position_expired");
    let snapshot = sse.wait_for("all_balances", |e| e.event != "ping").await?;
    assert_eq!(snapshot.event, "all_balances");
    assert_eq!(snapshot.data["balances"][&token], "42");
    Ok(())
}

on_both_transports!(
    two_clients_of_one_wallet_both_get_everything,
    two_clients_test
);
async fn two_clients_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token, owner) = watched_owner(env, transport, 0).await?;
    let mut a = SseClient::connect_via(env, transport, &owner, None).await?;
    let mut b = SseClient::connect_via(env, transport, &owner, None).await?;
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
    // One joining later starts from its own snapshot and follows on.
    let mut c = SseClient::connect_via(env, transport, &owner, None).await?;
    let snapshot = c
        .wait_for("all_balances c", |e| e.event == "all_balances")
        .await?;
    assert_eq!(snapshot.data["balances"][&token], "12");
    actor
        .transfer(token.parse()?, owner.parse()?, U256::from(1))
        .await?;
    let (ra, rb, rc) = tokio::join!(
        a.follow_balance(&token, "12", "13"),
        b.follow_balance(&token, "12", "13"),
        c.follow_balance(&token, "12", "13")
    );
    ra?;
    rb?;
    rc?;
    Ok(())
}

on_both_transports!(
    stream_of_an_expired_session_ends_with_an_error_event,
    session_expiry_test
);
async fn session_expiry_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (_actor, _token, owner) = watched_owner(env, transport, 0).await?;
    let mut sse = SseClient::connect_via(env, transport, &owner, None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;

    // Expire the session as time would: its expiry passes.
    let owner_address: alloy::primitives::Address = owner.parse()?;
    env.expire_session(env.chain_id(), &owner_address).await?;

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

on_both_transports!(no_stream_without_a_session, no_session_test);
async fn no_session_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let url = env.url_via(
        transport,
        &format!("/sse/{}/balances/{}", env.chain_id(), lower(&fresh_owner())),
    );
    let (status, body) = env.json_request(|| env.http.get(&url)).await?;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "session_not_found");
    Ok(())
}

on_both_transports!(
    an_unreadable_last_event_id_resyncs_with_a_fresh_snapshot,
    unreadable_id_test
);
async fn unreadable_id_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (_actor, token, owner) = watched_owner(env, transport, 7).await?;
    // Not a position: another format (a multi-wallet stream's id, garbage). Never a 400:
    // EventSource would stop reconnecting for good.
    for id in ["not-a-position", "m1.0badf00d.1.2"] {
        let mut sse = SseClient::connect_via(env, transport, &owner, Some(id)).await?;
        let first = sse.wait_for("resync", |e| e.event != "ping").await?;
        assert_eq!(first.event, "resync", "{id}: {first:?}");
        assert_eq!(first.data["code"], "unreadable_last_event_id");
        let snapshot = sse.wait_for("all_balances", |e| e.event != "ping").await?;
        assert_eq!(snapshot.event, "all_balances", "{id}");
        assert_eq!(snapshot.data["balances"][&token], "7");
    }
    Ok(())
}
