//! The poller: watches chains and keeps the table's balances and allowances current.

mod error;
mod watcher;

pub use error::PollerError;
pub use watcher::ChainWatcher;
