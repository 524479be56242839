//! The anvil devnet: Multicall3 at its canonical address, funded throwaway wallets, test
//! tokens, and the demo activity `make dev` shows.

use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, U256, address};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use anyhow::{Context, bail};
use rand::Rng;
use tracing::info;

use crate::contracts::{
    ETH_FORWARDER_ARTIFACT, EthForwarder, MULTICALL3_ARTIFACT, REBASING_TOKEN_ARTIFACT,
    REVERTING_TOKEN_ARTIFACT, RebasingToken, RevertingToken, TEST_TOKEN_ARTIFACT,
    TEST_WETH_ARTIFACT, TestToken, TestWETH, artifact,
};

/// anvil's second default account: the wallet `make dev` watches and the demo page prefills.
pub const DEMO_WALLET: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");

/// The devnet's JSON-RPC client, each request bounded as the poller's are: a devnet that
/// stops answering fails its caller (a test, the demo's activity) instead of holding it for
/// good.
pub fn bounded_client(rpc_url: &str) -> anyhow::Result<RpcClient> {
    let http = alloy::transports::http::reqwest::Client::builder()
        .timeout(live_balances::chain::RPC_REQUEST_TIMEOUT)
        .build()?;
    Ok(RpcClient::new_http_with_client(
        http,
        rpc_url.parse().context("RPC URL")?,
    ))
}

/// A provider without a wallet over [`bounded_client`].
pub fn plain_provider(rpc_url: &str) -> anyhow::Result<DynProvider> {
    Ok(ProviderBuilder::new()
        .connect_client(bounded_client(rpc_url)?)
        .erased())
}

/// Where the devnet's WETH lives (the OP Stack predeploy address, for familiarity).
pub const DEVNET_WETH: Address = address!("0x4200000000000000000000000000000000000006");

/// Puts the Multicall3 runtime code at `at` (anvil does not predeploy it).
pub async fn install_multicall(rpc_url: &str, at: Address) -> anyhow::Result<()> {
    install_code(rpc_url, MULTICALL3_ARTIFACT, at).await
}

/// Puts the devnet WETH at [`DEVNET_WETH`]: every session tracks the chain's WETH. Its name,
/// symbol and decimals are constants, so runtime code alone makes a working token.
pub async fn install_weth(rpc_url: &str) -> anyhow::Result<()> {
    install_code(rpc_url, TEST_WETH_ARTIFACT, DEVNET_WETH).await
}

async fn install_code(rpc_url: &str, artifact_json: &str, at: Address) -> anyhow::Result<()> {
    let code = artifact(artifact_json)?.deployed_bytecode;
    plain_provider(rpc_url)?
        .raw_request::<_, ()>("anvil_setCode".into(), (at, code))
        .await
        .context("anvil_setCode")?;
    Ok(())
}

/// A wallet with its own key and 1,000 ETH: tests use one each, so nonces never collide.
#[derive(Debug, Clone)]
pub struct Wallet {
    pub address: Address,
    pub provider: DynProvider,
    /// Its key, for what it signs off chain (EIP-712 permits).
    pub signer: PrivateKeySigner,
}

