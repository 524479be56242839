//! Reading the chain's session log: each read covers what was written since the last one,
//! looking back a short overlap — and, every few seconds, the stretch of the log settled since
//! the last such read (old enough that every entry it will hold has landed; see
//! `session_log.rs`), which finds an entry that became visible late. Entries already applied
//! are remembered by key for as long as a read can see them again, so none is applied twice.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use alloy::primitives::Address;
use live_balances::runtime::clock::unix_now_ms;
use live_balances::storage::{
    SESSION_LOG_READ_OVERLAP_MS, SESSION_LOG_RECENT_OVERLAP_MS, SessionChange,
};

use super::ChainWatcher;
use crate::error::PollerError;

/// How often the log's settled stretch is read (the other reads look back only a short
/// while: nearly every entry is visible within milliseconds of its stamp).
pub(super) const SETTLED_READ_EVERY: Duration = Duration::from_secs(5);

/// Where a watcher stands in the session log.
#[derive(Debug, Default)]
pub(super) struct LogTail {
    /// The start of the last read of the log: the next one looks back a short overlap before
    /// it.
    read_from_ms: u64,
    /// Entries stamped before this were read settled (or could not change the listing at
    /// start): where the next settled read starts.
    settled_ms: u64,
    /// When the last settled read started.
    settled_at_ms: u64,
    /// Entries already applied, by key, with their stamps (kept while a read can see them
    /// again).
    seen: HashMap<String, u64>,
}

/// The stretches one read covers: the recent one from its start on, and the settled one
/// when it is due.
#[derive(Debug, PartialEq, Eq)]
struct Window {
    recent_since_ms: u64,
    settled: Option<(u64, u64)>,
}

impl Window {
    /// The queries that cover it: the settled stretch when it lies apart from the recent one,
    /// and where the read up to now starts — the settled stretch's start when the two meet
    /// (steps further apart than the two look-backs differ, as on a 12 s chain: one query).
    fn queries(&self) -> (Option<(u64, u64)>, u64) {
        match self.settled {
            Some((from, to)) if to < self.recent_since_ms => {
                (Some((from, to)), self.recent_since_ms)
            }
            Some((from, _)) => (None, from),
            None => (None, self.recent_since_ms),
        }
    }
}

/// One read of the log: when it started, where its settled stretch ended (if it read one),
/// and the keys of the entries it found new.
#[derive(Debug)]
pub(super) struct LogRead {
    at_ms: u64,
    settled_to_ms: Option<u64>,
    keys: Vec<(String, u64)>,
}

impl LogRead {
    /// The read that started at `at_ms`, covered `window` and found `keys` new.
    fn new(at_ms: u64, window: &Window, keys: Vec<(String, u64)>) -> Self {
        Self {
            at_ms,
            settled_to_ms: window.settled.map(|(_, to)| to),
            keys,
        }
    }
}

/// What one step learned from the log, to apply.
#[derive(Debug, Default)]
pub(super) struct LogNews {
    pub sessions: BTreeSet<Address>,
    pub lists: BTreeSet<String>,
    pub rescans: Vec<Address>,
    /// Streams' vouches: owner, streaming until, session expiry.
    pub streaming: Vec<(Address, u64, u64)>,
}

impl LogTail {
    /// The listing of every session starts at `at_ms`: entries from then on are read by the
    /// first read, and those stamped up to a whole overlap before may still land (their
    /// sessions' writes with them, after the listing read them), so the settled reads start
    /// there.
    pub(super) fn start_at(&mut self, at_ms: u64) {
        self.read_from_ms = at_ms;
        self.settled_ms = at_ms.saturating_sub(SESSION_LOG_READ_OVERLAP_MS);
        self.settled_at_ms = at_ms;
    }

    /// What a read starting at `at_ms` covers.
    fn window(&self, at_ms: u64) -> Window {
        let recent_since_ms = self
            .read_from_ms
            .saturating_sub(SESSION_LOG_RECENT_OVERLAP_MS);
        let due = at_ms.saturating_sub(self.settled_at_ms) >= SETTLED_READ_EVERY.as_millis() as u64;
        // Settled: a whole overlap old. What the recent read covers is not read twice.
        let settled_to_ms = at_ms
            .saturating_sub(SESSION_LOG_READ_OVERLAP_MS)
            .min(recent_since_ms);
        Window {
            recent_since_ms,
            settled: (due && settled_to_ms > self.settled_ms)
                .then_some((self.settled_ms, settled_to_ms)),
        }
    }

    /// Whether the entry `key` is not applied yet.
    fn is_new(&self, key: &str) -> bool {
        !self.seen.contains_key(key)
    }

    /// `read`'s entries were applied: they are not applied again, and the next read looks
    /// back from its start.
    pub(super) fn applied(&mut self, read: LogRead) {
        self.read_from_ms = read.at_ms;
        if let Some(settled_to_ms) = read.settled_to_ms {
            self.settled_ms = settled_to_ms;
            self.settled_at_ms = read.at_ms;
        }
        self.seen.extend(read.keys);
        // No read reaches before the settled reads' start (the recent ones start later).
        let keep_after = self.settled_ms;
        self.seen.retain(|_, at| *at >= keep_after);
    }
}

