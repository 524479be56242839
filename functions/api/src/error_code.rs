//! Every machine-readable error code the api answers with, in one list: in an error body
//! `{"code","message"}`, in a pair's result of `POST /sessions`, and in a stream's `resync` and
//! `error` events. The OpenAPI document names them all (schema `ErrorCode`, an enum), so a
//! client generated from it gets them as a closed set; a new code is one line here.

use serde::Serialize;
use utoipa::ToSchema;

/// Declares [`ErrorCode`] and its text from one list of `Variant => "code"` lines, so the
/// enum, its JSON and the strings in logs can never disagree.
macro_rules! error_codes {
    ($($variant:ident => $code:literal,)*) => {
        /// Stable, machine-readable reason of an error answer or a stream notice.
        // The variants are the codes in CamelCase: the derives spell them `snake_case` (a
        // test holds them to the listed text, which is what `as_str` gives).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the list's order.
            #[cfg(test)]
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant,)*];

            /// The code as it travels: `snake_case`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    // Routing and request framing.
    NotFound => "not_found",
    MethodNotAllowed => "method_not_allowed",
    UnsupportedMediaType => "unsupported_media_type",
    BodyTooLarge => "body_too_large",
    QueryTooLong => "query_too_long",
    InvalidBody => "invalid_body",
    RequestTimeout => "request_timeout",
    Timeout => "timeout",
    // Wallets, chains, tokens and pairs.
    InvalidChainId => "invalid_chain_id",
    UnknownChain => "unknown_chain",
    InvalidOwner => "invalid_owner",
    InvalidToken => "invalid_token",
    InvalidPair => "invalid_pair",
    DuplicatePair => "duplicate_pair",
    TooManyPairs => "too_many_pairs",
    NoPairs => "no_pairs",
    // Sessions and their token lists.
    EmptyTokenSet => "empty_token_set",
    TooManyTokens => "too_many_tokens",
    TooManyTokenLists => "too_many_token_lists",
    InvalidTokenListUrl => "invalid_token_list_url",
    TokenListRefused => "token_list_refused",
    TokenListTooManyRedirects => "token_list_too_many_redirects",
    TokenListTimeout => "token_list_timeout",
    TokenListUnreachable => "token_list_unreachable",
    TokenListTooLarge => "token_list_too_large",
    TokenListEmpty => "token_list_empty",
    TokenListInvalid => "token_list_invalid",
    TokenListBusy => "token_list_busy",
    SessionNotFound => "session_not_found",
    SessionBusy => "session_busy",
    TooManySpenders => "too_many_spenders",
    TooManyAllowances => "too_many_allowances",
    RateLimited => "rate_limited",
    UnknownSource => "unknown_source",
    AtCapacity => "at_capacity",
    TooManyStreams => "too_many_streams",
    // Back ends' API keys.
    ApiKeyRequired => "api_key_required",
    InvalidApiKey => "invalid_api_key",
    // Orders.
    InvalidOrderId => "invalid_order_id",
    InvalidOrder => "invalid_order",
    TooManyOrders => "too_many_orders",
    OrderNotFound => "order_not_found",
    OrderIdTaken => "order_id_taken",
    // Webhooks.
    InvalidWebhookUrl => "invalid_webhook_url",
    WebhookUrlRefused => "webhook_url_refused",
    NoWallets => "no_wallets",
    TooManyWallets => "too_many_wallets",
    TooManyWebhooksForWallet => "too_many_webhooks_for_wallet",
    NoEvents => "no_events",
    UnknownEvent => "unknown_event",
    WebhookNotFound => "webhook_not_found",
    TooManyWebhooks => "too_many_webhooks",
    WebhookSecretsUnavailable => "webhook_secrets_unavailable",
    // Streams, once their 200 is sent (`resync` and `error` events).
    PositionExpired => "position_expired",
    UnreadableLastEventId => "unreadable_last_event_id",
    SessionExpired => "session_expired",
    // The service's own trouble.
    ChainUnavailable => "chain_unavailable",
    StorageUnavailable => "storage_unavailable",
    InternalError => "internal_error",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_travels_as_its_text_and_none_repeats() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, code.as_str(), "{code:?}");
            assert!(seen.insert(code.as_str()), "{code:?} repeats");
            let text = code.as_str();
            assert!(
                !text.is_empty() && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{text}"
            );
        }
    }
}
