//! Every way a request can fail, and the one place errors become HTTP answers: a status and
//! a JSON body `{"code","message"}`. Details of server-side failures go to the log only.

use http::Response;
use http::{Method, StatusCode};
use live_balances::chain::ChainError;
use live_balances::storage::StorageError;
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

use crate::body::{self, ResponseBody};
use crate::token_lists::{FetchError, ListError};
use live_balances::token_list::TokenListError;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("no such route")]
    NotFound,
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("chain id must be a positive whole number")]
    InvalidChainId,
    #[error("chain {0} is not served here")]
    UnknownChain(u64),
    #[error("owner: {0}")]
    InvalidOwner(String),
    #[error("{0}")]
    InvalidToken(String),
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("request body is not valid: {0}")]
    InvalidBody(String),
    #[error("no tokens to track: give customTokens or tokensListsUrls")]
    EmptyTokenSet,
    #[error("at most {0} tokens per session")]
    TooManyTokens(usize),
    #[error("at most {0} tokensListsUrls per request")]
    TooManyLists(usize),
    #[error("token list {url}: {error}")]
    TokenList { url: String, error: ListError },
    #[error("at most {0} tokens per request")]
    TooManyTokensInRequest(usize),
    #[error("at most {0} session writes a minute; try again shortly")]
    RateLimited(u64),
    #[error("this chain is watching as many wallets as it may; try again later")]
    AtCapacity,
    #[error("other requests kept changing this session at the same moment; try again")]
    SessionBusy,
    #[error(
        "no session for this wallet on this chain; create one with POST /{{chain_id}}/sessions/{{owner}}"
    )]
    SessionNotFound,
    #[error("Last-Event-ID is not a position this server issued")]
    InvalidLastEventId,
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    #[error("the chain could not be read")]
    Chain(#[from] ChainError),
    #[error("the table could not serve this request")]
    Storage(#[from] StorageError),
}

/// Every error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// Stable, machine-readable: `invalid_owner`, `token_list_refused`, …
    code: &'a str,
    message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::UnknownChain(_) | Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TokenList { error, .. } => match error {
                ListError::Fetch(FetchError::InvalidUrl) => StatusCode::BAD_REQUEST,
                ListError::Busy | ListError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            Self::TooManyLists(_) | Self::TooManyTokensInRequest(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::AtCapacity | Self::SessionBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidChainId
            | Self::InvalidOwner(_)
            | Self::InvalidToken(_)
            | Self::InvalidBody(_)
            | Self::EmptyTokenSet
            | Self::TooManyTokens(_)
            | Self::InvalidLastEventId => StatusCode::BAD_REQUEST,
            Self::Chain(_) => StatusCode::BAD_GATEWAY,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(StorageError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            // Refused or undecodable: a fault of the deployment or the code, not worth a retry.
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable, machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidChainId => "invalid_chain_id",
            Self::UnknownChain(_) => "unknown_chain",
            Self::InvalidOwner(_) => "invalid_owner",
            Self::InvalidToken(_) => "invalid_token",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BodyTooLarge(_) => "body_too_large",
            Self::InvalidBody(_) => "invalid_body",
            Self::EmptyTokenSet => "empty_token_set",
            Self::TooManyTokens(_) => "too_many_tokens",
            Self::TooManyLists(_) => "too_many_token_lists",
            Self::TooManyTokensInRequest(_) => "too_many_tokens",
            Self::RateLimited(_) => "rate_limited",
            Self::AtCapacity => "at_capacity",
            Self::SessionBusy => "session_busy",
            Self::TokenList { error, .. } => match error {
                ListError::Fetch(FetchError::InvalidUrl) => "invalid_token_list_url",
                ListError::Fetch(FetchError::Refused(_)) => "token_list_refused",
                ListError::Fetch(FetchError::TooManyRedirects(_)) => {
                    "token_list_too_many_redirects"
                }
                ListError::Fetch(FetchError::Timeout(_)) => "token_list_timeout",
                ListError::Fetch(FetchError::Status(_) | FetchError::Unreachable(_)) => {
                    "token_list_unreachable"
                }
                ListError::Fetch(FetchError::TooLarge(_)) => "token_list_too_large",
                ListError::Invalid(TokenListError::NoTokensForChain { .. }) => "token_list_empty",
                ListError::Invalid(_) => "token_list_invalid",
                ListError::Busy => "token_list_busy",
                ListError::Storage(_) => "storage_unavailable",
            },
            Self::SessionNotFound => "session_not_found",
            Self::InvalidLastEventId => "invalid_last_event_id",
            Self::Chain(_) => "chain_unavailable",
            Self::RequestTimeout(_) => "request_timeout",
            Self::Timeout(_) => "timeout",
            Self::Storage(StorageError::Unavailable(_)) => "storage_unavailable",
            Self::Storage(_) => "internal_error",
        }
    }

    /// Server-side failures are logged with their detail; client errors at debug level.
    pub fn log(&self, method: &Method, path: &str) {
        match self {
            Self::Chain(e) => tracing::error!(%method, path, error = %e, "chain read failed"),
            Self::Storage(e) => tracing::error!(%method, path, error = %e, "storage failed"),
            Self::TokenList { url, error } => {
                tracing::info!(%method, path, url, code = self.code(), error = ?error, "token list refused")
            }
            other => tracing::debug!(%method, path, code = other.code(), "request refused"),
        }
    }

    pub fn token_list(url: &str, error: ListError) -> Self {
        match error {
            // The table failing is not the list's fault; it is answered as any storage failure.
            ListError::Storage(e) => Self::Storage(e),
            error => Self::TokenList {
                url: url.to_string(),
                error,
            },
        }
    }

    pub fn into_response(self) -> Response<ResponseBody> {
        // The Display text of server-side errors is generic on purpose: no internals leak.
        let message = self.to_string();
        body::json(
            self.status(),
            &ErrorBody {
                code: self.code(),
                message,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_outage_asks_for_a_retry_and_a_refusal_does_not() {
        let outage = ApiError::Storage(StorageError::Unavailable("throttled".into()));
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(outage.code(), "storage_unavailable");
        let refused = ApiError::Storage(StorageError::Refused("AccessDeniedException".into()));
        assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(refused.code(), "internal_error");
        // The detail goes to the logs, never to the client.
        assert!(!refused.to_string().contains("AccessDenied"));
    }
}
