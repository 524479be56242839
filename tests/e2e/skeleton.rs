//! The walking skeleton: a token transfer on anvil reaches an SSE client through
//! poller -> DynamoDB -> stream -> pump -> fanout -> feed -> api. Any broken hop fails it.

use alloy::primitives::U256;
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::domain::address::lower;

#[tokio::test(flavor = "multi_thread")]
async fn transfer_reaches_sse_client_with_snapshot_first() -> anyhow::Result<()> {
    let env = Environment::get();
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    actor.transfer(token, owner, U256::from(1_000_000)).await?;

    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    let (status, session) = env
        .post_session(&env.chain_id().to_string(), &lower(&owner), &body)
        .await?;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        session["tokenCount"], 3,
        "the token, the native currency and WETH: {session}"
    );

    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert!(snapshot.id.is_some(), "every data event has an id");
    assert_eq!(
        snapshot.data["balances"][lower(&token)],
        "1000000",
        "{:?}",
        snapshot.data
    );
    assert_eq!(
        snapshot.data["balances"][lower(&live_balances::NATIVE_TOKEN)],
        "0"
    );

    let receipt = actor.transfer(token, owner, U256::from(500_000)).await?;
    let block = receipt.block_number.expect("mined");
    let update = sse
        .wait_for("balance_update of the transfer", |e| {
            e.event == "balance_update"
                && e.data["address"] == lower(&token)
                && e.data["balance"] == "1500000"
        })
        .await?;
    assert_eq!(update.data["previousBalance"], "1000000");
    // The value is re-read at the last block of the range the poller processed, which may
    // include later blocks of other tests' transactions.
    let read_at = update.data["blockNumber"].as_u64().expect("blockNumber");
    assert!(read_at >= block, "read at {read_at}, transfer in {block}");
    assert_eq!(update.data["txHash"], receipt.transaction_hash.to_string());
    assert!(update.id.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnect_with_last_event_id_replays_what_was_missed() -> anyhow::Result<()> {
    let env = Environment::get();
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    let (status, _) = env
        .post_session(&env.chain_id().to_string(), &lower(&owner), &body)
        .await?;
    assert_eq!(status, 200);

    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    actor.transfer(token, owner, U256::from(10)).await?;
    sse.wait_for("first update", |e| {
        e.event == "balance_update" && e.data["balance"] == "10"
    })
    .await?;
    let resume_from = sse.last_id.clone().expect("an id was seen");
    drop(sse);

    // Changes while away.
    actor.transfer(token, owner, U256::from(5)).await?;
    actor.transfer(token, owner, U256::from(7)).await?;

    // Exactly what was missed, in order: updates after the resume position up to the final
    // value, and no snapshot. (The poller reads a block range at its last block, so the two
    // transfers may arrive as one update or two.)
    let mut sse = SseClient::connect(env, &lower(&owner), Some(&resume_from)).await?;
    let mut previous = "10".to_string();
    let mut last_id = resume_from.clone();
    loop {
        let e = sse
            .wait_for("replayed update", |e| e.event != "ping")
            .await?;
        assert_eq!(
            e.event, "balance_update",
            "a resume replays, it does not resend the snapshot: {e:?}"
        );
        assert_eq!(
            e.data["previousBalance"],
            previous.as_str(),
            "no gap, no repeat: {e:?}"
        );
        let id = e.id.clone().expect("updates have ids");
        assert!(id > last_id, "ids increase");
        last_id = id;
        previous = e.data["balance"].as_str().expect("balance").to_string();
        if previous == "22" {
            break;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_the_table_and_a_fresh_poller_heartbeat() -> anyhow::Result<()> {
    let env = Environment::get();
    let url = env.url("/health");
    let health = local_stack::stack::wait_for("healthy", e2e::DEADLINE, || async {
        let (status, body) = env.json_request(|| env.http.get(&url)).await?;
        anyhow::ensure!(status == 200, "{status}: {body}");
        Ok(body)
    })
    .await?;
    assert_eq!(health["table"], true);
    assert_eq!(health["chains"][0]["chainId"], env.chain_id());
    assert!(
        health["chains"][0]["processedBlock"].as_u64().is_some(),
        "{health}"
    );
    Ok(())
}
