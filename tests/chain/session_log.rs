//! The poller's view of sessions at the cost of what changed: a stream opening reaches it
//! within a block (a poller without traces then reads the wallet's native balance every
//! block), a session whose log entry was lost is found by the background pass, and the slow
//! sweep's default pace catches a silent change on a token never seen changing within 90 s at
//! 100 wallets. Each on a poller of its own that alone watches the chain.

use std::time::Duration;

use alloy::primitives::U256;
use e2e::table_rows::{put_first_read, put_session_without_log};
use e2e::{Environment, SseClient, Transport, fresh_owner};
use live_balances::NATIVE_TOKEN;
use live_balances::domain::address::lower;
use live_balances::domain::model::{BalanceKey, Session};
use local_stack::devnet::Wallet;
use serde_json::json;
use tokio::time::Instant;

use crate::test_poller::TestPoller;

const ETH: u64 = 1_000_000_000_000_000_000;

/// Waits until the poller has applied at least `at_least` changes of `kind`.
async fn applied(
    env: &Environment,
    poller: &TestPoller,
    kind: &str,
    at_least: u64,
    within: Duration,
) -> anyhow::Result<()> {
    local_stack::stack::wait_for(kind, within, || async {
        let n = env.session_changes(poller.url(), kind).await?;
        anyhow::ensure!(
            n >= at_least,
            "{n} {kind} changes applied, waiting for {at_least}"
        );
        Ok(())
    })
    .await
}

/// Waits until the poller has taken every session stored so far: it reads the log before
/// each block it processes, so a block mined now and processed means they are watched.
async fn watching(env: &Environment, poller: &TestPoller) -> anyhow::Result<()> {
    applied(env, poller, "full_listing", 1, e2e::DEADLINE).await?;
    env.mine().await?;
    poller.reached(env.block_number().await?).await
}

/// A wallet the poller already watches opens a stream, on either transport: the vouch
/// reaches the poller within a block, and from then on its native balance is read every
/// block — not at the next `NATIVE_POLL_SECS` (an hour here); a change made before the
/// stream opened is read at the poller's next step, with no block after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_opening_reaches_the_poller_within_a_block() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let poller = TestPoller::start(
        env,
        "poller-vouch",
        &[
            ("NATIVE_BALANCES".into(), "reads".into()),
            ("NATIVE_POLL_SECS".into(), "3600".into()),
        ],
        true,
    )?;
    let actor = Wallet::fresh(&env.stack.rpc_url).await?;
    let (_, token) = env.actor_with_token(1).await?;
    let wallets = [
        (fresh_owner(), Transport::FunctionUrl),
        (fresh_owner(), Transport::Server),
    ];
    let body = json!({"customTokens": [lower(&token)]}).to_string();
    for (owner, _) in &wallets {
        env.watch(&lower(owner), &body).await?;
    }
    watching(env, &poller).await?;
    let vouched = env.session_changes(poller.url(), "streaming").await?;

    let native = lower(&NATIVE_TOKEN);
    for (i, (owner, transport)) in wallets.iter().enumerate() {
        let mut sse = SseClient::connect_via(env, *transport, &lower(owner), None).await?;
        sse.wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        // Within a block: the poller learns of the vouch at its next step.
        applied(
            env,
            &poller,
            "streaming",
            vouched + i as u64 + 1,
            Duration::from_secs(10),
        )
        .await?;
        actor.send_eth(*owner, U256::from(ETH)).await?;
        // Read at the next block, then through the pipeline (pump, fanout, the server's tail):
        // 30 s leaves room for a busy machine and still tells a read at the next block from
        // one at the next `NATIVE_POLL_SECS`.
        tokio::time::timeout(
            Duration::from_secs(30),
            sse.follow_balance(&native, "0", &ETH.to_string()),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("{transport:?}: the ETH transfer did not arrive within 30 s")
        })??;
    }

    // A transfer mined while the wallet had no stream (its native balance read hourly here),
    // and no block after it: the stream opening reads the balance at the poller's next step.
    let late = fresh_owner();
    env.watch(&lower(&late), &body).await?;
    watching(env, &poller).await?;
    actor.send_eth(late, U256::from(ETH)).await?;
    poller.reached(env.block_number().await?).await?;
    let mut sse = SseClient::connect_via(env, Transport::FunctionUrl, &lower(&late), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    let shown = snapshot.data["balances"][&native]
        .as_str()
        .unwrap_or("0")
        .to_string();
    if shown != ETH.to_string() {
        tokio::time::timeout(
            Duration::from_secs(30),
            sse.follow_balance(&native, &shown, &ETH.to_string()),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("a transfer mined before the stream opened did not arrive within 30 s")
        })??;
    }
    drop(poller);
    Ok(())
}

