//! What the api reports, every name and label in one place (the scheme is core's
//! `telemetry`): requests by route, method and status code; refusals by kind; stream openings
//! and the streams open; sessions written. Labels are route shapes and codes, never a path.

use http::{Method, StatusCode};
use metrics::{counter, gauge};

/// One request answered.
pub fn request(method: &Method, route: String, status: StatusCode) {
    counter!(
        "api_requests_total",
        "route" => route,
        "method" => method_label(method),
        "code" => status.as_str().to_string(),
    )
    .increment(1);
}

/// A request refused by a bound (`rate_limited`, `too_many_streams`, `at_capacity`).
pub fn refused(kind: &'static str) {
    counter!("api_refusals_total", "kind" => kind).increment(1);
}

/// A session stored (created or changed) on `chain_id`.
pub fn session_written(chain_id: u64) {
    counter!("api_sessions_written_total", "chain" => chain_id.to_string()).increment(1);
}

/// Counts a stream as open for as long as it lives (`api_streams_open`: this process's).
#[derive(Debug)]
pub struct OpenStream(());

impl OpenStream {
    pub fn opened() -> Self {
        counter!("api_stream_opens_total").increment(1);
        gauge!("api_streams_open").increment(1.0);
        Self(())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        gauge!("api_streams_open").decrement(1.0);
    }
}

/// Methods as a closed set: an extension method a client invents is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
