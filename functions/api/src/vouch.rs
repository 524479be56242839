//! When a stream vouches for its wallet as streamed: the one rule both transports follow (a
//! function URL stream for itself, the server once per wallet per task).
//!
//! A vouch holds for three keep-alive periods and is renewed once only one is left — a whole
//! period before it would lapse. A poller without traces reads a streamed wallet's native
//! balance every block and stops when the vouch lapses; renewing at the lapse itself would
//! leave a gap in every vouch, in which a block's native change went unread.

/// Keep-alive periods a vouch holds for.
const VOUCH_PERIODS: u64 = 3;

/// The vouch to write at `now` (Unix seconds) — until when — if one is due, given the last
/// one this stream made (`vouched_until`, 0 for none) and the keep-alive `period` in seconds.
pub(crate) fn vouch_due(vouched_until: u64, now: u64, period: u64) -> Option<u64> {
    (vouched_until <= now + period).then_some(now + VOUCH_PERIODS * period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_vouches_at_once_and_again_a_period_before_the_lapse() {
        let period = 60;
        let first = vouch_due(0, 1_000, period);
        assert_eq!(first, Some(1_180));
        // Keep-alives at each period: nothing while two are left, a renewal when one is.
        assert_eq!(vouch_due(1_180, 1_060, period), None);
        assert_eq!(vouch_due(1_180, 1_120, period), Some(1_300));
        // A keep-alive late by most of a period still renews before the lapse.
        assert_eq!(vouch_due(1_180, 1_179, period), Some(1_359));
    }

    #[test]
    fn with_one_second_periods_a_vouch_is_renewed_before_it_lapses() {
        let mut until = vouch_due(0, 0, 1).unwrap_or_default();
        for now in 1..30 {
            if let Some(next) = vouch_due(until, now, 1) {
                assert!(until > now, "lapsed at {now}: held until {until}");
                until = next;
            }
        }
    }
}
