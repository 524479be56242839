//! The REST side beyond session creation: PUT adds to an existing session only, GET reads it,
//! and the single-balance route answers from the table or the chain.

use alloy::primitives::U256;
use e2e::{Environment, fresh_owner};
use live_balances::domain::address::lower;

#[tokio::test(flavor = "multi_thread")]
async fn put_adds_to_an_existing_session_and_get_reads_it() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let owner = lower(&fresh_owner());
    let (_, token_a) = env.actor_with_token(1).await?;
    let (_, token_b) = env.actor_with_token(1).await?;
    let url = env.url(&format!("/{chain}/sessions/{owner}"));
    let put = |token: String| {
        let url = url.clone();
        async move {
            env.send_json(
                reqwest::Method::PUT,
                &url,
                format!(r#"{{"customTokens":["{token}"]}}"#),
                &[],
            )
            .await
        }
    };

    let (status, body) = put(lower(&token_a)).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("session_not_found")),
        "PUT never creates: {body}"
    );
    let (status, body) = env.json_request(|| env.http.get(&url)).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("session_not_found")),
        "{body}"
    );

    let (status, _) = env
        .post_session(
            &chain.to_string(),
            &owner,
            &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token_a)),
        )
        .await?;
    assert_eq!(status, 200);
    let (status, body) = put(lower(&token_b)).await?;
    assert_eq!(status, 200, "{body}");

    let (status, session) = env.json_request(|| env.http.get(&url)).await?;
    assert_eq!(status, 200, "{session}");
    let tokens: Vec<&str> = session["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    for token in [
        lower(&token_a),
        lower(&token_b),
        lower(&live_balances::NATIVE_TOKEN),
    ] {
        assert!(
            tokens.contains(&token.as_str()),
            "{token} missing: {session}"
        );
    }
    // Both tokens, the native currency and the devnet's WETH (always tracked).
    assert_eq!(session["tokenCount"], 4);
    assert!(session["expiresAt"].as_u64().unwrap() > 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn single_balance_comes_from_the_table_when_tracked_and_the_chain_otherwise()
-> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let owner = fresh_owner();
    let (actor, tracked) = env.actor_with_token(1_000).await?;
    let untracked = actor.deploy_token("Other", "OTH", 18).await?;
    actor.transfer(tracked, owner, U256::from(11)).await?;
    actor.mint(untracked, owner, U256::from(22)).await?;
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&tracked));
    let (status, _) = env
        .post_session(&chain.to_string(), &lower(&owner), &body)
        .await?;
    assert_eq!(status, 200);

    for (token, balance, source) in [(tracked, "11", "table"), (untracked, "22", "chain")] {
        let url = env.url(&format!(
            "/{chain}/balance/{}/{}",
            lower(&owner),
            lower(&token)
        ));
        let (status, body) = env.json_request(|| env.http.get(&url)).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["balance"], balance, "{body}");
        assert_eq!(body["source"], source, "{body}");
    }
    let bad = env.url(&format!("/{chain}/balance/{}/0x12", lower(&owner)));
    let (status, body) = env.json_request(|| env.http.get(&bad)).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_token"))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_describes_the_served_routes() -> anyhow::Result<()> {
    let env = Environment::get();
    let (status, doc) = env
        .json_request(|| env.http.get(env.url("/openapi.json")))
        .await?;
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')));
    assert!(doc["paths"]["/sse/{chain_id}/balances/{owner}"]["get"].is_object());
    assert!(doc["components"]["schemas"]["SseEventData"].is_object());
    Ok(())
}
