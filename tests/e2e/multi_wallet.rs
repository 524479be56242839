//! One stream for many (chain, wallet) pairs, on both transports: three pairs on two chains
//! (two wallets on the default chain, one of them on the second chain too) created by one
//! `POST /sessions` and watched by one `GET /sse/balances` — snapshots per pair, a burst in
//! order per wallet, a reconnect that replays exactly what each pair missed, one pair's expired
//! position or session touching only that pair, bad input refused naming the pair with nothing
//! stored, and an unreadable id answered with fresh snapshots, never a refusal.
//! Every test runs twice, as `<name>::function_url` and `<name>::server`.

use alloy::primitives::{Address, U256};
use anyhow::{Context, bail, ensure};
use e2e::{DEADLINE, Environment, Event, SseClient, Transport, fresh_owner};
use live_balances::domain::address::lower;
use local_stack::devnet::Wallet;
use serde_json::{Value, json};
use tokio::time::Instant;

/// One watched pair: a wallet on a chain, a fresh token it holds, the actor that sends it more.
struct Watched {
    chain_id: u64,
    owner: Address,
    token: Address,
    actor: Wallet,
}

impl Watched {
    fn names(&self, e: &Event) -> bool {
        e.data["chainId"].as_u64() == Some(self.chain_id)
            && e.data["owner"] == lower(&self.owner).as_str()
    }

    async fn send(&self, amount: u64) -> anyhow::Result<()> {
        self.actor
            .transfer(self.token, self.owner, U256::from(amount))
            .await?;
        Ok(())
    }
}

/// Three pairs on two chains — wallet A and B on the default chain, A on the second — each
/// holding `start` of its own token, their sessions created by one `POST /sessions`.
async fn three_pairs(
    env: &'static Environment,
    transport: Transport,
    start: u64,
) -> anyhow::Result<Vec<Watched>> {
    let (a, b) = (fresh_owner(), fresh_owner());
    let second = env.second_chain_id()?;
    let mut pairs = vec![];
    for (chain_id, owner) in [(env.chain_id(), a), (env.chain_id(), b), (second, a)] {
        let (actor, token) = env.actor_with_token_on(chain_id, 1_000_000_000).await?;
        actor.transfer(token, owner, U256::from(start)).await?;
        pairs.push(Watched {
            chain_id,
            owner,
            token,
            actor,
        });
    }
    let body = json!({
        "wallets": pairs.iter().map(|p| json!({
            "chainId": p.chain_id,
            "owner": lower(&p.owner),
            "customTokens": [lower(&p.token)],
        })).collect::<Vec<_>>()
    });
    let (status, reply) = env.post_sessions_via(transport, &body).await?;
    ensure!(status == 200, "POST /sessions: {reply}");
    let results = reply["wallets"].as_array().context("wallets")?;
    ensure!(results.len() == 3, "{reply}");
    for (pair, result) in pairs.iter().zip(results) {
        ensure!(
            result["chainId"].as_u64() == Some(pair.chain_id)
                && result["owner"] == lower(&pair.owner).as_str()
                && result["session"]["tokens"]
                    .as_array()
                    .is_some_and(|t| t.contains(&Value::from(lower(&pair.token)))),
            "a result per pair, in order: {result}"
        );
    }
    Ok(pairs)
}

fn wallets(pairs: &[Watched]) -> Vec<(u64, String)> {
    pairs
        .iter()
        .map(|p| (p.chain_id, lower(&p.owner)))
        .collect()
}

/// Reads events until every pair has had its `all_balances`; returns each pair's balance of
/// its token. A snapshot must name its pair.
async fn snapshots(sse: &mut SseClient, pairs: &[Watched]) -> anyhow::Result<Vec<String>> {
    let mut values: Vec<Option<String>> = vec![None; pairs.len()];
    while values.iter().any(Option::is_none) {
        let e = sse
            .wait_for("an all_balances per pair", |e| e.event != "ping")
            .await?;
        ensure!(e.event == "all_balances", "snapshots first: {e:?}");
        let i = pairs
            .iter()
            .position(|p| p.names(&e))
            .with_context(|| format!("all_balances of no pair of the stream: {e:?}"))?;
        ensure!(values[i].is_none(), "two snapshots of one pair: {e:?}");
        let balance = e.data["balances"][lower(&pairs[i].token)]
            .as_str()
            .with_context(|| format!("the pair's token: {e:?}"))?;
        values[i] = Some(balance.to_string());
    }
    Ok(values.into_iter().flatten().collect())
}

