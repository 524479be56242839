//! The handlers, one file per route group. Each parses its part of the request (through
//! [`crate::request`]), does its work and answers; the router in `lib.rs` picks the handler and
//! [`crate::openapi`] lists them. A route file imports what sits below the routes (request
//! plumbing, [`crate::route_docs`], [`crate::tracked`], the stream engine), never the router or
//! the document; a route may use another route group's types (`POST /sessions` is the
//! single-wallet session route applied pair by pair).

pub(crate) mod balance;
pub(crate) mod demo;
pub(crate) mod health;
pub(crate) mod multi_sessions;
pub(crate) mod multi_sse;
pub(crate) mod orders;
pub(crate) mod sessions;
pub(crate) mod sse;
pub(crate) mod webhooks;
