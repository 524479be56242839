//! The api: routing, validation and the mapping of every error to an HTTP answer — one router
//! and one set of handlers for both transports. The Lambda shell (`main.rs`, behind the
//! function URL) and the server shell (the `server` crate, behind a load balancer) each turn
//! their requests into a [`Request`] and hand it to [`handler`].
//!
//! Modules, top to bottom (each imports only those below it):
//! - this file: the router; [`openapi`]: `GET /openapi.json`, listing the routes;
//! - `routes/`: the handlers, one file per route group (sessions, multi_sessions, balance, sse,
//!   multi_sse, orders, webhooks, health, demo);
//! - below the routes: `request` (the request and parsing its parts), `route_docs` (OpenAPI
//!   rows, parameters and event schemas several routes share), `tracked` (a wallet's live
//!   session and its tokens), `auth` (back ends' API keys), `limits` (rate and session
//!   limits), `stream_admission` (open streams per source and wallet), `requested_tokens` (the
//!   tokens of a session request's lists and custom tokens), `stream` (the SSE engine of both
//!   streams), `snapshot` (a stream's `all_balances`), `feed` (paging a wallet's feed);
//! - shared state: `state` (settings, table, chain readers), `hub` (one change-log tail per
//!   chain, fanned out to the server's streams), `catalog` (list versions and token
//!   metadata), `list_fetch` (fetching token lists safely, once per TTL);
//! - the bottom: `error` (every error and its HTTP answer, `webhook_error` the webhook routes'
//!   own), `body` (response bodies), `telemetry` (the api's metrics).

mod auth;
mod body;
mod catalog;
mod error;
mod error_code;
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
mod snapshot;
mod state;
mod stream;
mod stream_admission;
mod telemetry;
mod tracked;
mod webhook_error;

use std::convert::Infallible;

use http::{Method, Response};

pub use body::ResponseBody;
pub use error::ApiError;
pub use hub::Hub;
pub use openapi::pretty_document as openapi_document;
pub use request::{ClientAddress, Deadline, Request, client_address};
pub use state::{StartError, State};

use routes::sessions::Upsert;
use routes::{balance, demo, health, multi_sessions, multi_sse, orders, sessions, sse, webhooks};

/// Routes one request. Never fails: every error becomes a JSON answer with a status.
pub async fn handler(state: &State, req: Request) -> Result<Response<ResponseBody>, Infallible> {
    let method = req.method().clone();
    // As the client sent it: percent-encoding is the owner parser's to judge.
    let path = req.uri().path().to_string();
    let shape = route_label(&path);
    let result = route(state, req, &method, &path).await;
    let response = result.unwrap_or_else(|error| {
        error.log(&method, &path);
        if let Some(kind) = error.refusal() {
            telemetry::refused(kind);
        }
        error.into_response()
    });
    telemetry::request(&method, shape, response.status());
    Ok(response)
}

/// The route a path takes, as the metrics name it (its shape: no path is ever a label).
fn route_label(path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] | ["demo"] | ["demo.js"] | ["demo.css"] => "/demo",
        segments => route_shape(segments).unwrap_or("other"),
    }
}

/// The shape of each route that answers several methods (another method: `405`).
fn route_shape(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["health"] => "/health",
        ["openapi.json"] => "/openapi.json",
        ["sessions"] => "/sessions",
        ["sse", "balances"] => "/sse/balances",
        [_, "sessions", _] => "/{chain}/sessions/{owner}",
        ["sse", _, "balances", _] => "/sse/{chain}/balances/{owner}",
        [_, "balance", _, _] => "/{chain}/balance/{owner}/{token}",
        [_, "balances", _] => "/{chain}/balances/{owner}",
        [_, "orders", _, _] => "/{chain}/orders/{owner}/{id}",
        [_, "orders", _] => "/{chain}/orders/{owner}",
        [_, "webhooks"] => "/{chain}/webhooks",
        [_, "webhooks", _] => "/{chain}/webhooks/{id}",
        [_, "webhooks", _, "replay"] => "/{chain}/webhooks/{id}/replay",
        [_, "webhooks", _, "secret"] => "/{chain}/webhooks/{id}/secret",
        _ => return None,
    })
}

