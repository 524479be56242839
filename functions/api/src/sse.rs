//! `GET /sse/{chain_id}/balances/{owner}`: `all_balances` from the table, then the wallet's
//! change feed tailed live, `ping`s in between, until the client leaves or the stream's time
//! is up (the client then reconnects with `Last-Event-ID` and loses nothing).

use std::time::{Duration, SystemTime};

use alloy::primitives::Address;
use lambda_http::{Request, RequestExt, Response, tracing};
use live_balances::model::FeedPosition;
use live_balances::shown::ShownValues;
use live_balances::sse::{SseEvent, StreamError, retry_hint};
use live_balances::storage::StorageError;
use tokio::sync::mpsc::Sender;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use crate::body::{self, ResponseBody};
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::openapi::SseEventData;
use crate::openapi::WalletPath;
use crate::request;
use crate::sessions::{live_session, unix_now};
use crate::snapshot;
use crate::state::State;

/// Most feed entries read per query; a longer backlog is read in further pages at once.
const FEED_PAGE: i32 = 100;
/// Time kept free before the function's deadline to end the stream cleanly.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

struct Stream {
    state: State,
    chain_id: u64,
    owner: Address,
    resume_from: Option<FeedPosition>,
    feed_interval: Duration,
    ping_interval: Duration,
    retry: Duration,
    session_ttl: Duration,
    keep_alive: Duration,
    ends_at: Instant,
}

#[utoipa::path(
    get,
    path = "/sse/{chain_id}/balances/{owner}",
    operation_id = "streamBalances",
    tag = "stream",
    description = "Server-Sent Events: `all_balances` first (from the table), then `balance_update` / `allowance_update` as the wallet changes, `ping` in between. Every data event has an `id`; reconnect with `Last-Event-ID` to resume (or get `resync` and a fresh snapshot). The stream ends itself before the function's limit; EventSource reconnects. See the `SseEventData` schema: event name -> data.",
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
    let query = req
        .query_string_parameters_ref()
        .and_then(|q| q.first("lastEventId"))
        .map(Some);
    let resume_from = header
        .or(query)
        .map(|v| {
            v.and_then(|s| FeedPosition::parse(s).ok())
                .ok_or(ApiError::InvalidLastEventId)
        })
        .transpose()?;
    if live_session(state, chain_id, &owner).await?.is_none() {
        return Err(ApiError::SessionNotFound);
    }

    let settings = &state.settings;
    let budget = match req.lambda_context_ref() {
        Some(ctx) => settings
            .sse_max_duration
            .min(time_left(ctx.deadline, SystemTime::now()).saturating_sub(DEADLINE_MARGIN)),
        None => settings.sse_max_duration,
    };
    let stream = Stream {
        state: state.clone(),
        chain_id,
        owner,
        resume_from,
        feed_interval: settings.sse_feed_interval,
        ping_interval: settings.sse_ping_interval,
        retry: settings.sse_retry,
        session_ttl: settings.session_ttl,
        // Often enough that a live stream's session never lapses between two pushes.
        keep_alive: settings
            .sse_keep_alive
            .min(settings.session_ttl / 3)
            .max(Duration::from_secs(1)),
        ends_at: Instant::now() + budget,
    };
    let (tx, response) = body::event_stream(64);
    tokio::spawn(async move {
        match stream.run(&tx).await {
            Ok(()) => {}
            Err(RunEnd::ClientGone) => {
                tracing::debug!(chain = chain_id, owner = %owner, "client left")
            }
            Err(RunEnd::Storage(error)) => {
                tracing::error!(chain = chain_id, owner = %owner, %error, "stream ended on a storage error");
                let event = SseEvent::Error(StreamError {
                    code: "storage_unavailable".into(),
                    message: "the stream will resume on reconnect".into(),
                });
                let _ = tx.send(event.encode()).await;
            }
        }
    });
    Ok(response)
}

/// Time left until the invocation's deadline. Lambda gives the deadline in Unix milliseconds;
/// `cargo lambda watch` gives the timeout itself (e.g. `600000`), which no real deadline can
/// be (it would be in 1970), so small values are read as a duration from now.
fn time_left(deadline_ms: u64, now: SystemTime) -> Duration {
    const EARLIEST_REAL_DEADLINE_MS: u64 = 1_000_000_000_000; // 2001-09-09
    if deadline_ms < EARLIEST_REAL_DEADLINE_MS {
        return Duration::from_millis(deadline_ms);
    }
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    deadline.duration_since(now).unwrap_or_default()
}

