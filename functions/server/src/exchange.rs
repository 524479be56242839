//! One request through the server: the body read within size and time limits, the client's
//! address attached (the load balancer's `X-Forwarded-For` entry, or the peer), the router
//! called within the request time limit. Every refusal is the router's JSON error.

use std::net::SocketAddr;
use std::time::Duration;

use api::{ApiError, ResponseBody, State, client_address, handler};
use http::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use live_balances::config::ServerSettings;

/// Longest the client may take to send its body once the headers are in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer of `GET /metrics`: Prometheus text.
pub fn metrics(text: String) -> Response<ResponseBody> {
    let mut response =
        Response::new(http_body_util::Full::new(bytes::Bytes::from(text)).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// Answers one request; never fails (every error is an HTTP answer).
pub async fn answer(
    state: &State,
    server: &ServerSettings,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Response<ResponseBody> {
    let (mut parts, body) = req.into_parts();
    let max_body = state.settings.bounds.max_body_bytes;
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, max_body).collect());
    let body = match collected.await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return ApiError::BodyTooLarge(max_body).into_response();
        }
        Ok(Err(error)) => {
            return ApiError::InvalidBody(format!("the body could not be read: {error}"))
                .into_response();
        }
        Err(_) => return ApiError::RequestTimeout(BODY_TIMEOUT.as_secs()).into_response(),
    };
    // Only what this shell puts there: nothing of the connection's leaks into the router.
    parts.extensions = http::Extensions::new();
    parts.extensions.insert(client_address(
        &parts.headers,
        peer.ip(),
        server.trust_forwarded_for,
    ));
    let req = http::Request::from_parts(parts, body);
    let routed = tokio::time::timeout(server.request_timeout, handler(state, req));
    match routed.await {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => ApiError::Timeout(server.request_timeout.as_secs()).into_response(),
    }
}
