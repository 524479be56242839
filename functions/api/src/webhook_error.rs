//! Why a webhook route refuses a request, and its HTTP answer (mapped by [`crate::error`]).

use http::StatusCode;
use live_balances::destination::Refusal;
use thiserror::Error;

/// Why a webhook request is refused.
#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("url is not a valid absolute URL")]
    InvalidUrl,
    #[error("url refused: {0}")]
    Refused(Refusal),
    #[error("no wallets given: name at least one owner address")]
    NoWallets,
    #[error("at most {0} wallets per subscription")]
    TooManyWallets(usize),
    #[error("at most {0} tokens per subscription")]
    TooManyTokens(usize),
    #[error("wallet {owner} already has {max} webhooks, the most one wallet may have")]
    WalletFull { owner: String, max: usize },
    #[error("no events given: name at least one of balance_update, allowance_update, order_status")]
    NoEvents,
    #[error(
        "events[{index}] {value:?} is not one of balance_update, allowance_update, order_status"
    )]
    UnknownEvent { index: usize, value: String },
    #[error("no such webhook on this chain")]
    NotFound,
    #[error("this API key's tenant holds {0} webhook subscriptions, the most its quota allows")]
    TenantFull(u64),
    #[error("webhook secrets cannot be sealed or opened here now; try again later")]
    SecretsUnavailable,
}

impl WebhookError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::WalletFull { .. } | Self::TenantFull(_) => StatusCode::CONFLICT,
            Self::SecretsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl => "invalid_webhook_url",
            Self::Refused(_) => "webhook_url_refused",
            Self::NoWallets => "no_wallets",
            Self::TooManyWallets(_) => "too_many_wallets",
            Self::TooManyTokens(_) => "too_many_tokens",
            Self::WalletFull { .. } => "too_many_webhooks_for_wallet",
            Self::NoEvents => "no_events",
            Self::UnknownEvent { .. } => "unknown_event",
            Self::NotFound => "webhook_not_found",
            Self::TenantFull(_) => "too_many_webhooks",
            Self::SecretsUnavailable => "webhook_secrets_unavailable",
        }
    }
}
