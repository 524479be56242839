//! Webhooks Lambda: the table's stream (new feed entries, replay requests) -> signed HTTP
//! deliveries to the subscriptions of each entry's wallet. The shell only: the handler is the
//! library (`lib.rs`; sending in `send.rs`).

use lambda_runtime::{Error, run, service_fn, tracing};
use live_balances::config::Settings;
use live_balances::storage::Table;
use webhooks::{State, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let state = State::new(Table::connect(&settings).await, &settings.webhooks)?;
    run(service_fn(|event| handle(&state, event))).await
}
