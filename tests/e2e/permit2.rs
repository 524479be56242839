//! The real Permit2 on the test stack's anvil: installed at its canonical address by its
//! verified creation code, it takes an owner's approval, a permit the owner signed and someone
//! else submitted, a router's spend and a lockdown, and its allowance reads back each.

use alloy::primitives::U256;
use alloy::primitives::aliases::U160;
use anyhow::Context;
use e2e::permit2::{
    IPermit2, PERMIT2, Permit2Allowance, allowance, approve, approve_token, chain_time,
    deploy_router, domain, domain_separator, install_permit2, invalidate_nonces, lockdown, permit,
    sign_permit, spend,
};
use e2e::webhook_receiver::{Received, Receiver};
use e2e::{DEADLINE, Environment, Event, SseClient, fresh_owner};
use live_balances::domain::address::lower;
use local_stack::contracts::TestToken;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_real_permit2_takes_approvals_signed_permits_router_spends_and_lockdowns()
-> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let rpc_url = env.rpc_url_of(chain)?;
    install_permit2(rpc_url).await?;
    // Idempotent: a second install finds it there.
    install_permit2(rpc_url).await?;

    let (owner, token) = env.actor_with_token(1_000).await?;
    let relayer = env.fresh_wallet_on(chain).await?;
    let receiver = fresh_owner();
    // Deployed, not copied: the separator Permit2 caches at construction names the canonical
    // address, so permits signed for it verify.
    assert_eq!(domain_separator(&owner).await?, domain(chain).hash_struct());

    approve_token(&owner, token, U256::MAX).await?;
    let erc20 = TestToken::new(token, &owner.provider);
    assert_eq!(
        erc20.allowance(owner.address, PERMIT2).call().await?,
        U256::MAX
    );

    let router = deploy_router(&relayer).await?;
    let now = chain_time(&owner).await?;
    approve(&owner, token, router, U160::from(300), now + 3_600).await?;
    assert_eq!(
        allowance(&owner, owner.address, token, router).await?,
        Permit2Allowance {
            amount: U160::from(300),
            expiration: now + 3_600,
            nonce: 0,
        },
        "Permit2.approve sets amount and expiration and leaves the nonce"
    );

    // A permit signed by anyone but the owner is refused. Submitted by a wallet of its own:
    // alloy's cached nonce manager may reserve a nonce for a call whose estimate reverts, and
    // the wallet's next transaction would then wait behind the gap.
    let forger = env.fresh_wallet_on(chain).await?;
    let forged = IPermit2::PermitSingle {
        details: IPermit2::PermitDetails {
            token,
            amount: U160::from(1_000),
            expiration: alloy::primitives::aliases::U48::from(now + 7_200),
            nonce: alloy::primitives::aliases::U48::ZERO,
        },
        spender: router,
        sigDeadline: U256::from(now + 600),
    };
    let signature = sign_permit(&forger, chain, &forged)?;
    let call = IPermit2::permitCall {
        owner: owner.address,
        permitSingle: forged,
        signature: signature.into(),
    };
    assert!(
        forger
            .call(PERMIT2, alloy::sol_types::SolCall::abi_encode(&call))
            .await
            .is_err(),
        "a permit signed by another key must revert"
    );

    permit(
        &owner,
        &relayer,
        chain,
        token,
        router,
        U160::from(500),
        now + 7_200,
        now + 600,
    )
    .await?;
    assert_eq!(
        allowance(&owner, owner.address, token, router).await?,
        Permit2Allowance {
            amount: U160::from(500),
            expiration: now + 7_200,
            nonce: 1,
        },
        "the owner's signed permit, submitted by the relayer"
    );

    spend(&owner, router, token, U160::from(120), receiver).await?;
    assert_eq!(
        allowance(&owner, owner.address, token, router).await?,
        Permit2Allowance {
            amount: U160::from(380),
            expiration: now + 7_200,
            nonce: 1,
        },
        "the router's spend lowers Permit2's amount"
    );
    assert_eq!(erc20.balanceOf(receiver).call().await?, U256::from(120));
    assert_eq!(
        erc20.balanceOf(owner.address).call().await?,
        U256::from(880)
    );

    lockdown(&owner, &[(token, router)]).await?;
    assert_eq!(
        allowance(&owner, owner.address, token, router).await?,
        Permit2Allowance {
            amount: U160::ZERO,
            expiration: now + 7_200,
            nonce: 1,
        },
        "lockdown zeroes the amount only"
    );
    assert!(
        spend(&owner, router, token, U160::from(1), receiver)
            .await
            .is_err(),
        "no spend after a lockdown"
    );
    Ok(())
}

