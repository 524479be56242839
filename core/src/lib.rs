//! live-balances core: the domain (types, diffing, read planning, SSE framing, config) and the
//! two adapters every binary shares — the DynamoDB table and the Multicall3 balance reader.
//!
//! Domain modules are pure; only `storage` sees a DynamoDB client, only `chain` sees an RPC
//! provider, only `secrets` reads Secrets Manager and only `kms` calls KMS.
//!
//! Modules:
//! - domain: `model` (sessions, values, feed entries, cursors), `address` (parsing outside
//!   addresses), `token_metadata`, `list_document` (token-list documents), `known_chains`
//!   (WETH and native symbols of well-known chains), `plan` (what a block range forces the
//!   poller to re-read), `native` (accounts a block's traces touched), `sweep` (the periodic
//!   re-read), `diff` (a changed item as a feed entry), `shown` (what a stream has shown its
//!   client), `sse` (the events and their framing; `sse::snapshot` builds `all_balances`),
//!   `pairs` and `stream_id` (multi-wallet streams), `order` (an order's fillability), `hold` (what keeps a wallet tracked with no
//!   stream: its open orders and subscriptions), `webhook` (subscriptions, deliveries and
//!   their settings) and `webhook_signature` (signing a delivery), `api_key` (back ends'
//!   credentials and their tenants), `sealing` (secrets encrypted at rest), `config` (settings
//!   from the environment), `clock`;
//! - adapters: `storage/` (the table), `chain` with `chain/blocks.rs` (the node: Multicall3
//!   reads, heads, logs, traces), `abi` (the contracts' interfaces), `secrets` (the chain
//!   secret), `kms` (the data key that seals webhook secrets);
//! - process plumbing: `backoff` (the one retry rule), `accept` (the one accept loop),
//!   `destination` (the rules an outside URL we fetch or post to must pass, and the one HTTP
//!   client that keeps them), `logging`, `telemetry` (where metrics go), `redact` (endpoints
//!   without their keys).

pub mod abi;
pub mod accept;
pub mod address;
pub mod api_key;
pub mod backoff;
pub mod chain;
pub mod clock;
pub mod config;
pub mod destination;
pub mod diff;
pub mod hold;
pub mod kms;
pub mod known_chains;
pub mod list_document;
pub mod logging;
pub mod model;
pub mod native;
pub mod order;
pub mod pairs;
pub mod permit2;
pub mod plan;
pub mod poller_health;
pub mod redact;
pub mod sealing;
pub mod secrets;
pub mod shown;
pub mod sse;
pub mod storage;
pub mod stream_id;
pub mod sweep;
pub mod telemetry;
pub mod token_metadata;
pub mod webhook;
pub mod webhook_signature;

pub use address::{AddressError, NATIVE_TOKEN};
pub use model::{
    BalanceItem, BalanceKey, ChainCursor, FeedEntry, FeedEvent, FeedKind, FeedPosition,
    OrderStatusEntry, Session, Spender, TokenRead,
};
