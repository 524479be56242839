//! Webhook delivery and subscription limits (`WEBHOOK_*`), and where the data key that seals
//! webhook secrets at rest comes from: read by the api (which registers subscriptions) and
//! the webhooks function (which delivers).

use std::fmt;
use std::time::Duration;

use super::ConfigError;
use super::vars::{Vars, invalid};
use crate::domain::webhook::MAX_WALLETS_LIMIT;

/// Where the data key that seals webhook secrets comes from ([`crate::runtime::kms`]).
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

/// Webhook settings: what both the api and the delivery function check of a destination,
/// how the webhooks function delivers, and what the api lets a back end register.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// Development only: allow `http://` and loopback targets (a receiver on this machine).
    pub allow_insecure: bool,
    pub delivery: DeliverySettings,
    pub subscriptions: SubscriptionLimits,
}

/// How the webhooks function delivers: attempts and their pace, when it parks and when it
/// gives up on a subscription, and how much one batch may do.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// One attempt, redirects included.
    pub timeout: Duration,
    /// Attempts at one delivery before it is parked.
    pub attempts: u32,
    /// Pauses between attempts (the project's one backoff: doubling from `first`).
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// A subscription failing (no successful delivery) this long is disabled.
    pub disable_after: Duration,
    /// How long a parked delivery is kept for a replay.
    pub parked_ttl: Duration,
    /// Subscriptions delivered to at once by one invocation (each one's deliveries stay in
    /// order).
    pub concurrency: usize,
    /// Longest one subscription's deliveries may take in one batch (`WEBHOOK_BATCH_SECS`):
    /// past it the rest of the batch is parked for it, as when its target fails, so a target
    /// that answers slowly cannot hold its shard (or the function's timeout).
    pub batch_budget: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            attempts: 4,
            retry_first: Duration::from_millis(500),
            retry_max: Duration::from_secs(8),
            disable_after: Duration::from_secs(86_400),
            parked_ttl: Duration::from_secs(7 * 86_400),
            concurrency: 16,
            batch_budget: Duration::from_secs(60),
        }
    }
}

/// What the api lets a back end register: how large a subscription may be, how many may
/// cover one wallet or come from one source, and how long a rotated-out secret still signs.
#[derive(Debug, Clone)]
pub struct SubscriptionLimits {
    /// Most wallets one subscription covers.
    pub max_wallets: usize,
    /// Most tokens one subscription names.
    pub max_tokens: usize,
    /// Most subscriptions covering one wallet: a change of the wallet is at most this many
    /// deliveries, whoever subscribed.
    pub max_per_wallet: usize,
    /// Subscriptions one source address may create per minute.
    pub creates_per_source: u64,
    /// How long a rotated-out signing secret keeps signing beside the new one
    /// (`WEBHOOK_SECRET_OVERLAP_SECS`).
    pub secret_overlap: Duration,
}

impl Default for SubscriptionLimits {
    fn default() -> Self {
        Self {
            max_wallets: 50,
            max_tokens: 100,
            max_per_wallet: 20,
            creates_per_source: 10,
            secret_overlap: Duration::from_secs(86_400),
        }
    }
}

/// `WEBHOOK_*`: delivery and subscription limits, read in the order they were always read
/// (so of two bad values, the same one is named).
pub(super) fn webhook_settings(vars: &Vars) -> Result<WebhookSettings, ConfigError> {
    let (d, l) = (DeliverySettings::default(), SubscriptionLimits::default());
    let ms = |name: &str, default: Duration| vars.millis(name, default.as_millis() as u64);
    let secs = |name: &str, default: Duration| vars.secs(name, default.as_secs());
    let max_wallets = vars.count("WEBHOOK_MAX_WALLETS", l.max_wallets)?;
    if !(1..=MAX_WALLETS_LIMIT).contains(&max_wallets) {
        return Err(invalid(
            "WEBHOOK_MAX_WALLETS",
            format!("expected 1 to {MAX_WALLETS_LIMIT}"),
        ));
    }
    let allow_insecure = vars.flag("WEBHOOK_ALLOW_INSECURE")?;
    let timeout = ms("WEBHOOK_TIMEOUT_MS", d.timeout)?;
    let attempts = vars
        .number("WEBHOOK_ATTEMPTS", u64::from(d.attempts))?
        .clamp(1, 20) as u32;
    let retry_first = ms("WEBHOOK_RETRY_FIRST_MS", d.retry_first)?;
    let retry_max = ms("WEBHOOK_RETRY_MAX_MS", d.retry_max)?;
    let disable_after = secs("WEBHOOK_DISABLE_AFTER_SECS", d.disable_after)?;
    let parked_ttl = secs("WEBHOOK_PARKED_TTL_SECS", d.parked_ttl)?;
    let max_tokens = vars.count("WEBHOOK_MAX_TOKENS", l.max_tokens)?;
    let max_per_wallet = vars
        .count("WEBHOOK_MAX_PER_WALLET", l.max_per_wallet)?
        .max(1);
    let creates_per_source = vars.number(
        "WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE",
        l.creates_per_source,
    )?;
    let concurrency = vars.count("WEBHOOK_CONCURRENCY", d.concurrency)?.max(1);
    let batch_budget = secs("WEBHOOK_BATCH_SECS", d.batch_budget)?.max(Duration::from_secs(1));
    let secret_overlap = secs("WEBHOOK_SECRET_OVERLAP_SECS", l.secret_overlap)?;
    Ok(WebhookSettings {
        allow_insecure,
        delivery: DeliverySettings {
            timeout,
            attempts,
            retry_first,
            retry_max,
            disable_after,
            parked_ttl,
            concurrency,
            batch_budget,
        },
        subscriptions: SubscriptionLimits {
            max_wallets,
            max_tokens,
            max_per_wallet,
            creates_per_source,
            secret_overlap,
        },
    })
}
