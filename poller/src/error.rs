//! Errors of a chain watcher's step; every one is retried with backoff.

use live_balances::chain::{ChainError, Fault};
use live_balances::storage::StorageError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PollerError {
    #[error("block {0} is not available from the node yet")]
    MissingBlock(u64),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("NATIVE_BALANCES=traces, but the node answers no trace method")]
    NoTraces,
}

impl PollerError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            // What the chain adapter could not ride out.
            Self::Chain(error) => match error.fault() {
                Fault::RateLimited { .. } => "rpc_rate_limited",
                Fault::Unavailable => "rpc_unavailable",
                _ => "rpc",
            },
            Self::MissingBlock(_) => "missing_block",
            Self::Storage(_) => "storage",
            Self::NoTraces => "no_traces",
        }
    }
}
