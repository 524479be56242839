//! Token lists, token metadata, WETH, batch balances and CORS through the api on the local
//! stack — and every hostile list the api must refuse without storing or fetching anything
//! it should not.

use std::time::Instant as StdInstant;

use alloy::primitives::{Address, U256};
use e2e::list_server::{ListServer, Served, token_list};
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::domain::address::lower;
use local_stack::devnet::DEVNET_WETH;
use serde_json::Value;

fn list_body(urls: &[String]) -> String {
    serde_json::json!({ "tokensListsUrls": urls }).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn session_from_a_token_list_shares_one_fetch_and_revalidates() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let (actor, usd) = env.actor_with_token(5_000_000).await?;
    let eur = actor.deploy_token("Euro", "EUR", 2).await?;
    let server = ListServer::start().await?;
    let other_chain = lower(&fresh_owner());
    let url = server.serve(
        "shared.json",
        token_list(&[
            (chain, usd.to_checksum(None), "USDL".into(), 6),
            (chain, lower(&eur), "EURL".into(), 2),
            (1, other_chain, "MAINNET".into(), 18),
            (chain, "0x1234".into(), "SHORT".into(), 18),
            (chain, lower(&eur), "DUP".into(), 2),
        ]),
    );

    // Eight wallets ask for the same list at once: one fetch serves them all.
    let owners: Vec<Address> = (0..8).map(|_| fresh_owner()).collect();
    let body = list_body(std::slice::from_ref(&url));
    let replies = futures::future::try_join_all(owners.iter().map(|o| {
        let body = body.clone();
        async move { env.post_session(&chain.to_string(), &lower(o), &body).await }
    }))
    .await?;
    for (status, reply) in &replies {
        assert_eq!(*status, 200, "{reply}");
    }
    assert_eq!(server.served("shared.json").full, 1, "one fetch for all");
    let reply = &replies[0].1;
    assert_eq!(reply["lists"][0]["tokens"], 2, "{reply}");
    assert_eq!(reply["lists"][0]["skipped"]["invalid"], 1, "{reply}");
    assert_eq!(reply["lists"][0]["skipped"]["duplicate"], 1, "{reply}");
    assert_eq!(reply["tokensListsUrls"][0], url.as_str());
    let tokens: Vec<&str> = reply["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tokens.contains(&lower(&DEVNET_WETH).as_str()),
        "WETH always tracked: {reply}"
    );
    assert!(tokens.contains(&lower(&live_balances::NATIVE_TOKEN).as_str()));
    assert_eq!(reply["metadata"][lower(&usd)]["symbol"], "USDL");
    assert_eq!(
        reply["metadata"][lower(&DEVNET_WETH)]["symbol"],
        "WETH",
        "read on chain"
    );

    // The snapshot carries the metadata a client needs to render amounts.
    actor
        .transfer(usd, owners[0], U256::from(1_500_000u64))
        .await?;
    let mut sse = SseClient::connect(env, &lower(&owners[0]), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(
        snapshot.data["tokens"][lower(&usd)]["decimals"],
        6,
        "{}",
        snapshot.data
    );
    assert_eq!(snapshot.data["tokens"][lower(&eur)]["symbol"], "EURL");

    // Past the TTL the list is revalidated with its ETag: a 304, no second download.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let (status, reply) = env
        .post_session(&chain.to_string(), &lower(&fresh_owner()), &body)
        .await?;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        server.served("shared.json"),
        Served {
            full: 1,
            not_modified: 1
        }
    );
    assert_eq!(reply["lists"][0]["tokens"], 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_token_metadata_is_read_on_chain_and_kept_as_text() -> anyhow::Result<()> {
    let env = Environment::get();
    let actor = local_stack::devnet::Wallet::fresh(&env.stack.rpc_url).await?;
    let markup = r#"<img src=x onerror="alert(1)">"#;
    let token = actor.deploy_token("Evil </td> Token", markup, 8).await?;
    let owner = lower(&fresh_owner());
    let (status, reply) = env
        .post_session(
            &env.chain_id().to_string(),
            &owner,
            &format!(r#"{{"customTokens":["{token}"]}}"#),
        )
        .await?;
    assert_eq!(status, 200, "{reply}");
    let metadata = &reply["metadata"][lower(&token)];
    assert_eq!(metadata["symbol"], markup);
    assert_eq!(metadata["name"], "Evil </td> Token");
    assert_eq!(metadata["decimals"], 8);
    let (status, session) = env
        .json_request(|| {
            env.http
                .get(env.url(&format!("/{}/sessions/{owner}", env.chain_id())))
        })
        .await?;
    assert_eq!(status, 200);
    assert_eq!(session["metadata"][lower(&token)]["symbol"], markup);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_balances_answer_tracked_from_the_table_and_the_rest_from_chain() -> anyhow::Result<()>
{
    let env = Environment::get();
    let (actor, tracked) = env.actor_with_token(1_000).await?;
    let untracked = actor.deploy_token("Other", "OTH", 18).await?;
    let owner = fresh_owner();
    actor.transfer(tracked, owner, U256::from(7u64)).await?;
    actor.mint(untracked, owner, U256::from(9u64)).await?;
    env.watch(
        &lower(&owner),
        &format!(r#"{{"customTokens":["{tracked}"]}}"#),
    )
    .await?;
    let url = env.url(&format!("/{}/balances/{}", env.chain_id(), lower(&owner)));
    let body =
        serde_json::json!({"tokens": [lower(&tracked), untracked.to_checksum(None)]}).to_string();
    let (status, reply) = env
        .send_json(reqwest::Method::POST, &url, body.clone(), &[])
        .await?;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["balances"][lower(&tracked)]["balance"], "7");
    assert_eq!(reply["balances"][lower(&tracked)]["source"], "table");
    assert_eq!(reply["balances"][lower(&untracked)]["balance"], "9");
    assert_eq!(reply["balances"][lower(&untracked)]["source"], "chain");

    let too_many: Vec<String> = (0..501).map(|_| lower(&fresh_owner())).collect();
    let body = serde_json::json!({ "tokens": too_many }).to_string();
    let (status, reply) = env
        .send_json(reqwest::Method::POST, &url, body.clone(), &[])
        .await?;
    assert_eq!(
        (status, reply["code"].as_str()),
        (400, Some("too_many_tokens")),
        "{reply}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
/// Locally `cargo lambda watch` answers CORS the way the function URL's CORS configuration
/// does in AWS (see `template.yaml`); a page on another origin must get through both.
async fn cors_lets_a_page_on_another_origin_call_the_api() -> anyhow::Result<()> {
    let env = Environment::get();
    let url = env.url(&format!(
        "/{}/sessions/{}",
        env.chain_id(),
        lower(&fresh_owner())
    ));
    let preflight = env
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await?;
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = |r: &reqwest::Response, h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let origin_ok = |v: Option<String>| v.is_some_and(|o| o == "*" || o == "https://app.example");
    assert!(
        origin_ok(allowed(&preflight, "access-control-allow-origin")),
        "{:?}",
        preflight.headers()
    );
    let health = env
        .http
        .get(env.url("/health"))
        .header("origin", "https://app.example")
        .send()
        .await?;
    assert!(
        origin_ok(allowed(&health, "access-control-allow-origin")),
        "{:?}",
        health.headers()
    );
    assert_eq!(
        health
            .headers()
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1,
        "one value"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_token_lists_get_a_clear_4xx_and_store_nothing() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let server = ListServer::start().await?;
    server.serve(
        "base",
        token_list(&[(chain, lower(&fresh_owner()), "BASE".into(), 18)]),
    );
    let not_a_list = server.serve("not-a-list.json", br#"{"foo": 1}"#.to_vec());
    let other_chain = server.serve(
        "mainnet.json",
        token_list(&[(1, lower(&fresh_owner()), "M".into(), 18)]),
    );
    let all_bad = server.serve(
        "all-bad.json",
        token_list(&[(chain, "0xnope".into(), "X".into(), 18)]),
    );
    let cases: Vec<(&str, Vec<String>, u16, &str)> = vec![
        (
            "not a URL",
            vec!["not a url".into()],
            400,
            "invalid_token_list_url",
        ),
        (
            "file scheme",
            vec!["file:///etc/passwd".into()],
            422,
            "token_list_refused",
        ),
        (
            "cloud metadata address",
            vec!["http://169.254.169.254/latest/meta-data/".into()],
            422,
            "token_list_refused",
        ),
        (
            "private address",
            vec!["http://10.0.0.1/list.json".into()],
            422,
            "token_list_refused",
        ),
        (
            "IPv4-mapped IPv6 metadata",
            vec!["http://[::ffff:169.254.169.254]/".into()],
            422,
            "token_list_refused",
        ),
        (
            "decimal IPv4 spelling",
            vec!["http://2852039166/".into()],
            422,
            "token_list_refused",
        ),
        (
            "credentials in URL",
            vec![format!(
                "http://user:pw@{}/lists/base",
                server.base.trim_start_matches("http://")
            )],
            422,
            "token_list_refused",
        ),
        (
            "redirect to metadata",
            vec![server.url("/redirect?to=http://169.254.169.254/latest/")],
            422,
            "token_list_refused",
        ),
        (
            "redirect to private",
            vec![server.url("/redirect?to=http://192.168.1.1/")],
            422,
            "token_list_refused",
        ),
        (
            "too many redirects",
            vec![server.url("/redirects/5")],
            422,
            "token_list_too_many_redirects",
        ),
        (
            "too slow",
            vec![server.url("/slow")],
            422,
            "token_list_timeout",
        ),
        (
            "endless body",
            vec![server.url("/endless")],
            422,
            "token_list_too_large",
        ),
        (
            "not JSON",
            vec![server.url("/html")],
            422,
            "token_list_invalid",
        ),
        (
            "JSON but not a token list",
            vec![not_a_list],
            422,
            "token_list_invalid",
        ),
        (
            "no token for this chain",
            vec![other_chain],
            422,
            "token_list_empty",
        ),
        (
            "only malformed entries",
            vec![all_bad],
            422,
            "token_list_empty",
        ),
        (
            "not found",
            vec![server.url("/lists/missing")],
            422,
            "token_list_unreachable",
        ),
        (
            "too many lists",
            (0..6)
                .map(|i| server.url(&format!("/lists/l{i}")))
                .collect(),
            400,
            "too_many_token_lists",
        ),
    ];
    for (name, urls, want_status, want_code) in cases {
        let owner = fresh_owner();
        let started = StdInstant::now();
        let (status, reply) = env
            .post_session(&chain.to_string(), &lower(&owner), &list_body(&urls))
            .await?;
        assert_eq!(status, want_status, "{name}: {reply}");
        assert_eq!(reply["code"], want_code, "{name}: {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {reply}"
        );
        assert!(
            started.elapsed().as_secs() < 10,
            "{name} took {:?}",
            started.elapsed()
        );
        let table = env.stack.table().await;
        assert_eq!(
            table.session(chain, &owner).await?,
            None,
            "{name}: nothing stored"
        );
        assert!(table.balances(chain, &owner).await?.is_empty(), "{name}");
    }
    // A redirect chain within the limit is followed.
    let (status, reply) = env
        .post_session(
            &chain.to_string(),
            &lower(&fresh_owner()),
            &list_body(&[server.url("/redirects/2")]),
        )
        .await?;
    assert_eq!(status, 200, "{reply}");
    Ok(())
}
