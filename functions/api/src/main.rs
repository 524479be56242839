//! API Lambda: every HTTP route behind the function URL, SSE included (response streaming).

use api::{State, handler};
use lambda_http::{Error, run_with_streaming_response, service_fn, tracing};
use live_balances::config::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let state = State::connect(settings).await?;
    run_with_streaming_response(service_fn(|req| handler(&state, req))).await
}
