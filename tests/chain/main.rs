//! End-to-end tests that disturb the chain or the poller — reorgs, a killed poller, counting
//! the poller's RPC requests — on a stack of their own, one test at a time.

mod reorg;
mod restart;
mod rpc_cost;
mod scale;

use std::sync::LazyLock;

/// Held by each test for its whole run: these tests must not overlap.
pub static EXCLUSIVE: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));
