//! The poller: watches chains and keeps the table's balances and allowances current.

mod error;
pub mod heads;
pub mod health;
mod held;
pub mod http;
pub mod metrics;
mod reload;
mod watched;
mod watcher;
mod writes;

pub use error::PollerError;
pub use watcher::ChainWatcher;
