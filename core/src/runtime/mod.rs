//! Process plumbing every binary shares: retries, the accept loop, outside HTTP, logging,
//! metrics, secrets and clocks.

pub mod accept;
pub mod backoff;
pub mod clock;
pub mod destination;
pub mod kms;
pub mod logging;
pub mod poller_health;
pub mod redact;
pub mod sealing;
pub mod secrets;
pub mod telemetry;
