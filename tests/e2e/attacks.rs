//! The service tried from outside as an attacker or a careless integrator would, each attack
//! against its bound on the real local stack — while a well-behaved client of the same stack
//! follows a wallet through both transports and receives every update, in order.
//!
//! The per-source bounds are shown on a second api server started as if behind a load balancer
//! (`TRUST_X_FORWARDED_FOR`), so each attacker is an address of its own, with low limits; the
//! per-wallet stream cap on the function URL, whose counts live in the table.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use anyhow::Context;
use e2e::{DEADLINE, Environment, MAX_STREAMS_PER_WALLET, SseClient, Transport, fresh_owner};
use live_balances::domain::address::lower;
use live_balances::runtime::clock::unix_now;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The attack server's limits.
const CHAIN_READS: u64 = 5;
const STREAM_OPENS: u64 = 8;
const STREAMS_PER_SOURCE: u32 = 3;
const STREAMS_PER_WALLET: u32 = 2;

/// A client of the attack server, from `source` (its `X-Forwarded-For` entry).
struct Attacker<'a> {
    env: &'a Environment,
    base: &'a str,
    source: String,
}

impl Attacker<'_> {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.env
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-forwarded-for", &self.source)
    }

    /// Status, `Retry-After` and JSON body of a JSON request.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Option<u64>, Value)> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let text = response.text().await?;
        let value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
        Ok((status, retry_after, value))
    }

    /// Opens a stream; the open response (kept to keep the stream open) or the refusal.
    async fn open_stream(
        &self,
        chain: u64,
        owner: &str,
    ) -> anyhow::Result<Result<reqwest::Response, (u16, Option<u64>, Value)>> {
        let response = self
            .request(
                reqwest::Method::GET,
                &format!("/sse/{chain}/balances/{owner}"),
            )
            .send()
            .await?;
        if response.status() == 200 {
            return Ok(Ok(response));
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        Ok(Err((status, retry_after, response.json().await?)))
    }
}

