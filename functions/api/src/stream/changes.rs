//! Where a stream's changes come from, by transport: under the function URL the stream polls
//! its pairs' feeds itself (and keeps their sessions alive); in the server it follows the
//! hub's news of each pair's wallet.

use std::time::Duration;

use bytes::Bytes;
use live_balances::runtime::clock::unix_now;
use live_balances::wire::sse::{SseEvent, retry_hint};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::Sender;
use tokio::time::sleep_until;

use super::{BalanceStream, DRAIN_SPREAD_MS, StreamEnd, ticker};
use crate::error::StreamCode;
use crate::hub::{News, Subscription};
use crate::snapshot;
use crate::vouch::vouch_due;

/// Where a stream's changes come from.
pub(super) enum Changes {
    /// The function URL: the stream polls its pairs' feeds itself.
    Polling { every: Duration },
    /// The server: per pair, the hub reads the feed once for all streams of the wallet
    /// (`None` for a pair without a session).
    Hub(Vec<Option<Subscription>>),
}

/// Resolves when the process drains (never, if the hub is gone).
async fn drained(draining: &mut tokio::sync::watch::Receiver<bool>) {
    if draining.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A stream that fell behind its wallets' news is dropped like a slow client; the hub going
/// away ends it.
pub(super) fn on_lag(error: RecvError) -> Result<(), StreamEnd> {
    match error {
        RecvError::Lagged(_) => Err(StreamEnd::TooSlow),
        RecvError::Closed => Ok(()),
    }
}

/// The next news of any pair still subscribed, with the pair's index; never resolves when
/// none is. Receiving from a broadcast channel is cancel-safe, so the futures of the pairs
/// that lose the race lose nothing.
async fn next_news(subscriptions: &mut [Option<Subscription>]) -> (usize, Result<News, RecvError>) {
    let waiting: Vec<_> = subscriptions
        .iter_mut()
        .enumerate()
        .filter_map(|(i, s)| {
            s.as_mut()
                .map(|s| Box::pin(async move { (i, s.recv().await) }))
        })
        .collect();
    if waiting.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(waiting).await.0
}

impl BalanceStream {
    /// The function URL's loop: the stream queries its pairs' feeds every `every`, keeps
    /// their sessions alive and checks their lists itself.
    pub(super) async fn poll(
        &mut self,
        tx: &Sender<Bytes>,
        every: Duration,
    ) -> Result<(), StreamEnd> {
        let mut feed = ticker(every);
        let mut ping = self.pings();
        let mut keep_alive = ticker(self.keep_alive);
        let end = sleep_until(self.ends_at);
        tokio::pin!(end);
        while !self.live().is_empty() {
            tokio::select! {
                _ = &mut end => return Ok(()),
                _ = tx.closed() => return Err(StreamEnd::ClientGone),
                _ = feed.tick() => {
                    for i in self.live() {
                        let (wallet, position) = (self.pairs[i].wallet, &self.pairs[i].position);
                        // Half a read unit when nothing changed, which is most ticks.
                        if self.state.table.feed_may_have_after(wallet.chain_id, &wallet.owner, position).await? {
                            self.read_feed(tx, i).await?;
                        }
                    }
                }
                _ = ping.tick() => self.send(tx, self.frame(None, &SseEvent::Ping { time: unix_now() })).await?,
                _ = keep_alive.tick() => {
                    for i in self.live() {
                        let wallet = self.pairs[i].wallet;
                        let now = unix_now();
                        let expires_at = now + self.session_ttl.as_secs();
                        // Vouches at the first tick (the stream opening) and a period before
                        // the vouch would lapse (`vouch`): a poller without traces reads this
                        // wallet's native balance every block meanwhile.
                        let vouch = vouch_due(self.pairs[i].vouched_until, now, self.keep_alive.as_secs());
                        if !self.state.table.keep_session_alive(wallet.chain_id, &wallet.owner, now, expires_at, vouch).await? {
                            self.session_ended(tx, i, StreamCode::SessionExpired).await?;
                            continue;
                        }
                        if let Some(until) = vouch {
                            self.pairs[i].vouched_until = until;
                        }
                        // A list the tokens came from has a new version: tokens were added or
                        // removed, so the client gets the new set whole.
                        let lists = &self.pairs[i].lists;
                        if !lists.is_empty() && snapshot::lists_moved(&self.state, wallet.chain_id, lists).await? {
                            self.snapshot(tx, i).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The server's loop: entries come from the hub, which also keeps the sessions alive
    /// and watches the lists (once per list, for every wallet following it).
    pub(super) async fn follow(
        &mut self,
        tx: &Sender<Bytes>,
        subscriptions: &mut [Option<Subscription>],
    ) -> Result<(), StreamEnd> {
        for i in self.live() {
            let Some(subscription) = &subscriptions[i] else {
                continue;
            };
            subscription.follows_lists(&self.pairs[i].lists);
            // Entries the hub handed out before this stream joined: read them here, once.
            if subscription.start_at(&self.pairs[i].position) > self.pairs[i].position {
                self.read_feed(tx, i).await?;
            }
        }
        let Some(mut draining) = self.state.hub.as_ref().map(|h| h.draining()) else {
            return Ok(());
        };
        let mut ping = self.pings();
        let end = sleep_until(self.ends_at);
        tokio::pin!(end);
        while !self.live().is_empty() {
            tokio::select! {
                _ = &mut end => return Ok(()),
                _ = tx.closed() => return Err(StreamEnd::ClientGone),
                _ = drained(&mut draining) => {
                    let spread = rand::random_range(0..=DRAIN_SPREAD_MS);
                    let hint = retry_hint(self.retry.as_millis() as u64 + spread);
                    return self.send(tx, Bytes::from(hint)).await;
                }
                (i, news) = next_news(subscriptions) => match news {
                    Ok(News::Entries(batch)) => {
                        // The hub read from further on than this pair is: read the gap.
                        if batch.after > self.pairs[i].position {
                            self.read_feed(tx, i).await?;
                        }
                        self.send_entries(tx, i, &batch.entries).await?;
                    }
                    Ok(News::SessionExpired) => {
                        // Leaving the wallet: the hub stops reading it for this stream.
                        subscriptions[i] = None;
                        self.session_ended(tx, i, StreamCode::SessionExpired).await?;
                    }
                    Ok(News::ListsMoved) => {
                        self.snapshot(tx, i).await?;
                        if let Some(subscription) = &subscriptions[i] {
                            subscription.follows_lists(&self.pairs[i].lists);
                        }
                    }
                    Err(error) => return on_lag(error),
                },
                _ = ping.tick() => self.send(tx, self.frame(None, &SseEvent::Ping { time: unix_now() })).await?,
            }
        }
        Ok(())
    }
}
