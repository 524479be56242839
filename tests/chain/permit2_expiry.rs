//! A Permit2 allowance lapses with no event when its expiration passes: the poller re-reads it
//! at the first block past the expiration (scheduled, not swept — this test's poller sweeps
//! once an hour), and the stream, a webhook and an order naming the Permit2 spender all show
//! it — after a restart of the poller between the approval and the expiry, so what it knows
//! of the expiration comes from the table. Alone on the stack: the test moves the chain's
//! clock. On the way, the poller's RPC requests per block with and without a Permit2 spender
//! are counted and printed.

use alloy::primitives::aliases::U160;
use alloy::primitives::{Address, U256};
use anyhow::Context;
use e2e::permit2::{approve, approve_token, chain_time, install_permit2};
use e2e::webhook_receiver::Receiver;
use e2e::{DEADLINE, Environment, Event, PollerRequests, SseClient, fresh_owner};
use live_balances::domain::address::lower;
use local_stack::devnet::Wallet;
use serde_json::{Value, json};

use crate::test_poller::TestPoller;

/// Permit2's amount for the spender, and the order's (smaller) sell amount.
const PERMIT2_AMOUNT: u64 = 200;
const ORDER_AMOUNT: u64 = 100;
/// How far ahead of the chain's clock the allowance expires: far enough that a slow machine
/// never sees it lapse before the test moves the clock.
const EXPIRES_IN: u64 = 300;
/// Blocks counted per case when measuring the poller's requests.
const BLOCKS: u64 = 6;
/// The test's poller, as the stack names its process.
const POLLER: &str = "poller-permit2";

/// Settings of the test's poller: sweeps an hour apart, so only the schedule can find the
/// expiry within the test's deadline.
fn poller_settings() -> Vec<(String, String)> {
    vec![
        ("SWEEP_ALL_INTERVAL".into(), "3600".into()),
        ("SNAPSHOT_INTERVAL".into(), "3600".into()),
    ]
}

/// Waits until the poller at `url` has processed `block`.
async fn reached(env: &Environment, url: &str, block: u64) -> anyhow::Result<()> {
    local_stack::stack::wait_for(POLLER, DEADLINE, || async {
        let health: Value = env
            .http
            .get(format!("{url}/health"))
            .send()
            .await?
            .json()
            .await?;
        let at = health["chains"][0]["processedBlock"]
            .as_u64()
            .unwrap_or_default();
        anyhow::ensure!(at >= block, "at {at}, waiting for {block}");
        Ok(())
    })
    .await
}

/// A string or number field as text (amounts are strings, times numbers).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether `data` is the Permit2 allowance of `token` to `spender` with `amount`,
/// `expiration` and `expired`.
fn is_permit2(
    data: &Value,
    token: &str,
    spender: &str,
    amount: u64,
    expiration: u64,
    expired: bool,
) -> bool {
    text(&data["address"]) == token
        && text(&data["spender"]) == spender
        && text(&data["amount"]) == amount.to_string()
        && text(&data["expiration"]) == expiration.to_string()
        && data["expired"] == expired
}

async fn permit2_update(
    sse: &mut SseClient,
    token: &str,
    spender: &str,
    expiration: u64,
    expired: bool,
) -> anyhow::Result<Event> {
    sse.wait_for(
        &format!("permit2_allowance_update expired={expired}"),
        |e| {
            e.event == "permit2_allowance_update"
                && is_permit2(&e.data, token, spender, PERMIT2_AMOUNT, expiration, expired)
        },
    )
    .await
}

/// The poller's requests over `BLOCKS` blocks in each of which `owner` sends `token` away
/// (its balance and every allowance of the token are re-read).
async fn requests_over_sends(
    env: &Environment,
    poller: &TestPoller,
    owner: &Wallet,
    token: Address,
) -> anyhow::Result<PollerRequests> {
    let before = env.poller_requests(poller.url()).await?;
    for _ in 0..BLOCKS {
        let receipt = owner.transfer(token, fresh_owner(), U256::ONE).await?;
        poller
            .reached(receipt.block_number.unwrap_or_default())
            .await?;
    }
    Ok(env.poller_requests(poller.url()).await?.since(&before))
}

