//! `GET /sse/{chain_id}/balances/{owner}`: `all_balances` from the table, then the wallet's
//! changes live, `ping`s in between, until the client leaves or the stream's time is up (the
//! client then reconnects with `Last-Event-ID` and loses nothing).
//!
//! Changes come one of two ways, by transport. Under the function URL the stream polls its
//! wallet's feed itself (one stream per function instance; an eventually consistent probe
//! first, a consistent read only when it says there is news). In the server, the process's
//! hub reads the feed once for every stream of the wallet and hands the entries over in
//! memory. Either way what is sent is the feed in order, less what the client was shown.

use std::time::Duration;

use alloy::primitives::Address;
use bytes::Bytes;
use http::Response;
use live_balances::model::{FeedEntry, FeedPosition};
use live_balances::shown::ShownValues;
use live_balances::sse::{SseEvent, StreamError, retry_hint};
use live_balances::storage::StorageError;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use crate::body::{self, ResponseBody};
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::feed::FeedPages;
use crate::hub::{News, Subscription};
use crate::openapi::SseEventData;
use crate::openapi::WalletPath;
use crate::request::{self, Deadline, Request};
use crate::sessions::{live_session, unix_now};
use crate::snapshot;
use crate::state::State;

/// Time kept free before the transport's deadline to end the stream cleanly.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);
/// Frames waiting for the client at most; when they are not taken for `SSE_SLOW_CLIENT_MS`
/// the client is dropped (it resumes with `Last-Event-ID`), never buffered for.
const CLIENT_BUFFER: usize = 16;
/// When a server drains, its streams' reconnects are spread over this much beyond the
/// `retry:` hint, so its clients do not all arrive at the other tasks at once.
const DRAIN_SPREAD_MS: u64 = 5_000;

/// Where a stream's changes come from.
enum Changes {
    /// The function URL: the stream polls its wallet's feed itself.
    Polling { every: Duration },
    /// The server: the hub reads the feed once for all streams of the wallet.
    Hub(Subscription),
}

struct Stream {
    state: State,
    chain_id: u64,
    owner: Address,
    resume_from: Option<FeedPosition>,
    ping_interval: Duration,
    retry: Duration,
    session_ttl: Duration,
    keep_alive: Duration,
    slow_client: Duration,
    ends_at: Instant,
}

#[utoipa::path(
    get,
    path = "/sse/{chain_id}/balances/{owner}",
    operation_id = "streamBalances",
    tag = "stream",
    description = "Server-Sent Events: `all_balances` first (from the table), then `balance_update` / `allowance_update` as the wallet changes, `ping` in between. Every data event has an `id`; reconnect with `Last-Event-ID` to resume (or get `resync` and a fresh snapshot). The stream ends itself before the function's limit (or the server's maximum, or when a server drains); EventSource reconnects. See the `SseEventData` schema: event name -> data.",
    params(
        WalletPath,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
        ("lastEventId" = Option<String>, Query, description = "Resume after this event id, for a new EventSource (which cannot set the header); the header wins when both are given"),
    ),
    responses(
        (status = 200, description = "text/event-stream", content_type = "text/event-stream", body = SseEventData),
        (status = 400, description = "Malformed chain id, owner or Last-Event-ID", body = ErrorBody),
        (status = 404, description = "Chain not served here, or no session", body = ErrorBody),
    ),
)]
pub async fn open(
    state: &State,
    req: &Request,
    chain: &str,
    owner: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let (chain_id, owner, _) = request::wallet(state, chain, owner)?;
    // The header is what EventSource sends when it reconnects; the query parameter is for a
    // new EventSource continuing another's stream (a browser cannot set the header), so the
    // header, the newer of the two on a reconnect, wins.
    let header = req.headers().get("last-event-id").map(|v| v.to_str().ok());
    let query = request::query_param(req, "lastEventId");
    let resume_from = header
        .or(query.as_deref().map(Some))
        .map(|v| {
            v.and_then(|s| FeedPosition::parse(s).ok())
                .ok_or(ApiError::InvalidLastEventId)
        })
        .transpose()?;
    if live_session(state, chain_id, &owner).await?.is_none() {
        return Err(ApiError::SessionNotFound);
    }

    let settings = &state.settings;
    let budget = match req.extensions().get::<Deadline>() {
        Some(Deadline(deadline)) => settings.sse_max_duration.min(
            deadline
                .saturating_duration_since(std::time::Instant::now())
                .saturating_sub(DEADLINE_MARGIN),
        ),
        None => settings.sse_max_duration,
    };
    // Subscribed before the stream reads where it starts: nothing the hub hands out from
    // here on is missed.
    let changes = match &state.hub {
        Some(hub) => Changes::Hub(hub.subscribe(chain_id, owner)),
        None => Changes::Polling {
            every: settings.sse_feed_interval,
        },
    };
    let stream = Stream {
        state: state.clone(),
        chain_id,
        owner,
        resume_from,
        ping_interval: settings.sse_ping_interval,
        retry: settings.sse_retry,
        session_ttl: settings.session_ttl,
        // Often enough that a live stream's session never lapses between two pushes.
        keep_alive: settings
            .sse_keep_alive
            .min(settings.session_ttl / 3)
            .max(Duration::from_secs(1)),
        slow_client: settings.sse_slow_client,
        ends_at: Instant::now() + budget,
    };
    let (tx, response) = body::event_stream(CLIENT_BUFFER);
    tokio::spawn(async move {
        match stream.run(&tx, changes).await {
            Ok(()) => {}
            Err(RunEnd::ClientGone) => {
                tracing::debug!(chain = chain_id, owner = %owner, "client left")
            }
            Err(RunEnd::TooSlow) => {
                tracing::info!(chain = chain_id, owner = %owner, "client too slow; dropped (it resumes with Last-Event-ID)")
            }
            Err(RunEnd::Storage(error)) => {
                tracing::error!(chain = chain_id, owner = %owner, %error, "stream ended on a storage error");
                let event = SseEvent::Error(StreamError {
                    code: "storage_unavailable".into(),
                    message: "the stream will resume on reconnect".into(),
                });
                let _ = tx.try_send(Bytes::from(event.encode()));
            }
        }
    });
    Ok(response)
}

