//! Limits on session writes: one wallet's writes a minute, counted in the table (so every
//! container shares the count); answered `429 rate_limited` with nothing stored.

use std::time::Duration;

use e2e::{Environment, fresh_owner};
use live_balances::domain::address::lower;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::keys::RateWindow;

/// The test stack's `SESSION_WRITES_PER_OWNER_PER_MINUTE`.
const PER_OWNER: u64 = e2e::SESSION_WRITES_PER_OWNER;

/// Waits (at most 20 s) until the current minute has room for `seconds` more, so a test's
/// requests fall in one counting window.
async fn start_of_a_window(seconds: u64) {
    while unix_now() % 60 > 60 - seconds {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_writes_for_one_wallet_are_rate_limited() -> anyhow::Result<()> {
    let env = Environment::get();
    let (_, token) = env.actor_with_token(1).await?;
    let owner = lower(&fresh_owner());
    let body = format!(r#"{{"customTokens":["{token}"]}}"#);
    start_of_a_window(20).await;
    // Until the first refusal. A request the harness re-sent after a dropped response (see
    // the emulator quirks) counts twice on the server, so a refusal may come slightly early.
    let mut accepted = 0;
    let refusal = loop {
        let (status, reply) = env
            .post_session(&env.chain_id().to_string(), &owner, &body)
            .await?;
        match status {
            200 => accepted += 1,
            _ => break (status, reply),
        }
        assert!(
            accepted <= PER_OWNER,
            "{accepted} writes accepted, limit {PER_OWNER}"
        );
    };
    assert_eq!(refusal.0, 429, "{}", refusal.1);
    assert_eq!(refusal.1["code"], "rate_limited");
    assert!(
        accepted + 2 >= PER_OWNER,
        "refused after only {accepted} writes"
    );
    // Another wallet is not affected.
    let (status, reply) = env
        .post_session(&env.chain_id().to_string(), &lower(&fresh_owner()), &body)
        .await?;
    assert_eq!(status, 200, "{reply}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_windows_are_counted_in_the_table() -> anyhow::Result<()> {
    let env = Environment::get();
    let table = env.stack.table().await;
    let (owner, other_owner) = (fresh_owner(), fresh_owner());
    let key = RateWindow::SessionOwner(env.chain_id(), &owner);
    let window = unix_now() / 60 * 60;
    for _ in 0..3 {
        assert!(table.take_from_window(key, window, 60, 3).await?);
    }
    assert!(!table.take_from_window(key, window, 60, 3).await?, "full");
    assert!(
        table.take_from_window(key, window + 60, 60, 3).await?,
        "next window"
    );
    let other = RateWindow::SessionOwner(env.chain_id(), &other_owner);
    assert!(
        table.take_from_window(other, window, 60, 3).await?,
        "other key"
    );
    Ok(())
}
