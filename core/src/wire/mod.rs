//! What leaves the service: the SSE events and their framing (`sse`), and the signature of a
//! webhook delivery (`webhook_signature`).

pub mod sse;
pub mod webhook_signature;
