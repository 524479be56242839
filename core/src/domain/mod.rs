//! What the service is about, pure: no client, no table item, no RPC type. Every binary and
//! every adapter speaks these types.

pub mod address;
pub mod api_key;
pub mod hold;
pub mod list_document;
pub mod model;
pub mod native;
pub mod order;
pub mod permit2;
pub mod plan;
pub mod token_metadata;
pub mod webhook;
