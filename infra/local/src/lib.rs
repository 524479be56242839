//! The local stack without Docker — DynamoDB Local on the machine's Java, anvil, the
//! functions under `cargo lambda watch`, the stream pump and the poller — shared by
//! `make dev` and the end-to-end tests.
//!
//! Modules: `stack` (starting and stopping it all, in dependency order), `devnet` (anvil,
//! Multicall3, demo tokens and wallets), `contracts` (the compiled devnet contracts), `permit2`
//! (Uniswap's Permit2 at its canonical address), `pump`
//! (DynamoDB Local's stream into the fanout, as Lambda's event source mapping), `process`
//! (child processes and their logs), `tools` (where `infra/install.sh` put the tools).
//! Binaries: `main.rs` (`make dev`), `bin/pump.rs`.

pub mod contracts;
pub mod devnet;
pub mod permit2;
pub mod process;
pub mod pump;
pub mod stack;
pub mod stream_filter;
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
