//! Load, scaled for CI (`FULL_FAULTS=1` for the issue's sizes where this machine allows):
//! sessions created concurrently, a burst of transfers from several senders across many
//! owners; the table and every connected client end at the chain's values. Reports throughput.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use aws_sdk_dynamodb::types::AttributeValue;
use e2e::follow::{balance_of, full_faults};
use e2e::{Environment, SseClient, fresh_owner};
use futures::{StreamExt, TryStreamExt, stream};
use live_balances::domain::address::lower;
use live_balances::domain::model::BalanceKey;
use live_balances::storage::keys;
use local_stack::devnet::Wallet;

use crate::watched_clients;

struct Sizes {
    sessions: usize,
    owners: usize,
    transfers: usize,
    /// Clients following the burst: one per receiving wallet (500 clients at once:
    /// `sse_clients.rs`).
    clients: usize,
}

const SENDERS: usize = 4;

/// Deletes the sessions so the poller stops watching them: later tests count its requests.
async fn forget_sessions(env: &Environment, owners: &[Address]) -> anyhow::Result<()> {
    let table = env.stack.table().await;
    stream::iter(owners)
        .map(|owner| {
            table
                .client()
                .delete_item()
                .table_name(table.name())
                .key("pk", AttributeValue::S(keys::session_pk(env.chain_id())))
                .key("sk", AttributeValue::S(keys::session_sk(owner)))
                .send()
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn load_sessions_and_transfer_burst_converge() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let sizes = if full_faults() {
        Sizes {
            sessions: 1000,
            owners: 100,
            transfers: 10_000,
            clients: 100,
        }
    } else {
        Sizes {
            sessions: 100,
            owners: 20,
            transfers: 300,
            clients: 20,
        }
    };
    let (_, token) = env.actor_with_token(1).await?;
    let owners: Vec<Address> = (0..sizes.sessions).map(|_| fresh_owner()).collect();
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));

    let started = Instant::now();
    let created: Vec<u16> = stream::iter(&owners[sizes.clients..])
        .map(|owner| {
            let body = body.clone();
            async move {
                let (status, _) = env
                    .post_session(&env.chain_id().to_string(), &lower(owner), &body)
                    .await?;
                anyhow::Ok(status)
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let session_time = started.elapsed();
    assert!(created.iter().all(|s| *s == 200), "every session created");
    let mut clients = watched_clients(env, token, &owners[..sizes.clients]).await?;

    let senders =
        futures::future::try_join_all((0..SENDERS).map(|_| Wallet::fresh(&env.stack.rpc_url)))
            .await?;
    let started = Instant::now();
    let recipients = &owners[..sizes.owners];
    futures::future::try_join_all(senders.iter().enumerate().map(|(s, sender)| async move {
        for i in (s..sizes.transfers).step_by(SENDERS) {
            sender
                .mint(token, recipients[i % recipients.len()], U256::from(1))
                .await?;
        }
        anyhow::Ok(())
    }))
    .await?;
    let burst_time = started.elapsed();

    let started = Instant::now();
    let mut follows = vec![];
    for ((sse, trail), owner) in clients.iter_mut().zip(&owners) {
        let want = balance_of(env, token, *owner).await?.to_string();
        follows.push(async move { trail.follow_to(sse, &want, Duration::from_secs(120)).await });
    }
    futures::future::try_join_all(follows).await?;
    drop(clients);
    let table = env.stack.table().await;
    for owner in recipients {
        let chain = balance_of(env, token, *owner).await?;
        local_stack::stack::wait_for(
            "the table at the chain's value",
            Duration::from_secs(60),
            || async {
                let stored = table
                    .balance(env.chain_id(), owner, &BalanceKey::Balance { token })
                    .await?
                    .and_then(|i| i.read.value());
                anyhow::ensure!(
                    stored == Some(chain),
                    "{} stored {stored:?}, chain {chain}",
                    lower(owner)
                );
                Ok(())
            },
        )
        .await?;
    }
    let converge_time = started.elapsed();
    let total: U256 =
        futures::future::try_join_all(recipients.iter().map(|o| balance_of(env, token, *o)))
            .await?
            .into_iter()
            .sum();
    assert_eq!(
        total,
        U256::from(sizes.transfers),
        "every transfer is on chain"
    );
    eprintln!(
        "load: {} sessions in {session_time:?} ({:.0}/s); {} transfers to {} owners from {SENDERS} \
         senders in {burst_time:?} ({:.0}/s); table and {} clients at the chain's values {converge_time:?} after the burst",
        sizes.sessions,
        (sizes.sessions - sizes.clients) as f64 / session_time.as_secs_f64(),
        sizes.transfers,
        sizes.owners,
        sizes.transfers as f64 / burst_time.as_secs_f64(),
        sizes.clients,
    );
    forget_sessions(env, &owners).await?;
    // An SSE client of a forgotten session is refused: the cleanup took.
    assert!(
        SseClient::connect(env, &lower(&owners[0]), None)
            .await
            .is_err()
    );
    Ok(())
}
