//! Every way a request can fail, and the one place errors become HTTP answers: a status and
//! a JSON body `{"code","message"}`. Details of server-side failures go to the log only.

use std::sync::Arc;

use axum::response::IntoResponse;
use http::Response;
use http::{Method, StatusCode};
use live_balances::chain::ChainError;
use live_balances::storage::StorageError;
use live_balances::wire::sse::StreamNotice;
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

use crate::body::{self, ResponseBody};
use crate::error_code::ErrorCode;
use crate::list_fetch::{FetchError, ListError};
use crate::webhook_error::WebhookError;
use live_balances::domain::list_document::TokenListError;
use live_balances::feed::pairs::{PairError, PairListError};

/// `Retry-After` of a stream refused for want of a slot.
const STREAM_SLOT_RETRY_SECS: u64 = 30;

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
    #[error("at most {limit} {what} a minute; try again in {retry_after} s")]
    RateLimited {
        /// What is counted, e.g. "session writes from one source".
        what: &'static str,
        limit: u64,
        /// Seconds until the counting window ends.
        retry_after: u64,
    },
    #[error("at most {max} streams open at once {whose}; close one, or try again later")]
    TooManyStreams { whose: &'static str, max: u32 },
    #[error("at most {0} spenders per session")]
    TooManySpenders(usize),
    #[error(
        "a session tracks at most {max} allowances (tokens × spenders); this one would track {count}"
    )]
    TooManyAllowances { max: usize, count: usize },
    #[error("the query string is longer than {0} bytes")]
    QueryTooLong(usize),
    #[error("the request's source address is unknown, so its rate limits cannot be kept")]
    UnknownSource,
    #[error("this route is for back ends: send Authorization: Bearer <API key>")]
    ApiKeyRequired,
    #[error("the API key is not valid (unknown, revoked or malformed)")]
    InvalidApiKey,
    #[error("this order id is registered for this wallet by another API key's tenant")]
    OrderIdTaken,
    #[error("this chain is watching as many wallets as it may; try again later")]
    AtCapacity,
    #[error("other requests kept changing this session at the same moment; try again")]
    SessionBusy,
    #[error(
        "no session for this wallet on this chain; create one with POST /{{chain_id}}/sessions/{{owner}}"
    )]
    SessionNotFound,
    #[error("wallets[{index}] {value:?}: {error}")]
    Pair {
        index: usize,
        value: String,
        error: Box<ApiError>,
    },
    #[error("a pair is written chainId:owner, e.g. 1:0xd8da6bf26964af9d7eed9e03e53415d37aa96045")]
    MalformedPair,
    #[error("wallets[{index}] {value:?} repeats wallets[{first}]")]
    DuplicatePair {
        index: usize,
        value: String,
        first: usize,
    },
    #[error("at most {max} pairs per request, got {count}")]
    TooManyPairs { max: usize, count: usize },
    #[error("no wallets given: name at least one chainId:owner pair")]
    NoPairs,
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    #[error("order id: {0}")]
    InvalidOrderId(String),
    #[error("{0}")]
    InvalidOrder(String),
    #[error("at most {0} open orders per wallet")]
    TooManyOrders(usize),
    #[error("no such order for this wallet on this chain")]
    OrderNotFound,
    #[error("the chain could not be read")]
    Chain(#[from] ChainError),
    #[error("the table could not serve this request")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

/// Why a stream sends `resync` (a pair starts over from a fresh `all_balances`) or `error`
/// (a pair, or the whole stream, ends): the codes a stream answers with once its 200 is sent,
/// as the event's `{"code","message"}` — beside [`ApiError`]'s codes, which answer before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StreamCode {
    #[error("Last-Event-ID is no longer in the change feed; a fresh all_balances follows")]
    PositionExpired,
    #[error("Last-Event-ID is not an id of this stream; a fresh all_balances follows")]
    UnreadableLastEventId,
    #[error("no session for this wallet on this chain; create one with POST /sessions")]
    SessionNotFound,
    #[error("the session has expired; create it again")]
    SessionExpired,
    #[error("the stream will resume on reconnect")]
    StorageUnavailable,
}

impl StreamCode {
    /// Stable, machine-readable code for clients.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::PositionExpired => ErrorCode::PositionExpired,
            Self::UnreadableLastEventId => ErrorCode::UnreadableLastEventId,
            Self::SessionNotFound => ErrorCode::SessionNotFound,
            Self::SessionExpired => ErrorCode::SessionExpired,
            Self::StorageUnavailable => ErrorCode::StorageUnavailable,
        }
    }

    /// The data of the `resync` or `error` event.
    pub fn notice(self) -> StreamNotice {
        StreamNotice {
            code: self.code().as_str().into(),
            message: self.to_string(),
        }
    }
}

