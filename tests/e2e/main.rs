//! End-to-end tests on the real local stack, compiled into one binary so they share it.

/// Runs `$body(transport)` once per transport, as `$name::function_url` and `$name::server`.
macro_rules! on_both_transports {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn function_url() -> anyhow::Result<()> {
                $body(Transport::FunctionUrl).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn server() -> anyhow::Result<()> {
                $body(Transport::Server).await
            }
        }
    };
}

mod attacks;
mod bad_input;
mod browser;
mod chain_log;
mod holds;
mod limits;
mod metrics;
mod multi_wallet;
mod orders;
mod owner_paths;
mod permit2;
mod poller;
mod react_example;
mod rest;
mod resume_by_query;
mod second_chain;
mod server;
mod skeleton;
mod sparse;
mod sse;
mod storage;
mod token_lists;
mod upgrade;
mod webhook_batches;
mod webhooks;