#[derive(Debug)]
enum RunEnd {
    ClientGone,
    /// The client did not take events in time, or fell too far behind its wallet's news.
    TooSlow,
    Storage(StorageError),
}

impl From<StorageError> for RunEnd {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

/// Hands one frame to the client, waiting at most `patience` for room.
async fn send(tx: &Sender<Bytes>, frame: Bytes, patience: Duration) -> Result<(), RunEnd> {
    tx.send_timeout(frame, patience).await.map_err(|e| match e {
        SendTimeoutError::Timeout(_) => RunEnd::TooSlow,
        SendTimeoutError::Closed(_) => RunEnd::ClientGone,
    })
}

fn frame(event: &SseEvent) -> Bytes {
    Bytes::from(event.encode())
}

/// Resolves when the process drains (never, if the hub is gone).
async fn drained(draining: &mut tokio::sync::watch::Receiver<bool>) {
    if draining.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A stream that fell behind its wallet's news is dropped like a slow client; the hub going
/// away ends it.
fn on_lag(error: RecvError) -> Result<(), RunEnd> {
    match error {
        RecvError::Lagged(_) => Err(RunEnd::TooSlow),
        RecvError::Closed => Ok(()),
    }
}

impl Stream {
    async fn send(&self, tx: &Sender<Bytes>, frame: Bytes) -> Result<(), RunEnd> {
        send(tx, frame, self.slow_client).await
    }

    /// Sends `all_balances` and returns the feed position it stands at, with the versions of
    /// the lists its tokens came from.
    async fn snapshot(
        &self,
        tx: &Sender<Bytes>,
        shown: &mut ShownValues,
    ) -> Result<(FeedPosition, Vec<(String, u64)>), RunEnd> {
        let snapshot = snapshot::take(&self.state, self.chain_id, &self.owner).await?;
        let lists = snapshot.lists.clone();
        self.send(
            tx,
            frame(&SseEvent::AllBalances {
                position: snapshot.position.clone(),
                snapshot: snapshot.balances,
            }),
        )
        .await?;
        shown.reset_to_snapshot(snapshot.shown);
        Ok((snapshot.position, lists))
    }

    /// A fresh `all_balances` mid-stream (the lists its tokens came from moved on): the
    /// position never goes back, and the lists shown are the new ones.
    async fn resnapshot(
        &self,
        tx: &Sender<Bytes>,
        shown: &mut ShownValues,
        position: &mut FeedPosition,
    ) -> Result<Vec<(String, u64)>, RunEnd> {
        let (at, lists) = self.snapshot(tx, shown).await?;
        if at > *position {
            *position = at;
        }
        Ok(lists)
    }

    /// Where the stream starts: the client's `Last-Event-ID` if it is still in the feed, else
    /// a fresh `all_balances` (after `resync` when the position expired), with the lists that
    /// snapshot showed (none on a resume).
    async fn start(
        &self,
        tx: &Sender<Bytes>,
        shown: &mut ShownValues,
        ask_rescan: bool,
    ) -> Result<(FeedPosition, Vec<(String, u64)>), RunEnd> {
        let resumable = match &self.resume_from {
            None => None,
            // The start position means the feed was empty at the snapshot: entries since then
            // may have expired unseen, so only a fresh snapshot is safe.
            Some(p) if *p == FeedPosition::start() => None,
            Some(p) => self
                .state
                .table
                .feed_position_is_live(self.chain_id, &self.owner, p, unix_now())
                .await?
                .then(|| p.clone()),
        };
        if ask_rescan {
            tokio::spawn(snapshot::stream_opened(
                self.state.clone(),
                self.chain_id,
                self.owner,
            ));
        }
        match resumable {
            Some(p) => Ok((p, vec![])),
            None => {
                if self.resume_from.is_some() {
                    let event = SseEvent::Resync(StreamError {
                        code: "position_expired".into(),
                        message: "Last-Event-ID is no longer in the change feed; a fresh all_balances follows".into(),
                    });
                    self.send(tx, frame(&event)).await?;
                }
                self.snapshot(tx, shown).await
            }
        }
    }

    /// Sends the entries after `position`, in order, less those that tell the client
    /// nothing; entries at or before `position` are already behind it.
    async fn send_entries(
        &self,
        tx: &Sender<Bytes>,
        shown: &mut ShownValues,
        position: &mut FeedPosition,
        entries: &[(FeedEntry, Bytes)],
    ) -> Result<(), RunEnd> {
        // Old news skipped after the last entry sent: the client's id must still move past
        // it, or a reconnect would replay it to a client that no longer holds the value it
        // continues from.
        let mut skipped = false;
        for (entry, text) in entries {
            if entry.position <= *position {
                continue;
            }
            *position = entry.position.clone();
            // Entries the fanout appended after the snapshot was read, for changes the
            // snapshot already holds, tell the client nothing.
            skipped = !shown.admit(entry);
            if !skipped {
                self.send(tx, text.clone()).await?;
            }
        }
        if skipped {
            self.send(tx, frame(&SseEvent::Position(position.clone())))
                .await?;
        }
        Ok(())
    }

    /// Reads the feed after `position` itself and sends it, page by page (a later page's
    /// query may fail and end the stream; what was sent stays sent).
    async fn read_feed(
        &self,
        tx: &Sender<Bytes>,
        shown: &mut ShownValues,
        position: &mut FeedPosition,
    ) -> Result<(), RunEnd> {
        let from = position.clone();
        let mut pages = FeedPages::after(&self.state.table, self.chain_id, &self.owner, &from);
        while let Some(page) = pages.next().await? {
            let page: Vec<(FeedEntry, Bytes)> = page
                .into_iter()
                .map(|e| {
                    let text = frame(&SseEvent::Update(e.clone()));
                    (e, text)
                })
                .collect();
            self.send_entries(tx, shown, position, &page).await?;
        }
        Ok(())
    }

    async fn run(self, tx: &Sender<Bytes>, changes: Changes) -> Result<(), RunEnd> {
        self.send(tx, Bytes::from(retry_hint(self.retry.as_millis() as u64)))
            .await?;
        let mut shown = ShownValues::default();
        // The server asks once per wallet (its hub knows the wallet's other streams).
        let ask_rescan = match &changes {
            Changes::Polling { .. } => true,
            Changes::Hub(subscription) => {
                subscription.asks_rescan(self.state.settings.tracking.rescan_interval)
            }
        };
        let (position, lists) = self.start(tx, &mut shown, ask_rescan).await?;
        match changes {
            Changes::Polling { every } => self.poll(tx, shown, position, lists, every).await,
            Changes::Hub(subscription) => {
                self.follow(tx, shown, position, lists, subscription).await
            }
        }
    }

    /// The function URL's loop: the stream queries its own feed every `every`, keeps its
    /// session alive and checks its lists itself.
    async fn poll(
        &self,
        tx: &Sender<Bytes>,
        mut shown: ShownValues,
        mut position: FeedPosition,
        mut lists: Vec<(String, u64)>,
        every: Duration,
    ) -> Result<(), RunEnd> {
        let mut feed = interval(every);
        feed.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ping = interval(self.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.reset();
        let mut keep_alive = interval(self.keep_alive);
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let end = sleep_until(self.ends_at);
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = &mut end => return Ok(()),
                _ = tx.closed() => return Err(RunEnd::ClientGone),
                _ = feed.tick() => {
                    // Half a read unit when nothing changed, which is most ticks.
                    if self.state.table.feed_may_have_after(self.chain_id, &self.owner, &position).await? {
                        self.read_feed(tx, &mut shown, &mut position).await?;
                    }
                }
                _ = ping.tick() => self.send(tx, frame(&SseEvent::Ping { time: unix_now() })).await?,
                _ = keep_alive.tick() => {
                    let now = unix_now();
                    let expires_at = now + self.session_ttl.as_secs();
                    // Vouches for a few keep-alive periods: a poller without traces reads
                    // this wallet's native balance every block meanwhile.
                    let streaming_until = now + 3 * self.keep_alive.as_secs();
                    if !self.state.table.keep_session_alive(self.chain_id, &self.owner, now, expires_at, streaming_until).await? {
                        return self.session_expired(tx).await;
                    }
                    // A list the tokens came from has a new version: tokens were added or
                    // removed, so the client gets the new set whole.
                    if !lists.is_empty() && snapshot::lists_moved(&self.state, self.chain_id, &lists).await? {
                        lists = self.resnapshot(tx, &mut shown, &mut position).await?;
                    }
                }
            }
        }
    }

    /// The server's loop: entries come from the hub, which also keeps the session alive and
    /// watches the lists (once per list, for every wallet following it).
    async fn follow(
        &self,
        tx: &Sender<Bytes>,
        mut shown: ShownValues,
        mut position: FeedPosition,
        lists: Vec<(String, u64)>,
        mut subscription: Subscription,
    ) -> Result<(), RunEnd> {
        subscription.follows_lists(&lists);
        // Entries the hub handed out before this stream joined: read them here, once.
        if subscription.start_at(&position) > position {
            self.read_feed(tx, &mut shown, &mut position).await?;
        }
        let mut draining = subscription.draining();
        let mut ping = interval(self.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.reset();
        let end = sleep_until(self.ends_at);
        tokio::pin!(end);
        loop {
            tokio::select! {
                _ = &mut end => return Ok(()),
                _ = tx.closed() => return Err(RunEnd::ClientGone),
                _ = drained(&mut draining) => {
                    let spread = rand::random_range(0..=DRAIN_SPREAD_MS);
                    let hint = retry_hint(self.retry.as_millis() as u64 + spread);
                    return self.send(tx, Bytes::from(hint)).await;
                }
                news = subscription.recv() => match news {
                    Ok(News::Entries(batch)) => {
                        // The hub read from further on than this stream is: read the gap.
                        if batch.after > position {
                            self.read_feed(tx, &mut shown, &mut position).await?;
                        }
                        self.send_entries(tx, &mut shown, &mut position, &batch.entries).await?;
                    }
                    Ok(News::SessionExpired) => return self.session_expired(tx).await,
                    Ok(News::ListsMoved) => {
                        let lists = self.resnapshot(tx, &mut shown, &mut position).await?;
                        subscription.follows_lists(&lists);
                    }
                    Err(error) => return on_lag(error),
                },
                _ = ping.tick() => self.send(tx, frame(&SseEvent::Ping { time: unix_now() })).await?,
            }
        }
    }

    async fn session_expired(&self, tx: &Sender<Bytes>) -> Result<(), RunEnd> {
        let event = SseEvent::Error(StreamError {
            code: "session_expired".into(),
            message: "the session has expired; create it again".into(),
        });
        self.send(tx, frame(&event)).await
    }
}

#[cfg(test)]
mod tests {
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
        assert!(matches!(third, Err(RunEnd::TooSlow)), "{third:?}");
        assert!(started.elapsed() >= patience);
    }

    #[tokio::test]
    async fn a_client_that_left_ends_the_stream() {
        let (tx, response) = body::event_stream(2);
        drop(response);
        let sent = send(&tx, Bytes::from("a"), Duration::from_millis(50)).await;
        assert!(matches!(sent, Err(RunEnd::ClientGone)), "{sent:?}");
    }

    #[test]
    fn a_stream_behind_its_wallets_news_is_dropped() {
        assert!(matches!(on_lag(RecvError::Lagged(3)), Err(RunEnd::TooSlow)));
        assert!(on_lag(RecvError::Closed).is_ok());
    }
}
