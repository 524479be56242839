//! A session over a 5,000-token list: created (list fetched, 10,000 values read, only the one
//! the wallet holds stored), snapshotted and streamed, with the time each step takes printed.
//! Alone on the stack (`EXCLUSIVE`): its 10,000 reads and the list's pages would slow every
//! test running beside it.

use std::time::Instant as StdInstant;

use alloy::primitives::U256;
use e2e::list_server::{ListServer, token_list};
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::domain::address::lower;

#[tokio::test(flavor = "multi_thread")]
async fn a_five_thousand_token_list_session_is_created_snapshotted_and_streamed()
-> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let chain = env.chain_id();
    let (actor, held) = env.actor_with_token(1_000_000).await?;
    let owner = fresh_owner();
    actor.transfer(held, owner, U256::from(1_234u64)).await?;
    // One real token the wallet holds, the rest addresses without code (their reads fail and
    // are reported as such): the size is what is under test.
    let mut tokens = vec![(chain, lower(&held), "HELD".to_string(), 6u8)];
    tokens.extend((1..5_000).map(|i| (chain, lower(&fresh_owner()), format!("T{i}"), 18u8)));
    let server = ListServer::start().await?;
    let url = server.serve("five-thousand.json", token_list(&tokens));

    let started = StdInstant::now();
    let (status, reply) = env
        .post_session(
            &chain.to_string(),
            &lower(&owner),
            &serde_json::json!({ "tokensListsUrls": [url] }).to_string(),
        )
        .await?;
    let created = started.elapsed();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["lists"][0]["tokens"], 5_000);
    assert!(
        reply["tokenCount"].as_u64().unwrap() >= 5_000,
        "{}",
        reply["tokenCount"]
    );

    let connect = StdInstant::now();
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let snapshotted = connect.elapsed();
    let data = &snapshot.data;
    let values = data["balances"].as_object().map_or(0, |m| m.len())
        + data["errors"].as_object().map_or(0, |m| m.len());
    assert!(values >= 5_000, "{values} values in the snapshot");
    assert_eq!(data["balances"][lower(&held)], "1234");
    assert_eq!(data["tokens"][lower(&held)]["symbol"], "HELD");
    // Sparse values: of 5,000 tokens (and their allowances) only what the wallet holds is
    // stored; the addresses without code are one fact each for the chain, not per wallet.
    let stored = env.stack.table().await.balances(chain, &owner).await?;
    assert_eq!(stored.len(), 1, "{stored:?}");

    actor.transfer(held, owner, U256::from(1u64)).await?;
    sse.follow_balance(&lower(&held), "1234", "1235").await?;
    let streamed = connect.elapsed();
    eprintln!(
        "5,000-token list session: created (fetch, read, write) in {created:?}; all_balances {snapshotted:?} after connect; first update {streamed:?} after connect"
    );
    Ok(())
}
