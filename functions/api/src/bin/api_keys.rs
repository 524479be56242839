//! `api-keys`: the operator's command for back ends' API keys, against the table named by
//! `TABLE_NAME` (with `DYNAMODB_ENDPOINT` for DynamoDB Local; AWS credentials and region from
//! the environment as for any AWS tool):
//!
//! ```text
//! api-keys create <tenant> [--requests-per-minute N] [--max-webhooks N]
//! api-keys list
//! api-keys revoke <key id, or a longer prefix of its hash>
//! ```
//!
//! `create` prints the key once — only its hash is stored. Keys of one tenant share its orders
//! and subscriptions, so a rotation is: create a new key for the tenant, switch the back end
//! to it, revoke the old one.

use anyhow::{Context, bail};
use live_balances::config::Settings;
use live_balances::domain::api_key::{KeyHash, Quotas, Tenant, issue};
use live_balances::runtime::clock::unix_now;
use live_balances::storage::{Table, Written};

const USAGE: &str = "usage:
  api-keys create <tenant> [--requests-per-minute N] [--max-webhooks N]
  api-keys list
  api-keys revoke <key id>";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = Settings::from_env()?;
    let table = Table::connect(&settings).await;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create", tenant, options @ ..] => create(&table, tenant, options).await,
        ["list"] => list(&table).await,
        ["revoke", id] => revoke(&table, id).await,
        _ => bail!("{USAGE}"),
    }
}

async fn create(table: &Table, tenant: &str, options: &[&str]) -> anyhow::Result<()> {
    let tenant = Tenant::parse(tenant)?;
    let mut quotas = Quotas::default();
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let value: u64 = options
            .next()
            .with_context(|| format!("{option} needs a number"))?
            .parse()
            .with_context(|| format!("{option} needs a whole number"))?;
        match *option {
            "--requests-per-minute" => quotas.requests_per_minute = value,
            "--max-webhooks" => quotas.max_webhooks = value,
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    let (key, record) = issue(rand::random(), tenant, quotas, unix_now());
    table.create_api_key(&record).await?;
    eprintln!(
        "created key {} for tenant {} ({} requests a minute, {} webhook subscriptions); it is shown only now:",
        record.id(),
        record.tenant,
        quotas.requests_per_minute,
        quotas.max_webhooks
    );
    println!("{key}");
    Ok(())
}

async fn list(table: &Table) -> anyhow::Result<()> {
    let mut keys = table.api_keys().await?;
    keys.sort_by(|a, b| (&a.tenant, a.created_at).cmp(&(&b.tenant, b.created_at)));
    println!("key id        tenant                created     requests/min  webhooks  state");
    for key in keys {
        let state = match key.revoked_at {
            Some(at) => format!("revoked {at}"),
            None => "live".into(),
        };
        println!(
            "{:<13} {:<21} {:<11} {:<13} {:<9} {state}",
            key.id(),
            key.tenant,
            key.created_at,
            key.quotas.requests_per_minute,
            key.quotas.max_webhooks
        );
    }
    Ok(())
}

async fn revoke(table: &Table, id: &str) -> anyhow::Result<()> {
    let matching: Vec<KeyHash> = table
        .api_keys()
        .await?
        .into_iter()
        .filter(|k| id.len() >= 12 && k.hash.as_str().starts_with(id))
        .map(|k| k.hash)
        .collect();
    let hash = match matching.as_slice() {
        [hash] => hash,
        [] => bail!("no key with id {id} (see api-keys list)"),
        _ => bail!("several keys start with {id}: give more of the hash"),
    };
    match table.revoke_api_key(hash, unix_now()).await? {
        Written::Yes => eprintln!("key {id} revoked: its requests are refused from now on"),
        Written::Skipped => eprintln!("key {id} was revoked already"),
    }
    Ok(())
}
