//! What the function URL does for the function, the server does itself: CORS with the
//! configured origins, request size and time limits answered with the router's JSON errors,
//! and rate limits keyed on the client address the load balancer saw — never on a header a
//! client can write.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{Environment, Transport, fresh_owner};
use live_balances::domain::address::lower;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::keys::{self, RateWindow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn the_server_answers_cors_as_the_function_url_does() -> anyhow::Result<()> {
    let env = Environment::get();
    let url = env.url_via(
        Transport::Server,
        &format!("/{}/sessions/{}", env.chain_id(), lower(&fresh_owner())),
    );
    let header = |r: &reqwest::Response, h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    for (method, headers) in [("POST", "content-type"), ("GET", "last-event-id")] {
        let preflight = env
            .http
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "https://app.example")
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers)
            .send()
            .await?;
        assert!(preflight.status().is_success(), "{}", preflight.status());
        // The test stack, like the template's default, allows any origin.
        assert_eq!(
            header(&preflight, "access-control-allow-origin").as_deref(),
            Some("*")
        );
        let methods = header(&preflight, "access-control-allow-methods").unwrap_or_default();
        assert!(methods.contains(method), "{methods}");
        let allowed = header(&preflight, "access-control-allow-headers").unwrap_or_default();
        assert!(allowed.contains(headers), "{allowed}");
        assert_eq!(
            header(&preflight, "access-control-max-age").as_deref(),
            Some("600")
        );
    }
    let health = env
        .http
        .get(env.url_via(Transport::Server, "/health"))
        .header("origin", "https://app.example")
        .send()
        .await?;
    let values: Vec<_> = health
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(values, ["*"], "one value: {:?}", health.headers());
    Ok(())
}

/// A request written by hand on a raw connection; returns the status line and the body.
async fn raw_exchange(
    base: &str,
    head: &str,
    body: &[u8],
    within: Duration,
) -> anyhow::Result<(String, serde_json::Value)> {
    let addr = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    let mut answer = vec![];
    let read = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = socket.read(&mut chunk).await?;
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer);
            if n == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
                return anyhow::Ok(());
            }
        }
    });
    read.await??;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.lines().next().unwrap_or_default().to_string();
    let json = text
        .find('{')
        .map(|i| serde_json::from_str(&text[i..]))
        .transpose()?
        .unwrap_or_default();
    Ok((status, json))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_refuses_oversized_and_slow_bodies_with_json() -> anyhow::Result<()> {
    let env = Environment::get();
    let path = format!("/{}/sessions/{}", env.chain_id(), lower(&fresh_owner()));
    // Larger than 256 KiB, whatever Content-Length says: refused as it streams in.
    let big = format!(r#"{{"customTokens":["{}"]}}"#, "a".repeat(300_000));
    let (status, body) = env
        .json_request(|| {
            env.http
                .post(env.url_via(Transport::Server, &path))
                .header("content-type", "application/json")
                .body(big.clone())
        })
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );

    // A body that stops arriving: answered within the server's body time limit.
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let started = std::time::Instant::now();
    let (status, body) = raw_exchange(
        &env.stack.endpoints.server,
        &head,
        b"{\"customTokens\":",
        Duration::from_secs(30),
    )
    .await?;
    assert!(status.contains(" 408 "), "{status}: {body}");
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(25));
    Ok(())
}

