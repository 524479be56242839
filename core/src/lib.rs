//! live-balances core: what two or more of the binaries share — the domain (types, read
//! planning, orders, Permit2), the change feeds' shared read side, the wire format, the
//! DynamoDB table and the chain adapter, process plumbing and settings. What one binary alone
//! uses lives in it.
//!
//! Domain modules are pure; only `storage` sees a DynamoDB client, only `chain` sees an RPC
//! provider, only `secrets` reads Secrets Manager and only `kms` calls KMS.
//!
//! Layers, a folder each:
//! - `domain`: what the service is about, pure — `model` (sessions, values, feed entries,
//!   cursors), `address` (parsing outside addresses), `token_metadata`, `list_document`
//!   (token-list documents), `plan` (what a block range forces the poller to re-read), `native`
//!   (accounts a block's traces touched), `order` (an order's
//!   fillability), `permit2` (Permit2's allowances), `hold` (what keeps a wallet tracked with no
//!   stream), `webhook` (subscriptions, deliveries and their settings), `api_key` (back ends'
//!   credentials and their tenants);
//! - `feed`: what reads a wallet's change feed shares — `pairs` and `stream_id` (the wallets
//!   of a multi-wallet stream and its resumable ids). The write side (a changed item as a feed
//!   entry) is the fanout's own, what a stream has shown its client the api's;
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
