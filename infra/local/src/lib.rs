//! The local stack without Docker — DynamoDB Local on the machine's Java, anvil, the
//! functions under `cargo lambda watch`, the stream pump and the poller — shared by
//! `make dev` and the end-to-end tests.

pub mod contracts;
pub mod devnet;
pub mod process;
pub mod pump;
pub mod stack;
pub mod tools;
