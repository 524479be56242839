//! The per-wallet change feeds: the write side (`diff`, what the fanout appends for a changed
//! item) and the read side (`shown`, what a stream has already shown its client; `pairs` and
//! `stream_id`, the wallets of a multi-wallet stream and its resumable ids).

pub mod diff;
pub mod pairs;
pub mod shown;
pub mod stream_id;
