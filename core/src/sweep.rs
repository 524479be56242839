//! The periodic full re-read, spread over its interval: balances that change without any event
//! (rebasing tokens) are caught within one interval, at a steady cost instead of a spike.

use std::time::Duration;

/// Where the sweep is in the ordered list of watched values.
#[derive(Debug, Clone)]
pub struct Sweep {
    interval: Duration,
    next: usize,
    /// Fraction of a value owed from earlier calls, so small steps still add up.
    carry: f64,
}

impl Sweep {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: 0,
            carry: 0.0,
        }
    }

    /// The values due now: the share of `all` that `elapsed` is of the interval, continuing
    /// where the last call stopped (wrapping around). Over one interval every value is taken
    /// once; a zero interval disables the sweep.
    pub fn take<T: Copy>(&mut self, all: &[T], elapsed: Duration) -> Vec<T> {
        if all.is_empty() || self.interval.is_zero() {
            return vec![];
        }
        let share =
            all.len() as f64 * elapsed.as_secs_f64() / self.interval.as_secs_f64() + self.carry;
        let count = (share.floor() as usize).min(all.len());
        self.carry = if count == all.len() {
            0.0
        } else {
            share - count as f64
        };
        let start = self.next % all.len();
        self.next = (start + count) % all.len();
        (0..count).map(|i| all[(start + i) % all.len()]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_once_per_interval_in_even_steps() {
        let all: Vec<u32> = (0..100).collect();
        let mut sweep = Sweep::new(Duration::from_secs(10));
        let mut seen = vec![];
        for _ in 0..10 {
            let step = sweep.take(&all, Duration::from_secs(1));
            assert_eq!(step.len(), 10, "spread evenly");
            seen.extend(step);
        }
        seen.sort();
        assert_eq!(seen, all);
    }

    #[test]
    fn small_steps_accumulate_and_wrap() {
        let all = [1, 2, 3];
        let mut sweep = Sweep::new(Duration::from_secs(3));
        let mut taken = vec![];
        for _ in 0..12 {
            taken.extend(sweep.take(&all, Duration::from_millis(500)));
        }
        assert_eq!(taken, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn long_pause_takes_everything_once_and_zero_interval_disables() {
        let all = [1, 2, 3];
        assert_eq!(
            Sweep::new(Duration::from_secs(1)).take(&all, Duration::from_secs(60)),
            vec![1, 2, 3]
        );
        assert!(
            Sweep::new(Duration::ZERO)
                .take(&all, Duration::from_secs(60))
                .is_empty()
        );
        assert!(
            Sweep::new(Duration::from_secs(1))
                .take::<u8>(&[], Duration::from_secs(1))
                .is_empty()
        );
    }
}
