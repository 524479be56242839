//! What happens to every request whatever its route, on both transports — the layer around
//! the router's every route and fallback: `HEAD` refused (no route answers it), the query and
//! the body bounded before anything of them is parsed, then after the answer the refusal
//! logged and the request counted by its route's shape.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::{ApiError, Failure};
use crate::request;
use crate::routes::demo;
use crate::state::State;
use crate::telemetry;

/// Longest a client may take to send its body once the headers are in (the function URL has
/// the whole body before the function runs; the server reads it from the connection).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The layer's function (`axum::middleware::from_fn_with_state`).
pub async fn around(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    // As the client sent it: percent-encoding is the owner parser's to judge.
    let path = req.uri().path().to_string();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = match bounded(&state, route.is_some(), req).await {
        Ok(req) => next.run(req).await,
        Err(error) => error.into_response(),
    };
    if let Some(Failure(error)) = response.extensions().get::<Failure>() {
        error.log(&method, &path);
        if let Some(kind) = error.refusal() {
            telemetry::refused(kind);
        }
    }
    let shape = route.map_or_else(|| "other".to_string(), |r| route_label(r.as_str()));
    telemetry::request(&method, shape, response.status());
    response
}

/// The request with its whole body, or why it is refused before its route sees it.
async fn bounded(state: &State, routed: bool, req: Request) -> Result<Request, ApiError> {
    // axum would answer `HEAD` with a `GET` route (opening a stream to drop it); no route
    // answers it here.
    if routed && req.method() == Method::HEAD {
        return Err(ApiError::MethodNotAllowed);
    }
    let bounds = &state.settings.bounds;
    let (parts, body) = req.into_parts();
    let max_body = bounds.max_body_bytes;
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, max_body).collect());
    let body = match collected.await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::BodyTooLarge(max_body));
        }
        Ok(Err(error)) => {
            return Err(ApiError::InvalidBody(format!(
                "the body could not be read: {error}"
            )));
        }
        Err(_) => return Err(ApiError::RequestTimeout(BODY_TIMEOUT.as_secs())),
    };
    let req = http::Request::from_parts(parts, body);
    request::check_size(&req, bounds)?;
    Ok(req.map(axum::body::Body::from))
}

/// The route as the metrics name it (its shape, never a path): `/{chain}/sessions/{owner}`,
/// every file of the demo page `/demo`.
fn route_label(route: &str) -> String {
    if demo::serves(route) {
        return "/demo".to_string();
    }
    route
        .replace("{chain_id}", "{chain}")
        .replace("{order_id}", "{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_route_shapes() {
        assert_eq!(
            route_label("/{chain_id}/orders/{owner}/{order_id}"),
            "/{chain}/orders/{owner}/{id}"
        );
        assert_eq!(route_label("/demo.js"), "/demo");
        assert_eq!(route_label("/"), "/demo");
        assert_eq!(route_label("/openapi.json"), "/openapi.json");
    }
}
