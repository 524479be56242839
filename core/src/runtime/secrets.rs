//! Start-up settings with the chain endpoints read from AWS Secrets Manager when
//! `CHAIN_SECRET_ID` says so (see [`ChainSecret`]); otherwise from the environment alone, as
//! on the local stack. The one AWS call lives here; what the secret may hold, and how it joins
//! the environment, is the pure [`ChainSecret::merge`].

use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use thiserror::Error;

use crate::config::{ChainSecret, ConfigError, Settings, Vars};

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading chain secret {secret_id}: {reason}")]
    Fetch { secret_id: String, reason: String },
}

/// The settings of a binary that reaches chains (the api, the poller). A binary that needs no
/// chain endpoint, or must not call AWS (the poller's health-check command), uses
/// [`Settings::from_env`].
pub async fn load_settings() -> Result<Settings, SettingsError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let Some(secret) = ChainSecret::from_vars(&Vars::new(vars.clone()))? else {
        return Ok(Settings::from_vars(vars)?);
    };
    let text = secret_string(&secret.secret_id).await?;
    let settings = Settings::from_vars(secret.merge(vars, &text)?)?;
    tracing::info!(
        secret = %secret.secret_id,
        chains = ?secret.chain_ids,
        "chain endpoints read from Secrets Manager"
    );
    Ok(settings)
}

async fn secret_string(secret_id: &str) -> Result<String, SettingsError> {
    let fail = |reason: String| SettingsError::Fetch {
        secret_id: secret_id.to_string(),
        reason,
    };
    let conf = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let reply = aws_sdk_secretsmanager::Client::new(&conf)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| fail(DisplayErrorContext(e).to_string()))?;
    reply
        .secret_string()
        .map(str::to_string)
        .ok_or_else(|| fail("the secret is binary; store the JSON as its string".into()))
}
