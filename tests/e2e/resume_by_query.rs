//! A new stream continuing another's: the resume position in the URL (`?lastEventId=`), which
//! is how a browser tab taking a stream over from another resumes (EventSource cannot set the
//! header), with the header winning once EventSource reconnects by itself.

use alloy::primitives::U256;
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::domain::address::lower;

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_resumes_after_the_id_in_its_url_and_the_header_wins_on_reconnect()
-> anyhow::Result<()> {
    let env = Environment::get();
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    env.watch(
        &lower(&owner),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token)),
    )
    .await?;
    let mut first = SseClient::connect(env, &lower(&owner), None).await?;
    first
        .wait_for("the snapshot", |e| e.event == "all_balances")
        .await?;
    actor.transfer(token, owner, U256::from(10u64)).await?;
    first.follow_balance(&lower(&token), "0", "10").await?;
    let after_first = first.last_id.clone().expect("an id");
    drop(first);

    // Changes while no stream is open; the new one starts after the first stream's last id.
    actor.transfer(token, owner, U256::from(5u64)).await?;
    actor.transfer(token, owner, U256::from(7u64)).await?;
    let mut second = SseClient::connect_with_query(env, &lower(&owner), &after_first).await?;
    let replayed = second
        .wait_for("the first replayed update", |e| e.event != "ping")
        .await?;
    assert_eq!(
        replayed.event, "balance_update",
        "no snapshot: {replayed:?}"
    );
    assert_eq!(replayed.data["previousBalance"], "10", "{replayed:?}");
    // (The two transfers may be read as one change if the poller takes both blocks at once.)
    let now = replayed.data["balance"].as_str().unwrap_or_default();
    second.follow_balance(&lower(&token), now, "22").await?;

    // When the server ends the stream, the reconnect keeps the URL (its old id) and sends the
    // newer id in the header: the header wins, so nothing is replayed twice. `follow_balance`
    // fails on an update that does not continue the last one.
    actor.transfer(token, owner, U256::from(3u64)).await?;
    second.follow_balance(&lower(&token), "22", "25").await?;
    let reconnects = second.reconnects;
    while second.reconnects == reconnects {
        second
            .wait_for("the stream's end", |e| e.event == "ping")
            .await?;
    }
    actor.transfer(token, owner, U256::from(1u64)).await?;
    second.follow_balance(&lower(&token), "25", "26").await?;
    Ok(())
}