fn refused(answer: &(u16, Option<u64>, Value), status: u16, code: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        answer.0 == status && answer.2["code"] == code,
        "expected {status} {code}, got {} {}",
        answer.0,
        answer.2
    );
    anyhow::ensure!(
        answer.2["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.2
    );
    if status == 429 {
        anyhow::ensure!(
            answer.1.is_some_and(|s| (1..=60).contains(&s)),
            "429 without a Retry-After of 1 to 60 s: {:?}",
            answer.1
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attack_meets_its_bound_while_a_well_behaved_client_loses_nothing()
-> anyhow::Result<()> {
    let env = Environment::get();
    // The well-behaved client: a wallet followed on both transports while a transfer lands
    // every few hundred milliseconds, all through the attacks.
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let good = lower(&fresh_owner());
    let token_hex = lower(&token);
    env.watch(&good, &format!(r#"{{"customTokens":["{token_hex}"]}}"#))
        .await?;
    let mut followers = vec![];
    for transport in Transport::BOTH {
        let mut client = SseClient::connect_via(env, transport, &good, None).await?;
        client
            .wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        followers.push(client);
    }
    let good_address: Address = good.parse()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let transfers = tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            actor.transfer(token, good_address, U256::from(1)).await?;
            sent += 1;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                _ = stopped.changed() => return anyhow::Ok(sent),
            }
        }
    });

    let port = local_stack::process::free_port()?;
    let name = format!("server-attacks-{port}");
    let base = env
        .stack
        .start_server_as(
            &name,
            port,
            &[
                ("TRUST_X_FORWARDED_FOR".into(), "true".into()),
                (
                    "CHAIN_READS_PER_SOURCE_PER_MINUTE".into(),
                    CHAIN_READS.to_string(),
                ),
                (
                    "STREAM_OPENS_PER_SOURCE_PER_MINUTE".into(),
                    STREAM_OPENS.to_string(),
                ),
                (
                    "MAX_STREAMS_PER_SOURCE".into(),
                    STREAMS_PER_SOURCE.to_string(),
                ),
                (
                    "MAX_STREAMS_PER_WALLET".into(),
                    STREAMS_PER_WALLET.to_string(),
                ),
            ],
        )
        .await?;
    let outcome = async {
        // Within one counting window, so the per-minute counts below are exact.
        while unix_now() % 60 > 30 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        back_end_routes_need_the_owners_key(env, &base).await?;
        oversized_sessions_are_refused_and_store_nothing(env, &base).await?;
        chain_reads_are_limited_per_source(env, &base).await?;
        streams_are_limited_per_source_and_wallet(env, &base).await?;
        streams_per_wallet_are_counted_across_instances(env).await
    }
    .await;
    env.stack.stop_service(&name)?;
    stop.send(true)?;
    let sent = transfers.await??;
    outcome?;

    // Every update, in order, on both transports.
    for mut client in followers {
        let steps = client
            .follow_balance(&token_hex, "0", &sent.to_string())
            .await?;
        anyhow::ensure!(steps > 0, "no update followed");
    }
    Ok(())
}

/// Orders and webhooks take an API key; a key sees and changes only its tenant's orders: an
/// unrelated key cannot replace or delete them, nor list them; a revoked key is refused; an
/// order cannot stay open for decades.
async fn back_end_routes_need_the_owners_key(env: &Environment, base: &str) -> anyhow::Result<()> {
    let (actor, token) = env.actor_with_token(1_000).await?;
    let owner = lower(&fresh_owner());
    actor
        .transfer(token, owner.parse()?, U256::from(10))
        .await?;
    let chain = env.chain_id();
    let path = format!("/{chain}/orders/{owner}/victim-order");
    let body = json!({"sellToken": lower(&token), "sellAmount": "5", "validTo": unix_now() + 3600});
    let as_key = |key: &str, method: reqwest::Method, path: &str, body: Option<&Value>| {
        let request = env
            .http
            .request(method, format!("{base}{path}"))
            .header("x-forwarded-for", "198.51.100.77")
            .bearer_auth(key);
        let request = match body {
            Some(b) => request
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => request,
        };
        async move {
            let response = request.send().await?;
            anyhow::Ok((response.status().as_u16(), response.json::<Value>().await?))
        }
    };
    let author = env.stack.api_key.clone();
    let (status, order) = as_key(&author, reqwest::Method::PUT, &path, Some(&body)).await?;
    anyhow::ensure!(status == 200, "the author registers: {order}");

    let stranger = env.stack.issue_api_key("unrelated").await?;
    let mut replaced = body.clone();
    replaced["sellAmount"] = json!("1");
    let (status, answer) = as_key(&stranger, reqwest::Method::PUT, &path, Some(&replaced)).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("order_id_taken")),
        "{answer}"
    );
    let (status, answer) = as_key(&stranger, reqwest::Method::DELETE, &path, None).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("order_not_found"))
    );
    let list = format!("/{chain}/orders/{owner}");
    let (status, listed) = as_key(&stranger, reqwest::Method::GET, &list, None).await?;
    assert_eq!((status, listed["orders"].clone()), (200, json!([])));
    let (status, listed) = as_key(&author, reqwest::Method::GET, &list, None).await?;
    assert_eq!(status, 200);
    assert_eq!(listed["orders"][0]["orderId"], "victim-order");
    assert_eq!(
        listed["orders"][0]["sellAmount"], body["sellAmount"],
        "untouched by the stranger"
    );

    // No key, a key of no shape, a revoked key.
    let anonymous = env
        .http
        .delete(format!("{base}{path}"))
        .header("x-forwarded-for", "198.51.100.78")
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous
            .headers()
            .get("www-authenticate")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert_eq!(anonymous.json::<Value>().await?["code"], "api_key_required");
    let revoked = env.stack.issue_api_key("unrelated").await?;
    let table = env.stack.table().await;
    table
        .revoke_api_key(
            &live_balances::domain::api_key::KeyHash::of(&revoked),
            unix_now(),
        )
        .await?;
    for key in [revoked.as_str(), "lbk_guess"] {
        let (status, answer) = as_key(key, reqwest::Method::GET, &list, None).await?;
        assert_eq!(
            (status, answer["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{key}"
        );
    }
    // A key's quotas: its requests a minute, its tenant's live subscriptions.
    use live_balances::domain::api_key::Quotas;
    let metered = env
        .stack
        .issue_api_key_with(
            "metered",
            Quotas {
                requests_per_minute: 3,
                max_webhooks: 10,
            },
        )
        .await?;
    for _ in 0..3 {
        let (status, answer) = as_key(&metered, reqwest::Method::GET, &list, None).await?;
        assert_eq!(status, 200, "{answer}");
    }
    let response = env
        .http
        .get(format!("{base}{list}"))
        .header("x-forwarded-for", "198.51.100.79")
        .bearer_auth(&metered)
        .send()
        .await?;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(response.json::<Value>().await?["code"], "rate_limited");
    let small = env
        .stack
        .issue_api_key_with(
            "small",
            Quotas {
                requests_per_minute: 100,
                max_webhooks: 1,
            },
        )
        .await?;
    let hook = |n: u8| json!({"url": format!("http://127.0.0.1:9/{n}"), "wallets": [owner], "events": ["balance_update"]});
    let hooks = format!("/{chain}/webhooks");
    let (status, answer) = as_key(&small, reqwest::Method::POST, &hooks, Some(&hook(1))).await?;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = as_key(&small, reqwest::Method::POST, &hooks, Some(&hook(2))).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("too_many_webhooks")),
        "{answer}"
    );

    // Even the author cannot keep an order open for thirty years.
    let mut forever = body.clone();
    forever["validTo"] = json!(unix_now() + 30 * 365 * 86_400);
    let (status, answer) = as_key(&author, reqwest::Method::PUT, &path, Some(&forever)).await?;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_order")),
        "{answer}"
    );
    Ok(())
}

