//! The chain's session cap: at `MAX_SESSIONS_PER_CHAIN` live sessions (as the poller counts
//! them) a new wallet is refused `503 at_capacity` with nothing stored, while wallets that
//! already have a session can still add to it.

use e2e::{Environment, fresh_owner};
use live_balances::address::lower;

#[tokio::test(flavor = "multi_thread")]
async fn new_sessions_are_refused_at_the_chain_cap() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let chain = env.chain_id();
    let table = env.stack.table().await;
    let (_, token) = env.actor_with_token(1).await?;
    let body = format!(r#"{{"customTokens":["{token}"]}}"#);
    let existing = lower(&fresh_owner());
    env.watch(&existing, &body).await?;

    // The chain at its cap, as the poller would count it. (The poller writes the true count
    // back when the count next changes.)
    table.set_live_sessions(chain, u64::from(u32::MAX)).await?;
    let newcomer = fresh_owner();
    let refused = env
        .post_session(&chain.to_string(), &lower(&newcomer), &body)
        .await;
    let added = env.post_session(&chain.to_string(), &existing, &body).await;
    table.set_live_sessions(chain, 0).await?;
    let (status, reply) = refused?;
    assert_eq!(
        (status, reply["code"].as_str()),
        (503, Some("at_capacity")),
        "{reply}"
    );
    assert_eq!(
        table.session(chain, &newcomer).await?,
        None,
        "nothing stored"
    );
    let (status, reply) = added?;
    assert_eq!(status, 200, "an existing session still grows: {reply}");
    Ok(())
}
