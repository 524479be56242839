//! Webhook delivery and subscription limits (`WEBHOOK_*`), and where the data key that seals
//! webhook secrets at rest comes from: read by the api (which registers subscriptions) and
//! the webhooks function (which delivers).

use std::fmt;
use std::time::Duration;

use super::ConfigError;
use super::vars::{Vars, invalid};
use crate::webhook::{MAX_WALLETS_LIMIT, WebhookSettings};

/// Where the data key that seals webhook secrets comes from ([`crate::kms`]).
#[derive(Clone, PartialEq, Eq)]
pub enum SealingSource {
    /// None configured: webhook subscriptions cannot be created or delivered.
    None,
    /// `WEBHOOK_SECRETS_KEY`: 32 bytes, base64 — the local stack's and the tests' key.
    Local([u8; 32]),
    /// `WEBHOOK_SECRETS_KMS_KEY`: a KMS key (id or ARN) that wraps the data key kept in the
    /// table; each container unwraps it once.
    Kms(String),
}

impl fmt::Debug for SealingSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Local(_) => f.write_str("Local(<redacted>)"),
            Self::Kms(key) => f.debug_tuple("Kms").field(key).finish(),
        }
    }
}

impl SealingSource {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        use base64::Engine;
        match (
            vars.get("WEBHOOK_SECRETS_KEY"),
            vars.get("WEBHOOK_SECRETS_KMS_KEY"),
        ) {
            (None, None) => Ok(Self::None),
            (Some(_), Some(_)) => Err(invalid(
                "WEBHOOK_SECRETS_KEY",
                "set it or WEBHOOK_SECRETS_KMS_KEY, not both",
            )),
            (Some(local), None) => base64::engine::general_purpose::STANDARD
                .decode(local)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .map(Self::Local)
                // Never quotes the value: it is a key.
                .ok_or_else(|| invalid("WEBHOOK_SECRETS_KEY", "expected 32 bytes in base64")),
            (None, Some(kms)) => Ok(Self::Kms(kms)),
        }
    }
}

/// `WEBHOOK_*`: delivery and subscription limits (see [`crate::webhook::WebhookSettings`]).
pub(super) fn webhook_settings(vars: &Vars) -> Result<WebhookSettings, ConfigError> {
    let d = WebhookSettings::default();
    let ms = |name: &str, default: Duration| vars.millis(name, default.as_millis() as u64);
    let secs = |name: &str, default: Duration| vars.secs(name, default.as_secs());
    let max_wallets = vars.count("WEBHOOK_MAX_WALLETS", d.max_wallets)?;
    if !(1..=MAX_WALLETS_LIMIT).contains(&max_wallets) {
        return Err(invalid(
            "WEBHOOK_MAX_WALLETS",
            format!("expected 1 to {MAX_WALLETS_LIMIT}"),
        ));
    }
    Ok(WebhookSettings {
        allow_insecure: vars.flag("WEBHOOK_ALLOW_INSECURE")?,
        timeout: ms("WEBHOOK_TIMEOUT_MS", d.timeout)?,
        attempts: vars
            .number("WEBHOOK_ATTEMPTS", u64::from(d.attempts))?
            .clamp(1, 20) as u32,
        retry_first: ms("WEBHOOK_RETRY_FIRST_MS", d.retry_first)?,
        retry_max: ms("WEBHOOK_RETRY_MAX_MS", d.retry_max)?,
        disable_after: secs("WEBHOOK_DISABLE_AFTER_SECS", d.disable_after)?,
        parked_ttl: secs("WEBHOOK_PARKED_TTL_SECS", d.parked_ttl)?,
        max_wallets,
        max_tokens: vars.count("WEBHOOK_MAX_TOKENS", d.max_tokens)?,
        max_per_wallet: vars
            .count("WEBHOOK_MAX_PER_WALLET", d.max_per_wallet)?
            .max(1),
        creates_per_source: vars.number(
            "WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE",
            d.creates_per_source,
        )?,
        concurrency: vars.count("WEBHOOK_CONCURRENCY", d.concurrency)?.max(1),
        batch_budget: secs("WEBHOOK_BATCH_SECS", d.batch_budget)?.max(Duration::from_secs(1)),
        secret_overlap: secs("WEBHOOK_SECRET_OVERLAP_SECS", d.secret_overlap)?,
    })
}
