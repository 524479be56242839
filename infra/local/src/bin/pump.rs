//! Local stream pump: DynamoDB Local's stream -> one function under `cargo lambda watch`
//! (`PUMP_INVOKE_URL`: the fanout's or the webhooks function's Invoke API; one pump process
//! per function, as one event source mapping per function in AWS). `PUMP_FROM=latest` starts
//! at the end of the stream instead of its beginning; `PUMP_FILTERS` (a JSON array of Lambda
//! filter patterns) drops the records the function's event source mapping would not pass.

use std::time::Duration;

use anyhow::Context;
use local_stack::pump::{Pump, PumpConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    local_stack::init_tracing();
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let endpoint = var("DYNAMODB_ENDPOINT")?;
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let config = PumpConfig {
        table_name: var("TABLE_NAME")?,
        invoke_url: var("PUMP_INVOKE_URL")?,
        batch_size: std::env::var("PUMP_BATCH_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
        max_retries: std::env::var("PUMP_MAX_RETRIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
        idle_poll: Duration::from_millis(
            std::env::var("PUMP_POLL_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(50),
        ),
        dead_letter: std::env::var("PUMP_DEAD_LETTER")
            .unwrap_or_else(|_| "pump-dead-letter.jsonl".into())
            .into(),
        region,
        from_latest: std::env::var("PUMP_FROM").is_ok_and(|v| v == "latest"),
        filters: match std::env::var("PUMP_FILTERS") {
            Ok(patterns) => serde_json::from_str(&patterns).context("PUMP_FILTERS")?,
            Err(_) => vec![],
        },
    };
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .load()
        .await;
    Pump::new(aws_sdk_dynamodbstreams::Client::new(&aws), config)
        .run()
        .await
}
