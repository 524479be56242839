//! `GET /openapi.json`: every route, request, answer and SSE event, described from the code
//! (the handlers' `#[utoipa::path]` and the wire types' derived schemas), never by hand.

use http::Response;
use http::StatusCode;
use live_balances::sse::{AllBalances, AllowanceUpdate, BalanceUpdate, Ping, StreamError};
use serde::Serialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::body::{self, ResponseBody};

/// The events of `GET /sse/{chain_id}/balances/{owner}`: each `event:` name and the JSON of
/// its `data:` line. Documentation only; [`live_balances::sse::SseEvent`] writes them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described, never built
pub(crate) enum SseEventData {
    AllBalances(AllBalances),
    BalanceUpdate(BalanceUpdate),
    AllowanceUpdate(AllowanceUpdate),
    Ping(Ping),
    /// The `Last-Event-ID` is no longer in the feed; an `all_balances` follows.
    Resync(StreamError),
    /// The stream ends for the reason given (e.g. `session_expired`).
    Error(StreamError),
}

/// The path parameters every per-wallet route starts with. Documentation only: the router
/// parses them ([`crate::request::wallet`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
pub(crate) struct WalletPath {
    /// A chain this deployment serves, e.g. 1
    chain_id: u64,
    /// Wallet address: 0x + 40 hex, lower/upper case or EIP-55 checksummed; not the zero address
    owner: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "live-balances",
        description = "Real-time ERC-20 and native balances and allowances of wallets, pushed over Server-Sent Events."
    ),
    paths(
        crate::sessions::upsert,
        crate::sessions::get,
        crate::balance::get,
        crate::balance::batch,
        crate::sse::open,
        crate::health::report,
        document,
    ),
    components(schemas(SseEventData, StreamError, Ping))
)]
pub(crate) struct ApiDoc;

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)")),
)]
pub async fn document() -> Response<ResponseBody> {
    body::json(StatusCode::OK, &ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_event_is_described() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/{chain_id}/sessions/{owner}", &["post", "put", "get"][..]),
            ("/{chain_id}/balance/{owner}/{token}", &["get"]),
            ("/{chain_id}/balances/{owner}", &["post"]),
            ("/sse/{chain_id}/balances/{owner}", &["get"]),
            ("/health", &["get"]),
            ("/openapi.json", &["get"]),
        ] {
            for method in methods {
                assert!(paths[path].get(method).is_some(), "{method} {path}");
            }
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "SessionRequest",
            "SessionView",
            "BatchRequest",
            "ErrorBody",
            "AllBalances",
            "BalanceUpdate",
            "AllowanceUpdate",
            "TokenMetadata",
            "SseEventData",
        ] {
            assert!(schemas.contains_key(name), "schema {name}");
        }
        // The request schema says what the body parser enforces.
        let request = &schemas["SessionRequest"];
        assert_eq!(request["additionalProperties"], false, "{request}");
    }
}