impl Wallet {
    pub async fn fresh(rpc_url: &str) -> anyhow::Result<Self> {
        let signer = PrivateKeySigner::random();
        let address = signer.address();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer.clone()))
            .connect_client(bounded_client(rpc_url)?)
            .erased();
        let funds = U256::from(1000u64) * U256::from(10u64).pow(U256::from(18u64));
        provider
            .raw_request::<_, ()>("anvil_setBalance".into(), (address, funds))
            .await
            .context("anvil_setBalance")?;
        Ok(Self {
            address,
            provider,
            signer,
        })
    }

    /// Deploys a contract from its artifact with ABI-encoded constructor arguments.
    pub async fn deploy(
        &self,
        artifact_json: &str,
        constructor_args: Vec<u8>,
    ) -> anyhow::Result<Address> {
        let mut code = artifact(artifact_json)?.bytecode.to_vec();
        code.extend(constructor_args);
        let receipt = self
            .send(TransactionRequest::default().with_deploy_code(code))
            .await?;
        receipt
            .contract_address
            .context("deployment has no contract address")
    }

    /// Deploys a [`TestToken`] and returns its address.
    pub async fn deploy_token(
        &self,
        name: &str,
        symbol: &str,
        decimals: u8,
    ) -> anyhow::Result<Address> {
        // uint8 is ABI-encoded as a full word.
        let args = (name.to_string(), symbol.to_string(), U256::from(decimals));
        self.deploy(
            TEST_TOKEN_ARTIFACT,
            alloy::sol_types::SolValue::abi_encode_params(&args),
        )
        .await
    }

    pub async fn deploy_weth(&self) -> anyhow::Result<Address> {
        self.deploy(TEST_WETH_ARTIFACT, vec![]).await
    }

    pub async fn deploy_reverting_token(&self) -> anyhow::Result<Address> {
        self.deploy(REVERTING_TOKEN_ARTIFACT, vec![]).await
    }

    pub async fn deploy_rebasing_token(&self) -> anyhow::Result<Address> {
        self.deploy(REBASING_TOKEN_ARTIFACT, vec![]).await
    }

    pub async fn wrap(&self, weth: Address, amount: U256) -> anyhow::Result<TransactionReceipt> {
        let tx = TransactionRequest::default()
            .with_to(weth)
            .with_value(amount)
            .with_input(TestWETH::depositCall {}.abi_encode());
        self.send(tx).await
    }

    pub async fn unwrap(&self, weth: Address, wad: U256) -> anyhow::Result<TransactionReceipt> {
        self.call(weth, TestWETH::withdrawCall { wad }.abi_encode())
            .await
    }

    /// Emits a Transfer from the reverting token to `to`.
    pub async fn poke(&self, token: Address, to: Address) -> anyhow::Result<TransactionReceipt> {
        self.call(token, RevertingToken::pokeCall { to }.abi_encode())
            .await
    }

    pub async fn mint_rebasing(
        &self,
        token: Address,
        to: Address,
        amount: U256,
    ) -> anyhow::Result<TransactionReceipt> {
        self.call(token, RebasingToken::mintCall { to, amount }.abi_encode())
            .await
    }

    /// Changes every balance of the rebasing token without any event.
    pub async fn rebase(
        &self,
        token: Address,
        new_index: U256,
    ) -> anyhow::Result<TransactionReceipt> {
        self.call(
            token,
            RebasingToken::rebaseCall {
                newIndex: new_index,
            }
            .abi_encode(),
        )
        .await
    }

    pub async fn mint(
        &self,
        token: Address,
        to: Address,
        amount: U256,
    ) -> anyhow::Result<TransactionReceipt> {
        self.call(token, TestToken::mintCall { to, amount }.abi_encode())
            .await
    }

    pub async fn transfer(
        &self,
        token: Address,
        to: Address,
        amount: U256,
    ) -> anyhow::Result<TransactionReceipt> {
        self.call(token, TestToken::transferCall { to, amount }.abi_encode())
            .await
    }

    pub async fn approve(
        &self,
        token: Address,
        spender: Address,
        amount: U256,
    ) -> anyhow::Result<TransactionReceipt> {
        self.call(
            token,
            TestToken::approveCall { spender, amount }.abi_encode(),
        )
        .await
    }

    /// Moves `owner`'s tokens as a spender (`owner` approved this wallet): the allowance
    /// drops with no `Approval` event, as a settlement contract spends a trader's allowance.
    pub async fn transfer_from(
        &self,
        token: Address,
        owner: Address,
        to: Address,
        amount: U256,
    ) -> anyhow::Result<TransactionReceipt> {
        self.call(
            token,
            TestToken::transferFromCall {
                from: owner,
                to,
                amount,
            }
            .abi_encode(),
        )
        .await
    }

    pub async fn deploy_eth_forwarder(&self) -> anyhow::Result<Address> {
        self.deploy(ETH_FORWARDER_ARTIFACT, vec![]).await
    }

    /// Sends ETH to `to` from inside the forwarder contract (an internal transfer).
    pub async fn forward_eth(
        &self,
        forwarder: Address,
        to: Address,
        amount: U256,
    ) -> anyhow::Result<TransactionReceipt> {
        let tx = TransactionRequest::default()
            .with_to(forwarder)
            .with_value(amount)
            .with_input(EthForwarder::forwardCall { to }.abi_encode());
        self.send(tx).await
    }

    pub async fn send_eth(&self, to: Address, amount: U256) -> anyhow::Result<TransactionReceipt> {
        self.send(TransactionRequest::default().with_to(to).with_value(amount))
            .await
    }

    /// Sends a call to `to` and waits for its receipt; a revert is an error.
    pub async fn call(&self, to: Address, input: Vec<u8>) -> anyhow::Result<TransactionReceipt> {
        self.send(TransactionRequest::default().with_to(to).with_input(input))
            .await
    }

    pub(crate) async fn send(&self, tx: TransactionRequest) -> anyhow::Result<TransactionReceipt> {
        let receipt = self
            .provider
            .send_transaction(tx)
            .await
            .context("sending transaction")?
            .with_timeout(Some(Duration::from_secs(30)))
            .get_receipt()
            .await
            .context("waiting for receipt")?;
        if !receipt.status() {
            bail!("transaction {} reverted", receipt.transaction_hash);
        }
        Ok(receipt)
    }
}

