//! The stack's chains: anvil devnets (with Multicall3 and the devnet WETH) or a real chain
//! reached through the environment, and the variables every process gets for them.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use alloy::providers::Provider;
use anyhow::bail;
use live_balances::config::DEFAULT_MULTICALL;

use super::{ChainSource, LocalChain, LocalStack, SECOND_ANVIL_CHAIN_ID, StackOptions, wait_for};
use crate::devnet::{install_multicall, install_weth};

const ANVIL_CHAIN_ID: u64 = 31337;

/// The first chain's id and RPC URL, and the environment every process gets for it.
pub(super) fn chain_env(
    options: &StackOptions,
    dynamodb_url: &str,
) -> (u64, String, BTreeMap<String, String>) {
    let (chain_id, rpc_url, ws_url) = match &options.chain {
        ChainSource::Anvil { port, .. } => (
            ANVIL_CHAIN_ID,
            format!("http://127.0.0.1:{port}"),
            Some(format!("ws://127.0.0.1:{port}")),
        ),
        ChainSource::External {
            chain_id,
            rpc_url,
            ws_url,
        } => (*chain_id, rpc_url.clone(), ws_url.clone()),
    };
    let mut env = BTreeMap::from([
        // DynamoDB Local accepts any credentials; the SDK needs some.
        ("AWS_ACCESS_KEY_ID".to_string(), "local".to_string()),
        ("AWS_SECRET_ACCESS_KEY".into(), "local".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("DYNAMODB_ENDPOINT".into(), dynamodb_url.to_string()),
        ("TABLE_NAME".into(), options.table_name.clone()),
        (format!("RPC_URL_{chain_id}"), rpc_url.clone()),
        ("RUST_LOG".into(), "info".into()),
    ]);
    if let Some(ws) = ws_url {
        env.insert(format!("WS_URL_{chain_id}"), ws);
    }
    if matches!(options.chain, ChainSource::Anvil { .. }) {
        env.insert(
            format!("WETH_{chain_id}"),
            crate::devnet::DEVNET_WETH.to_string(),
        );
        // The devnet serves token lists from this machine in demos and tests, and webhook
        // receivers listen on it.
        env.insert("TOKEN_LIST_ALLOW_INSECURE".into(), "true".into());
        env.insert("WEBHOOK_ALLOW_INSECURE".into(), "true".into());
    }
    (chain_id, rpc_url, env)
}

/// The second anvil devnet, if asked for: its chain, with its URLs added to `env`.
pub(super) fn second_chain_env(
    options: &StackOptions,
    env: &mut BTreeMap<String, String>,
) -> anyhow::Result<Option<LocalChain>> {
    match (options.second_anvil_port, &options.chain) {
        (None, _) => Ok(None),
        (Some(port), ChainSource::Anvil { .. }) => {
            let id = SECOND_ANVIL_CHAIN_ID;
            env.insert(format!("RPC_URL_{id}"), format!("http://127.0.0.1:{port}"));
            env.insert(format!("WS_URL_{id}"), format!("ws://127.0.0.1:{port}"));
            env.insert(format!("WETH_{id}"), crate::devnet::DEVNET_WETH.to_string());
            Ok(Some(LocalChain {
                chain_id: id,
                rpc_url: format!("http://127.0.0.1:{port}"),
            }))
        }
        (Some(_), ChainSource::External { .. }) => {
            bail!("a second anvil devnet runs only beside the first, not beside a real chain")
        }
    }
}

impl LocalStack {
    /// The anvil devnets, when the stack runs its own chains.
    pub(super) async fn start_chains(&self) -> anyhow::Result<()> {
        let ChainSource::Anvil {
            port,
            block_time,
            kept_states,
        } = self.options.chain
        else {
            return Ok(());
        };
        self.start_anvil("anvil", ANVIL_CHAIN_ID, port, block_time, kept_states)
            .await?;
        if let Some(port) = self.options.second_anvil_port {
            let name = format!("anvil-{SECOND_ANVIL_CHAIN_ID}");
            self.start_anvil(&name, SECOND_ANVIL_CHAIN_ID, port, block_time, kept_states)
                .await?;
        }
        Ok(())
    }

    /// Starts anvil as service `name` for `chain_id` on `port`, with Multicall3 and the
    /// devnet WETH installed.
    async fn start_anvil(
        &self,
        name: &str,
        chain_id: u64,
        port: u16,
        block_time: Option<u64>,
        kept_states: Option<u32>,
    ) -> anyhow::Result<()> {
        let mut anvil = Command::new(self.tools.anvil());
        anvil
            .args(["--host", "127.0.0.1", "--port"])
            .arg(port.to_string());
        anvil.args(["--chain-id", &chain_id.to_string()]);
        if let Some(seconds) = block_time {
            anvil.args(["--block-time", &seconds.to_string()]);
        }
        if let Some(states) = kept_states {
            anvil.args(["--prune-history", &states.to_string()]);
        }
        self.spawn(name, anvil)?;
        let rpc_url = format!("http://127.0.0.1:{port}");
        let provider = crate::devnet::plain_provider(&rpc_url)?;
        let answered = wait_for(name, Duration::from_secs(30), || async {
            self.check(name)?;
            Ok(provider.get_chain_id().await?)
        })
        .await?;
        if answered != chain_id {
            bail!("{name} answers chain id {answered}, expected {chain_id}");
        }
        install_multicall(&rpc_url, DEFAULT_MULTICALL).await?;
        install_weth(&rpc_url).await
    }
}
