//! Webhooks end to end: a subscription made through the api, changes mined on anvil, delivered
//! by the webhooks function (fed by its own pump) to a receiver on this machine that checks
//! every signature itself — in order, once per feed position through 500s, parked while the
//! receiver is dead and replayed later, and hostile targets refused.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use anyhow::Context;
use e2e::webhook_receiver::{Answer, HUNG, Received, Receiver, verify};
use e2e::{DEADLINE, Environment, WEBHOOK_DISABLE_AFTER_SECS, WEBHOOK_TIMEOUT, fresh_owner};
use live_balances::domain::address::lower;
use serde_json::{Value, json};
use tokio::time::Instant;

/// A wallet the poller tracks, with a token to send it, and a subscription to its changes.
struct Subscribed {
    actor: local_stack::devnet::Wallet,
    token: Address,
    owner: Address,
    id: String,
    secret: String,
}

async fn post_webhook(env: &Environment, base: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let url = format!("{base}/{}/webhooks", env.chain_id());
    env.send_backend(reqwest::Method::POST, &url, body.to_string())
        .await
}

async fn subscribe(env: &'static Environment, url: &str) -> anyhow::Result<Subscribed> {
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    env.watch(
        &lower(&owner),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token)),
    )
    .await?;
    let body = json!({
        "url": url,
        "wallets": [lower(&owner)],
        "tokens": [lower(&token)],
        "events": ["balance_update", "allowance_update"],
    });
    let (status, created) = post_webhook(env, &env.stack.endpoints.api, &body).await?;
    anyhow::ensure!(status == 201, "create: {status} {created}");
    Ok(Subscribed {
        actor,
        token,
        owner,
        id: created["id"].as_str().context("id")?.to_string(),
        secret: created["secret"].as_str().context("secret")?.to_string(),
    })
}

/// `GET` of subscription `id` with API key `key` (none: no `Authorization`).
async fn get_webhook(
    env: &Environment,
    id: &str,
    key: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let url = env.url(&format!("/{}/webhooks/{id}", env.chain_id()));
    env.json_request(|| {
        let request = env.http.get(&url);
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    })
    .await
}

/// Polls the subscription's GET until `done` holds.
async fn wait_webhook(
    env: &Environment,
    sub: &Subscribed,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let until = Instant::now() + DEADLINE;
    loop {
        let (status, view) = get_webhook(env, &sub.id, Some(&env.stack.api_key)).await?;
        anyhow::ensure!(status == 200, "GET: {status} {view}");
        if done(&view) {
            return Ok(view);
        }
        anyhow::ensure!(
            Instant::now() < until,
            "{what}: not within {DEADLINE:?}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The holders of the wallet's session (its `holds` map, read from the table).
async fn session_holds(env: &Environment, owner: &Address) -> anyhow::Result<Vec<String>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let table = env.stack.table().await;
    let item = table
        .client()
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S(format!("S#{}", env.chain_id())))
        .key("sk", AttributeValue::S(lower(owner)))
        .consistent_read(true)
        .send()
        .await?
        .item
        .unwrap_or_default();
    Ok(match item.get("holds") {
        Some(AttributeValue::M(holds)) => holds.keys().cloned().collect(),
        _ => vec![],
    })
}

/// Whether the subscription shows `count` parked deliveries and is no longer active (the
/// parking and the failure are two writes: a read between them sees one without the other).
fn parked(view: &Value, count: usize) -> bool {
    view["parkedCount"] == count
        && view["parked"].as_array().is_some_and(|p| p.len() == count)
        && view["status"] != "active"
}

/// Checks accepted deliveries of one token's balance: increasing ids, each continuing where
/// the previous one left off, each id once.
fn assert_in_order_once(accepted: &[Received], token: &str) {
    let mut last_id = String::new();
    let mut last_balance: Option<String> = None;
    for delivery in accepted {
        let body = delivery.json();
        assert_eq!(
            body["id"], delivery.id,
            "the idempotency id is the header's"
        );
        assert_eq!(body["data"]["address"], token, "{body}");
        assert!(
            delivery.id > last_id,
            "ids increase: {} after {last_id}",
            delivery.id
        );
        if let Some(previous) = &last_balance {
            assert_eq!(
                body["data"]["previousBalance"].as_str(),
                Some(previous.as_str()),
                "continues from the previous delivery: {body}"
            );
        }
        last_id = delivery.id.clone();
        last_balance = body["data"]["balance"].as_str().map(str::to_string);
    }
}

/// Every request the receiver got for the delivery `id`, in arrival order.
fn tries_of(receiver: &Receiver, id: &str) -> Vec<Received> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.id == id)
        .collect()
}