/// A session naming a thousand spenders, ten Permit2 spenders, or tokens × spenders past the
/// cap (Permit2 spenders counted as spenders), is refused before anything is read or stored; so are a body over the size limit and an overlong query.
async fn oversized_sessions_are_refused_and_store_nothing(
    env: &Environment,
    base: &str,
) -> anyhow::Result<()> {
    let attacker = Attacker {
        env,
        base,
        source: "203.0.113.10".into(),
    };
    let victim = lower(&fresh_owner());
    let path = format!("/{}/sessions/{victim}", env.chain_id());
    let addresses = |n: usize| -> Vec<String> { (0..n).map(|_| lower(&fresh_owner())).collect() };
    let spenders = json!({"customTokens": addresses(300), "spenders": addresses(1_000)});
    let answer = attacker
        .send(reqwest::Method::POST, &path, Some(&spenders))
        .await?;
    refused(&answer, 400, "too_many_spenders")?;
    let product = json!({"customTokens": addresses(2_001), "spenders": addresses(10)});
    let answer = attacker
        .send(reqwest::Method::POST, &path, Some(&product))
        .await?;
    refused(&answer, 400, "too_many_allowances")?;
    assert!(
        answer.2["message"]
            .as_str()
            .unwrap_or_default()
            .contains("20010"),
        "{}",
        answer.2
    );
    // Permit2 spenders count as spenders, with Permit2 itself one more (the token's allowance
    // to it is tracked beside them): ten of them are past the cap of ten.
    let permit2 =
        json!({"customTokens": addresses(3), "spenders": [], "permit2Spenders": addresses(10)});
    let answer = attacker
        .send(reqwest::Method::POST, &path, Some(&permit2))
        .await?;
    refused(&answer, 400, "too_many_spenders")?;
    let permit2 =
        json!({"customTokens": addresses(2_001), "spenders": [], "permit2Spenders": addresses(9)});
    let answer = attacker
        .send(reqwest::Method::POST, &path, Some(&permit2))
        .await?;
    refused(&answer, 400, "too_many_allowances")?;
    let huge = json!({"customTokens": addresses(7_000)});
    let answer = attacker
        .send(reqwest::Method::POST, &path, Some(&huge))
        .await?;
    refused(&answer, 413, "body_too_large")?;
    let wallets = vec![format!("{}:{victim}", env.chain_id()); 100].join(",");
    let answer = attacker
        .send(
            reqwest::Method::GET,
            &format!("/sse/balances?wallets={wallets}"),
            None,
        )
        .await?;
    refused(&answer, 414, "query_too_long")?;
    let (status, _, _) = attacker.send(reqwest::Method::GET, &path, None).await?;
    assert_eq!(status, 404, "nothing was stored for the victim");
    Ok(())
}