async fn post_webhook(env: &Environment, body: &Value) -> anyhow::Result<(String, String)> {
    let url = format!("{}/{}/webhooks", env.stack.endpoints.api, env.chain_id());
    let (status, created) = env
        .send_backend(reqwest::Method::POST, &url, body.to_string())
        .await?;
    anyhow::ensure!(status == 201, "create: {status} {created}");
    Ok((
        text(&created["id"]),
        created["secret"].as_str().context("secret")?.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permit2_allowance_lapses_on_time_in_the_stream_webhook_and_order() -> anyhow::Result<()>
{
    let _exclusive = crate::EXCLUSIVE.lock().await;
    let env = Environment::get();
    install_permit2(&env.stack.rpc_url).await?;
    let poller = TestPoller::start(env, POLLER, &poller_settings(), true)?;
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = Wallet::fresh(&env.stack.rpc_url).await?;
    let plain = Wallet::fresh(&env.stack.rpc_url).await?;
    let spender = fresh_owner();
    let (owner_hex, token_hex, spender_hex) =
        (lower(&owner.address), lower(&token), lower(&spender));
    for wallet in [&owner, &plain] {
        actor
            .transfer(token, wallet.address, U256::from(1_000))
            .await?;
    }
    env.watch(
        &owner_hex,
        &json!({"customTokens": [token_hex], "permit2Spenders": [spender_hex]}).to_string(),
    )
    .await?;
    // The same wallet shape with an ERC-20 spender instead, for the request count.
    env.watch(
        &lower(&plain.address),
        &json!({"customTokens": [token_hex], "spenders": [spender_hex]}).to_string(),
    )
    .await?;
    let receiver = Receiver::start().await?;
    let (_, secret) = post_webhook(
        env,
        &json!({
            "url": receiver.url,
            "wallets": [owner_hex],
            "tokens": [token_hex],
            "events": ["permit2_allowance_update"],
        }),
    )
    .await?;
    receiver.set_secret(&secret);
    let mut sse = SseClient::connect(env, &owner_hex, None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;

    // Both layers: the token's allowance to Permit2, and Permit2's own for the spender.
    approve_token(&owner, token, U256::MAX).await?;
    let expiration = chain_time(&owner).await? + EXPIRES_IN;
    approve(
        &owner,
        token,
        spender,
        U160::from(PERMIT2_AMOUNT),
        expiration,
    )
    .await?;
    let live = permit2_update(&mut sse, &token_hex, &spender_hex, expiration, false).await?;
    assert_eq!(live.data["nonce"], json!(0), "{}", live.data);

    let order_id = format!("0x{}", "2e".repeat(56));
    let url = env.url(&format!(
        "/{}/orders/{owner_hex}/{order_id}",
        env.chain_id()
    ));
    let valid_to = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3_600;
    let (status, order) = env
        .send_backend(
            reqwest::Method::PUT,
            &url,
            json!({
                "sellToken": token_hex,
                "sellAmount": ORDER_AMOUNT.to_string(),
                "spender": spender_hex,
                "approval": "permit2",
                "validTo": valid_to,
            })
            .to_string(),
        )
        .await?;
    anyhow::ensure!(status == 200, "{order}");
    assert_eq!(order["fillable"], true, "{order}");

    // What a Permit2 spender costs the poller: requests per block with it and without.
    let with_erc20 = requests_over_sends(env, &poller, &plain, token).await?;
    let with_permit2 = requests_over_sends(env, &poller, &owner, token).await?;
    eprintln!(
        "poller RPC requests over {BLOCKS} blocks of one send each: ERC-20 spender \
         {with_erc20:?}; Permit2 spender {with_permit2:?}"
    );
    // The same log queries and the same calls: Permit2's allowances go in the block's one
    // Multicall3 batch beside the token reads (an idle step between two blocks may add a
    // call of its own).
    assert_eq!(
        with_erc20.calls("eth_getLogs"),
        with_permit2.calls("eth_getLogs")
    );
    assert!(
        with_permit2.same_calls_as(&with_erc20),
        "{with_permit2:?} against {with_erc20:?}"
    );

    // Restarted: what it knows of the expiration now comes from the table, learned at start.
    env.stack.stop_service(POLLER)?;
    let restarted = env.stack.start_poller_as(POLLER, &poller_settings())?;
    // Past its first step after the start (which catches up on the wallets' recent events,
    // and would read the allowance as it stands): from here only the schedule reads it.
    env.mine().await?;
    reached(env, &restarted, env.block_number().await?).await?;

    // The chain's clock passes the expiration; nothing happens on chain but a block.
    let now = chain_time(&owner).await?;
    env.rpc("evm_increaseTime", json!([expiration - now + 5]))
        .await?;
    env.mine().await?;
    let lapsed_at = chain_time(&owner).await?;
    assert!(lapsed_at > expiration, "{lapsed_at} <= {expiration}");

    // The lapse and the order it crosses, in whichever order the stream carries them.
    let until = tokio::time::Instant::now() + DEADLINE;
    let (mut lapsed, mut unfillable) = (None, None);
    while lapsed.is_none() || unfillable.is_none() {
        let event = sse.next(until).await?;
        if event.event == "permit2_allowance_update"
            && is_permit2(
                &event.data,
                &token_hex,
                &spender_hex,
                PERMIT2_AMOUNT,
                expiration,
                true,
            )
        {
            lapsed = Some(event);
        } else if event.event == "order_status"
            && event.data["orderId"] == order_id
            && event.data["fillable"] == false
        {
            unfillable = Some(event);
        }
    }
    let (lapsed, unfillable) = (lapsed.context("lapse")?, unfillable.context("order")?);
    let previous = &lapsed.data["previous"];
    assert_eq!(previous["expired"], false, "{}", lapsed.data);
    assert_eq!(text(&previous["amount"]), PERMIT2_AMOUNT.to_string());
    assert_eq!(unfillable.data["short"], "allowance", "{}", unfillable.data);
    receiver
        .wait_accepted("the lapse delivered", DEADLINE, |accepted| {
            accepted.iter().any(|r| {
                let body = r.json();
                body["type"] == "permit2_allowance_update"
                    && is_permit2(
                        &body["data"],
                        &token_hex,
                        &spender_hex,
                        PERMIT2_AMOUNT,
                        expiration,
                        true,
                    )
            })
        })
        .await?;
    drop(poller);
    Ok(())
}