fn last_balance(accepted: &[Received]) -> Option<String> {
    accepted
        .last()
        .and_then(|r| r.json()["data"]["balance"].as_str().map(str::to_string))
}

/// A target that does not answer within `WEBHOOK_TIMEOUT_MS` is retried as one that fails
/// is: the same delivery again, and the answer to the retry is its one acceptance.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_does_not_answer_in_time_is_retried() -> anyhow::Result<()> {
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let sub = subscribe(env, &receiver.url).await?;
    receiver.set_secret(&sub.secret);
    receiver.script([Answer::Hang(WEBHOOK_TIMEOUT * 2)]);
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let accepted = receiver
        .wait_accepted("the transfer delivered", DEADLINE, |a| {
            last_balance(a).as_deref() == Some("100")
        })
        .await?;
    assert_eq!(accepted.len(), 1, "accepted once");
    let first = &accepted[0];
    let tries = tries_of(&receiver, &first.id);
    assert_eq!(
        tries.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [HUNG, 200],
        "given up on after the timeout, then sent again"
    );
    assert!(tries.iter().all(|r| r.body == first.body && r.verified));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_arrive_signed_in_order_once_per_position_through_500s() -> anyhow::Result<()> {
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let sub = subscribe(env, &receiver.url).await?;
    receiver.set_secret(&sub.secret);
    // The first delivery meets two 500s before its 200.
    receiver.script([Answer::Status(500), Answer::Status(500)]);
    for _ in 0..3 {
        sub.actor
            .transfer(sub.token, sub.owner, U256::from(100))
            .await?;
    }
    let accepted = receiver
        .wait_accepted("three transfers delivered", DEADLINE, |a| {
            last_balance(a).as_deref() == Some("300")
        })
        .await?;
    let token = lower(&sub.token);
    assert_in_order_once(&accepted, &token);
    let first = &accepted[0];
    let body = first.json();
    assert_eq!(body["type"], "balance_update");
    assert_eq!(body["subscriptionId"], sub.id);
    assert_eq!(body["chainId"], env.chain_id());
    assert_eq!(body["owner"], lower(&sub.owner));
    // The 500s were answers to the same delivery: same id, same body, signed again.
    let tries = tries_of(&receiver, &first.id);
    assert_eq!(
        tries.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 200],
        "retried until the 200, then never again"
    );
    assert!(tries.iter().all(|r| r.body == first.body && r.verified));
    // The signature covers the body: a tampered one fails the receiver's check.
    assert!(verify(
        &sub.secret,
        &first.id,
        &first.timestamp,
        &first.signature,
        &first.body
    ));
    // (Its balance is 100, or 200 when the poller read the first two transfers' blocks in one
    // step: a delivery is a change of the value, not a transfer.)
    let balance = body["data"]["balance"].as_str().unwrap_or_default();
    let tampered = String::from_utf8(first.body.clone())?.replacen(
        &format!("\"balance\":\"{balance}\""),
        &format!("\"balance\":\"9{balance}\""),
        1,
    );
    assert_ne!(tampered.as_bytes(), first.body.as_slice());
    assert!(!verify(
        &sub.secret,
        &first.id,
        &first.timestamp,
        &first.signature,
        tampered.as_bytes()
    ));
    assert!(!verify(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        &first.id,
        &first.timestamp,
        &first.signature,
        &first.body
    ));
    // One more change: any repeat of an earlier delivery would have come before it.
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let accepted = receiver
        .wait_accepted("the fourth transfer delivered", DEADLINE, |a| {
            last_balance(a).as_deref() == Some("400")
        })
        .await?;
    assert_in_order_once(&accepted, &token);
    assert_eq!(
        receiver.received().len(),
        accepted.len() + 2,
        "every request but the two 500s was a first delivery"
    );
    let (status, view) = get_webhook(env, &sub.id, Some(&env.stack.api_key)).await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "active");
    assert_eq!(view["parkedCount"], 0);
    assert!(
        view.get("secret").is_none(),
        "the secret is shown only once"
    );
    Ok(())
}

