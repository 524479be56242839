//! The poller: watches chains and keeps the table's balances and allowances current.
//!
//! Modules: `watcher` (one chain's loop: heads, block ranges, rewinds) with its steps —
//! `reload` (keeping the watched set current), `watched` (the watched wallets and their
//! tokens), `held` (the non-zero values it holds), `writes` (reading a plan and writing what
//! changed); `heads` (the new-heads subscription); `http` (`/health` by the one rule in
//! `health`, `/metrics` from `metrics`); `error`. `main.rs` is the shell: settings, the table,
//! one watcher per chain, SIGTERM.

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
