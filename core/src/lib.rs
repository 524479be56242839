//! live-balances core: the domain (types, diffing, read planning, SSE framing, config) and the
//! two adapters every binary shares — the DynamoDB table and the Multicall3 balance reader.
//!
//! Domain modules are pure; only `storage` sees a DynamoDB client, only `chain` sees an RPC
//! provider and only `secrets` reads Secrets Manager.

pub mod abi;
pub mod accept;
pub mod address;
pub mod backoff;
pub mod chain;
pub mod chains;
pub mod clock;
pub mod config;
pub mod destination;
pub mod diff;
pub mod logging;
pub mod model;
pub mod native;
pub mod pairs;
pub mod plan;
pub mod redact;
pub mod secrets;
pub mod shown;
pub mod sse;
pub mod storage;
pub mod stream_id;
pub mod sweep;
pub mod token;
pub mod token_list;
pub mod webhook;
pub mod webhook_signature;

pub use address::{AddressError, NATIVE_TOKEN};
pub use model::{
    BalanceItem, BalanceKey, ChainCursor, FeedEntry, FeedKind, FeedPosition, Session, TokenRead,
};