/// Follows every pair's token from `from[i]` to `to[i]`, checking per pair that each update
/// continues the one before it (nothing lost, nothing twice, in order per wallet) and names
/// its pair. Returns every event seen.
async fn follow_all(
    sse: &mut SseClient,
    pairs: &[Watched],
    from: &[String],
    to: &[String],
) -> anyhow::Result<Vec<Event>> {
    let mut current = from.to_vec();
    let mut seen = vec![];
    let deadline = Instant::now() + DEADLINE;
    while current != to {
        let e = sse
            .next(deadline)
            .await
            .with_context(|| format!("holding {current:?}, waiting for {to:?}"))?;
        seen.push(e.clone());
        if e.event != "balance_update" {
            continue;
        }
        ensure!(e.id.is_some(), "update without id: {e:?}");
        let i = pairs
            .iter()
            .position(|p| p.names(&e) && e.data["address"] == lower(&p.token).as_str())
            .with_context(|| format!("an update of no pair of the stream: {e:?}"))?;
        // A first value (`previousBalance: null`) equal to the one held restates it.
        if e.data["previousBalance"].is_null() && e.data["balance"] == current[i].as_str() {
            continue;
        }
        if e.data["previousBalance"] != current[i].as_str() {
            bail!(
                "pair {i}: update does not continue from {}: {:?}",
                current[i],
                e.data
            );
        }
        current[i] = e.data["balance"].as_str().context("balance")?.to_string();
    }
    Ok(seen)
}

/// [`three_pairs`] holding 10 each, streamed until each got 1 more; returns them with the
/// stream's last id (the stream is closed).
async fn pairs_after_one_update_each(
    env: &'static Environment,
    transport: Transport,
) -> anyhow::Result<(Vec<Watched>, String)> {
    let pairs = three_pairs(env, transport, 10).await?;
    let mut first = SseClient::connect_many(env, transport, &wallets(&pairs), None).await?;
    snapshots(&mut first, &pairs).await?;
    for pair in &pairs {
        pair.send(1).await?;
    }
    follow_all(&mut first, &pairs, &strings(&[10; 3]), &strings(&[11; 3])).await?;
    let last_id = first.last_id.clone().context("an id after the updates")?;
    Ok((pairs, last_id))
}

fn strings(values: &[u64]) -> Vec<String> {
    values.iter().map(u64::to_string).collect()
}

on_both_transports!(
    three_pairs_on_two_chains_share_one_stream_in_order_per_wallet,
    burst_test
);
async fn burst_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let pairs = three_pairs(env, transport, 100).await?;
    let mut sse = SseClient::connect_many(env, transport, &wallets(&pairs), None).await?;
    assert_eq!(
        snapshots(&mut sse, &pairs).await?,
        strings(&[100, 100, 100])
    );
    // A burst across every pair, interleaved.
    let mut totals = [100u64; 3];
    for amount in 1..=5u64 {
        for (i, pair) in pairs.iter().enumerate() {
            pair.send(amount).await?;
            totals[i] += amount;
        }
    }
    let seen = follow_all(
        &mut sse,
        &pairs,
        &strings(&[100, 100, 100]),
        &strings(&totals),
    )
    .await?;
    assert!(
        seen.iter().all(|e| e.event != "error"),
        "no pair ended: {seen:?}"
    );
    Ok(())
}

on_both_transports!(
    an_open_stream_keeps_every_pairs_session_alive,
    keep_alive_test
);
/// A session lives `SESSION_TTL` without a stream; an open stream pushes each of its pairs'
/// expiry forward every `SSE_KEEPALIVE_SECS` (1 s on the test stack), as a single-wallet
/// stream does for its one.
async fn keep_alive_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let pairs = three_pairs(env, transport, 100).await?;
    let table = env.stack.table().await;
    let expiries = || async {
        let mut out = vec![];
        for p in &pairs {
            let session = table.session(p.chain_id, &p.owner).await?;
            out.push(session.context("a session per pair")?.expires_at);
        }
        anyhow::Ok(out)
    };
    let created = expiries().await?;
    let mut sse = SseClient::connect_many(env, transport, &wallets(&pairs), None).await?;
    snapshots(&mut sse, &pairs).await?;
    let until = Instant::now() + DEADLINE;
    loop {
        let now = expiries().await?;
        if now.iter().zip(&created).all(|(n, c)| n > c) {
            break;
        }
        ensure!(
            Instant::now() < until,
            "expiries {now:?} not pushed past {created:?} by the open stream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The stream itself goes on.
    let e = sse.wait_for("a ping", |e| e.event == "ping").await?;
    ensure!(e.event == "ping", "{e:?}");
    Ok(())
}

on_both_transports!(
    a_reconnect_replays_exactly_what_every_pair_missed,
    resume_test
);
async fn resume_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (pairs, last_id) = pairs_after_one_update_each(env, transport).await?;
    assert!(last_id.len() <= 11 + 27 * 3, "bounded: {last_id}");

    // Missed while disconnected, on every pair.
    for amount in [2u64, 3] {
        for pair in &pairs {
            pair.send(amount).await?;
        }
    }
    let mut resumed =
        SseClient::connect_many(env, transport, &wallets(&pairs), Some(&last_id)).await?;
    let seen = follow_all(&mut resumed, &pairs, &strings(&[11; 3]), &strings(&[16; 3])).await?;
    assert!(
        seen.iter()
            .all(|e| e.event != "all_balances" && e.event != "resync"),
        "a resume, not a snapshot: {seen:?}"
    );
    Ok(())
}