/// The session-write window of the current minute for `source`: how many it counted.
async fn window_hits(env: &Environment, source: &str) -> anyhow::Result<u64> {
    let table = env.stack.table().await;
    let out = table
        .client()
        .get_item()
        .table_name(table.name())
        .key(
            "pk",
            AttributeValue::S(keys::rate_pk(RateWindow::SessionSource(source))),
        )
        .key("sk", AttributeValue::S((unix_now() / 60 * 60).to_string()))
        .consistent_read(true)
        .send()
        .await?;
    Ok(out
        .item
        .and_then(|i| i.get("hits").and_then(|v| v.as_n().ok()).cloned())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_key_on_the_load_balancers_entry_never_on_what_a_client_writes()
-> anyhow::Result<()> {
    let env = Environment::get();
    let (_, token) = env.actor_with_token(1).await?;
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    // Within one counting window.
    while unix_now() % 60 > 45 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let post = |base: String, forwarded: String| {
        let body = body.clone();
        async move {
            let url = format!(
                "{base}/{}/sessions/{}",
                env.chain_id(),
                lower(&fresh_owner())
            );
            env.send_json(
                reqwest::Method::POST,
                &url,
                body.clone(),
                &[("x-forwarded-for", &forwarded)],
            )
            .await
        }
    };

    // Not behind a load balancer (the test stack's server): the header is ignored, the
    // window is the peer's.
    let spoofed = format!("203.0.113.{}", rand::random_range(1..250u8));
    let before = window_hits(env, "127.0.0.1").await?;
    let (status, reply) = post(env.stack.endpoints.server.clone(), spoofed.clone()).await?;
    assert_eq!(status, 200, "{reply}");
    assert!(window_hits(env, "127.0.0.1").await? > before);
    assert_eq!(
        window_hits(env, &spoofed).await?,
        0,
        "a client-written address was counted"
    );

    // Behind a load balancer: the last entry is the one the balancer appended (written here
    // by the test in its place); whatever the client put before it changes nothing.
    let port = local_stack::process::free_port()?;
    let behind_balancer = env
        .stack
        .start_server_as(
            "server-behind-balancer",
            port,
            &[
                ("TRUST_X_FORWARDED_FOR".into(), "true".into()),
                ("SESSION_WRITES_PER_SOURCE_PER_MINUTE".into(), "3".into()),
            ],
        )
        .await?;
    let client = format!("198.51.100.{}", rand::random_range(1..250u8));
    let mut statuses = vec![];
    for i in 0..4 {
        let forwarded = format!("10.9.8.{i}, {client}");
        statuses.push(post(behind_balancer.clone(), forwarded).await?.0);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "the 4th write from {client}"
    );
    assert_eq!(window_hits(env, &client).await?, 3);
    let other = format!("192.0.2.{}", rand::random_range(1..250u8));
    let (status, reply) = post(behind_balancer, format!("{client}, {other}")).await?;
    assert_eq!(status, 200, "another client is not limited: {reply}");
    env.stack.stop_service("server-behind-balancer")?;
    Ok(())
}

/// The hub checks each followed list once for all its wallets: a new version reaches the
/// server's streams as a fresh `all_balances`, as it does on the function URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_list_version_reaches_the_servers_streams() -> anyhow::Result<()> {
    use e2e::SseClient;
    use e2e::list_server::{ListServer, token_list};

    let env = Environment::get();
    let chain = env.chain_id();
    let (actor, kept) = env.actor_with_token(1_000_000).await?;
    let dropped = actor.deploy_token("Dropped", "DROP", 6).await?;
    let added = actor.deploy_token("Added", "ADD", 6).await?;
    let owner = fresh_owner();
    actor
        .mint(dropped, owner, alloy::primitives::U256::from(5))
        .await?;
    let lists = ListServer::start().await?;
    let entry = |token: &alloy::primitives::Address, symbol: &str| {
        (chain, lower(token), symbol.to_string(), 6u8)
    };
    let url = lists.serve(
        "moving-server.json",
        token_list(&[entry(&kept, "KEPT"), entry(&dropped, "DROP")]),
    );
    let body = serde_json::json!({ "tokensListsUrls": [url] }).to_string();
    env.watch_via(Transport::Server, &lower(&owner), &body)
        .await?;
    // Two streams of the wallet on the server: one list check serves both.
    let mut streams = vec![];
    for _ in 0..2 {
        let mut sse = SseClient::connect_via(env, Transport::Server, &lower(&owner), None).await?;
        let snapshot = sse
            .wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        assert_eq!(snapshot.data["balances"][lower(&dropped)], "5");
        streams.push(sse);
    }
    lists.serve(
        "moving-server.json",
        token_list(&[entry(&kept, "KEPT"), entry(&added, "ADD")]),
    );
    // Past the list's TTL, another wallet's session request revalidates it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.watch_via(Transport::Server, &lower(&fresh_owner()), &body)
        .await?;
    for sse in &mut streams {
        let fresh = sse
            .wait_for("a snapshot of the new version", |e| {
                e.event == "all_balances" && e.data["balances"][lower(&dropped)].is_null()
            })
            .await?;
        assert_eq!(
            fresh.data["balances"][lower(&added)],
            "0",
            "{:?}",
            fresh.data
        );
    }
    Ok(())
}
