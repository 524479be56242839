//! The poller: watches chains and keeps the table's balances and allowances current.

mod error;
pub mod heads;
pub mod http;
pub mod metrics;
mod watcher;

pub use error::PollerError;
pub use watcher::ChainWatcher;
