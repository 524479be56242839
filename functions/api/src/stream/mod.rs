//! One SSE stream of one or more (chain, wallet) pairs — the engine behind both stream routes,
//! `GET /sse/{chain_id}/balances/{owner}` (one pair) and `GET /sse/balances?wallets=…`
//! (several): per pair, `all_balances` from the table (or a resume from the client's id), then
//! the pair's changes live; `ping`s in between, until the client leaves or the stream's time is
//! up (the client then reconnects with `Last-Event-ID` and loses nothing).
//!
//! Each pair keeps its own state — its feed position, the values it showed, the lists its
//! tokens came from — exactly as a single-wallet stream does; a multi-wallet stream only frames
//! its events differently (each names its pair, and its `id` is the composite of every pair's
//! position, [`live_balances::feed::stream_id`]). A pair whose session expires gets its own `error`
//! and the others go on; the stream ends when none is left.
//!
//! Changes come one of two ways, by transport. Under the function URL the stream polls each
//! pair's feed itself (an eventually consistent probe per pair and interval, a consistent read
//! only when it says there is news). In the server, the process's hub reads a wallet's feed
//! once for every stream of it and hands the entries over in memory; each pair subscribes.
//! Either way what is sent per pair is its feed in order, less what the client was shown.
//!
//! Here: the stream, its pairs, and its run. `pair_events`: what one pair is sent (its
//! `all_balances`, its start or resume, its feed entries, its session's end). `changes`: where
//! the changes come from (polling under the function URL, the hub in the server).

mod changes;
mod pair_events;

use std::time::Duration;

use crate::shown::ShownValues;
use bytes::Bytes;
use http::Response;
use live_balances::domain::model::FeedPosition;
use live_balances::feed::pairs::{PairSet, WalletPair};
use live_balances::feed::stream_id;
use live_balances::storage::StorageError;
use live_balances::wire::sse::{SseEvent, retry_hint};
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval};

use crate::body::{self, ResponseBody};
use crate::error::StreamCode;
use crate::request::{self, Deadline, Request};
use crate::state::State;
use changes::Changes;

/// Time kept free before the transport's deadline to end the stream cleanly.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);
/// Frames waiting for the client at most; when they are not taken for `SSE_SLOW_CLIENT_MS`
/// the client is dropped (it resumes with `Last-Event-ID`), never buffered for.
const CLIENT_BUFFER: usize = 16;
/// When a server drains, its streams' reconnects are spread over this much beyond the
/// `retry:` hint, so its clients do not all arrive at the other tasks at once.
const DRAIN_SPREAD_MS: u64 = 5_000;

/// How the stream frames its events.
pub enum Shape {
    /// `/sse/{chain_id}/balances/{owner}`: the pair's feed position is the `id`, events name
    /// no pair (the path does).
    Single,
    /// `/sse/balances?wallets=…`: events name their pair, the `id` is the composite of the
    /// set's positions.
    Multi(PairSet),
}

/// Where the client's id says a pair resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No id: a fresh `all_balances`.
    Fresh,
    After(FeedPosition),
    /// An id the server cannot read (another format, another stream's): a `resync` and a
    /// fresh `all_balances` — never a refusal, which would stop `EventSource` for good.
    Unreadable,
}

/// What the client sent to resume: the `Last-Event-ID` header EventSource sends when it
/// reconnects, else the `lastEventId` query parameter (a new EventSource continuing another's
/// stream cannot set the header); the header, the newer of the two on a reconnect, wins.
pub fn client_id(req: &Request) -> Option<String> {
    match req.headers().get("last-event-id") {
        // Not text: unreadable like any other foreign id.
        Some(value) => Some(value.to_str().unwrap_or_default().to_string()),
        None => request::query_param(req, "lastEventId"),
    }
}

/// One pair of the stream: where it stands and what its client was shown.
struct Pair {
    wallet: WalletPair,
    resume: Resume,
    /// Its session was live when the stream opened.
    has_session: bool,
    position: FeedPosition,
    shown: ShownValues,
    /// The versions of the lists its last snapshot's tokens came from (none on a resume).
    lists: Vec<(String, u64)>,
    /// Its session ended (its `error` was sent): nothing more is sent for it.
    ended: bool,
    /// Until when this stream last vouched for the wallet as streamed (the function URL's
    /// keep-alive; 0: not yet).
    vouched_until: u64,
}