/// The `permit2_allowance_update` of `router` on `token` whose amount is `amount`.
async fn permit2_update(
    sse: &mut SseClient,
    token: &str,
    router: &str,
    amount: &str,
) -> anyhow::Result<Event> {
    sse.wait_for(&format!("permit2_allowance_update amount={amount}"), |e| {
        e.event == "permit2_allowance_update"
            && e.data["address"] == token
            && e.data["spender"] == router
            && e.data["amount"] == amount
    })
    .await
}

async fn order_status(sse: &mut SseClient, id: &str, fillable: bool) -> anyhow::Result<Event> {
    sse.wait_for(&format!("order_status {id} fillable={fillable}"), |e| {
        e.event == "order_status" && e.data["orderId"] == id && e.data["fillable"] == fillable
    })
    .await
}

/// A wallet whose session names a Permit2 spender (a router) sees every way Permit2's allowance
/// to it changes — the token's approval of Permit2, `Permit2.approve`, a permit the owner signed
/// and a relayer submitted, the router's spend through Permit2 (no event of Permit2's own), a
/// lockdown, a nonce invalidation (the expiry: `tests/chain/permit2_expiry.rs`) — on its stream and in a webhook as `permit2_allowance_update`, with the amount,
/// expiration and nonce Permit2 holds; and an order naming the router through Permit2 flips as
/// each crosses its amount.
#[tokio::test(flavor = "multi_thread")]
async fn permit2_allowances_reach_the_stream_webhooks_and_orders() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    install_permit2(env.rpc_url_of(chain)?).await?;
    let (owner, token) = env.actor_with_token(1_000).await?;
    let relayer = env.fresh_wallet_on(chain).await?;
    let router = deploy_router(&relayer).await?;
    let (owner_hex, token_hex, router_hex, permit2_hex) = (
        lower(&owner.address),
        lower(&token),
        lower(&router),
        lower(&PERMIT2),
    );

    let receiver = Receiver::start().await?;
    let (status, created) = env
        .send_backend(
            reqwest::Method::POST,
            &env.url(&format!("/{chain}/webhooks")),
            json!({
                "url": receiver.url,
                "wallets": [owner_hex],
                "tokens": [token_hex],
                "events": ["permit2_allowance_update", "order_status"],
            })
            .to_string(),
        )
        .await?;
    anyhow::ensure!(status == 201, "webhook: {status} {created}");
    receiver.set_secret(created["secret"].as_str().context("secret")?);

    env.watch(
        &owner_hex,
        &json!({"customTokens": [token_hex], "spenders": [], "permit2Spenders": [router_hex]})
            .to_string(),
    )
    .await?;
    let id = "permit2-order-1";
    let valid_to = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3_600;
    let (code, order) = env
        .send_backend(
            reqwest::Method::PUT,
            &env.url(&format!("/{chain}/orders/{owner_hex}/{id}")),
            json!({"sellToken": token_hex, "sellAmount": "200", "spender": router_hex,
                   "approval": "permit2", "validTo": valid_to})
            .to_string(),
        )
        .await?;
    anyhow::ensure!(code == 200, "{order}");
    assert_eq!(order["approval"], "permit2", "{order}");
    assert_eq!(order["fillable"], false, "nothing approved yet: {order}");
    assert_eq!(order["short"], "allowance");

    let mut sse = SseClient::connect(env, &owner_hex, None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(snapshot.data["permit2Spenders"], json!([router_hex]));
    assert_eq!(
        snapshot.data["spenders"],
        json!([permit2_hex]),
        "the token's allowance to Permit2 is tracked with the Permit2 spender"
    );
    assert_eq!(
        snapshot.data["permit2"][&token_hex][&router_hex],
        json!({"amount": "0", "expiration": 0, "nonce": 0, "expired": false}),
        "{}",
        snapshot.data
    );

    // The first layer: the token's allowance to Permit2 itself.
    approve_token(&owner, token, U256::MAX).await?;
    sse.wait_for("allowance_update to Permit2", |e| {
        e.event == "allowance_update"
            && e.data["spender"] == permit2_hex
            && e.data["allowance"] == U256::MAX.to_string()
    })
    .await?;

    // The second layer by the owner's own transaction.
    let now = chain_time(&owner).await?;
    let approved = approve(&owner, token, router, U160::from(300), now + 3_600).await?;
    let update = permit2_update(&mut sse, &token_hex, &router_hex, "300").await?;
    assert_eq!(update.data["expiration"], now + 3_600, "{:?}", update.data);
    assert_eq!(update.data["nonce"], 0);
    assert_eq!(update.data["expired"], false);
    assert_eq!(update.data["previous"]["amount"], "0", "{:?}", update.data);
    assert_eq!(
        update.data["txHash"],
        approved.transaction_hash.to_string(),
        "{:?}",
        update.data
    );
    let fillable = order_status(&mut sse, id, true).await?;
    assert_eq!(fillable.data["approval"], "permit2");

    // A permit the owner signed, submitted by the relayer: amount, expiration and nonce move.
    let permitted = permit(
        &owner,
        &relayer,
        chain,
        token,
        router,
        U160::from(500),
        now + 7_200,
        now + 600,
    )
    .await?;
    let update = permit2_update(&mut sse, &token_hex, &router_hex, "500").await?;
    assert_eq!(update.data["expiration"], now + 7_200, "{:?}", update.data);
    assert_eq!(update.data["nonce"], 1);
    assert_eq!(
        update.data["txHash"],
        permitted.transaction_hash.to_string()
    );

    // The router spends through Permit2: only the token's Transfer says so.
    let receiver_address = fresh_owner();
    let spent = spend(&owner, router, token, U160::from(400), receiver_address).await?;
    let update = permit2_update(&mut sse, &token_hex, &router_hex, "100").await?;
    assert_eq!(
        update.data["txHash"],
        spent.transaction_hash.to_string(),
        "found through the owner's Transfer"
    );
    assert_eq!(
        update.data["previous"]["amount"], "500",
        "{:?}",
        update.data
    );
    let short = order_status(&mut sse, id, false).await?;
    assert_eq!(short.data["short"], "allowance", "{:?}", short.data);
    assert_eq!(short.data["allowanceShortfall"], "100");

    // A new approval makes it fillable again; a lockdown zeroes the amount.
    approve(&owner, token, router, U160::from(250), now + 3_600).await?;
    permit2_update(&mut sse, &token_hex, &router_hex, "250").await?;
    order_status(&mut sse, id, true).await?;
    let locked = lockdown(&owner, &[(token, router)]).await?;
    let update = permit2_update(&mut sse, &token_hex, &router_hex, "0").await?;
    assert_eq!(update.data["txHash"], locked.transaction_hash.to_string());
    assert_eq!(
        update.data["expiration"],
        now + 3_600,
        "lockdown keeps the expiration"
    );
    order_status(&mut sse, id, false).await?;
    // Invalidating nonces moves only the nonce.
    let invalidated = invalidate_nonces(&owner, token, router, 5).await?;
    let update = sse
        .wait_for("permit2_allowance_update nonce=5", |e| {
            e.event == "permit2_allowance_update" && e.data["nonce"] == 5
        })
        .await?;
    assert_eq!(update.data["amount"], "0");
    assert_eq!(update.data["previous"]["nonce"], 1, "{:?}", update.data);
    assert_eq!(
        update.data["txHash"],
        invalidated.transaction_hash.to_string(),
        "found by Permit2's NonceInvalidation event, not a later re-read: {:?}",
        update.data
    );

    // The webhook delivered the same, signed, in order.
    let amounts = |accepted: &[Received]| -> Vec<String> {
        accepted
            .iter()
            .map(|r| r.json())
            .filter(|b| b["type"] == "permit2_allowance_update")
            .filter_map(|b| b["data"]["amount"].as_str().map(str::to_string))
            .collect()
    };
    let flips = |accepted: &[Received]| -> Vec<bool> {
        accepted
            .iter()
            .map(|r| r.json())
            .filter(|b| b["type"] == "order_status")
            .filter_map(|b| b["data"]["fillable"].as_bool())
            .collect()
    };
    let accepted = receiver
        .wait_accepted("Permit2 changes and order flips delivered", DEADLINE, |a| {
            amounts(a).len() >= 6 && flips(a).len() >= 5
        })
        .await?;
    assert_eq!(amounts(&accepted), ["300", "500", "100", "250", "0", "0"]);
    let last = accepted
        .iter()
        .map(|r| r.json())
        .rfind(|b| b["type"] == "permit2_allowance_update")
        .unwrap_or_default();
    assert_eq!(last["data"]["nonce"], 5, "{last}");
    assert_eq!(
        flips(&accepted),
        [false, true, false, true, false],
        "registered short, then each crossing"
    );
    assert!(accepted.iter().all(|r| r.verified));
    Ok(())
}
