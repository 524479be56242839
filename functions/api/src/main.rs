//! API Lambda: every HTTP route behind the function URL, SSE included (response streaming).
// The release build's layout computation of the nested handler futures goes past the default.
#![recursion_limit = "256"]

use std::time::{Duration, Instant};

use api::{State, handler};
use lambda_http::{Error, run_with_streaming_response, service_fn, tracing};

/// Consecutive runtime failures tolerated before the process gives up and exits.
const MAX_QUICK_FAILURES: u32 = 5;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let state = State::start().await?;
    // When a client leaves mid-stream the runtime API may drop the response connection, and
    // the runtime then returns that error. One lost stream must not take the instance (and the
    // invocations queued on it) down, so the runtime loop is resumed; only repeated failures
    // in quick succession end the process.
    let mut failures = 0;
    loop {
        let started = Instant::now();
        match run_with_streaming_response(service_fn(|req| handler(&state, req))).await {
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
                tokio::time::sleep(Duration::from_millis(100) * failures).await;
            }
        }
    }
}
