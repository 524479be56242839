//! `make dev`: the whole system on this machine — DynamoDB Local, two anvil devnets (chains
//! 31337 and 31338) with demo tokens and demo activity (or a real chain from the environment),
//! the functions under `cargo lambda watch`, the api's long-lived server beside them, the
//! stream pump and the poller, each serving every chain. Ctrl-C stops everything it started.

use std::time::Duration;

use anyhow::Context;
use live_balances::config::Settings;
use live_balances::domain::address::lower;
use local_stack::devnet::{DEMO_WALLET, demo_activity, seed_demo};
use local_stack::permit2::install_permit2;
use local_stack::stack::{ChainSource, LocalStack, StackOptions};

fn port(name: &str, default: u16) -> anyhow::Result<u16> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name} must be a port number")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    local_stack::init_tracing();
    // A real chain configured in the environment replaces the devnet.
    let settings = Settings::from_env()?;
    let chain = match settings.chains.values().next() {
        Some(c) => ChainSource::External {
            chain_id: c.chain_id,
            rpc_url: c.rpc_urls.join(","),
            ws_url: (!c.ws_urls.is_empty()).then(|| c.ws_urls.join(",")),
        },
        None => ChainSource::Anvil {
            port: port("ANVIL_PORT", 8545)?,
            block_time: Some(2),
            kept_states: None,
        },
    };
    let devnet = matches!(chain, ChainSource::Anvil { .. });
    let second_anvil_port = if devnet {
        Some(port("SECOND_ANVIL_PORT", 8546)?)
    } else {
        None
    };
    let root = local_stack::tools::Tools::locate()?.root;
    let options = StackOptions {
        dynamodb_port: port("DYNAMODB_PORT", 8000)?,
        lambda_port: port("LAMBDA_PORT", 9000)?,
        server_port: port("SERVER_PORT", 9090)?,
        chain,
        log_dir: root.join(".local/logs"),
        table_name: settings.table.name.clone(),
        lambda_concurrency: 16,
        functions_env: vec![],
        functions_profile: "debug".into(),
        extra_env: vec![],
        second_anvil_port,
    };
    println!("Starting the local stack (first run compiles the functions; logs in .local/logs/) …");
    let stack = LocalStack::start(options).await?;

    // (chain id, RPC URL, demo tokens) of every chain the stack serves.
    let mut chains = vec![(stack.chain_id, stack.rpc_url.clone(), vec![])];
    chains.extend(
        stack
            .second_chain
            .iter()
            .map(|c| (c.chain_id, c.rpc_url.clone(), vec![])),
    );
    if devnet {
        for (chain, rpc_url, tokens) in &mut chains {
            install_permit2(rpc_url).await?;
            let (actor, demo_tokens) = seed_demo(rpc_url).await?;
            tokens.clone_from(&demo_tokens);
            let chain = *chain;
            tokio::spawn(async move {
                if let Err(error) = demo_activity(actor, demo_tokens, Duration::from_secs(4)).await
                {
                    tracing::error!(chain, %error, "demo activity stopped");
                }
            });
        }
    }
    print_banner(&stack, devnet, &chains);

    let mut health = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = health.tick() => stack.check_all()?,
        }
    }
    println!("\nStopping …");
    drop(stack);
    Ok(())
}

fn print_banner(
    stack: &LocalStack,
    devnet: bool,
    chains: &[(u64, String, Vec<alloy::primitives::Address>)],
) {
    let owner = if devnet {
        lower(&DEMO_WALLET)
    } else {
        "<your wallet address>".into()
    };
    let rpcs: String = chains
        .iter()
        .map(|(chain, rpc, _)| {
            format!(
                "  chain {chain:<14}{}\n",
                live_balances::runtime::redact::redact_url(rpc)
            )
        })
        .collect();
    println!(
        "\nlive-balances is running.\n\n  API (function URL)  {api}\n  API (server)        {server}\n  DynamoDB Local      {ddb}\n{rpcs}  logs                {logs}",
        api = stack.endpoints.api,
        server = stack.endpoints.server,
        ddb = stack.endpoints.dynamodb,
        logs = stack.options.log_dir.display(),
    );
    let sealing_key = stack
        .env()
        .get("WEBHOOK_SECRETS_KEY")
        .map_or("<none>", String::as_str);
    println!(
        "\n  API key (tenant dev)  {key}\n  webhook secrets' local data key (WEBHOOK_SECRETS_KEY)  {sealing_key}\n\nThe back-end routes (orders, webhooks) take the key: -H 'authorization: Bearer {key}'.\nMore keys (and list, revoke):\n  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 TABLE_NAME={table} \\\n    DYNAMODB_ENDPOINT={ddb} ./target/debug/api-keys create <tenant>",
        key = stack.api_key,
        table = stack.options.table_name,
        ddb = stack.endpoints.dynamodb,
    );
    for (chain, _, tokens) in chains {
        print_chain(stack, devnet, *chain, &owner, tokens);
    }
    if chains.len() > 1 {
        println!(
            "Every chain is served by the same api (both transports) and poller: GET {}/health lists them all.\n",
            stack.endpoints.api
        );
    }
    println!("Ctrl-C stops everything.");
}

/// The copy-paste commands for one chain.
fn print_chain(
    stack: &LocalStack,
    devnet: bool,
    chain: u64,
    owner: &str,
    tokens: &[alloy::primitives::Address],
) {
    println!("\n── chain {chain} ──\n");
    let token_list = if tokens.is_empty() {
        "\"<token address>\"".to_string()
    } else {
        tokens
            .iter()
            .map(|t| format!("\"{}\"", lower(t)))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "Create a session:\n\n  curl -s -X POST -H 'content-type: application/json' \\\n    -d '{{\"customTokens\":[{token_list}]}}' \\\n    {}/{chain}/sessions/{owner}\n",
        stack.endpoints.api
    );
    println!(
        "Stream its balances (updates arrive as the demo activity moves tokens), through the\nfunction URL or the server — the same API:\n\n  curl -N {}/sse/{chain}/balances/{owner}\n  curl -N {}/sse/{chain}/balances/{owner}\n",
        stack.endpoints.api, stack.endpoints.server
    );
    let query = if devnet {
        let tokens: Vec<String> = tokens.iter().map(lower).collect();
        format!("?chain={chain}&owner={owner}&tokens={}", tokens.join(","))
    } else {
        format!("?chain={chain}")
    };
    println!(
        "Or watch it live in the browser (press Start), on either transport:\n\n  {}/demo{query}\n  {}/demo{query}\n",
        stack.endpoints.api, stack.endpoints.server
    );
}