impl ChainWatcher {
    /// The log's entries since the last read, less those already applied, sorted by kind;
    /// with what to remember once they are applied.
    pub(super) async fn read_log(&mut self) -> Result<(LogNews, LogRead), PollerError> {
        let at_ms = unix_now_ms();
        let window = self.watching.log.window(at_ms);
        let (settled_apart, since_ms) = window.queries();
        // The settled stretch first: the entries in time order.
        let mut entries = match settled_apart {
            Some((from, to)) => {
                self.table
                    .session_log_between(self.chain_id, from, to)
                    .await?
            }
            None => vec![],
        };
        entries.extend(
            self.table
                .session_log_since(self.chain_id, since_ms, at_ms)
                .await?,
        );
        let mut news = LogNews::default();
        let mut keys = vec![];
        for entry in entries {
            if !self.watching.log.is_new(&entry.key) {
                continue;
            }
            keys.push((entry.key, entry.at_ms));
            match entry.change {
                SessionChange::Session(owner) => {
                    news.sessions.insert(owner);
                }
                SessionChange::Streaming {
                    owner,
                    until,
                    expires_at,
                } => news.streaming.push((owner, until, expires_at)),
                SessionChange::Rescan(owner) => news.rescans.push(owner),
                SessionChange::List { url } => {
                    news.lists.insert(url);
                }
            }
        }
        Ok((news, LogRead::new(at_ms, &window, keys)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY_MS: u64 = SETTLED_READ_EVERY.as_millis() as u64;
    const OVERLAP_MS: u64 = SESSION_LOG_READ_OVERLAP_MS;
    const RECENT_MS: u64 = SESSION_LOG_RECENT_OVERLAP_MS;

    #[test]
    fn reads_look_back_a_little_and_now_and_then_read_what_settled_since() {
        let start = 1_000_000_000;
        let mut tail = LogTail::default();
        tail.start_at(start);
        // Soon after: a short look-back from the last read, nothing settled to read.
        let first = tail.window(start + 100);
        assert_eq!(first.recent_since_ms, start - RECENT_MS);
        assert_eq!(first.settled, None);
        tail.applied(LogRead::new(start + 100, &first, vec![]));
        assert_eq!(
            tail.window(start + 200).recent_since_ms,
            start + 100 - RECENT_MS
        );
        // Due: what a whole overlap old since the listing's look-back, each stretch once.
        let mut settled_to = start - OVERLAP_MS;
        for n in 1..=4 {
            let at = start + n * EVERY_MS;
            let window = tail.window(at);
            assert_eq!(window.settled, Some((settled_to, at - OVERLAP_MS)));
            settled_to = at - OVERLAP_MS;
            tail.applied(LogRead::new(at, &window, vec![]));
            assert_eq!(tail.window(at + 1_000).settled, None, "not due again yet");
        }
    }

    #[test]
    fn a_settled_stretch_that_meets_the_recent_one_is_read_in_the_same_query() {
        let start = 1_000_000_000;
        let mut tail = LogTail::default();
        tail.start_at(start);
        // 1 s steps: the settled stretch lies well before the recent read, two queries.
        let mut at = start;
        while at < start + OVERLAP_MS + EVERY_MS {
            at += 1_000;
            let window = tail.window(at);
            if let Some((from, to)) = window.settled {
                assert_eq!(window.queries(), (Some((from, to)), at - 1_000 - RECENT_MS));
            }
            tail.applied(LogRead::new(at, &window, vec![]));
        }
        // A 12 s step: the settled stretch ends where the recent read starts, one query.
        at += 12_000;
        let window = tail.window(at);
        let (from, to) = window.settled.expect("due");
        assert_eq!(to, window.recent_since_ms);
        assert_eq!(window.queries(), (None, from));
    }

    #[test]
    fn a_poller_that_fell_behind_reads_the_settled_stretch_up_to_the_recent_read() {
        let start = 1_000_000_000;
        let mut tail = LogTail::default();
        tail.start_at(start);
        // No read for a minute: the recent read covers from before the last one on, and the
        // settled one what lies before it (nothing twice, nothing left out).
        let at = start + 60_000;
        let window = tail.window(at);
        assert_eq!(window.recent_since_ms, start - RECENT_MS);
        assert_eq!(
            window.settled,
            Some((start - OVERLAP_MS, start - RECENT_MS))
        );
    }

    #[test]
    fn an_applied_entry_is_not_new_while_a_read_can_see_it_again() {
        let start = 1_000_000_000;
        let mut tail = LogTail::default();
        tail.start_at(start);
        let window = tail.window(start + 10);
        tail.applied(LogRead::new(
            start + 10,
            &window,
            vec![("a".into(), start + 5)],
        ));
        assert!(!tail.is_new("a"));
        assert!(tail.is_new("b"));
        // Still within the stretch a settled read covers: remembered.
        let at = start + EVERY_MS;
        let window = tail.window(at);
        tail.applied(LogRead::new(at, &window, vec![]));
        assert!(!tail.is_new("a"));
        // Once the settled reads moved past its stamp, no read reaches it: forgotten.
        let at = start + 5 + OVERLAP_MS + EVERY_MS;
        let window = tail.window(at);
        assert!(window.settled.is_some_and(|(_, to)| to > start + 5));
        tail.applied(LogRead::new(at, &window, vec![]));
        assert!(tail.is_new("a"));
    }
}
