//! CORS answered by the function itself, for runs without a function URL in front (the local
//! stack). In AWS the function URL's CORS configuration does this and `CORS_ALLOW_ORIGIN` is
//! left unset, so headers are never doubled.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, HeaderValue,
};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use lambda_http::Response;

use crate::body::ResponseBody;

/// The answer to a preflight request (`OPTIONS` with `Access-Control-Request-Method`).
pub fn preflight(allow_origin: &str) -> Response<ResponseBody> {
    let mut response = Response::new(Empty::new().map_err(|e| match e {}).boxed_unsync());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, OPTIONS"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, last-event-id"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    allow(&mut response, allow_origin);
    response
}

/// Adds the allowed origin to any answer.
pub fn allow(response: &mut Response<ResponseBody>, allow_origin: &str) {
    if let Ok(origin) = HeaderValue::from_str(allow_origin) {
        response
            .headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
}

pub fn is_preflight(method: &Method) -> bool {
    method == Method::OPTIONS
}
