//! Fanout Lambda: DynamoDB stream records of balance items -> per-wallet change feed. The
//! shell only: the handler is the library (`lib.rs`, one module).

use fanout::settings::FanoutSettings;
use fanout::{State, handle};
use lambda_runtime::{Error, run, service_fn, tracing};
use live_balances::runtime::telemetry::Telemetry;
use live_balances::storage::Table;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let settings = FanoutSettings::from_env()?;
    let state = State::new(Table::connect(&settings).await, &settings);
    let telemetry = Telemetry::for_function(&settings.metrics);
    run(service_fn(|event| async {
        let handled = handle(&state, event).await;
        telemetry.flush();
        handled
    }))
    .await
}