on_both_transports!(
    an_expired_position_of_one_pair_resyncs_only_that_pair,
    resync_test
);
async fn resync_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let (pairs, last_id) = pairs_after_one_update_each(env, transport).await?;

    // The id's positions follow the pairs in order of (chain, owner): put a well-formed
    // position that is not (or no longer) in its feed in place of pair 1's.
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|i| (pairs[*i].chain_id, pairs[*i].owner));
    let slot = 2 + order.iter().position(|i| *i == 1).context("pair 1")?;
    let mut parts: Vec<&str> = last_id.split('.').collect();
    ensure!(parts.len() == 2 + pairs.len(), "{last_id}");
    parts[slot] = "1";
    let expired = parts.join(".");

    let mut resumed =
        SseClient::connect_many(env, transport, &wallets(&pairs), Some(&expired)).await?;
    let resync = resumed.wait_for("resync", |e| e.event != "ping").await?;
    assert_eq!(resync.event, "resync", "{resync:?}");
    assert_eq!(resync.data["code"], "position_expired");
    assert!(
        pairs[1].names(&resync),
        "the resync names its pair: {resync:?}"
    );
    let snapshot = resumed
        .wait_for("all_balances", |e| e.event != "ping")
        .await?;
    assert_eq!(snapshot.event, "all_balances", "{snapshot:?}");
    assert!(pairs[1].names(&snapshot), "{snapshot:?}");
    assert_eq!(snapshot.data["balances"][lower(&pairs[1].token)], "11");
    // The others continue where they were: no snapshot for them.
    for pair in &pairs {
        pair.send(4).await?;
    }
    let seen = follow_all(&mut resumed, &pairs, &strings(&[11; 3]), &strings(&[15; 3])).await?;
    assert!(
        seen.iter()
            .all(|e| e.event != "all_balances" && e.event != "resync"),
        "only pair 1 resynced: {seen:?}"
    );
    Ok(())
}

on_both_transports!(
    an_expired_session_of_one_pair_ends_only_that_pair,
    session_expiry_test
);
async fn session_expiry_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let pairs = three_pairs(env, transport, 10).await?;
    let mut sse = SseClient::connect_many(env, transport, &wallets(&pairs), None).await?;
    snapshots(&mut sse, &pairs).await?;

    env.expire_session(pairs[2].chain_id, &pairs[2].owner)
        .await?;
    let error = sse
        .wait_for("the pair's error", |e| e.event == "error")
        .await?;
    assert_eq!(error.data["code"], "session_expired");
    assert!(
        pairs[2].names(&error),
        "the error names its pair: {error:?}"
    );

    // The other two go on; the expired one is sent nothing more.
    pairs[2].send(5).await?;
    for pair in &pairs[..2] {
        pair.send(5).await?;
    }
    let seen = follow_all(
        &mut sse,
        &pairs[..2],
        &strings(&[10; 2]),
        &strings(&[15; 2]),
    )
    .await?;
    assert!(
        seen.iter().all(|e| !pairs[2].names(e)),
        "nothing more for the expired pair: {seen:?}"
    );
    Ok(())
}

