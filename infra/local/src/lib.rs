//! The local stack without Docker — DynamoDB Local on the machine's Java, anvil, the
//! functions under `cargo lambda watch`, the stream pump and the poller — shared by
//! `make dev` and the end-to-end tests.

pub mod contracts;
pub mod devnet;
pub mod process;
pub mod pump;
pub mod stack;
pub mod tools;

/// Logs of the local-stack binaries: text, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
