//! The real Permit2 on the test stack's anvil: installed at its canonical address by its
//! verified creation code, it takes an owner's approval, a permit the owner signed and someone
//! else submitted, a router's spend and a lockdown, and its allowance reads back each.

use alloy::primitives::U256;
use alloy::primitives::aliases::U160;
use e2e::permit2::{
    IPermit2, PERMIT2, Permit2Allowance, allowance, approve, approve_token, chain_time,
    deploy_router, domain, domain_separator, install_permit2, lockdown, permit, sign_permit, spend,
};
use e2e::{Environment, fresh_owner};
use local_stack::contracts::TestToken;

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
