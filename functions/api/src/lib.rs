//! The api: routing, validation and the mapping of every error to an HTTP answer — one router
//! and one set of handlers for both transports. The Lambda shell (`main.rs`, behind the
//! function URL) and the server shell (the `api-server` crate, behind a load balancer) each
//! hand their requests to the service [`app`] builds.
//!
//! Modules, top to bottom (each imports only those below it):
//! - this file: the router — each route is its handler, registered once; the path, methods
//!   and OpenAPI description come from the handler's `#[utoipa::path]`; [`openapi`]: the
//!   document collected from those routes, served at `GET /openapi.json`;
//! - `exchange`: what every request goes through whatever its route (bounds before, the log
//!   and the count after); `extract`: what handlers take from a request;
//! - `routes/`: the handlers, one file per route group (sessions, multi_sessions, balance, sse,
//!   multi_sse, orders, webhooks, health, demo);
//! - below the routes: `request` (the request and parsing its parts), `route_docs` (OpenAPI
//!   rows, parameters and event schemas several routes share), `tracked` (a wallet's live
//!   session and its tokens), `auth` (back ends' API keys), `limits` (rate and session
//!   limits), `stream_admission` (open streams per source and wallet), `requested_tokens` (the
//!   tokens of a session request's lists and custom tokens), `stream` (the SSE engine of both
//!   streams), `snapshot` (a stream's `all_balances`), `feed` (paging a wallet's feed);
//! - shared state: `state` (settings, table, chain readers), `settings` (the api's own beside
//!   the shared ones), `hub` (one change-log tail per
//!   chain, fanned out to the server's streams), `catalog` (list versions and token
//!   metadata), `list_fetch` (fetching token lists safely, once per TTL);
//! - the bottom: `error` (every error and its HTTP answer, `webhook_error` the webhook routes'
//!   own), `body` (response bodies), `telemetry` (the api's metrics).

mod auth;
mod body;
mod catalog;
mod error;
mod error_code;
mod exchange;
mod extract;
mod feed;
mod hub;
mod limits;
mod list_fetch;
mod openapi;
mod request;
#[cfg(test)]
mod request_props;
mod requested_tokens;
mod route_docs;
mod routes;
pub mod settings;
mod shown;
mod snapshot;
mod state;
mod stream;
mod stream_admission;
mod telemetry;
mod tracked;
mod vouch;
mod webhook_error;

use std::sync::Arc;

use axum::{Extension, Router};
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use body::ResponseBody;
pub use error::ApiError;
pub use exchange::BODY_TIMEOUT;
pub use hub::Hub;
pub use request::{ClientAddress, Deadline, Request, client_address};
pub use state::{StartError, State};

use routes::{balance, demo, health, multi_sessions, multi_sse, orders, sessions, sse, webhooks};

/// The api as one service, for either transport: every route, `404` and `405` answered with
/// the JSON error body, trailing slashes trimmed before routing (`/health/` is `/health`).
pub type App = NormalizePath<Router>;

/// Builds the service; it never fails (every error is a JSON answer with a status).
pub fn app(state: Arc<State>) -> App {
    let (routes, doc) = routes().split_for_parts();
    let router = routes
        .merge(demo::routes())
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            exchange::around,
        ))
        .layer(Extension(Arc::new(openapi::finish(doc))))
        .with_state(state);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// The OpenAPI document as `GET /openapi.json` answers it, pretty-printed: what the `openapi`
/// binary prints for the validator and the TypeScript client's type generator (`make
/// client`), no stack needed.
pub fn openapi_document() -> Result<String, serde_json::Error> {
    document().to_pretty_json()
}

/// The OpenAPI document of every route.
fn document() -> utoipa::openapi::OpenApi {
    openapi::finish(routes().into_openapi())
}

/// Every route of the OpenAPI document, each registered from its handler.
fn routes() -> OpenApiRouter<Arc<State>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(sessions::upsert, sessions::get))
        .routes(routes!(multi_sessions::upsert))
        .routes(routes!(balance::get))
        .routes(routes!(balance::batch))
        .routes(routes!(sse::open))
        .routes(routes!(multi_sse::open))
        .routes(routes!(orders::put, orders::delete))
        .routes(routes!(orders::list))
        .routes(routes!(webhooks::create))
        .routes(routes!(webhooks::get, webhooks::delete))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(health::report))
        .routes(routes!(openapi::document))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Method, StatusCode};
    use tower::ServiceExt;

    /// The service over a state whose table no test here reaches.
    async fn app_without_chains() -> App {
        app(Arc::new(State::offline().await))
    }

    async fn answer(app: &App, method: Method, uri: &str, body: Vec<u8>) -> (u16, String) {
        let req = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        (
            status,
            json["code"].as_str().unwrap_or_default().to_string(),
        )
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_the_json_error() {
        let app = app_without_chains().await;
        let ok = (200, String::new());
        assert_eq!(
            answer(&app, Method::GET, "/nope", vec![]).await,
            (404, "not_found".into())
        );
        assert_eq!(
            answer(&app, Method::DELETE, "/openapi.json", vec![]).await,
            (405, "method_not_allowed".into())
        );
        assert_eq!(
            answer(&app, Method::PATCH, "/1/sessions/0xab", vec![]).await,
            (405, "method_not_allowed".into())
        );
        // No route answers HEAD (a GET route would open a stream to drop it).
        assert_eq!(
            answer(&app, Method::HEAD, "/openapi.json", vec![]).await.0,
            StatusCode::METHOD_NOT_ALLOWED.as_u16()
        );
        assert_eq!(
            answer(&app, Method::GET, "/openapi.json/", vec![]).await,
            ok
        );
        assert_eq!(answer(&app, Method::GET, "/demo.css", vec![]).await.0, 200);
        // Bounds come before the route: an oversized body is refused even where no route is.
        let big = vec![b' '; 300_000];
        assert_eq!(
            answer(&app, Method::POST, "/nope", big).await,
            (413, "body_too_large".into())
        );
        // Path segments reach the parser as written: an encoded owner is refused.
        assert_eq!(
            answer(&app, Method::GET, "/1/sessions/%30x12", vec![]).await,
            (400, "invalid_owner".into())
        );
    }
}