/// The back-end routes take an API key: none is 401, an unknown or revoked one 401, and a key
/// of another tenant finds nothing (404) — it can neither read, replay, rotate nor delete.
/// The signing secret is no credential.
#[tokio::test(flavor = "multi_thread")]
async fn reads_and_deletes_need_the_owners_api_key() -> anyhow::Result<()> {
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let sub = subscribe(env, &receiver.url).await?;
    let (status, body) = get_webhook(env, &sub.id, None).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("api_key_required"))
    );
    for wrong in [
        sub.secret.as_str(),
        "lbk_AAAA",
        &format!("lbk_{}", "A".repeat(43)),
    ] {
        let (status, body) = get_webhook(env, &sub.id, Some(wrong)).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{wrong}"
        );
    }
    let other = env.stack.issue_api_key("other-tenant").await?;
    let (status, body) = get_webhook(env, &sub.id, Some(&other)).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("webhook_not_found")),
        "another tenant's key finds nothing"
    );
    let key = env.stack.api_key.as_str();
    let (status, body) = get_webhook(env, &"0".repeat(32), Some(key)).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("webhook_not_found"))
    );
    let (status, body) = get_webhook(env, "not-an-id", Some(key)).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("webhook_not_found"))
    );
    let (status, view) = get_webhook(env, &sub.id, Some(key)).await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["wallets"], json!([lower(&sub.owner)]));
    assert_eq!(
        view["events"],
        json!(["balance_update", "allowance_update"])
    );
    let base = format!("/{}/webhooks/{}", env.chain_id(), sub.id);
    for (method, path) in [
        (reqwest::Method::POST, format!("{base}/replay")),
        (reqwest::Method::POST, format!("{base}/secret")),
        (reqwest::Method::DELETE, base.clone()),
    ] {
        let url = env.url(&path);
        let (status, body) = env
            .json_request(|| env.http.request(method.clone(), &url).bearer_auth(&other))
            .await?;
        assert_eq!(
            status, 404,
            "{method} {path} with another tenant's key: {body}"
        );
    }
    let url = env.url(&base);
    let (status, body) = env
        .json_request(|| env.http.delete(&url).bearer_auth(&sub.secret))
        .await?;
    assert_eq!(status, 401, "{body}");
    let (status, body) = env
        .json_request(|| env.http.delete(&url).bearer_auth(key))
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get_webhook(env, &sub.id, Some(key)).await?;
    assert_eq!(status, 404);
    let table = env.stack.table().await;
    assert!(
        table
            .webhooks_of_wallet(env.chain_id(), &sub.owner)
            .await?
            .is_empty(),
        "its wallet index went with it"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_receivers_deliveries_are_parked_disabled_and_replayed_in_order()
-> anyhow::Result<()> {
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let port = receiver.port();
    let sub = subscribe(env, &receiver.url).await?;
    receiver.stop();
    // One change at a time (two quick transfers may be read as one change).
    for count in 1..=2 {
        sub.actor
            .transfer(sub.token, sub.owner, U256::from(100))
            .await?;
        wait_webhook(env, &sub, "the change parked", |v| parked(v, count)).await?;
    }
    let view = wait_webhook(env, &sub, "two deliveries parked", |v| parked(v, 2)).await?;
    assert_eq!(view["status"], "backlogged", "{view}");
    assert!(
        view["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("could not be reached")),
        "{view}"
    );
    // The first used every attempt (and the second change's one try at it); the second was
    // parked behind it untried.
    assert!(
        view["parked"][0]["attempts"]
            .as_u64()
            .is_some_and(|n| n >= 4),
        "{view}"
    );
    assert_eq!(view["parked"][1]["attempts"], 0, "{view}");
    let failing_since = view["failingSince"].as_u64().context("failingSince")?;
    // Still dead after the disable period: the next change's try disables the subscription.
    let disable_at = failing_since + WEBHOOK_DISABLE_AFTER_SECS;
    let until = Instant::now() + DEADLINE;
    while live_balances::runtime::clock::unix_now() < disable_at {
        anyhow::ensure!(Instant::now() < until, "clock did not reach {disable_at}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let view = wait_webhook(env, &sub, "disabled", |v| v["status"] == "disabled").await?;
    assert!(
        view["disabledReason"]
            .as_str()
            .is_some_and(|r| r.contains("no delivery succeeded")),
        "{view}"
    );
    let view = wait_webhook(env, &sub, "three parked", |v| parked(v, 3)).await?;
    // Disabled, it no longer holds its wallet's session; the replay holds it again.
    let holder = format!("w#{}", sub.id);
    assert!(
        !session_holds(env, &sub.owner).await?.contains(&holder),
        "a disabled subscription holds nothing"
    );
    // The receiver is back; an operator replays.
    let receiver = Receiver::start_on(port).await?;
    receiver.set_secret(&sub.secret);
    let url = env.url(&format!("/{}/webhooks/{}/replay", env.chain_id(), sub.id));
    let (status, body) = env
        .json_request(|| env.with_key(env.http.post(&url)))
        .await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["parkedCount"], 3, "{body} after {view}");
    assert!(
        session_holds(env, &sub.owner).await?.contains(&holder),
        "replayed, it holds its wallet again"
    );
    let accepted = receiver
        .wait_accepted("the parked deliveries replayed", DEADLINE, |a| {
            last_balance(a).as_deref() == Some("300")
        })
        .await?;
    let token = lower(&sub.token);
    assert_in_order_once(&accepted, &token);
    assert_eq!(accepted.len(), 3, "each parked delivery once");
    let view = wait_webhook(env, &sub, "active again", |v| {
        v["status"] == "active" && v["parkedCount"] == 0
    })
    .await?;
    assert!(view.get("disabledReason").is_none(), "{view}");
    // And live deliveries go on after the replayed ones.
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let accepted = receiver
        .wait_accepted("a live delivery after the replay", DEADLINE, |a| {
            last_balance(a).as_deref() == Some("400")
        })
        .await?;
    assert_in_order_once(&accepted, &token);
    Ok(())
}

/// A 3xx is a failed attempt, never followed — following it would turn the POST into a GET
/// whose 2xx would count as delivered, and carry the signed `webhook-*` headers to another
/// host: the delivery is retried at its own target, and the redirect's target (here a second
/// receiver, and a private address) is never reached.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_a_failed_attempt_and_never_followed() -> anyhow::Result<()> {
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let elsewhere = Receiver::start().await?;
    let sub = subscribe(env, &receiver.url).await?;
    receiver.set_secret(&sub.secret);
    // A 303 and a 301 (which a client following them turns into a GET), then a 307.
    receiver.script([
        Answer::RedirectWith(303, elsewhere.url.clone()),
        Answer::RedirectWith(301, elsewhere.url.clone()),
        Answer::Redirect("http://10.0.0.1/hook".into()),
    ]);
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let accepted = receiver
        .wait_accepted(
            "the transfer delivered after three redirects",
            DEADLINE,
            |a| last_balance(a).as_deref() == Some("100"),
        )
        .await?;
    assert_eq!(accepted.len(), 1, "accepted once");
    let tries = tries_of(&receiver, &accepted[0].id);
    assert_eq!(
        tries.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [303, 301, 307, 200],
        "each redirect was a failed attempt, retried at the subscription's own target"
    );
    assert!(
        tries
            .iter()
            .all(|r| r.verified && r.body == accepted[0].body)
    );
    assert!(
        elsewhere.received().is_empty(),
        "the redirect's target got nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_targets_and_bad_input_are_refused_and_nothing_is_stored() -> anyhow::Result<()> {
    let env = Environment::get();
    let owner = lower(&fresh_owner());
    let good = |url: &str| json!({"url": url, "wallets": [owner], "events": ["balance_update"]});
    let with = |field: &str, value: Value| {
        let mut body = good("http://127.0.0.1:9/hook");
        body[field] = value;
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "private address",
            good("http://10.0.0.1/hook"),
            422,
            "webhook_url_refused",
        ),
        (
            "cloud metadata",
            good("http://169.254.169.254/latest/"),
            422,
            "webhook_url_refused",
        ),
        (
            "mapped IPv6 metadata",
            good("http://[::ffff:169.254.169.254]/"),
            422,
            "webhook_url_refused",
        ),
        (
            "decimal IPv4",
            good("http://2852039166/"),
            422,
            "webhook_url_refused",
        ),
        (
            "credentials",
            good("https://user:pw@hooks.example/"),
            422,
            "webhook_url_refused",
        ),
        (
            "file scheme",
            good("file:///etc/passwd"),
            422,
            "webhook_url_refused",
        ),
        ("not a URL", good("not a url"), 400, "invalid_webhook_url"),
        ("no wallets", with("wallets", json!([])), 400, "no_wallets"),
        (
            "bad wallet",
            with("wallets", json!(["0xnope"])),
            400,
            "invalid_owner",
        ),
        (
            "bad token",
            with("tokens", json!(["0xnope"])),
            400,
            "invalid_token",
        ),
        ("no events", with("events", json!([])), 400, "no_events"),
        (
            "unknown event",
            with("events", json!(["balance"])),
            400,
            "unknown_event",
        ),
        (
            "unknown field",
            with("secret", json!("mine")),
            400,
            "invalid_body",
        ),
        (
            "missing url",
            json!({"wallets": [owner], "events": ["balance_update"]}),
            400,
            "invalid_body",
        ),
        (
            "too many wallets",
            with(
                "wallets",
                json!((0..51).map(|_| lower(&fresh_owner())).collect::<Vec<_>>()),
            ),
            400,
            "too_many_wallets",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, answer) = post_webhook(env, &env.stack.endpoints.api, &body).await?;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
        assert!(answer["message"].is_string(), "{what}: {answer}");
    }
    let url = env.url("/abc/webhooks");
    let (status, body) = env
        .send_backend(
            reqwest::Method::POST,
            &url,
            good("http://127.0.0.1:9/").to_string(),
        )
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_chain_id"))
    );
    let url = env.url("/999/webhooks");
    let (status, body) = env
        .send_backend(
            reqwest::Method::POST,
            &url,
            good("http://127.0.0.1:9/").to_string(),
        )
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_chain"))
    );
    let url = env.url(&format!("/{}/webhooks", env.chain_id()));
    let (status, body) = env
        .json_request(|| {
            env.with_key(env.http.post(&url))
                .body(good("http://127.0.0.1:9/").to_string())
        })
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    // Without the development flag: plain http and this machine are refused too.
    let port = local_stack::process::free_port()?;
    let strict = env
        .stack
        .start_server_as(
            "server-strict-webhooks",
            port,
            &[("WEBHOOK_ALLOW_INSECURE".into(), "false".into())],
        )
        .await?;
    for url in [
        "http://hooks.example/x",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://[::1]/hook",
    ] {
        let (status, body) = post_webhook(env, &strict, &good(url)).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("webhook_url_refused")),
            "{url}: {body}"
        );
    }
    env.stack.stop_service("server-strict-webhooks")?;
    let table = env.stack.table().await;
    let owner: Address = owner.parse()?;
    assert!(
        table
            .webhooks_of_wallet(env.chain_id(), &owner)
            .await?
            .is_empty(),
        "nothing was stored"
    );
    Ok(())
}