/// Every error answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// Stable, machine-readable: `invalid_owner`, `token_list_refused`, …
    code: ErrorCode,
    message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Pair { error, .. } => error.status(),
            Self::Webhook(error) => error.status(),
            Self::NotFound
            | Self::UnknownChain(_)
            | Self::SessionNotFound
            | Self::OrderNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TokenList { error, .. } => match error {
                ListError::Fetch(FetchError::InvalidUrl) => StatusCode::BAD_REQUEST,
                ListError::Busy | ListError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            Self::TooManyLists(_) | Self::TooManyTokensInRequest(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } | Self::TooManyStreams { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QueryTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::ApiKeyRequired | Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::OrderIdTaken => StatusCode::CONFLICT,
            Self::AtCapacity | Self::SessionBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::InvalidChainId
            | Self::InvalidOwner(_)
            | Self::InvalidToken(_)
            | Self::InvalidBody(_)
            | Self::EmptyTokenSet
            | Self::TooManyTokens(_)
            | Self::MalformedPair
            | Self::DuplicatePair { .. }
            | Self::TooManyPairs { .. }
            | Self::NoPairs
            | Self::InvalidOrderId(_)
            | Self::InvalidOrder(_)
            | Self::TooManyOrders(_)
            | Self::TooManySpenders(_)
            | Self::TooManyAllowances { .. }
            | Self::UnknownSource => StatusCode::BAD_REQUEST,
            Self::Chain(_) => StatusCode::BAD_GATEWAY,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Storage(StorageError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            // Refused or undecodable: a fault of the deployment or the code, not worth a retry.
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable, machine-readable code for clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::InvalidChainId => ErrorCode::InvalidChainId,
            Self::UnknownChain(_) => ErrorCode::UnknownChain,
            Self::InvalidOwner(_) => ErrorCode::InvalidOwner,
            Self::InvalidToken(_) => ErrorCode::InvalidToken,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::BodyTooLarge(_) => ErrorCode::BodyTooLarge,
            Self::InvalidBody(_) => ErrorCode::InvalidBody,
            Self::EmptyTokenSet => ErrorCode::EmptyTokenSet,
            Self::TooManyTokens(_) => ErrorCode::TooManyTokens,
            Self::TooManyLists(_) => ErrorCode::TooManyTokenLists,
            Self::TooManyTokensInRequest(_) => ErrorCode::TooManyTokens,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::TooManyStreams { .. } => ErrorCode::TooManyStreams,
            Self::TooManySpenders(_) => ErrorCode::TooManySpenders,
            Self::TooManyAllowances { .. } => ErrorCode::TooManyAllowances,
            Self::QueryTooLong(_) => ErrorCode::QueryTooLong,
            Self::UnknownSource => ErrorCode::UnknownSource,
            Self::ApiKeyRequired => ErrorCode::ApiKeyRequired,
            Self::InvalidApiKey => ErrorCode::InvalidApiKey,
            Self::OrderIdTaken => ErrorCode::OrderIdTaken,
            Self::AtCapacity => ErrorCode::AtCapacity,
            Self::SessionBusy => ErrorCode::SessionBusy,
            Self::TokenList { error, .. } => match error {
                ListError::Fetch(FetchError::InvalidUrl) => ErrorCode::InvalidTokenListUrl,
                ListError::Fetch(FetchError::Refused(_)) => ErrorCode::TokenListRefused,
                ListError::Fetch(FetchError::TooManyRedirects(_)) => {
                    ErrorCode::TokenListTooManyRedirects
                }
                ListError::Fetch(FetchError::Timeout(_)) => ErrorCode::TokenListTimeout,
                ListError::Fetch(FetchError::Status(_) | FetchError::Unreachable(_)) => {
                    ErrorCode::TokenListUnreachable
                }
                ListError::Fetch(FetchError::TooLarge(_)) => ErrorCode::TokenListTooLarge,
                ListError::Invalid(TokenListError::NoTokensForChain { .. }) => {
                    ErrorCode::TokenListEmpty
                }
                ListError::Invalid(_) => ErrorCode::TokenListInvalid,
                ListError::Busy => ErrorCode::TokenListBusy,
                ListError::Storage(_) => ErrorCode::StorageUnavailable,
            },
            Self::SessionNotFound => ErrorCode::SessionNotFound,
            Self::Pair { error, .. } => error.code(),
            Self::Webhook(error) => error.code(),
            Self::MalformedPair => ErrorCode::InvalidPair,
            Self::DuplicatePair { .. } => ErrorCode::DuplicatePair,
            Self::TooManyPairs { .. } => ErrorCode::TooManyPairs,
            Self::NoPairs => ErrorCode::NoPairs,
            Self::InvalidOrderId(_) => ErrorCode::InvalidOrderId,
            Self::InvalidOrder(_) => ErrorCode::InvalidOrder,
            Self::TooManyOrders(_) => ErrorCode::TooManyOrders,
            Self::OrderNotFound => ErrorCode::OrderNotFound,
            Self::Chain(_) => ErrorCode::ChainUnavailable,
            Self::RequestTimeout(_) => ErrorCode::RequestTimeout,
            Self::Timeout(_) => ErrorCode::Timeout,
            Self::Storage(StorageError::Unavailable(_)) => ErrorCode::StorageUnavailable,
            Self::Storage(_) => ErrorCode::InternalError,
        }
    }

    /// The kind of bound that refused the request, if one did (its error code).
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            Self::RateLimited { .. } | Self::TooManyStreams { .. } | Self::AtCapacity => {
                Some(self.code().as_str())
            }
            _ => None,
        }
    }

    /// Server-side failures are logged with their detail; client errors at debug level.
    pub fn log(&self, method: &Method, path: &str) {
        match self {
            Self::Chain(e) => tracing::error!(%method, path, error = %e, "chain read failed"),
            Self::Storage(e) => tracing::error!(%method, path, error = %e, "storage failed"),
            Self::TokenList { url, error } => {
                tracing::info!(%method, path, url, code = %self.code(), error = ?error, "token list refused")
            }
            other => tracing::debug!(%method, path, code = %other.code(), "request refused"),
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

    /// The error of the pair at `index` (written `value`) of a multi-wallet request.
    pub fn of_pair(index: usize, value: impl Into<String>, error: ApiError) -> Self {
        Self::Pair {
            index,
            value: value.into(),
            error: Box::new(error),
        }
    }

    /// The answer's body. The Display text of server-side errors is generic on purpose: no
    /// internals leak.
    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
        }
    }

    /// How long a refused client should wait before asking again (`Retry-After`).
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => Some((*retry_after).max(1)),
            // A stream slot frees when a stream ends; nothing says when.
            Self::TooManyStreams { .. } => Some(STREAM_SLOT_RETRY_SECS),
            Self::Pair { error, .. } => error.retry_after(),
            _ => None,
        }
    }

    /// The answer: the status, the JSON body and the headers the error asks for.
    pub fn answer(&self) -> Response<ResponseBody> {
        let mut response = body::json(self.status(), &self.body());
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after() {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Set on an error's answer so the layer around every route (`crate::exchange`), which knows
/// the method and path, logs it and counts a refusal.
#[derive(Debug, Clone)]
pub struct Failure(pub Arc<ApiError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let mut response = self.answer().map(axum::body::Body::new);
        response.extensions_mut().insert(Failure(Arc::new(self)));
        response
    }
}

impl From<PairListError> for ApiError {
    fn from(e: PairListError) -> Self {
        match e {
            PairListError::Empty => Self::NoPairs,
            PairListError::TooMany { max, count } => Self::TooManyPairs { max, count },
            PairListError::Duplicate {
                index,
                value,
                first,
            } => Self::DuplicatePair {
                index,
                value,
                first,
            },
            PairListError::Invalid {
                index,
                value,
                error,
            } => Self::of_pair(
                index,
                value,
                match error {
                    PairError::Malformed => Self::MalformedPair,
                    PairError::ChainId => Self::InvalidChainId,
                    PairError::Owner(e) => Self::InvalidOwner(e.to_string()),
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pairs_error_names_the_pair_and_keeps_its_code() {
        let error = ApiError::of_pair(2, "99:0xabc", ApiError::UnknownChain(99));
        assert_eq!(error.status(), StatusCode::NOT_FOUND);
        assert_eq!(error.code(), ErrorCode::UnknownChain);
        assert_eq!(
            error.to_string(),
            "wallets[2] \"99:0xabc\": chain 99 is not served here"
        );
    }

    #[test]
    fn a_table_outage_asks_for_a_retry_and_a_refusal_does_not() {
        let outage = ApiError::Storage(StorageError::Unavailable("throttled".into()));
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(outage.code(), ErrorCode::StorageUnavailable);
        let refused = ApiError::Storage(StorageError::Refused("AccessDeniedException".into()));
        assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(refused.code(), ErrorCode::InternalError);
        // The detail goes to the logs, never to the client.
        assert!(!refused.to_string().contains("AccessDenied"));
    }
}
