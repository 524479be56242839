//! DynamoDB refusing the poller's writes — throttled and failing, in runs longer than the
//! SDK's own retries — behind an error-injecting proxy: every write is retried until it lands,
//! and clients still see every change.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use e2e::dynamodb_faults::FaultyDynamoDb;
use e2e::follow::balance_of;
use e2e::{Environment, fresh_owner};

use crate::test_poller::TestPoller;
use crate::watched_clients;

const OWNERS: usize = 5;
const TRANSFERS: usize = 30;

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_write_errors_are_retried() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    // Of every 10 writes the first 4 fail: a run of 4 outlasts the SDK's 3 attempts.
    let proxy = FaultyDynamoDb::start(&env.stack.endpoints.dynamodb, 10, 4).await?;
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..OWNERS).map(|_| fresh_owner()).collect();
    // Sessions and streams go to DynamoDB directly; only the poller's writes are disturbed.
    let mut clients = watched_clients(env, token, &owners).await?;
    let poller = TestPoller::start(
        env,
        "poller-faulty-db",
        &[("DYNAMODB_ENDPOINT".to_string(), proxy.url.clone())],
        true,
    )?;

    let mut last_block = 0;
    for i in 0..TRANSFERS {
        let receipt = actor
            .transfer(token, owners[i % OWNERS], U256::from(i + 1))
            .await?;
        last_block = receipt.block_number.unwrap_or_default();
    }
    let started = std::time::Instant::now();
    let mut follows = vec![];
    for ((sse, trail), owner) in clients.iter_mut().zip(&owners) {
        let want = balance_of(env, token, *owner).await?.to_string();
        follows.push(async move { trail.follow_to(sse, &want, Duration::from_secs(90)).await });
    }
    futures::future::try_join_all(follows).await?;
    poller.reached(last_block).await?;
    let log = std::fs::read_to_string(env.stack.log_of("poller-faulty-db"))?;
    let failed_steps = log.matches("step failed").count();
    eprintln!(
        "DynamoDB faults: {} of {} writes refused, {failed_steps} poller steps failed and were \
         retried; clients converged {:?} after the burst",
        proxy.injected(),
        proxy.writes(),
        started.elapsed()
    );
    assert!(
        proxy.injected() >= 4,
        "the poller's writes went through the proxy"
    );

    crate::assert_clients_and_table_match_chain(env, token, &clients, &owners).await
}