/// A session (and its value) stored with no log entry — written by something that bypassed
/// the storage module — and no stream to name it: the poller's background pass finds it
/// within one pass, and a transfer made before that reaches the table.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_whose_log_entry_was_lost_is_found_by_the_background_pass() -> anyhow::Result<()>
{
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    const PASS_SECS: u64 = 6;
    let poller = TestPoller::start(
        env,
        "poller-pass",
        &[("SESSION_PASS_SECS".into(), PASS_SECS.to_string())],
        true,
    )?;
    let chain = env.chain_id();
    let (actor, token) = env.actor_with_token(1_000).await?;
    let owner = fresh_owner();
    actor.transfer(token, owner, U256::from(500)).await?;
    // The poller has listed the sessions at its start: this one comes after.
    watching(env, &poller).await?;
    let block = env.block_number().await?;
    let now = live_balances::runtime::clock::unix_now();
    let table = env.stack.table().await;
    put_session_without_log(&table, chain, owner, token, block, now).await?;
    let key = BalanceKey::Balance { token };
    put_first_read(&table, chain, owner, key, U256::from(500), block, now).await?;
    let found_before = env.session_changes(poller.url(), "found_by_pass").await?;
    let started = Instant::now();
    actor.transfer(token, owner, U256::from(250)).await?;
    local_stack::stack::wait_for(
        "the transfer in the table",
        Duration::from_secs(3 * PASS_SECS + 10),
        || async {
            let stored = table
                .balance(chain, &owner, &BalanceKey::Balance { token })
                .await?
                .and_then(|i| i.read.value());
            anyhow::ensure!(stored == Some(U256::from(750)), "stored {stored:?}");
            Ok(())
        },
    )
    .await?;
    // Counted as lost once the log has not named it for a whole look-back.
    applied(
        env,
        &poller,
        "found_by_pass",
        found_before + 1,
        e2e::DEADLINE,
    )
    .await?;
    eprintln!(
        "a session without its log entry watched {:?} after the transfer",
        started.elapsed()
    );
    drop(poller);
    Ok(())
}

/// At the default sweep settings, on a chain that makes blocks only for transactions: 100
/// wallets holding values, one of them a token that has never been seen changing silently —
/// which then rebases with no event and no block after it. The slow sweep (every held value
/// at least once a minute at this size) finds it within 90 s.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_change_on_a_never_seen_token_is_caught_within_90_s_by_default()
-> anyhow::Result<()> {
    const WALLETS: usize = 100;
    const WITHIN: Duration = Duration::from_secs(90);
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let chain = env.chain_id();
    // The stack's short sweep settings unset: the defaults rule this poller.
    let poller = TestPoller::start(
        env,
        "poller-default-sweep",
        &[
            ("SNAPSHOT_INTERVAL".into(), String::new()),
            ("SWEEP_ALL_INTERVAL".into(), String::new()),
        ],
        true,
    )?;
    let (actor, rebasing, _owner, mut sse) = env.watched_rebasing(1000).await?;
    // 99 other wallets, each holding ETH (set on chain without a block, and stored as the
    // api stores a session's values).
    let table = env.stack.table().await;
    let now = live_balances::runtime::clock::unix_now();
    let block = env.block_number().await?;
    for i in 0..WALLETS - 1 {
        let other = fresh_owner();
        let amount = U256::from(ETH + i as u64);
        env.rpc(
            "anvil_setBalance",
            json!([lower(&other), format!("0x{amount:x}")]),
        )
        .await?;
        let session = Session {
            asked: live_balances::domain::model::SessionAsks {
                custom_tokens: [rebasing].into(),
                ..Default::default()
            },
            revision: 1,
            read_block: block,
            expires_at: now + 3_600,
            ..Session::new(chain, other, now)
        };
        anyhow::ensure!(
            table.write_session(&session, 0, true).await?,
            "session stored"
        );
        let native = BalanceKey::Balance {
            token: NATIVE_TOKEN,
        };
        put_first_read(&table, chain, other, native, amount, block, now).await?;
        table.complete_session(chain, &other, 1).await?;
    }
    watching(env, &poller).await?;

    // No event at all: every balance doubles, in the last block for a while.
    actor.rebase(rebasing, U256::from(2 * ETH)).await?;
    let rebased_in = env.block_number().await?;
    let started = Instant::now();
    let token = lower(&rebasing);
    loop {
        // Not `follow_balance`: its deadline is the suite's 45 s, this one's is 90 s.
        let event = sse
            .next(started + WITHIN)
            .await
            .map_err(|e| anyhow::anyhow!("the rebase was not caught within {WITHIN:?}: {e}"))?;
        if event.event == "balance_update" && event.data["address"] == token.as_str() {
            assert_eq!(event.data["previousBalance"], "1000", "{}", event.data);
            assert_eq!(event.data["balance"], "2000", "{}", event.data);
            break;
        }
    }
    eprintln!(
        "a silent change on a never-seen token at {WALLETS} wallets caught {:?} after it",
        started.elapsed()
    );
    assert_eq!(
        env.block_number().await?,
        rebased_in,
        "no block after the rebase's"
    );
    drop(poller);
    Ok(())
}
