//! When a chain's poller counts as running — the one rule for the poller's own `/health` and
//! the api's. The poller judges its progress in memory; the api sees only the heartbeat the
//! poller writes on the chain's cursor, at least every [`CURSOR_HEARTBEAT`], so it allows that
//! much more before it calls the same poller down.

use std::time::Duration;

/// A watcher with no progress (a new block, or an idle check of the head) for this long is
/// stuck.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// How often an idle watcher rewrites its cursor, so the table shows it alive.
pub const CURSOR_HEARTBEAT: Duration = Duration::from_secs(30);

/// The poller's own view: its last progress was `age_secs` ago.
pub fn progress_is_fresh(age_secs: u64) -> bool {
    age_secs <= STALE_AFTER.as_secs()
}

/// The api's view: the cursor's heartbeat is `age_secs` old.
pub fn heartbeat_is_fresh(age_secs: u64) -> bool {
    age_secs <= STALE_AFTER.as_secs() + CURSOR_HEARTBEAT.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_allows_one_heartbeat_more_than_the_poller() {
        assert!(progress_is_fresh(60) && !progress_is_fresh(61));
        assert!(heartbeat_is_fresh(90) && !heartbeat_is_fresh(91));
    }
}