/// A stream about to run; [`Self::open`] starts it.
pub struct BalanceStream {
    state: State,
    shape: Shape,
    pairs: Vec<Pair>,
    ping_interval: Duration,
    retry: Duration,
    session_ttl: Duration,
    keep_alive: Duration,
    slow_client: Duration,
    ends_at: Instant,
}

#[derive(Debug)]
enum StreamEnd {
    ClientGone,
    /// The client did not take events in time, or fell too far behind its wallets' news.
    TooSlow,
    Storage(StorageError),
}

impl From<StorageError> for StreamEnd {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

/// Hands one frame to the client, waiting at most `patience` for room.
async fn send(tx: &Sender<Bytes>, frame: Bytes, patience: Duration) -> Result<(), StreamEnd> {
    tx.send_timeout(frame, patience).await.map_err(|e| match e {
        SendTimeoutError::Timeout(_) => StreamEnd::TooSlow,
        SendTimeoutError::Closed(_) => StreamEnd::ClientGone,
    })
}

/// A timer of `period` that, when late, waits a whole period again rather than catching up.
fn ticker(period: Duration) -> Interval {
    let mut ticker = interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

impl BalanceStream {
    /// A stream of `wallets` (canonical order for [`Shape::Multi`]), each resuming as given,
    /// with whether its session is live. The stream runs within the transport's deadline.
    pub fn new(
        state: &State,
        req: &Request,
        shape: Shape,
        wallets: Vec<(WalletPair, Resume, bool)>,
    ) -> Self {
        let settings = &state.settings;
        let budget = match req.extensions().get::<Deadline>() {
            Some(Deadline(deadline)) => settings.streams.max_duration.min(
                deadline
                    .saturating_duration_since(std::time::Instant::now())
                    .saturating_sub(DEADLINE_MARGIN),
            ),
            None => settings.streams.max_duration,
        };
        let pairs = wallets
            .into_iter()
            .map(|(wallet, resume, has_session)| Pair {
                wallet,
                // Until the pair starts, the id resumes it where the client's id did.
                position: match &resume {
                    Resume::After(p) => p.clone(),
                    _ => FeedPosition::start(),
                },
                resume,
                has_session,
                shown: ShownValues::default(),
                lists: vec![],
                ended: !has_session,
                vouched_until: 0,
            })
            .collect();
        Self {
            state: state.clone(),
            shape,
            pairs,
            ping_interval: settings.streams.ping_interval,
            retry: settings.streams.retry,
            session_ttl: settings.session_ttl,
            // Often enough that a live stream's session never lapses between two pushes.
            keep_alive: settings
                .streams
                .keep_alive
                .min(settings.session_ttl / 3)
                .max(Duration::from_secs(1)),
            slow_client: settings.streams.slow_client,
            ends_at: Instant::now() + budget,
        }
    }

    /// Subscribes its pairs (in the server) and runs the stream in the background; the
    /// answer's body is its events.
    pub fn open(mut self) -> Response<ResponseBody> {
        // Subscribed before the stream reads where each pair starts: nothing the hub hands
        // out from here on is missed.
        let changes = match &self.state.hub {
            Some(hub) => Changes::Hub(
                self.pairs
                    .iter()
                    .map(|p| {
                        p.has_session
                            .then(|| hub.subscribe(p.wallet.chain_id, p.wallet.owner))
                    })
                    .collect(),
            ),
            None => Changes::Polling {
                every: self.state.settings.streams.feed_interval,
            },
        };
        let (tx, response) = body::event_stream(CLIENT_BUFFER);
        let first = self.pairs[0].wallet;
        let pairs = self.pairs.len();
        tokio::spawn(async move {
            let (chain, owner) = (first.chain_id, first.owner);
            match self.run(&tx, changes).await {
                Ok(()) => {}
                Err(StreamEnd::ClientGone) => {
                    tracing::debug!(chain, owner = %owner, pairs, "client left")
                }
                Err(StreamEnd::TooSlow) => {
                    tracing::info!(chain, owner = %owner, pairs, "client too slow; dropped (it resumes with Last-Event-ID)")
                }
                Err(StreamEnd::Storage(error)) => {
                    tracing::error!(chain, owner = %owner, pairs, %error, "stream ended on a storage error");
                    let event = SseEvent::Error(StreamCode::StorageUnavailable.notice());
                    let _ = tx.try_send(self.frame(None, &event));
                }
            }
        });
        response
    }

    /// The event framed for this stream; `pair` is the one it is about (none for the
    /// stream's own events).
    fn frame(&self, pair: Option<usize>, event: &SseEvent) -> Bytes {
        Bytes::from(match &self.shape {
            Shape::Single => event.encode(),
            Shape::Multi(set) => {
                let positions: Vec<&FeedPosition> =
                    self.pairs.iter().map(|p| &p.position).collect();
                let id = stream_id::encode(set, &positions);
                event.encode_in(pair.map(|i| &self.pairs[i].wallet), &id)
            }
        })
    }

    async fn send(&self, tx: &Sender<Bytes>, frame: Bytes) -> Result<(), StreamEnd> {
        send(tx, frame, self.slow_client).await
    }

    /// The ping timer: the first ping one period from now.
    fn pings(&self) -> Interval {
        let mut ping = ticker(self.ping_interval);
        ping.reset();
        ping
    }

    fn live(&self) -> Vec<usize> {
        (0..self.pairs.len())
            .filter(|i| !self.pairs[*i].ended)
            .collect()
    }

    async fn run(&mut self, tx: &Sender<Bytes>, mut changes: Changes) -> Result<(), StreamEnd> {
        self.send(tx, Bytes::from(retry_hint(self.retry.as_millis() as u64)))
            .await?;
        for i in 0..self.pairs.len() {
            if !self.pairs[i].has_session {
                self.session_ended(tx, i, StreamCode::SessionNotFound)
                    .await?;
                continue;
            }
            // The server asks once per wallet (its hub knows the wallet's other streams).
            let ask_rescan = match &changes {
                Changes::Polling { .. } => true,
                Changes::Hub(subscriptions) => subscriptions[i]
                    .as_ref()
                    .is_some_and(|s| s.asks_rescan(self.state.settings.streams.rescan_interval)),
            };
            self.start(tx, i, ask_rescan).await?;
        }
        match changes {
            Changes::Polling { every } => self.poll(tx, every).await,
            Changes::Hub(ref mut subscriptions) => self.follow(tx, subscriptions).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast::error::RecvError;

    use super::changes::on_lag;
    use super::*;

    #[tokio::test]
    async fn a_client_that_does_not_take_events_is_dropped_not_buffered_for() {
        let (tx, _response) = body::event_stream(2);
        let patience = Duration::from_millis(50);
        send(&tx, Bytes::from("a"), patience).await.unwrap();
        send(&tx, Bytes::from("b"), patience).await.unwrap();
        // The buffer is full and nobody reads: dropped after the patience, not queued.
        let started = std::time::Instant::now();
        let third = send(&tx, Bytes::from("c"), patience).await;
        assert!(matches!(third, Err(StreamEnd::TooSlow)), "{third:?}");
        assert!(started.elapsed() >= patience);
    }

    #[tokio::test]
    async fn a_client_that_left_ends_the_stream() {
        let (tx, response) = body::event_stream(2);
        drop(response);
        let sent = send(&tx, Bytes::from("a"), Duration::from_millis(50)).await;
        assert!(matches!(sent, Err(StreamEnd::ClientGone)), "{sent:?}");
    }

    #[test]
    fn a_stream_behind_its_wallets_news_is_dropped() {
        assert!(matches!(
            on_lag(RecvError::Lagged(3)),
            Err(StreamEnd::TooSlow)
        ));
        assert!(on_lag(RecvError::Closed).is_ok());
    }
}