/// Demo tokens deployed for `make dev`: (symbol, decimals).
pub const DEMO_TOKENS: [(&str, &str, u8); 3] = [
    ("Demo USD", "dUSD", 6),
    ("Demo Wrapped Ether", "dWETH", 18),
    ("Demo DAI", "dDAI", 18),
];

/// Deploys the demo tokens and gives the demo wallet some of each.
pub async fn seed_demo(rpc_url: &str) -> anyhow::Result<(Wallet, Vec<Address>)> {
    let actor = Wallet::fresh(rpc_url).await?;
    let mut tokens = vec![];
    for (name, symbol, decimals) in DEMO_TOKENS {
        let token = actor.deploy_token(name, symbol, decimals).await?;
        let unit = U256::from(10u64).pow(U256::from(decimals));
        actor
            .mint(token, actor.address, unit * U256::from(1_000_000u64))
            .await?;
        actor
            .mint(token, DEMO_WALLET, unit * U256::from(1_000u64))
            .await?;
        info!(%token, symbol, "demo token deployed");
        tokens.push(token);
    }
    Ok((actor, tokens))
}

/// Sends a small random transfer of a random demo token (or ETH) to the demo wallet every
/// `every`, forever.
pub async fn demo_activity(
    actor: Wallet,
    tokens: Vec<Address>,
    every: Duration,
) -> anyhow::Result<()> {
    loop {
        tokio::time::sleep(every).await;
        let (pick, amount) = {
            let mut rng = rand::rng();
            (
                rng.random_range(0..=tokens.len()),
                rng.random_range(1..1000u64),
            )
        };
        let result = match tokens.get(pick) {
            Some(token) => {
                actor
                    .transfer(
                        *token,
                        DEMO_WALLET,
                        U256::from(amount) * U256::from(10_000u64),
                    )
                    .await
            }
            None => {
                actor
                    .send_eth(
                        DEMO_WALLET,
                        U256::from(amount) * U256::from(10u64).pow(U256::from(14u64)),
                    )
                    .await
            }
        };
        match result {
            Ok(r) => info!(block = r.block_number, tx = %r.transaction_hash, "demo transfer"),
            Err(error) => tracing::warn!(%error, "demo transfer failed"),
        }
    }
}