/// Balance reads that go to the operator's node are counted per source: past
/// `CHAIN_READS_PER_SOURCE_PER_MINUTE`, `429` with `Retry-After`; another source is not held.
async fn chain_reads_are_limited_per_source(env: &Environment, base: &str) -> anyhow::Result<()> {
    let attacker = Attacker {
        env,
        base,
        source: "203.0.113.20".into(),
    };
    let owner = lower(&fresh_owner());
    let path = format!("/{}/balances/{owner}", env.chain_id());
    let untracked = json!({"tokens": (0..500).map(|_| lower(&fresh_owner())).collect::<Vec<_>>()});
    let mut answers = vec![];
    for _ in 0..CHAIN_READS + 2 {
        answers.push(
            attacker
                .send(reqwest::Method::POST, &path, Some(&untracked))
                .await?,
        );
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(
        statuses,
        [vec![200; CHAIN_READS as usize], vec![429, 429]].concat()
    );
    refused(answers.last().context("answer")?, 429, "rate_limited")?;
    // One-value reads share the window.
    let one = format!(
        "/{}/balance/{owner}/{}",
        env.chain_id(),
        lower(&fresh_owner())
    );
    refused(
        &attacker.send(reqwest::Method::GET, &one, None).await?,
        429,
        "rate_limited",
    )?;
    let neighbour = Attacker {
        env,
        base,
        source: "203.0.113.21".into(),
    };
    let (status, _, body) = neighbour
        .send(reqwest::Method::POST, &path, Some(&untracked))
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

/// Streams are bounded per source (an IPv6 client by its /64: every address in it is one
/// source), per wallet, and in how often a source opens them.
async fn streams_are_limited_per_source_and_wallet(
    env: &Environment,
    base: &str,
) -> anyhow::Result<()> {
    let chain = env.chain_id();
    let (_, token) = env.actor_with_token(1).await?;
    let session = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    let mut wallets = vec![];
    for _ in 0..5 {
        let owner = lower(&fresh_owner());
        env.watch(&owner, &session).await?;
        wallets.push(owner);
    }
    // One /64, several addresses: one source.
    let from = |n: u32| Attacker {
        env,
        base,
        source: format!("2001:db8:77:1::{n:x}"),
    };
    let mut open = vec![];
    for (i, wallet) in wallets.iter().take(STREAMS_PER_SOURCE as usize).enumerate() {
        let stream = from(i as u32 + 1).open_stream(chain, wallet).await?;
        open.push(stream.map_err(|e| anyhow::anyhow!("stream {i}: {e:?}"))?);
    }
    let refusal = from(99)
        .open_stream(chain, &wallets[3])
        .await?
        .err()
        .context("a stream past the source's cap was opened")?;
    refused(&refusal, 429, "too_many_streams")?;
    // The next /64 is another source.
    let other = Attacker {
        env,
        base,
        source: "2001:db8:77:2::1".into(),
    };
    let stream = other.open_stream(chain, &wallets[3]).await?;
    open.push(stream.map_err(|e| anyhow::anyhow!("another /64: {e:?}"))?);

    // One wallet: at most STREAMS_PER_WALLET, whoever opens them.
    let (a, b, c) = (
        from_v4(env, base, 31),
        from_v4(env, base, 32),
        from_v4(env, base, 33),
    );
    open.push(
        a.open_stream(chain, &wallets[4])
            .await?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    );
    open.push(
        b.open_stream(chain, &wallets[4])
            .await?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    );
    let refusal = c
        .open_stream(chain, &wallets[4])
        .await?
        .err()
        .context("a stream past the wallet's cap was opened")?;
    refused(&refusal, 429, "too_many_streams")?;

    // Opening again and again (here streams of a wallet without a session, each a 404): the
    // source's openings a minute run out, and then it is refused before anything is read.
    drop(open);
    let churner = from_v4(env, base, 40);
    let nobody = lower(&fresh_owner());
    let mut answers = vec![];
    for _ in 0..STREAM_OPENS + 1 {
        let answer = churner
            .open_stream(chain, &nobody)
            .await?
            .err()
            .context("a stream of a wallet without a session")?;
        answers.push(answer);
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(
        statuses,
        [vec![404; STREAM_OPENS as usize], vec![429]].concat()
    );
    refused(answers.last().context("answer")?, 429, "rate_limited")?;
    Ok(())
}

fn from_v4<'a>(env: &'a Environment, base: &'a str, n: u8) -> Attacker<'a> {
    Attacker {
        env,
        base,
        source: format!("198.51.100.{n}"),
    }
}

/// Under the function URL the streams of one wallet are counted in the table — instances share
/// nothing else: past `MAX_STREAMS_PER_WALLET`, `429`; a stream that ends frees its slot.
async fn streams_per_wallet_are_counted_across_instances(
    env: &'static Environment,
) -> anyhow::Result<()> {
    let (_, token) = env.actor_with_token(1).await?;
    let owner = lower(&fresh_owner());
    env.watch(
        &owner,
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token)),
    )
    .await?;
    let mut open = vec![];
    for _ in 0..MAX_STREAMS_PER_WALLET {
        open.push(SseClient::connect(env, &owner, None).await?);
    }
    let url = env.url(&format!("/sse/{}/balances/{owner}", env.chain_id()));
    let refusal = env.http.get(&url).send().await?;
    assert_eq!(refusal.status(), 429);
    assert!(refusal.headers().get("retry-after").is_some());
    assert_eq!(refusal.json::<Value>().await?["code"], "too_many_streams");
    // One client leaves: its slot is given back once the function notices (its next write).
    drop(open.pop());
    let until = Instant::now() + DEADLINE;
    loop {
        let response = env.http.get(&url).send().await?;
        if response.status() == 200 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < until,
            "the slot was not given back: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
