//! Exponential backoff: the pause before retry `n` (counting from 0) is `first × 2ⁿ`, capped
//! at `max` — the one rule every retry loop of the project waits by (the watcher's steps, the
//! head subscription, the fanout's writes, batch writes, the local pump, the api's runtime
//! loop).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The pause before retry `retry` (0: the first retry).
    pub fn pause(&self, retry: u32) -> Duration {
        self.first
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max)
    }

    /// [`Self::pause`] plus up to 50% more, from the clock: enough to keep two processes
    /// that failed together (two pollers on one chain) from retrying in lockstep.
    pub fn pause_with_jitter(&self, retry: u32) -> Duration {
        let base = self.pause(retry);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        base + base.mul_f64(f64::from(nanos % 1000) / 2000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_from_the_first_pause_up_to_the_cap() {
        let backoff = Backoff::new(100 * MS, 1000 * MS);
        let pauses: Vec<Duration> = (0..6).map(|n| backoff.pause(n)).collect();
        assert_eq!(
            pauses,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(backoff.pause(u32::MAX), 1000 * MS, "no overflow");
    }

    #[test]
    fn jitter_adds_at_most_half() {
        let backoff = Backoff::new(250 * MS, Duration::from_secs(30));
        for n in 0..20 {
            let pause = backoff.pause_with_jitter(n);
            assert!(pause >= backoff.pause(n) && pause <= backoff.pause(n) * 3 / 2);
        }
    }
}
