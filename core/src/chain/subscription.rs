//! New heads from a WebSocket `newHeads` subscription that ends when its connection does.
//!
//! alloy's WebSocket transport reconnects by itself and re-subscribes quietly, so blocks mined
//! while it was away are never announced and its owner never learns there was a gap. Here a
//! reconnect is refused: the subscription's stream ends, and the owner (the poller's head
//! follower) knows at once — it polls over HTTP meanwhile and subscribes again itself.

use alloy::providers::{DynProvider, Provider, ProviderBuilder, WsConnect};
use alloy::pubsub::{ConnectionHandle, PubSubConnect};
use alloy::transports::{TransportErrorKind, TransportResult};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{BlockHead, ChainError, rpc_error};

/// A WebSocket connection that is not re-established behind its owner's back.
struct NoReconnect(WsConnect);

impl PubSubConnect for NoReconnect {
    fn is_local(&self) -> bool {
        self.0.is_local()
    }

    async fn connect(&self) -> TransportResult<ConnectionHandle> {
        self.0.connect().await
    }

    async fn try_reconnect(&self) -> TransportResult<ConnectionHandle> {
        Err(TransportErrorKind::non_retryable_str(
            "the connection ended; the head follower subscribes again itself",
        ))
    }
}

/// New heads from a WebSocket `newHeads` subscription; ends when the connection does.
pub struct HeadSubscription {
    /// Keeps the connection open for as long as the stream is read.
    _provider: DynProvider,
    heads: BoxStream<'static, BlockHead>,
}

impl std::fmt::Debug for HeadSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadSubscription")
    }
}

impl HeadSubscription {
    pub async fn connect(ws_url: &str) -> Result<Self, ChainError> {
        let provider = ProviderBuilder::new()
            .connect_pubsub_with(NoReconnect(WsConnect::new(ws_url)))
            .await
            .map_err(rpc_error)?
            .erased();
        let subscription = provider.subscribe_blocks().await.map_err(rpc_error)?;
        let heads = subscription
            .into_stream()
            .map(|header| BlockHead::of(&header))
            .boxed();
        Ok(Self {
            _provider: provider,
            heads,
        })
    }

    /// The next head, or `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<BlockHead> {
        self.heads.next().await
    }
}
