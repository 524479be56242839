//! Webhooks Lambda: the table's stream (new feed entries, replay requests) -> signed HTTP
//! deliveries to the subscriptions of each entry's wallet.

use lambda_runtime::{Error, run, service_fn, tracing};
use live_balances::config::Settings;
use live_balances::storage::{Table, dynamodb_client};
use webhooks::{State, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let client = dynamodb_client(settings.dynamodb_endpoint.as_deref()).await;
    let state = State::new(Table::new(client, &settings.table_name), &settings.webhooks)?;
    run(service_fn(|event| handle(&state, event))).await
}