/// The `order_status` deliveries of order `id` among `accepted`, in order.
fn order_statuses(accepted: &[Received], id: &str) -> Vec<Value> {
    accepted
        .iter()
        .map(Received::json)
        .filter(|b| b["type"] == "order_status" && b["data"]["orderId"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_going_unfillable_and_fillable_again_is_delivered() -> anyhow::Result<()> {
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = local_stack::devnet::Wallet::fresh(&env.stack.rpc_url).await?;
    let spender = local_stack::devnet::Wallet::fresh(&env.stack.rpc_url).await?;
    let (owner_hex, token_hex, spender_hex) = (
        lower(&owner.address),
        lower(&token),
        lower(&spender.address),
    );
    actor
        .transfer(token, owner.address, U256::from(500))
        .await?;
    owner
        .approve(token, spender.address, U256::from(300))
        .await?;
    // Order events only: the value changes that cause them are not asked for.
    let body = json!({
        "url": receiver.url,
        "wallets": [owner_hex],
        "events": ["order_status"],
    });
    let (status, created) = post_webhook(env, &env.stack.endpoints.api, &body).await?;
    anyhow::ensure!(status == 201, "create: {status} {created}");
    receiver.set_secret(created["secret"].as_str().context("secret")?);

    let id = format!("0x{}", "cd".repeat(56));
    let url = env.url(&format!("/{}/orders/{owner_hex}/{id}", env.chain_id()));
    let valid_to = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let order = json!({"sellToken": token_hex, "sellAmount": "200", "spender": spender_hex, "validTo": valid_to});
    let (code, answer) = env
        .send_backend(reqwest::Method::PUT, &url, order.to_string())
        .await?;
    anyhow::ensure!(code == 200, "PUT order: {code} {answer}");
    let order_id = id.clone();
    let fillable = |n: usize, want: bool| {
        let id = order_id.clone();
        move |a: &[Received]| {
            order_statuses(a, &id)
                .get(n)
                .is_some_and(|s| s["data"]["fillable"] == want)
        }
    };
    // The order as registered (fillable), then the wallet sends the token away.
    receiver
        .wait_accepted("the registered order", DEADLINE, fillable(0, true))
        .await?;
    owner
        .transfer(token, actor.address, U256::from(400))
        .await?;
    let accepted = receiver
        .wait_accepted("the order gone unfillable", DEADLINE, fillable(1, false))
        .await?;
    let short = &order_statuses(&accepted, &id)[1];
    assert_eq!(short["data"]["short"], "balance", "{short}");
    assert_eq!(short["data"]["balanceShortfall"], "100");
    assert_eq!(short["owner"], owner_hex.as_str());
    // Back: fillable again; then the allowance revoked: unfillable on the allowance.
    actor
        .transfer(token, owner.address, U256::from(400))
        .await?;
    receiver
        .wait_accepted("the order fillable again", DEADLINE, fillable(2, true))
        .await?;
    owner.approve(token, spender.address, U256::ZERO).await?;
    let accepted = receiver
        .wait_accepted("the allowance revoked", DEADLINE, fillable(3, false))
        .await?;
    let statuses = order_statuses(&accepted, &id);
    assert_eq!(statuses[3]["data"]["short"], "allowance", "{}", statuses[3]);
    // Approved again: fillable again.
    owner
        .approve(token, spender.address, U256::from(1_000u64))
        .await?;
    let accepted = receiver
        .wait_accepted("the allowance approved again", DEADLINE, fillable(4, true))
        .await?;
    assert!(
        accepted
            .iter()
            .all(|r| r.verified && r.json()["type"] == "order_status"),
        "signed, and only the kinds asked for"
    );
    let ids: Vec<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in feed order, once each: {ids:?}"
    );
    Ok(())
}

/// Creation is limited per source address (the load balancer's entry, as for sessions) and
/// per wallet: past either, a JSON 4xx naming the limit, and nothing stored.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_creation_is_rate_limited_per_source_and_capped_per_wallet() -> anyhow::Result<()> {
    let env = Environment::get();
    let port = local_stack::process::free_port()?;
    let name = format!("server-webhook-limits-{port}");
    let base = env
        .stack
        .start_server_as(
            &name,
            port,
            &[
                ("TRUST_X_FORWARDED_FOR".into(), "true".into()),
                ("WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE".into(), "2".into()),
                ("WEBHOOK_MAX_PER_WALLET".into(), "2".into()),
            ],
        )
        .await?;
    let outcome = async {
        let chain = env.chain_id();
        let url = format!("{base}/{chain}/webhooks");
        let create = |source: String, wallets: Vec<Address>| {
            let url = url.clone();
            async move {
                let body = json!({
                    "url": "http://127.0.0.1:9/hook",
                    "wallets": wallets.iter().map(lower).collect::<Vec<_>>(),
                    "events": ["balance_update"],
                });
                let bearer = env.bearer();
                env.send_json(
                    reqwest::Method::POST,
                    &url,
                    body.to_string(),
                    &[("x-forwarded-for", &source), ("authorization", &bearer)],
                )
                .await
            }
        };
        let source = || format!("198.51.100.{}", rand::random_range(1..250u8));
        // Within one counting window.
        while live_balances::runtime::clock::unix_now() % 60 > 45 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (a, b) = (fresh_owner(), fresh_owner());
        let client = source();
        let mut statuses = vec![];
        for _ in 0..3 {
            statuses.push(create(client.clone(), vec![fresh_owner()]).await?);
        }
        assert_eq!(
            statuses.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [201, 201, 429],
            "the third creation from {client}: {statuses:?}"
        );
        assert_eq!(statuses[2].1["code"], "rate_limited");

        // Two subscriptions cover `a` (from two sources); a third naming it is refused, and
        // names it, with `b` beside it left uncovered.
        for wallets in [vec![a], vec![a]] {
            let (status, reply) = create(source(), wallets).await?;
            assert_eq!(status, 201, "{reply}");
        }
        let (status, reply) = create(source(), vec![b, a]).await?;
        assert_eq!(
            (status, reply["code"].as_str()),
            (409, Some("too_many_webhooks_for_wallet")),
            "{reply}"
        );
        let message = reply["message"].as_str().unwrap_or_default();
        assert!(message.contains(&lower(&a)), "{reply}");
        let table = env.stack.table().await;
        assert_eq!(table.webhooks_of_wallet(chain, &a).await?.len(), 2);
        assert!(
            table.webhooks_of_wallet(chain, &b).await?.is_empty(),
            "nothing stored"
        );
        anyhow::Ok(())
    }
    .await;
    env.stack.stop_service(&name)?;
    outcome
}

/// The book's Node.js receiver (docs/src/api/webhooks.md: the client's `DeliveryVerifier`, so
/// the `standardwebhooks` library), run as printed there: it accepts the service's real deliveries (and logs them),
/// accepts a request signed by the documented scheme, and refuses a tampered body and a stale
/// timestamp.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_node_receiver_verifies_real_deliveries() -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let env = Environment::get();
    let page = std::fs::read_to_string(
        local_stack::tools::Tools::locate()?
            .root
            .join("docs/src/api/webhooks.md"),
    )?;
    let example = page
        .split("```js\n")
        .skip(1)
        .filter_map(|block| block.split("\n```").next())
        .find(|block| block.contains("DeliveryVerifier") && block.contains("createServer"))
        .context("the Node receiver of docs/src/api/webhooks.md")?;
    // Run where Node resolves `@live-balances/client` as an app would: inside the clients'
    // workspace (its node_modules, git-ignored), against the client's build.
    let clients = local_stack::tools::Tools::locate()?.root.join("clients");
    anyhow::ensure!(
        clients.join("ts/dist/backend.js").exists(),
        "the client is not built: run `make client` (make test does)"
    );
    let script = clients
        .join("node_modules/.cache")
        .join(format!("documented-receiver-{}.mjs", rand::random::<u32>()));
    std::fs::create_dir_all(script.parent().context("cache folder")?)?;
    std::fs::write(&script, example)?;
    let port = local_stack::process::free_port()?;
    let sub = subscribe(env, &format!("http://127.0.0.1:{port}/hook")).await?;
    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .env("WEBHOOK_SECRET", &sub.secret)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("node (installed by make install) on PATH")?;
    let mut lines = BufReader::new(node.stdout.take().context("node's stdout")?).lines();
    let base = format!("http://127.0.0.1:{port}/hook");
    local_stack::stack::wait_for("the documented receiver listening", DEADLINE, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        Ok(())
    })
    .await?;

    // Signed by hand, the way the webhooks page states the scheme.
    let post = |body: &'static str, timestamp: u64, signed: &'static str| {
        let base = base.clone();
        let secret = sub.secret.clone();
        async move {
            let ts = timestamp.to_string();
            let signature = e2e::webhook_receiver::sign(&secret, "hand-1", &ts, signed.as_bytes())
                .context("a whsec_ secret")?;
            let status = env
                .http
                .post(&base)
                .header("webhook-id", "hand-1")
                .header("webhook-timestamp", &ts)
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await?
                .status()
                .as_u16();
            anyhow::Ok(status)
        }
    };
    let now = live_balances::runtime::clock::unix_now();
    // A delivery's shape (the receiver reads it into typed fields), of a kind it does not know.
    let good = r#"{"id":"hand-1","type":"hand_signed","subscriptionId":"s","chainId":1,"owner":"0x0000000000000000000000000000000000000001","data":{}}"#;
    assert_eq!(post(good, now, good).await?, 204, "signed as documented");
    let tampered = r#"{"id":"hand-1","type":"hand_tampered","subscriptionId":"s","chainId":1,"owner":"0x0000000000000000000000000000000000000001","data":{}}"#;
    assert_eq!(post(tampered, now, good).await?, 401, "a tampered body");
    assert_eq!(post(good, now - 600, good).await?, 401, "a stale timestamp");

    // A real delivery, signed by the service.
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let owner = lower(&sub.owner);
    let logged = tokio::time::timeout(DEADLINE, async {
        // `console.log(type, owner, data)`: the data object spans the lines up to its `}`.
        let mut logged: Option<String> = None;
        while let Some(line) = lines.next_line().await? {
            match &mut logged {
                None if line.starts_with("balance_update") && line.contains(&owner) => {
                    logged = Some(line);
                }
                None => {}
                Some(text) => {
                    text.push_str(&line);
                    if line.starts_with('}') {
                        return anyhow::Ok(text.clone());
                    }
                }
            }
        }
        anyhow::bail!("node exited")
    })
    .await
    .context("the delivery logged by the documented receiver")??;
    assert!(logged.contains("balance: '100'"), "{logged}");
    let _ = node.kill().await;
    let _ = std::fs::remove_file(&script);
    Ok(())
}