async fn route(
    state: &State,
    req: Request,
    method: &Method,
    path: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    request::check_size(&req, &state.settings.bounds)?;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Back-end routes: the API key is checked before anything else of the request.
    let (req, caller) = match segments.as_slice() {
        [_, "orders", ..] | [_, "webhooks", ..] if is_back_end_method(method) => {
            let (req, caller) = auth::back_end(state, req).await?;
            (req, Some(caller))
        }
        _ => (req, None),
    };
    let caller = caller.as_ref();
    match (method, segments.as_slice()) {
        (&Method::GET, ["health"]) => health::report(state).await,
        (&Method::GET, ["openapi.json"]) => Ok(openapi::document().await),
        (&Method::GET, [""] | ["demo"]) => Ok(demo::serve(demo::Asset::Page)),
        (&Method::GET, ["demo.js"]) => Ok(demo::serve(demo::Asset::Script)),
        (&Method::GET, ["demo.css"]) => Ok(demo::serve(demo::Asset::Style)),
        (&Method::POST, ["sessions"]) => multi_sessions::upsert(state, &req).await,
        (&Method::GET, ["sse", "balances"]) => multi_sse::open(state, &req).await,
        (&Method::POST, [chain, "sessions", owner]) => {
            sessions::upsert(state, &req, chain, owner, Upsert::CreateOrAdd).await
        }
        (&Method::PUT, [chain, "sessions", owner]) => {
            sessions::upsert(state, &req, chain, owner, Upsert::AddOnly).await
        }
        (&Method::GET, [chain, "sessions", owner]) => sessions::get(state, chain, owner).await,
        (&Method::GET, [chain, "balance", owner, token]) => {
            balance::get(state, &req, chain, owner, token).await
        }
        (&Method::POST, [chain, "balances", owner]) => {
            balance::batch(state, &req, chain, owner).await
        }
        (&Method::GET, ["sse", chain, "balances", owner]) => {
            sse::open(state, &req, chain, owner).await
        }
        (&Method::PUT, [chain, "orders", owner, id]) => {
            orders::put(state, &req, back_end(caller)?, chain, owner, id).await
        }
        (&Method::DELETE, [chain, "orders", owner, id]) => {
            orders::delete(state, back_end(caller)?, chain, owner, id).await
        }
        (&Method::GET, [chain, "orders", owner]) => {
            orders::list(state, back_end(caller)?, chain, owner).await
        }
        (&Method::POST, [chain, "webhooks"]) => {
            webhooks::create(state, &req, back_end(caller)?, chain).await
        }
        (&Method::GET, [chain, "webhooks", id]) => {
            webhooks::get(state, back_end(caller)?, chain, id).await
        }
        (&Method::DELETE, [chain, "webhooks", id]) => {
            webhooks::delete(state, back_end(caller)?, chain, id).await
        }
        (&Method::POST, [chain, "webhooks", id, "replay"]) => {
            webhooks::replay(state, back_end(caller)?, chain, id).await
        }
        (&Method::POST, [chain, "webhooks", id, "secret"]) => {
            webhooks::rotate_secret(state, back_end(caller)?, chain, id).await
        }
        (_, segments) if route_shape(segments).is_some() => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

/// The methods back-end routes answer (others are refused as not allowed, key or not).
fn is_back_end_method(method: &Method) -> bool {
    [Method::GET, Method::PUT, Method::POST, Method::DELETE].contains(method)
}

/// The authenticated caller of a back-end route (the router authenticated every such route).
fn back_end(caller: Option<&auth::BackEnd>) -> Result<&auth::BackEnd, ApiError> {
    caller.ok_or(ApiError::ApiKeyRequired)
}
