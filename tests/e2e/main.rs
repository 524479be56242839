//! End-to-end tests on the real local stack, compiled into one binary so they share it.

mod bad_input;
mod browser;
mod chain_log;
mod limits;
mod owner_paths;
mod poller;
mod rest;
mod resume_by_query;
mod second_chain;
mod server;
mod skeleton;
mod sparse;
mod sse;
mod storage;
mod token_lists;
