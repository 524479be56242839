//! The background pass over the chain's sessions, the safety net for a log entry the poller
//! never saw (see core's `session_log`): it pages through every session once per
//! `SESSION_PASS_SECS`, a page a step sized on the time since the last, and applies whatever
//! differs from what the poller watches; a watched wallet whose session the page passed over
//! is gone. A change the pass finds that the log then never names, not even once its stretch
//! of the log settled and was read, is counted as lost.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use alloy::primitives::Address;
use live_balances::domain::model::{Session, SessionMark};
use live_balances::runtime::clock::unix_now;
use live_balances::storage::SESSION_LOG_READ_OVERLAP_MS;
use tokio::time::Instant;
use tracing::warn;

use super::ChainWatcher;
use super::log::SETTLED_READ_EVERY;
use crate::error::PollerError;
use crate::sweep::Pace;
use crate::watched::{WalletWatch, WatchChange};

/// Most sessions the background pass reads in one step.
const PASS_PAGE_MAX: usize = 1_000;

/// Where the background pass stands.
#[derive(Debug)]
pub(super) struct Pass {
    interval: Duration,
    /// The last owner read; the next page starts after it (`None`: from the start).
    after: Option<Address>,
    last: Instant,
    pace: Pace,
    /// Sessions the pass found changed before the log named them, with when.
    suspects: HashMap<Address, Instant>,
}

impl Pass {
    /// A pass over every session per `interval` (zero: no pass).
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            interval,
            after: None,
            last: Instant::now(),
            pace: Pace::default(),
            suspects: HashMap::new(),
        }
    }

    /// The pass starts now (after the listing at start).
    pub(super) fn restart(&mut self) {
        self.last = Instant::now();
    }

    /// How many sessions this step's page reads: the share of `watched` (the sessions the
    /// table holds, but for the expired ones not yet removed by TTL — at least one, so the
    /// pass moves) the time since the last page is of the interval.
    fn page_size(&mut self, watched: usize) -> usize {
        let elapsed = self.last.elapsed();
        self.last = Instant::now();
        self.pace
            .due(watched.max(1), elapsed, self.interval, PASS_PAGE_MAX)
    }

    /// The log named `owner`'s change: it was not lost.
    pub(super) fn named(&mut self, owner: &Address) {
        self.suspects.remove(owner);
    }

    /// Changes found by the pass that the log has not named by the time their stretch of it
    /// settled and was read (and a few seconds more): their entries were lost. Forgotten once
    /// returned.
    pub(super) fn take_lost(&mut self) -> Vec<Address> {
        let late = Duration::from_millis(SESSION_LOG_READ_OVERLAP_MS) + SETTLED_READ_EVERY * 2;
        let lost: Vec<Address> = self
            .suspects
            .iter()
            .filter(|(_, at)| at.elapsed() >= late)
            .map(|(o, _)| *o)
            .collect();
        for owner in &lost {
            self.suspects.remove(owner);
        }
        lost
    }
}

/// Whether a session as the pass read it (its `mark`) differs from what the poller watches
/// (`known`).
fn differs(known: Option<&WalletWatch>, mark: &SessionMark, now: u64) -> bool {
    let live = mark.expires_at > now;
    match known {
        None => live,
        Some(known) => {
            !live
                || (known.revisions, known.discovered) != (mark.revisions, mark.discovered)
                || known.lists.len() != mark.lists
                || known.streaming_until < mark.streaming_until
                || known.expires_at < mark.expires_at
        }
    }
}