enum RunEnd {
    ClientGone,
    Storage(StorageError),
}

impl From<StorageError> for RunEnd {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

async fn send(tx: &Sender<String>, text: String) -> Result<(), RunEnd> {
    tx.send(text).await.map_err(|_| RunEnd::ClientGone)
}

impl Stream {
    /// Sends `all_balances` and returns the feed position it stands at, with the versions of
    /// the lists its tokens came from.
    async fn snapshot(
        &self,
        tx: &Sender<String>,
        shown: &mut ShownValues,
    ) -> Result<(FeedPosition, Vec<(String, u64)>), RunEnd> {
        let snapshot = snapshot::take(&self.state, self.chain_id, &self.owner).await?;
        let lists = snapshot.lists.clone();
        send(
            tx,
            SseEvent::AllBalances {
                position: snapshot.position.clone(),
                snapshot: snapshot.balances,
            }
            .encode(),
        )
        .await?;
        shown.reset_to_snapshot(snapshot.shown);
        Ok((snapshot.position, lists))
    }

    async fn run(self, tx: &Sender<String>) -> Result<(), RunEnd> {
        send(tx, retry_hint(self.retry.as_millis() as u64)).await?;
        let mut shown = ShownValues::default();
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
        tokio::spawn(snapshot::stream_opened(
            self.state.clone(),
            self.chain_id,
            self.owner,
        ));
        let mut lists = vec![];
        let mut position = match resumable {
            Some(p) => p,
            None => {
                if self.resume_from.is_some() {
                    let event = SseEvent::Resync(StreamError {
                        code: "position_expired".into(),
                        message: "Last-Event-ID is no longer in the change feed; a fresh all_balances follows".into(),
                    });
                    send(tx, event.encode()).await?;
                }
                let (position, shown_lists) = self.snapshot(tx, &mut shown).await?;
                lists = shown_lists;
                position
            }
        };
        let mut feed = interval(self.feed_interval);
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
                    // Old news skipped after the last entry sent: the client's id must still
                    // move past it, or a reconnect would replay it to a client that no longer
                    // holds the value it continues from.
                    loop {
                        let mut skipped = false;
                        let entries = self.state.table.feed_after(self.chain_id, &self.owner, &position, FEED_PAGE).await?;
                        let full_page = entries.len() == FEED_PAGE as usize;
                        for entry in entries {
                            position = entry.position.clone();
                            // Entries the fanout appended after the snapshot was read, for
                            // changes the snapshot already holds, tell the client nothing.
                            skipped = !shown.admit(&entry);
                            if !skipped {
                                send(tx, SseEvent::Update(entry).encode()).await?;
                            }
                        }
                        // Per page: a later page's query may fail and end the stream.
                        if skipped {
                            send(tx, SseEvent::Position(position.clone()).encode()).await?;
                        }
                        if !full_page { break; }
                    }
                }
                _ = ping.tick() => send(tx, SseEvent::Ping { time: unix_now() }.encode()).await?,
                _ = keep_alive.tick() => {
                    let now = unix_now();
                    let expires_at = now + self.session_ttl.as_secs();
                    // Vouches for a few keep-alive periods: a poller without traces reads
                    // this wallet's native balance every block meanwhile.
                    let streaming_until = now + 3 * self.keep_alive.as_secs();
                    if !self.state.table.keep_session_alive(self.chain_id, &self.owner, now, expires_at, streaming_until).await? {
                        let event = SseEvent::Error(StreamError {
                            code: "session_expired".into(),
                            message: "the session has expired; create it again".into(),
                        });
                        send(tx, event.encode()).await?;
                        return Ok(());
                    }
                    // A list the tokens came from has a new version: tokens were added or
                    // removed, so the client gets the new set whole.
                    if !lists.is_empty() && snapshot::lists_moved(&self.state, self.chain_id, &lists).await? {
                        let (at, shown_lists) = self.snapshot(tx, &mut shown).await?;
                        lists = shown_lists;
                        if at > position {
                            position = at;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_absolute_in_lambda_and_relative_under_cargo_lambda() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let in_a_minute = 1_800_000_060_000;
        assert_eq!(time_left(in_a_minute, now), Duration::from_secs(60));
        assert_eq!(time_left(1_799_999_000_000, now), Duration::ZERO);
        assert_eq!(time_left(600_000, now), Duration::from_secs(600));
    }
}
