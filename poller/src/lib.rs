//! The poller: watches chains and keeps the table's balances and allowances current.
//!
//! Modules: `watcher` (one chain's loop, its step recipe and its state by concern: head
//! pacing, sweeps, backlog, reorg memory, native-balance choice, the session log that keeps
//! the watched set current, reporting), over `watched` (the watched wallets and their tokens)
//! and `held` (the non-zero values it holds); `heads` (the new-heads subscription); `http`
//! (`/health` by the one rule in `health`, `/metrics` from `metrics`); `settings` (what the
//! poller reads from its environment); `error`. `main.rs` is the shell: settings, the table,
//! one watcher per chain, SIGTERM.

mod error;
pub mod heads;
pub mod health;
mod held;
pub mod http;
pub mod metrics;
pub mod settings;
mod sweep;
mod watched;
mod watcher;

pub use error::PollerError;
pub use watcher::ChainWatcher;
