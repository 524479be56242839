//! The chain's session cap: at `MAX_SESSIONS_PER_CHAIN` live sessions (as the poller counts
//! them) a new wallet is refused `503 at_capacity` with nothing stored, while wallets that
//! already have a session can still add to it.

use e2e::{Environment, fresh_owner};
use live_balances::domain::address::lower;

/// Attempts before giving up on holding the cap in place: each attempt that the poller
/// interrupts costs one fresh wallet, and the poller writes only when its count changes.
const ATTEMPTS: usize = 5;

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

    for attempt in 1..=ATTEMPTS {
        // The chain at its cap, as the poller would count it. The poller writes its true
        // count back whenever that count changes (a session loaded or expired, ours or an
        // earlier test's), so an attempt counts only if the cap still held after both posts.
        table.set_live_sessions(chain, u64::from(u32::MAX)).await?;
        let newcomer = fresh_owner();
        let refused = env
            .post_session(&chain.to_string(), &lower(&newcomer), &body)
            .await;
        let added = env.post_session(&chain.to_string(), &existing, &body).await;
        let held = table.live_sessions(chain).await? == u64::from(u32::MAX);
        table.set_live_sessions(chain, 0).await?;
        let (refused, added) = (refused?, added?);
        if !held {
            eprintln!("attempt {attempt}: the poller rewrote the count mid-attempt; again");
            continue;
        }
        let (status, reply) = refused;
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
        let (status, reply) = added;
        assert_eq!(status, 200, "an existing session still grows: {reply}");
        return Ok(());
    }
    anyhow::bail!("the poller rewrote the session count during each of {ATTEMPTS} attempts")
}
