//! What reading a wallet's change feed shares between the api's transports: `pairs` (the
//! wallets of a multi-wallet stream) and `stream_id` (its resumable ids). The write side (a
//! changed item as a feed entry) is the fanout's; what a stream has shown its client, the api's.

pub mod pairs;
pub mod stream_id;