on_both_transports!(
    bad_pairs_are_refused_naming_the_pair_and_nothing_is_stored,
    bad_input_test
);
async fn bad_input_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let (a, b) = (lower(&fresh_owner()), lower(&fresh_owner()));
    let too_many: Vec<String> = (0..11)
        .map(|_| format!("{chain}:{}", lower(&fresh_owner())))
        .collect();
    // The stream's query.
    for (name, wallets, status, code, names) in [
        (
            "malformed pair",
            format!("{chain}:{a},{chain}-{b}"),
            400,
            "invalid_pair",
            "wallets[1]",
        ),
        (
            "bad chain id",
            format!("x:{a}"),
            400,
            "invalid_chain_id",
            "wallets[0]",
        ),
        (
            "bad owner",
            format!("{chain}:{a},{chain}:0x12"),
            400,
            "invalid_owner",
            "wallets[1]",
        ),
        (
            "duplicate",
            format!(
                "{chain}:{a},{chain}:{}",
                a.to_uppercase().replace("0X", "0x")
            ),
            400,
            "duplicate_pair",
            "wallets[1]",
        ),
        (
            "unknown chain",
            format!("{chain}:{a},99999:{b}"),
            404,
            "unknown_chain",
            "wallets[1]",
        ),
        (
            "too many pairs",
            too_many.join(","),
            400,
            "too_many_pairs",
            "at most 10",
        ),
        ("no pairs", String::new(), 400, "no_pairs", "no wallets"),
        (
            "no session",
            format!("{chain}:{a},{chain}:{b}"),
            404,
            "session_not_found",
            "",
        ),
    ] {
        let url = env.url_via(transport, &format!("/sse/balances?wallets={wallets}"));
        let (got, body) = env.json_request(|| env.http.get(&url)).await?;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["code"], code, "{name}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{name}: {body}");
    }

    // The sessions body: the first pair is valid each time, so a refusal that still stored it
    // would show.
    let (actor, token) = env.actor_with_token(1_000).await?;
    drop(actor);
    let token = lower(&token);
    let good = json!({"chainId": chain, "owner": a, "customTokens": [token]});
    let many: Vec<Value> = too_many
        .iter()
        .map(|p| json!({"chainId": chain, "owner": p.split(':').nth(1), "customTokens": [token]}))
        .collect();
    for (name, wallets, status, code, names) in [
        (
            "bad owner",
            json!([good, {"chainId": chain, "owner": "0x12", "customTokens": [token]}]),
            400,
            "invalid_owner",
            "wallets[1]",
        ),
        (
            "bad chain id",
            json!([good, {"chainId": "1", "owner": b, "customTokens": [token]}]),
            400,
            "invalid_chain_id",
            "wallets[1]",
        ),
        (
            "not an object",
            json!([good, 5]),
            400,
            "invalid_pair",
            "wallets[1]",
        ),
        (
            "bad token",
            json!([good, {"chainId": chain, "owner": b, "customTokens": ["0x1"]}]),
            400,
            "invalid_token",
            "wallets[1]",
        ),
        (
            "unknown field",
            json!([good, {"chainId": chain, "owner": b, "customTokens": [token], "x": 1}]),
            400,
            "invalid_body",
            "wallets[1]",
        ),
        (
            "duplicate",
            json!([good, good]),
            400,
            "duplicate_pair",
            "wallets[1]",
        ),
        (
            "unknown chain",
            json!([good, {"chainId": 99999, "owner": b, "customTokens": [token]}]),
            404,
            "unknown_chain",
            "wallets[1]",
        ),
        (
            "too many pairs",
            Value::from(many.clone()),
            400,
            "too_many_pairs",
            "at most 10",
        ),
        ("no pairs", json!([]), 400, "no_pairs", "no wallets"),
    ] {
        let (got, body) = env
            .post_sessions_via(transport, &json!({ "wallets": wallets }))
            .await?;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["code"], code, "{name}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{name}: {body}");
    }
    let table = env.stack.table().await;
    for owner in [&a, &b] {
        assert_eq!(
            table.session(chain, &owner.parse()?).await?,
            None,
            "nothing stored"
        );
    }
    Ok(())
}

on_both_transports!(
    an_unreadable_id_resyncs_every_pair_with_a_200,
    unreadable_id_test
);
async fn unreadable_id_test(transport: Transport) -> anyhow::Result<()> {
    let env = Environment::get();
    let pairs = three_pairs(env, transport, 3).await?;
    // An id of another pair set: the stream of the first two pairs only.
    let mut two = SseClient::connect_many(env, transport, &wallets(&pairs[..2]), None).await?;
    snapshots(&mut two, &pairs[..2]).await?;
    let foreign = two.last_id.clone().context("an id")?;
    drop(two);
    let single = format!("{:0>40}", 42);
    for id in [foreign.as_str(), single.as_str(), "not an id", "m1.zz"] {
        let mut sse = SseClient::connect_many(env, transport, &wallets(&pairs), Some(id)).await?;
        let mut resynced = vec![false; pairs.len()];
        let mut snapshots = vec![false; pairs.len()];
        let deadline = Instant::now() + DEADLINE;
        while snapshots.iter().any(|s| !s) {
            let e = sse
                .next(deadline)
                .await
                .with_context(|| format!("after Last-Event-ID {id:?}"))?;
            let Some(i) = pairs.iter().position(|p| p.names(&e)) else {
                continue;
            };
            match e.event.as_str() {
                "resync" => {
                    assert_eq!(e.data["code"], "unreadable_last_event_id", "{id}: {e:?}");
                    resynced[i] = true;
                }
                "all_balances" => {
                    assert!(resynced[i], "{id}: resync before the snapshot: {e:?}");
                    assert_eq!(e.data["balances"][lower(&pairs[i].token)], "3");
                    snapshots[i] = true;
                }
                other => bail!("{id}: unexpected {other}: {e:?}"),
            }
        }
    }
    // The single-wallet route does the same: see sse.rs's unreadable-id test.
    Ok(())
}
