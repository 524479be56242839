//! `GET /openapi.json`: every route, request, answer and SSE event, described from the code
//! (the handlers' `#[utoipa::path]` and the wire types' derived schemas, the rows and events
//! several routes share in [`crate::route_docs`]), never by hand. The routes come from the
//! router itself (`lib.rs` collects them as it registers them, then [`finish`]es the
//! document here): a route registered is a route described. It sits above the routes: they
//! never import it.

use std::sync::Arc;

use axum::Extension;
use http::Response;
use http::StatusCode;
use live_balances::domain::webhook::Delivery;
use live_balances::wire::sse::{Ping, StreamNotice};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::{Modify, OpenApi};

use crate::body::{self, ResponseBody};
use crate::error::ErrorBody;
use crate::error_code::ErrorCode;
use crate::route_docs::{MultiSseEventData, SseEventData};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "live-balances",
        description = "Real-time ERC-20 and native balances and allowances of wallets, pushed over Server-Sent Events."
    ),
    components(schemas(
        SseEventData,
        MultiSseEventData,
        StreamNotice,
        Ping,
        ErrorBody,
        ErrorCode,
        Delivery
    ))
)]
pub(crate) struct ApiDoc;

/// The whole document from what the router collected (its routes over [`ApiDoc`]'s description
/// and shared schemas): the modifications below applied.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let modifiers: [&dyn Modify; 3] = [&OneIdPerOperation, &StreamNoticeCodes, &ApiKeyScheme];
    for modifier in modifiers {
        modifier.modify(&mut doc);
    }
    doc
}

/// The back-end routes' credential: `Authorization: Bearer <API key>`.
struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API key the operator issued (lbk_…); needed by the back-end routes (orders, webhooks).",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("apiKey", SecurityScheme::Http(scheme));
    }
}

/// OpenAPI wants every operation id unique (client generators key operations by it). A handler
/// serving several methods gives them all its one id, so each of them gets its method in front
/// (the session route's `session` becomes `postSession` and `putSession`).
struct OneIdPerOperation;

impl Modify for OneIdPerOperation {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let mut uses = std::collections::HashMap::<String, usize>::new();
        for item in doc.paths.paths.values_mut() {
            for (_, operation) in operations(item) {
                if let Some(id) = &operation.operation_id {
                    *uses.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for item in doc.paths.paths.values_mut() {
            for (method, operation) in operations(item) {
                if let Some(id) = operation.operation_id.as_mut()
                    && uses.get(id.as_str()).is_some_and(|n| *n > 1)
                {
                    let mut chars = id.chars();
                    let first = chars.next().map(|c| c.to_ascii_uppercase());
                    *id = format!("{method}{}{}", first.unwrap_or_default(), chars.as_str());
                }
            }
        }
    }
}

/// A stream's `resync` and `error` events carry the same codes as error answers; the notice
/// type lives in `core`, which knows nothing of the api's list, so its `code` is pointed at
/// [`ErrorCode`] here.
struct StreamNoticeCodes;

impl Modify for StreamNoticeCodes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema, schema::Ref};
        let notice = doc
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("StreamError"));
        if let Some(RefOr::T(Schema::Object(notice))) = notice {
            notice
                .properties
                .insert("code".into(), Ref::from_schema_name("ErrorCode").into());
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|o| (method, o)))
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapiDocument",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)")),
)]
pub async fn document(Extension(doc): Extension<Arc<OpenApiDoc>>) -> Response<ResponseBody> {
    body::json(StatusCode::OK, &*doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_event_is_described() {
        let doc = serde_json::to_value(crate::document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/{chain_id}/sessions/{owner}", &["post", "put", "get"][..]),
            ("/{chain_id}/balance/{owner}/{token}", &["get"]),
            ("/{chain_id}/balances/{owner}", &["post"]),
            ("/sse/{chain_id}/balances/{owner}", &["get"]),
            ("/sessions", &["post"]),
            ("/sse/balances", &["get"]),
            ("/health", &["get"]),
            ("/openapi.json", &["get"]),
            ("/{chain_id}/orders/{owner}/{order_id}", &["put", "delete"]),
            ("/{chain_id}/orders/{owner}", &["get"]),
            ("/{chain_id}/webhooks", &["post"]),
            ("/{chain_id}/webhooks/{id}", &["get", "delete"]),
            ("/{chain_id}/webhooks/{id}/replay", &["post"]),
            ("/{chain_id}/webhooks/{id}/secret", &["post"]),
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
            "Permit2AllowanceUpdate",
            "Permit2Terms",
            "TokenMetadata",
            "SseEventData",
            "MultiSseEventData",
            "SessionsRequest",
            "PairSessionRequest",
            "SessionsView",
            "OrderRequest",
            "OrderView",
            "OrderStatus",
            "WebhookRequest",
            "WebhookCreated",
            "WebhookView",
            "Delivery",
        ] {
            assert!(schemas.contains_key(name), "schema {name}");
        }
        // Unique operation ids: the spec requires them, and generated clients key on them.
        let mut ids = vec![];
        for methods in paths.values() {
            for operation in methods.as_object().unwrap().values() {
                ids.push(
                    operation["operationId"]
                        .as_str()
                        .expect("operationId")
                        .to_string(),
                );
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "operation ids repeat: {ids:?}");
        assert!(
            ids.contains(&"postSession".to_string()) && ids.contains(&"putSession".to_string())
        );
        // Back-end routes name their credential.
        assert_eq!(
            doc["components"]["securitySchemes"]["apiKey"]["scheme"],
            "bearer"
        );
        for (path, method) in [
            ("/{chain_id}/orders/{owner}/{order_id}", "put"),
            ("/{chain_id}/orders/{owner}", "get"),
            ("/{chain_id}/webhooks", "post"),
            ("/{chain_id}/webhooks/{id}/secret", "post"),
        ] {
            assert!(
                paths[path][method]["security"][0].get("apiKey").is_some(),
                "{method} {path}"
            );
        }
        assert!(
            paths["/{chain_id}/sessions/{owner}"]["post"]
                .get("security")
                .is_none()
        );
        // Error codes are a closed set, in error bodies and stream notices alike.
        let codes = schemas["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode enum");
        let listed: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(codes, &listed);
        for schema in ["ErrorBody", "StreamError"] {
            assert_eq!(
                schemas[schema]["properties"]["code"]["$ref"], "#/components/schemas/ErrorCode",
                "{schema}"
            );
        }
        // The request schema says what the body parser enforces.
        let request = &schemas["SessionRequest"];
        assert_eq!(request["additionalProperties"], false, "{request}");
    }
}
