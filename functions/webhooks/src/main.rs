//! Webhooks Lambda: the table's stream (new feed entries, replay requests) -> signed HTTP
//! deliveries to the subscriptions of each entry's wallet. The shell only: the handler is the
//! library (`lib.rs`; sending in `send.rs`).
// The layout computation of the handler's nested futures (with the metrics flush around it)
// goes past the default.
#![recursion_limit = "256"]

use lambda_runtime::{Error, run, service_fn, tracing};
use live_balances::config::Settings;
use live_balances::runtime::kms::DataKey;
use live_balances::runtime::telemetry::Telemetry;
use live_balances::storage::Table;
use webhooks::{State, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let settings = Settings::from_env()?;
    let table = Table::connect(&settings).await;
    let data_key = DataKey::new(settings.sealing.clone(), table.clone());
    if !data_key.is_configured() {
        return Err("no data key to open webhook secrets: set WEBHOOK_SECRETS_KMS_KEY (AWS) or WEBHOOK_SECRETS_KEY (local)".into());
    }
    let state = State::new(table, &settings.webhooks, data_key, settings.session_ttl)?;
    let telemetry = Telemetry::for_function(&settings.metrics);
    run(service_fn(|event| async {
        let handled = handle(&state, event).await;
        telemetry.flush();
        handled
    }))
    .await
}
