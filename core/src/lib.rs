//! live-balances core: the domain (types, diffing, read planning, SSE framing, config) and the
//! two adapters every binary shares — the DynamoDB table and the Multicall3 balance reader.
//!
//! Domain modules are pure; only `storage` sees a DynamoDB client, only `chain` sees an RPC
//! provider, only `secrets` reads Secrets Manager and only `kms` calls KMS.
//!
//! Layers, a folder each:
//! - `domain`: what the service is about, pure — `model` (sessions, values, feed entries,
//!   cursors), `address` (parsing outside addresses), `token_metadata`, `list_document`
//!   (token-list documents), `plan` (what a block range forces the poller to re-read), `native`
//!   (accounts a block's traces touched), `sweep` (the periodic re-read), `order` (an order's
//!   fillability), `permit2` (Permit2's allowances), `hold` (what keeps a wallet tracked with no
//!   stream), `webhook` (subscriptions, deliveries and their settings), `api_key` (back ends'
//!   credentials and their tenants);
//! - `feed`: the change feeds' write side (`diff`: a changed item as a feed entry) and read
//!   side (`shown`: what a stream has shown its client; `pairs` and `stream_id`: multi-wallet
//!   streams);
//! - `wire`: what goes out — `sse` (the events and their framing; `sse::snapshot` builds
//!   `all_balances`) and `webhook_signature` (signing a delivery);
//! - `storage`: the table (the only code that sees DynamoDB);
//! - `chain`: the node (the only code that sees an RPC provider: Multicall3 reads, heads, logs,
//!   traces), `chain::abi` (the contracts' interfaces), `chain::known_chains` (WETH and native
//!   symbols of well-known chains);
//! - `runtime`: process plumbing — `backoff` (the one retry rule), `accept` (the one accept
//!   loop), `destination` (the rules an outside URL must pass, and the one HTTP client that
//!   keeps them), `logging`, `telemetry` (where metrics go), `redact` (endpoints without their
//!   keys), `clock`, `secrets` (the chain secret), `kms` and `sealing` (webhook secrets sealed
//!   at rest), `poller_health`;
//! - `config`: settings from the environment.

pub mod chain;
pub mod config;
pub mod domain;
pub mod feed;
pub mod runtime;
pub mod storage;
pub mod wire;

pub use domain::address::{AddressError, NATIVE_TOKEN};
pub use domain::model::{
    BalanceItem, BalanceKey, ChainCursor, FeedEntry, FeedEvent, FeedKind, FeedPosition,
    OrderStatusEntry, Session, Spender, TokenRead,
};
