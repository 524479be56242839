//! A chain that makes blocks only for transactions (anvil here; many L2s and devnets): a silent
//! change — a rebase, balances moving with no event — is found by the poller's sweep on time
//! with no block after it. Alone on the stack (`EXCLUSIVE`): any other test's transaction
//! would make the block this test must not have.

use alloy::primitives::U256;
use e2e::Environment;
use live_balances::domain::address::lower;

const ETH: u64 = 1_000_000_000_000_000_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_change_is_swept_while_no_block_arrives() -> anyhow::Result<()> {
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    let (actor, rebasing, owner, mut sse) = env.watched_rebasing(1000).await?;
    // A change with its event first: the poller has read the new wallet's values (a first
    // read would otherwise find the rebase too) and is now driven by events.
    actor.mint_rebasing(rebasing, owner, U256::from(1)).await?;
    sse.follow_balance(&lower(&rebasing), "1000", "1001")
        .await?;

    // No event at all: every balance doubles, in the last block for a while.
    let poller = &env.stack.endpoints.poller;
    let before = env.poller_requests(poller).await?;
    actor.rebase(rebasing, U256::from(2 * ETH)).await?;
    let rebased_in = env.block_number().await?;
    sse.follow_balance(&lower(&rebasing), "1001", "2002")
        .await?;
    assert_eq!(
        env.block_number().await?,
        rebased_in,
        "found with no block after the rebase's"
    );
    let since = env.poller_requests(poller).await?.since(&before);
    assert!(
        since.idle_steps > 0,
        "the sweep that found it ran in an idle step, and was counted as one"
    );
    Ok(())
}
