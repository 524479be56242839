//! DynamoDB refusing the functions' writes — the fanout's feed appends, the api's session
//! writes, the streams' keep-alives — in runs longer than the SDK's own retries, through the
//! proxy the test stack keeps between the functions and DynamoDB: connected clients still get
//! every change in order, nothing is parked, a session request either succeeds or answers 503
//! with a JSON error, and whatever a refused request stored is complete once DynamoDB is back.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use e2e::follow::balance_of;
use e2e::{Environment, fresh_owner};
use live_balances::BalanceKey;
use live_balances::domain::address::lower;

use crate::watched_clients;

const OWNERS: usize = 5;
const TRANSFERS: usize = 30;
const NEW_SESSIONS: usize = 12;

fn dead_letters(env: &Environment) -> usize {
    let file = env.stack.options.log_dir.join("pump-dead-letter.jsonl");
    std::fs::read_to_string(file)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_errors_in_the_functions_lose_nothing() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let faults = env.function_faults()?;
    let chain = env.chain_id().to_string();
    let (actor, token) = env.actor_with_token(1_000_000_000).await?;
    let owners: Vec<Address> = (0..OWNERS).map(|_| fresh_owner()).collect();
    let mut clients = watched_clients(env, token, &owners).await?;
    // Wallets asking for a session during the faults already hold some of the token, so a
    // stored session is only complete with that value.
    let newcomers: Vec<Address> = (0..NEW_SESSIONS).map(|_| fresh_owner()).collect();
    for (i, newcomer) in newcomers.iter().enumerate() {
        actor.transfer(token, *newcomer, U256::from(7 + i)).await?;
    }
    let parked_before = dead_letters(env);

    // Of every 10 writes the first 4 fail: a run of 4 outlasts the SDK's 3 attempts.
    let faults_on = faults.inject(10, 4);
    let started = Instant::now();
    let body = format!(r#"{{"customTokens":["{}"]}}"#, lower(&token));
    let requests = async {
        let mut answers = vec![];
        for newcomer in &newcomers {
            answers.push(env.post_session(&chain, &lower(newcomer), &body).await?);
        }
        anyhow::Ok(answers)
    };
    let transfers = async {
        for i in 0..TRANSFERS {
            actor
                .transfer(token, owners[i % OWNERS], U256::from(i + 1))
                .await?;
        }
        anyhow::Ok(())
    };
    let (answers, ()) = tokio::try_join!(requests, transfers)?;
    let mut follows = vec![];
    for ((sse, trail), owner) in clients.iter_mut().zip(&owners) {
        let want = balance_of(env, token, *owner).await?.to_string();
        follows.push(async move { trail.follow_to(sse, &want, Duration::from_secs(90)).await });
    }
    futures::future::try_join_all(follows).await?;
    let converged = started.elapsed();
    let (injected, writes) = (faults.injected(), faults.writes());
    drop(faults_on);
    assert!(
        injected >= 4,
        "the functions' writes went through the proxy"
    );
    let reconnects: u32 = clients.iter().map(|(sse, _)| sse.reconnects).sum();

    // One more change after the faults (also a block, which the poller needs to pick up the
    // newcomers' sessions: this devnet mines only on transactions). Once a client sees it,
    // the pump has delivered or parked every record before it, the newcomers' included.
    let (sse, trail) = &mut clients[0];
    actor.transfer(token, owners[0], U256::from(1)).await?;
    let want = balance_of(env, token, owners[0]).await?.to_string();
    trail.follow_to(sse, &want, Duration::from_secs(60)).await?;
    assert_eq!(
        dead_letters(env),
        parked_before,
        "no stream record was parked: the fanout retried its appends"
    );

    let table = env.stack.table().await;
    let mut refused = 0;
    for (newcomer, (status, reply)) in newcomers.iter().zip(&answers) {
        match status {
            200 => {}
            503 => {
                refused += 1;
                assert!(
                    reply["code"].is_string() && reply["message"].is_string(),
                    "a refusal is a JSON error: {reply}"
                );
            }
            other => anyhow::bail!("session request answered {other}: {reply}"),
        }
        // A stored session is complete — its value written by the api or, when the request
        // failed after storing the session, by the poller; a refused one may store nothing.
        let want = balance_of(env, token, *newcomer).await?;
        local_stack::stack::wait_for(
            "a stored session's value",
            Duration::from_secs(30),
            || async {
                let session = table.session(env.chain_id(), newcomer).await?;
                let stored = table
                    .balance(env.chain_id(), newcomer, &BalanceKey::Balance { token })
                    .await?
                    .and_then(|i| i.read.value());
                match session {
                    Some(_) => anyhow::ensure!(
                        stored == Some(want),
                        "{} stored {stored:?}, chain {want}",
                        lower(newcomer)
                    ),
                    None => anyhow::ensure!(*status != 200, "a 200 stored no session"),
                }
                Ok(())
            },
        )
        .await?;
    }
    eprintln!(
        "function-side DynamoDB faults: {injected} of {writes} writes refused; {refused} of \
         {NEW_SESSIONS} session requests answered 503; {reconnects} stream reconnects; clients \
         converged {converged:?} after the faults began"
    );
    crate::assert_clients_and_table_match_chain(env, token, &clients, &owners).await
}