/// One drain of a subscription's parked deliveries at a time: the lease (on DynamoDB Local's
/// conditions) is refused while another holder's runs, taken once it is given back or has run
/// out, and a stale holder cannot give back a newer one's.
#[tokio::test(flavor = "multi_thread")]
async fn one_drain_at_a_time_holds_the_subscriptions_lease() -> anyhow::Result<()> {
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let sub = subscribe(env, &receiver.url).await?;
    let table = env.stack.table().await;
    let now = live_balances::runtime::clock::unix_now();
    use live_balances::storage::Written;
    assert_eq!(
        table.claim_webhook_drain(&sub.id, now, now + 300).await?,
        Written::Yes
    );
    assert_eq!(
        table
            .claim_webhook_drain(&sub.id, now + 1, now + 301)
            .await?,
        Written::Skipped,
        "held by the first"
    );
    assert_eq!(
        table.release_webhook_drain(&sub.id, now + 300).await?,
        Written::Yes
    );
    assert_eq!(
        table
            .claim_webhook_drain(&sub.id, now + 2, now + 302)
            .await?,
        Written::Yes
    );
    // The first holder, late, cannot give back the second's lease; it runs out by itself.
    assert_eq!(
        table.release_webhook_drain(&sub.id, now + 300).await?,
        Written::Skipped
    );
    assert_eq!(
        table
            .claim_webhook_drain(&sub.id, now + 303, now + 603)
            .await?,
        Written::Yes,
        "taken over once run out"
    );
    assert_eq!(
        table
            .claim_webhook_drain("no-such-subscription", now, now + 300)
            .await?,
        Written::Skipped
    );
    // The subscription reads as before, lease or not.
    assert!(table.webhook(&sub.id).await?.is_some());
    Ok(())
}

