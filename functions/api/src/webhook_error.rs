//! Why a webhook route refuses a request, and its HTTP answer (mapped by [`crate::error`]).

use http::StatusCode;
use live_balances::domain::webhook::EventKind;
use live_balances::runtime::destination::Refusal;
use thiserror::Error;

use crate::error_code::ErrorCode;

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
    #[error("no events given: name at least one of {}", EventKind::names())]
    NoEvents,
    #[error("events[{index}] {value:?} is not one of {}", EventKind::names())]
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

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidUrl => ErrorCode::InvalidWebhookUrl,
            Self::Refused(_) => ErrorCode::WebhookUrlRefused,
            Self::NoWallets => ErrorCode::NoWallets,
            Self::TooManyWallets(_) => ErrorCode::TooManyWallets,
            Self::TooManyTokens(_) => ErrorCode::TooManyTokens,
            Self::WalletFull { .. } => ErrorCode::TooManyWebhooksForWallet,
            Self::NoEvents => ErrorCode::NoEvents,
            Self::UnknownEvent { .. } => ErrorCode::UnknownEvent,
            Self::NotFound => ErrorCode::WebhookNotFound,
            Self::TenantFull(_) => ErrorCode::TooManyWebhooks,
            Self::SecretsUnavailable => ErrorCode::WebhookSecretsUnavailable,
        }
    }
}
