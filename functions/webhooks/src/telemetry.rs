//! What the webhooks function reports (the scheme is core's `telemetry`): deliveries by chain
//! and outcome — `sent` (the target answered 2xx), `failed` (its tries ran out), `parked`
//! (stored to be tried later: after a failure, behind a backlog, or out of the batch's time) —
//! and how long each batch took.

use std::time::Duration;

use metrics::{counter, histogram};

pub fn delivery(chain_id: u64, kind: &'static str) {
    counter!(
        "webhooks_deliveries_total",
        "chain" => chain_id.to_string(),
        "kind" => kind,
    )
    .increment(1);
}

pub fn batch_took(duration: Duration) {
    histogram!("webhooks_batch_duration_seconds").record(duration.as_secs_f64());
}
