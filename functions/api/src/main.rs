//! The api as a Lambda function behind the function URL (response streaming): the Lambda shell
//! of the router ([`api::app`], as the runtime's axum streaming example serves one). It turns
//! each invocation into the router's request — the raw path, the client address from the
//! function URL's request context, the invocation's deadline.
// The release build's layout computation of the nested handler futures goes past the default.
#![recursion_limit = "256"]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use api::{ClientAddress, Deadline, State};
use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Error, RequestExt, run_with_streaming_response_concurrent, service_fn, tracing};
use live_balances::runtime::backoff::Backoff;
use live_balances::runtime::telemetry::Telemetry;
use tower::ServiceExt;

/// Consecutive runtime failures tolerated before the process gives up and exits.
const MAX_QUICK_FAILURES: u32 = 5;
/// Pause before resuming the runtime loop after failures in a row: 100 ms, doubled.
const RESUME_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));

/// Time left until the invocation's deadline. Lambda gives the deadline in Unix milliseconds;
/// `cargo lambda watch` gives the timeout itself (e.g. `600000`), which no real deadline can
/// be (it would be in 1970), so small values are read as a duration from now.
fn time_left(deadline_ms: u64, now: SystemTime) -> Duration {
    const EARLIEST_REAL_DEADLINE_MS: u64 = 1_000_000_000_000; // 2001-09-09
    if deadline_ms < EARLIEST_REAL_DEADLINE_MS {
        return Duration::from_millis(deadline_ms);
    }
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    deadline.duration_since(now).unwrap_or_default()
}

/// The invocation as the router's request.
fn to_router(req: lambda_http::Request) -> http::Request<axum::body::Body> {
    let client = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone().map(ClientAddress),
        _ => None,
    };
    let deadline = req
        .lambda_context_ref()
        .map(|ctx| Deadline(Instant::now() + time_left(ctx.deadline, SystemTime::now())));
    // The path as the client sent it (the emulator's `/lambda-url/<name>` prefix stripped).
    let raw_path = req.raw_http_path().to_string();
    let (mut parts, body) = req.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    if let Ok(uri) = format!("{raw_path}{query}").parse() {
        parts.uri = uri;
    }
    parts.extensions = http::Extensions::new();
    if let Some(client) = client {
        parts.extensions.insert(client);
    }
    if let Some(deadline) = deadline {
        parts.extensions.insert(deadline);
    }
    http::Request::from_parts(parts, Bytes::copy_from_slice(body.as_ref()).into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let state = Arc::new(State::start().await?);
    let telemetry = Arc::new(Telemetry::for_function(&state.settings.metrics));
    let app = api::app(state);
    // When a client leaves mid-stream the runtime API may drop the response connection, and
    // the runtime then returns that error. One lost stream must not take the instance (and the
    // invocations queued on it) down, so the runtime loop is resumed; only repeated failures
    // in quick succession end the process.
    //
    // Classic Lambda gives an instance one invocation at a time. Where the environment sets
    // `AWS_LAMBDA_MAX_CONCURRENCY` (Lambda Managed Instances, and the local stack's instances)
    // that many invocations are polled for at once: locally, `cargo lambda watch` deadlocks for
    // good once more than 100 invocations wait for an instance (its queue is bounded and is
    // pushed to under the lock its pollers need), and hundreds of streams reconnecting on a
    // loaded machine got there with one poller per instance.
    let mut failures = 0;
    loop {
        let started = Instant::now();
        let serve = {
            let (app, telemetry) = (app.clone(), telemetry.clone());
            service_fn(move |req| {
                let (app, telemetry) = (app.clone(), telemetry.clone());
                async move {
                    let response = app.oneshot(to_router(req)).await;
                    // Once per invocation, as soon as it has its answer (a stream's body runs
                    // on: its end is in the next flush).
                    telemetry.flush();
                    response
                }
            })
        };
        match run_with_streaming_response_concurrent(serve).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                failures = if started.elapsed() > Duration::from_secs(10) {
                    1
                } else {
                    failures + 1
                };
                tracing::warn!(%error, failures, "runtime loop ended with an error; resuming");
                if failures >= MAX_QUICK_FAILURES {
                    return Err(error);
                }
                tokio::time::sleep(RESUME_BACKOFF.pause(failures - 1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_absolute_in_lambda_and_relative_under_cargo_lambda() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let in_a_minute = 1_800_000_060_000;
        assert_eq!(time_left(in_a_minute, now), Duration::from_secs(60));
        assert_eq!(time_left(1_799_999_000_000, now), Duration::from_secs(0));
        assert_eq!(time_left(600_000, now), Duration::from_secs(600));
    }
}
