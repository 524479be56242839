//! Reading the chain's session log: each read covers what was written since the last one,
//! looking back a short overlap — and, every few seconds, a whole overlap, since an entry may
//! become visible late (up to a whole logged write after its stamp). Entries already applied
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

/// How often a read of the session log looks back its whole overlap (the others look back
/// only a short while: nearly every entry is visible within milliseconds of its stamp).
pub(super) const FULL_LOOK_BACK_EVERY: Duration = Duration::from_secs(5);

/// Where a watcher stands in the session log.
#[derive(Debug, Default)]
pub(super) struct LogTail {
    /// The start of the last read of the log: the next one looks back an overlap before it.
    read_from_ms: u64,
    /// The start of the last read that looked back the whole overlap: the next such read
    /// looks back an overlap before it.
    full_from_ms: u64,
    /// Entries already applied, by key, with their stamps (kept for an overlap).
    seen: HashMap<String, u64>,
}

/// One read of the log: when it started, and the keys of the entries it found new.
#[derive(Debug)]
pub(super) struct LogRead {
    at_ms: u64,
    /// It looked back the whole overlap.
    full: bool,
    keys: Vec<(String, u64)>,
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
    /// Entries written from `at_ms` on are read (again) by the first read: the listing of
    /// every session starts then.
    pub(super) fn start_at(&mut self, at_ms: u64) {
        self.read_from_ms = at_ms;
        self.full_from_ms = at_ms;
    }

    /// Where a read starting at `at_ms` begins, and whether it looks back the whole overlap.
    fn window(&self, at_ms: u64) -> (u64, bool) {
        let full =
            at_ms.saturating_sub(self.full_from_ms) >= FULL_LOOK_BACK_EVERY.as_millis() as u64;
        let since = if full {
            self.full_from_ms
                .saturating_sub(SESSION_LOG_READ_OVERLAP_MS)
        } else {
            self.read_from_ms
                .saturating_sub(SESSION_LOG_RECENT_OVERLAP_MS)
        };
        (since, full)
    }

    /// Whether the entry `key` is not applied yet.
    fn is_new(&self, key: &str) -> bool {
        !self.seen.contains_key(key)
    }

    /// `read`'s entries were applied: they are not applied again, and the next read looks
    /// back from its start.
    pub(super) fn applied(&mut self, read: LogRead) {
        self.read_from_ms = read.at_ms;
        if read.full {
            self.full_from_ms = read.at_ms;
        }
        self.seen.extend(read.keys);
        let keep_after = self
            .full_from_ms
            .saturating_sub(2 * SESSION_LOG_READ_OVERLAP_MS);
        self.seen.retain(|_, at| *at >= keep_after);
    }
}

impl ChainWatcher {
    /// The log's entries since the last read, less those already applied, sorted by kind;
    /// with what to remember once they are applied.
    pub(super) async fn read_log(&mut self) -> Result<(LogNews, LogRead), PollerError> {
        let at_ms = unix_now_ms();
        let (since, full) = self.watching.log.window(at_ms);
        let entries = self
            .table
            .session_log_since(self.chain_id, since, at_ms)
            .await?;
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
        self.note("session", news.sessions.len() as u64);
        self.note("list", news.lists.len() as u64);
        Ok((news, LogRead { at_ms, full, keys }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL_MS: u64 = FULL_LOOK_BACK_EVERY.as_millis() as u64;

    #[test]
    fn reads_look_back_a_little_and_now_and_then_a_whole_overlap() {
        let start = 1_000_000_000;
        let mut tail = LogTail::default();
        tail.start_at(start);
        // Soon after: a short look-back from the last read.
        let (since, full) = tail.window(start + 100);
        assert!(!full);
        assert_eq!(since, start - SESSION_LOG_RECENT_OVERLAP_MS);
        tail.applied(LogRead {
            at_ms: start + 100,
            full,
            keys: vec![],
        });
        assert_eq!(
            tail.window(start + 200).0,
            start + 100 - SESSION_LOG_RECENT_OVERLAP_MS
        );
        // A whole look-back is due: from an overlap before the last whole one.
        let (since, full) = tail.window(start + FULL_MS);
        assert!(full);
        assert_eq!(since, start - SESSION_LOG_READ_OVERLAP_MS);
    }

    #[test]
    fn an_applied_entry_is_not_new_while_a_read_can_see_it_again() {
        let start = 1_000_000_000;
        let mut tail = LogTail::default();
        tail.start_at(start);
        tail.applied(LogRead {
            at_ms: start + 10,
            full: false,
            keys: vec![("a".into(), start + 5)],
        });
        assert!(!tail.is_new("a"));
        assert!(tail.is_new("b"));
        // Whole look-backs move on: once no read reaches its stamp, the key is forgotten.
        let later = start + 5 + 2 * SESSION_LOG_READ_OVERLAP_MS + FULL_MS;
        tail.applied(LogRead {
            at_ms: later,
            full: true,
            keys: vec![],
        });
        assert!(tail.is_new("a"));
    }
}
