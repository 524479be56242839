//! What one pair of a stream is sent: its `all_balances` (at the start, or when the lists its
//! tokens came from moved on), its start or resume, its feed entries less what its client was
//! shown, and its own `error` when its session ends.

use bytes::Bytes;
use live_balances::domain::model::{FeedEvent, FeedPosition};
use live_balances::runtime::clock::unix_now;
use live_balances::wire::sse::SseEvent;
use tokio::sync::mpsc::Sender;

use super::{BalanceStream, Resume, Shape, StreamEnd};
use crate::error::StreamCode;
use crate::feed::FeedPages;
use crate::snapshot;

impl BalanceStream {
    /// Sends pair `i`'s `all_balances`. At the start it stands at the snapshot's position;
    /// mid-stream (the lists its tokens came from moved on) the position never goes back.
    pub(super) async fn snapshot(&mut self, tx: &Sender<Bytes>, i: usize) -> Result<(), StreamEnd> {
        let wallet = self.pairs[i].wallet;
        let snapshot = snapshot::take(&self.state, wallet.chain_id, &wallet.owner).await?;
        let pair = &mut self.pairs[i];
        if pair.position == FeedPosition::start() || snapshot.position > pair.position {
            pair.position = snapshot.position.clone();
        }
        let event = SseEvent::AllBalances {
            position: pair.position.clone(),
            snapshot: snapshot.balances,
        };
        self.send(tx, self.frame(Some(i), &event)).await?;
        let pair = &mut self.pairs[i];
        pair.shown.reset_to_snapshot(snapshot.shown);
        pair.shown.show_orders(snapshot.shown_orders);
        pair.lists = snapshot.lists;
        Ok(())
    }

    /// Where pair `i` starts: the client's id if it is still in the feed, else a fresh
    /// `all_balances` (after `resync` when the id was expired or unreadable).
    pub(super) async fn start(
        &mut self,
        tx: &Sender<Bytes>,
        i: usize,
        ask_rescan: bool,
    ) -> Result<(), StreamEnd> {
        let wallet = self.pairs[i].wallet;
        let resync = match self.pairs[i].resume.clone() {
            Resume::Fresh => None,
            // The start position means the feed was empty at the snapshot: entries since then
            // may have expired unseen, so only a fresh snapshot is safe.
            Resume::After(p) if p == FeedPosition::start() => Some(StreamCode::PositionExpired),
            Resume::After(p) => {
                let live = self
                    .state
                    .table
                    .feed_position_is_live(wallet.chain_id, &wallet.owner, &p, unix_now())
                    .await?;
                (!live).then_some(StreamCode::PositionExpired)
            }
            Resume::Unreadable => Some(StreamCode::UnreadableLastEventId),
        };
        if ask_rescan {
            tokio::spawn(snapshot::stream_opened(
                self.state.clone(),
                wallet.chain_id,
                wallet.owner,
            ));
        }
        match (&self.pairs[i].resume, resync) {
            (Resume::After(_), None) => Ok(()),
            (_, resync) => {
                if let Some(code) = resync {
                    let event = SseEvent::Resync(code.notice());
                    // The pair starts over: its id part must not resume the old position.
                    self.pairs[i].position = FeedPosition::start();
                    self.send(tx, self.frame(Some(i), &event)).await?;
                }
                self.snapshot(tx, i).await
            }
        }
    }

    /// Sends pair `i`'s entries after its position, in order, less those that tell the
    /// client nothing; entries at or before the position are already behind it. `framed`
    /// entries carry the single-wallet frame encoded once for every stream of the wallet.
    pub(super) async fn send_entries(
        &mut self,
        tx: &Sender<Bytes>,
        i: usize,
        entries: &[(FeedEvent, Bytes)],
    ) -> Result<(), StreamEnd> {
        // Old news skipped after the last entry sent: the client's id must still move past
        // it, or a reconnect would replay it to a client that no longer holds the value it
        // continues from.
        let mut skipped = false;
        for (entry, text) in entries {
            let pair = &mut self.pairs[i];
            if *entry.position() <= pair.position {
                continue;
            }
            pair.position = entry.position().clone();
            // Entries the fanout appended after the snapshot was read, for changes the
            // snapshot already holds, tell the client nothing.
            skipped = !match entry {
                FeedEvent::Value(entry) => pair.shown.admit(entry),
                FeedEvent::Order(entry) => pair.shown.admit_order(entry),
            };
            if !skipped {
                let frame = match self.shape {
                    Shape::Single => text.clone(),
                    Shape::Multi(_) => self.frame(Some(i), &SseEvent::from(entry.clone())),
                };
                self.send(tx, frame).await?;
            }
        }
        if skipped {
            let event = SseEvent::Position(self.pairs[i].position.clone());
            self.send(tx, self.frame(Some(i), &event)).await?;
        }
        Ok(())
    }

    /// Reads pair `i`'s feed after its position itself and sends it, page by page (a later
    /// page's query may fail and end the stream; what was sent stays sent).
    pub(super) async fn read_feed(
        &mut self,
        tx: &Sender<Bytes>,
        i: usize,
    ) -> Result<(), StreamEnd> {
        let table = self.state.table.clone();
        let wallet = self.pairs[i].wallet;
        let from = self.pairs[i].position.clone();
        let mut pages = FeedPages::after(&table, wallet.chain_id, &wallet.owner, &from);
        while let Some(page) = pages.next().await? {
            let page: Vec<(FeedEvent, Bytes)> = page
                .into_iter()
                .map(|e| {
                    let text = match self.shape {
                        Shape::Single => Bytes::from(SseEvent::from(e.clone()).encode()),
                        // Framed when sent, with the stream's id at that moment.
                        Shape::Multi(_) => Bytes::new(),
                    };
                    (e, text)
                })
                .collect();
            self.send_entries(tx, i, &page).await?;
        }
        Ok(())
    }

    /// Pair `i`'s session has expired: its own `error`, and nothing more for it.
    pub(super) async fn session_ended(
        &mut self,
        tx: &Sender<Bytes>,
        i: usize,
        code: StreamCode,
    ) -> Result<(), StreamEnd> {
        self.pairs[i].ended = true;
        let event = SseEvent::Error(code.notice());
        self.send(tx, self.frame(Some(i), &event)).await
    }
}