impl ChainWatcher {
    /// This step's page of the background pass: every session once per pass interval; what
    /// differs from the watched set is applied (a change whose entry was lost), and a watched
    /// wallet whose session is gone is dropped. The page holds only what is compared; the few
    /// sessions that differ are then read whole, in one batch read.
    pub(super) async fn pass_step(&mut self, cursor_block: u64) -> Result<(), PollerError> {
        let count = self.watching.pass.page_size(self.watching.set.len());
        if count == 0 {
            return Ok(());
        }
        let after = self.watching.pass.after;
        let (page, last) = self
            .table
            .session_marks_page(self.chain_id, after.as_ref(), Some(count as i32))
            .await?;
        let now = unix_now();
        let mut change = WatchChange::default();
        let in_page: HashSet<Address> = page.iter().map(|s| s.owner).collect();
        // Watched wallets the page passed over: their session is gone.
        let gone: Vec<Address> = self
            .watching
            .set
            .owners_between(after, last)
            .into_iter()
            .filter(|o| !in_page.contains(o))
            .collect();
        for owner in gone {
            change.merge(self.apply_session(owner, None, now, cursor_block).await?);
        }
        let differing: Vec<&SessionMark> = page
            .iter()
            .filter(|mark| differs(self.watching.set.wallet(&mark.owner), mark, now))
            .collect();
        let owners: Vec<Address> = differing.iter().map(|mark| mark.owner).collect();
        // No request when none differs (a batch read of no keys sends nothing).
        let sessions = self.table.sessions_of(self.chain_id, &owners).await?;
        let mut whole: HashMap<Address, Session> =
            sessions.into_iter().map(|s| (s.owner, s)).collect();
        for mark in differing {
            let owner = mark.owner;
            let known = self.watching.set.wallet(&owner);
            let tracking = known.is_none_or(|known| known.revisions != mark.revisions);
            let live = mark.expires_at > now;
            if live && tracking && !self.watching.waiting.contains_key(&owner) {
                // Its entry may just not have been read yet: counted as lost only if the
                // log does not name it once its stretch settled and was read.
                self.watching
                    .pass
                    .suspects
                    .entry(owner)
                    .or_insert_with(Instant::now);
            }
            // Gone since the page was read: applied as gone.
            let session = whole.remove(&owner);
            change.merge(
                self.apply_session(owner, session, now, cursor_block)
                    .await?,
            );
        }
        self.take_change(change, cursor_block, false).await?;
        self.watching.pass.after = last;
        if last.is_none() {
            // A whole pass done: what nobody refers to any more goes.
            self.watching.set.prune();
        }
        Ok(())
    }

    /// Counts the changes the background pass found whose log entries were lost.
    pub(super) fn count_lost(&mut self) {
        let lost = self.watching.pass.take_lost();
        if lost.is_empty() {
            return;
        }
        warn!(
            chain = self.chain_id,
            sessions = lost.len(),
            "the background pass found session changes the log never named"
        );
        self.report
            .session_changes("found_by_pass", lost.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watched::WatchedSet;
    use live_balances::domain::model::SessionAsks;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn pages_add_up_to_every_session_once_per_interval() {
        let mut pass = Pass::new(100 * SECOND);
        pass.last -= 10 * SECOND;
        assert_eq!(pass.page_size(1_000), 100);
        // Small steps carry their fraction over.
        let mut total = 0;
        for _ in 0..4 {
            pass.last -= Duration::from_millis(250);
            total += pass.page_size(10);
        }
        assert_eq!(total, 0, "a tenth of a session so far");
        pass.last -= 10 * SECOND;
        assert_eq!(pass.page_size(10), 1);
        // A huge set is paged at most a page a step; no pass at all with a zero interval.
        pass.last -= 100 * SECOND;
        assert_eq!(pass.page_size(1_000_000), PASS_PAGE_MAX);
        let mut off = Pass::new(Duration::ZERO);
        off.last -= 100 * SECOND;
        assert_eq!(off.page_size(1_000), 0);
    }

    #[test]
    fn a_suspect_the_log_names_in_time_is_not_lost() {
        let mut pass = Pass::new(100 * SECOND);
        let (named, unnamed) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let long_ago = Instant::now() - 3600 * SECOND;
        pass.suspects.insert(named, long_ago);
        pass.suspects.insert(unnamed, long_ago);
        pass.suspects
            .insert(Address::repeat_byte(3), Instant::now());
        pass.named(&named);
        assert_eq!(pass.take_lost(), vec![unnamed]);
        assert!(pass.take_lost().is_empty(), "counted once");
    }

    #[test]
    fn a_session_differs_by_what_the_poller_acts_on() {
        let owner = Address::repeat_byte(0xa1);
        let session = Session {
            revision: 2,
            complete_revision: 2,
            expires_at: 100,
            ..Session::new(1, owner, 0)
        };
        let mut set = WatchedSet::new(None);
        assert!(differs(None, &session.mark(), 50), "live and unwatched");
        assert!(
            !differs(None, &session.mark(), 100),
            "expired and unwatched"
        );
        set.upsert(&session, true);
        let known = set.wallet(&owner);
        assert!(!differs(known, &session.mark(), 50));
        assert!(differs(known, &session.mark(), 100), "expired but watched");
        let streaming = Session {
            streaming_until: 90,
            ..session.clone()
        };
        assert!(
            differs(known, &streaming.mark(), 50),
            "a stream vouched for it"
        );
        let newer = Session {
            revision: 3,
            ..session.clone()
        };
        assert!(differs(known, &newer.mark(), 50));
        let following = Session {
            asked: SessionAsks {
                token_lists: [("https://lists.example/a.json".to_string(), 1)].into(),
                ..Default::default()
            },
            ..session
        };
        assert!(differs(known, &following.mark(), 50), "a list more");
    }
}
