//! Metrics end to end: a request, a change and a delivery move the counters they should — in
//! the functions' Embedded Metric Format lines (their shared log, as CloudWatch Logs would
//! read it) and in the server's and the poller's `/metrics`.
//!
//! The stack is shared with tests running meanwhile, so exact counts are asserted where the
//! labels are this test's alone (a method no other test sends to a route); the pipeline's
//! counters (feed entries, deliveries, session changes) are asserted to have moved by at least
//! what this test caused.

use std::path::Path;
use std::time::Duration;

use alloy::primitives::U256;
use anyhow::Context;
use e2e::webhook_receiver::Receiver;
use e2e::{DEADLINE, Environment, SseClient, Transport, fresh_owner, prometheus_value};
use live_balances::domain::address::lower;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The labels of the request only this test makes: `DELETE /openapi.json`, answered 405.
const PROBE: [(&str, &str); 3] = [
    ("route", "/openapi.json"),
    ("method", "DELETE"),
    ("code", "405"),
];

/// Size of the functions' log now: where this test's EMF lines start.
fn log_end(log: &Path) -> u64 {
    std::fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// The sum of metric `name` over the EMF lines of `log` past `from` whose dimensions include
/// `dims` (EMF counters are the increments since the previous flush).
fn emf_sum(log: &Path, from: u64, name: &str, dims: &[(&str, &str)]) -> anyhow::Result<f64> {
    let bytes = std::fs::read(log).with_context(|| format!("{}", log.display()))?;
    let start = (from as usize).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let mut sum = 0.0;
    for line in text.lines().filter(|l| l.starts_with("{\"_aws\"")) {
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(value) = doc.get(name).and_then(Value::as_f64) else {
            continue;
        };
        let declared = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Namespace"], "LiveBalances", "{line}");
        assert!(
            declared["Metrics"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["Name"] == name)),
            "{name} declared as a metric in {line}"
        );
        if dims.iter().all(|(k, v)| doc[*k] == *v) {
            sum += value;
        }
    }
    Ok(sum)
}

/// Waits until the EMF sum of `name` with `dims` since `from` reaches `at_least`; the sum.
async fn wait_emf(
    log: &Path,
    from: u64,
    name: &str,
    dims: &[(&str, &str)],
    at_least: f64,
) -> anyhow::Result<f64> {
    let until = Instant::now() + DEADLINE;
    loop {
        let sum = emf_sum(log, from, name, dims)?;
        if sum >= at_least {
            return Ok(sum);
        }
        anyhow::ensure!(
            Instant::now() < until,
            "{name} {dims:?}: {sum} in the functions' EMF lines, expected {at_least} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Prometheus text at `base`'s `/metrics`, once it answers (the poller may be starting).
async fn scrape(env: &Environment, base: &str) -> anyhow::Result<String> {
    let until = Instant::now() + DEADLINE;
    loop {
        match env.http.get(format!("{base}/metrics")).send().await {
            Ok(response) => {
                anyhow::ensure!(
                    response.status() == 200,
                    "{base}/metrics: {}",
                    response.status()
                );
                return Ok(response.text().await?);
            }
            Err(error) if Instant::now() < until && error.is_connect() => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_a_change_and_a_delivery_show_in_the_metrics() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id().to_string();
    let log = env.stack.log_of("functions");
    let from = log_end(&log);
    let server_before = scrape(env, &env.stack.endpoints.server).await?;
    let poller_before = scrape(env, &env.stack.endpoints.poller).await?;
    let session_changes = [("chain", chain.as_str()), ("kind", "session")];

    // A request on each transport, counted by route, method and code.
    for base in [&env.stack.endpoints.api, &env.stack.endpoints.server] {
        let answer = env
            .http
            .delete(format!("{base}/openapi.json"))
            .send()
            .await?;
        assert_eq!(answer.status(), 405, "{base}");
    }
    let server_after = scrape(env, &env.stack.endpoints.server).await?;
    assert_eq!(
        prometheus_value(&server_after, "api_requests_total", &PROBE)?
            - prometheus_value(&server_before, "api_requests_total", &PROBE)?,
        1.0,
        "the server counted the request once"
    );
    let counted = wait_emf(&log, from, "api_requests_total", &PROBE, 1.0).await?;
    assert_eq!(counted, 1.0, "the function counted the request once");

    // A change: a watched wallet receives tokens; its subscription gets the delivery.
    let receiver = Receiver::start().await?;
    let owner = fresh_owner();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    env.watch(
        &lower(&owner),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token)),
    )
    .await?;
    let body = json!({
        "url": receiver.url,
        "wallets": [lower(&owner)],
        "tokens": [lower(&token)],
        "events": ["balance_update"],
    });
    let url = format!("{}/{}/webhooks", env.stack.endpoints.api, env.chain_id());
    let (status, created) = env
        .send_backend(reqwest::Method::POST, &url, body.to_string())
        .await?;
    anyhow::ensure!(status == 201, "create: {status} {created}");
    receiver.set_secret(created["secret"].as_str().context("secret")?);
    // A stream open on the server shows in its gauge while it runs.
    let stream = SseClient::connect_via(env, Transport::Server, &lower(&owner), None).await?;
    let open = prometheus_value(
        &scrape(env, &env.stack.endpoints.server).await?,
        "api_streams_open",
        &[],
    )?;
    assert!(open >= 1.0, "streams open on the server: {open}");
    drop(stream);
    actor.transfer(token, owner, U256::from(100)).await?;
    receiver
        .wait_accepted("the transfer delivered", DEADLINE, |a| !a.is_empty())
        .await?;

    let on_chain = [("chain", chain.as_str())];
    wait_emf(&log, from, "api_sessions_written_total", &on_chain, 1.0).await?;
    wait_emf(
        &log,
        from,
        "fanout_feed_entries_written_total",
        &on_chain,
        1.0,
    )
    .await?;
    wait_emf(&log, from, "fanout_records_total", &[], 1.0).await?;
    let sent = [("chain", chain.as_str()), ("kind", "sent")];
    wait_emf(&log, from, "webhooks_deliveries_total", &sent, 1.0).await?;
    wait_emf(&log, from, "webhooks_batch_duration_seconds", &[], 0.0).await?;

    // The poller applied the new session, and reports its lag on the chain.
    let until = Instant::now() + DEADLINE;
    loop {
        let poller_after = scrape(env, &env.stack.endpoints.poller).await?;
        let moved = prometheus_value(
            &poller_after,
            "poller_session_changes_total",
            &session_changes,
        )? - prometheus_value(
            &poller_before,
            "poller_session_changes_total",
            &session_changes,
        )?;
        if moved >= 1.0 {
            let lag = prometheus_value(&poller_after, "poller_blocks_behind", &on_chain)?;
            assert!(
                poller_after.contains(&format!("poller_blocks_behind{{chain=\"{chain}\"}} ")),
                "{poller_after}"
            );
            assert!(lag < 1000.0, "lag {lag}");
            let watched = prometheus_value(&poller_after, "poller_watched_wallets", &on_chain)?;
            assert!(watched >= 1.0, "watched wallets {watched}");
            break;
        }
        anyhow::ensure!(
            Instant::now() < until,
            "the poller's session changes did not move within {DEADLINE:?}: {poller_after}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