/// A signing secret rotates without a lost delivery: after `POST …/secret` every delivery
/// carries two signatures (Standard Webhooks allows several) — by the new secret and by the one
/// it replaced — until the overlap ends, so the receiver can switch whenever it likes; after
/// the overlap only the new one signs.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_rotates_with_both_signatures_during_the_overlap() -> anyhow::Result<()> {
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let sub = subscribe(env, &receiver.url).await?;
    receiver.set_secret(&sub.secret);
    let signed_by =
        |r: &Received, secret: &str| verify(secret, &r.id, &r.timestamp, &r.signature, &r.body);
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let accepted = receiver
        .wait_accepted("a delivery before the rotation", DEADLINE, |a| {
            last_balance(a).as_deref() == Some("100")
        })
        .await?;
    assert_eq!(accepted[0].signature.split(' ').count(), 1);

    let url = env.url(&format!("/{}/webhooks/{}/secret", env.chain_id(), sub.id));
    let (status, rotated) = env
        .json_request(|| env.with_key(env.http.post(&url)))
        .await?;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().context("secret")?.to_string();
    assert_ne!(new_secret, sub.secret);
    let until = rotated["previousSecretUntil"].as_u64().context("until")?;
    assert!(
        until > live_balances::runtime::clock::unix_now(),
        "{rotated}"
    );

    // The receiver still holds only the old secret: it verifies every delivery of the overlap.
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let accepted = receiver
        .wait_accepted("a delivery in the overlap", DEADLINE, |a| {
            last_balance(a).as_deref() == Some("200")
        })
        .await?;
    let during = accepted.last().context("delivery")?;
    assert_eq!(
        during.signature.split(' ').count(),
        2,
        "{}",
        during.signature
    );
    assert!(signed_by(during, &sub.secret) && signed_by(during, &new_secret));

    // Past the overlap only the new secret signs; a receiver that switched verifies it.
    receiver.set_secret(&new_secret);
    let until_clock = Instant::now() + DEADLINE;
    while live_balances::runtime::clock::unix_now() <= until {
        anyhow::ensure!(Instant::now() < until_clock, "clock did not pass {until}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sub.actor
        .transfer(sub.token, sub.owner, U256::from(100))
        .await?;
    let accepted = receiver
        .wait_accepted("a delivery after the overlap", DEADLINE, |a| {
            last_balance(a).as_deref() == Some("300")
        })
        .await?;
    let after = accepted.last().context("delivery")?;
    assert_eq!(after.signature.split(' ').count(), 1, "{}", after.signature);
    assert!(signed_by(after, &new_secret) && !signed_by(after, &sub.secret));
    assert_in_order_once(&accepted, &lower(&sub.token));
    Ok(())
}

/// Signing secrets are sealed at rest: the subscription's item (what the table, its stream
/// images and its backups hold) carries neither the secret nor anything `whsec_`.
#[tokio::test(flavor = "multi_thread")]
async fn signing_secrets_are_never_stored_in_the_clear() -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let env = Environment::get();
    let receiver = Receiver::start().await?;
    let sub = subscribe(env, &receiver.url).await?;
    let url = env.url(&format!("/{}/webhooks/{}/secret", env.chain_id(), sub.id));
    let (status, rotated) = env
        .json_request(|| env.with_key(env.http.post(&url)))
        .await?;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().context("secret")?;
    let table = env.stack.table().await;
    let item = table
        .client()
        .get_item()
        .table_name(table.name())
        .key("pk", AttributeValue::S(format!("H#{}", sub.id)))
        .key("sk", AttributeValue::S("SUB".into()))
        .send()
        .await?
        .item
        .context("the subscription item")?;
    let text = format!("{item:?}");
    for secret in [sub.secret.as_str(), new_secret] {
        let key = secret.trim_start_matches("whsec_");
        assert!(!text.contains(key), "a secret in the clear: {text}");
    }
    assert!(!text.contains("whsec_"), "{text}");
    for name in ["secret", "previous_secret"] {
        let stored = item.get(name).and_then(|v| v.as_s().ok()).context(name)?;
        assert!(stored.starts_with("sealed.v1."), "{name}: {stored}");
    }
    Ok(())
}
