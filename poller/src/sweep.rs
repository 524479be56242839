//! The periodic re-read, spread over its interval: values that change without any event
//! (rebasing tokens) are caught within one interval, at a steady cost instead of a spike.
//! A sweep may have a budget — most keys per step — so that a large set takes longer than the
//! interval rather than more reads per step: the cost per block stays bounded, and a small set
//! is still swept once per interval.
//!
//! The sweep walks an ordered map with a cursor, so values can come and go between steps
//! without rebuilding anything: each step takes the share of the map its elapsed time is of
//! the interval, continuing after the last key it took.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

/// What a pass over `count` keys once per `interval` owes after `elapsed`: the share of them
/// that `elapsed` is of the interval. Nothing for a zero interval (no pass).
pub fn share_of(count: usize, elapsed: Duration, interval: Duration) -> f64 {
    if interval.is_zero() {
        return 0.0;
    }
    count as f64 * elapsed.as_secs_f64() / interval.as_secs_f64()
}

/// What a periodic pass owes from step to step: [`share_of`] its keys for the time since the
/// last step, the fraction of a key left over carried to the next so that small steps add up.
/// A step that reaches its cap owes nothing more: the pass slows down, it does not pile up
/// work for later.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    carry: f64,
}

impl Pace {
    /// How many of `count` keys a pass over them once per `interval` takes after `elapsed`,
    /// at most `cap`.
    pub fn due(
        &mut self,
        count: usize,
        elapsed: Duration,
        interval: Duration,
        cap: usize,
    ) -> usize {
        let share = share_of(count, elapsed, interval) + self.carry;
        let due = (share.floor() as usize).min(cap);
        self.carry = if due == cap { 0.0 } else { share - due as f64 };
        due
    }
}

/// Where a sweep is in the ordered keys it walks.
#[derive(Debug, Clone)]
pub struct Sweep<K> {
    interval: Duration,
    /// Most keys one step takes (`None`: as many as the interval needs).
    budget: Option<usize>,
    /// The last key taken; the next step starts after it.
    last: Option<K>,
    pace: Pace,
}

impl<K: Ord + Clone> Sweep<K> {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            budget: None,
            last: None,
            pace: Pace::default(),
        }
    }

    /// A sweep that takes at most `budget` keys a step: once per `interval` while the keys
    /// fit, else once per `len / budget` steps.
    pub fn with_budget(interval: Duration, budget: usize) -> Self {
        Self {
            budget: Some(budget),
            ..Self::new(interval)
        }
    }

    /// The keys due now: the share of `all` that `elapsed` is of the interval (at most the
    /// budget), continuing after the last key taken (wrapping around). Over one interval every
    /// key present throughout is taken once, unless the budget holds the sweep back; a zero
    /// interval disables the sweep.
    pub fn take<V>(&mut self, all: &BTreeMap<K, V>, elapsed: Duration) -> Vec<K> {
        self.take_where(all, all.len(), elapsed, |_| true)
    }

    /// [`Self::take`] over the entries of `all` that `keep` accepts, of which there are
    /// `eligible`: the sweep walks the map as it is, skipping the others, instead of a copy of
    /// the eligible part built every step.
    pub fn take_where<V>(
        &mut self,
        all: &BTreeMap<K, V>,
        eligible: usize,
        elapsed: Duration,
        keep: impl Fn(&V) -> bool,
    ) -> Vec<K> {
        if eligible == 0 {
            return vec![];
        }
        // Held back by the budget, the sweep slows down; taking every key, it owes no more.
        let cap = self.budget.unwrap_or(usize::MAX).min(eligible);
        let count = self.pace.due(eligible, elapsed, self.interval, cap);
        if count == 0 {
            return vec![];
        }
        // After the last key taken to the end, then from the start through it: each key once.
        let (after, before) = match &self.last {
            Some(last) => (
                all.range((Bound::Excluded(last.clone()), Bound::Unbounded)),
                Some(all.range((Bound::Unbounded, Bound::Included(last.clone())))),
            ),
            None => (all.range(..), None),
        };
        let taken: Vec<K> = after
            .chain(before.into_iter().flatten())
            .filter(|(_, v)| keep(v))
            .take(count)
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(last) = taken.last() {
            self.last = Some(last.clone());
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pace_adds_up_small_steps_and_owes_nothing_past_its_cap() {
        let (second, interval) = (Duration::from_secs(1), Duration::from_secs(400));
        let mut pace = Pace::default();
        // 100 keys every 400 s: a quarter of a key a second, one once four seconds add up.
        let taken: Vec<usize> = (0..4)
            .map(|_| pace.due(100, second, interval, usize::MAX))
            .collect();
        assert_eq!(taken, [0, 0, 0, 1]);
        // Owed 50, held at a cap of 5: the rest is not owed later.
        assert_eq!(pace.due(100, 200 * second, interval, 5), 5);
        assert_eq!(pace.due(100, second, interval, 5), 0);
        assert_eq!(pace.due(100, 3 * second, interval, 5), 1);
    }

    fn map(keys: impl IntoIterator<Item = u32>) -> BTreeMap<u32, ()> {
        keys.into_iter().map(|k| (k, ())).collect()
    }

    #[test]
    fn a_pass_owes_the_share_of_its_keys_the_time_is_of_its_interval() {
        let second = Duration::from_secs(1);
        assert_eq!(share_of(100, second, 10 * second), 10.0);
        assert_eq!(share_of(100, 30 * second, 60 * second), 50.0);
        assert_eq!(share_of(100, second / 2, second / 4), 200.0);
        // A zero interval is no pass at all, whatever the time.
        assert_eq!(share_of(100, 60 * second, Duration::ZERO), 0.0);
        assert_eq!(share_of(0, 60 * second, second), 0.0);
    }

    #[test]
    fn every_value_once_per_interval_in_even_steps() {
        let all = map(0..100);
        let mut sweep = Sweep::new(Duration::from_secs(10));
        let mut seen = vec![];
        for _ in 0..10 {
            let step = sweep.take(&all, Duration::from_secs(1));
            assert_eq!(step.len(), 10, "spread evenly");
            seen.extend(step);
        }
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn small_steps_accumulate_and_wrap() {
        let all = map([1, 2, 3]);
        let mut sweep = Sweep::new(Duration::from_secs(3));
        let mut taken = vec![];
        for _ in 0..12 {
            taken.extend(sweep.take(&all, Duration::from_millis(500)));
        }
        assert_eq!(taken, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn keys_may_come_and_go_between_steps() {
        let mut all = map([10, 20, 30, 40]);
        let mut sweep = Sweep::new(Duration::from_secs(4));
        assert_eq!(sweep.take(&all, Duration::from_secs(1)), vec![10]);
        // The key taken last goes away and new ones arrive: the walk goes on after it.
        all.remove(&10);
        all.insert(15, ());
        all.insert(5, ());
        assert_eq!(sweep.take(&all, Duration::from_secs(2)), vec![15, 20]);
        assert_eq!(sweep.take(&all, Duration::from_secs(2)), vec![30, 40, 5]);
    }

    #[test]
    fn a_budget_slows_a_large_sweep_down_and_leaves_a_small_one_alone() {
        let all = map(0..1000);
        // 1,000 keys in 10 s would be 100 a second; the budget allows 30 a step.
        let mut sweep = Sweep::with_budget(Duration::from_secs(10), 30);
        let mut seen = vec![];
        for _ in 0..34 {
            let step = sweep.take(&all, Duration::from_secs(1));
            assert!(step.len() <= 30);
            seen.extend(step);
        }
        // Every key once, in 34 steps instead of 10 (and 20 into the next round).
        assert_eq!(seen.len(), 1020);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 1000);
        // A long pause takes one budget's worth, not the backlog.
        assert_eq!(sweep.take(&all, Duration::from_secs(60)).len(), 30);
        // Within the budget, the interval rules.
        let small = map(0..10);
        let mut sweep = Sweep::with_budget(Duration::from_secs(10), 30);
        assert_eq!(sweep.take(&small, Duration::from_secs(5)).len(), 5);
    }

    #[test]
    fn long_pause_takes_everything_once_and_zero_interval_disables() {
        let all = map([1, 2, 3]);
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
            Sweep::<u32>::new(Duration::from_secs(1))
                .take(&BTreeMap::<u32, ()>::new(), Duration::from_secs(1))
                .is_empty()
        );
    }

    #[test]
    fn a_filtered_sweep_takes_only_the_eligible_once_per_interval() {
        // Odd keys only: 50 of 100.
        let all = map(0..100);
        let mut sweep = Sweep::new(Duration::from_secs(10));
        let mut seen = vec![];
        for _ in 0..10 {
            let step = sweep.take_where(&all, 50, Duration::from_secs(1), |_| true);
            assert_eq!(step.len(), 5, "the share of the eligible, not of the map");
            seen.extend(step);
        }
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        let odd: BTreeMap<u32, bool> = (0..100).map(|k| (k, k % 2 == 1)).collect();
        let mut sweep = Sweep::new(Duration::from_secs(10));
        let mut seen = vec![];
        for _ in 0..10 {
            seen.extend(sweep.take_where(&odd, 50, Duration::from_secs(1), |v| *v));
        }
        seen.sort();
        assert_eq!(seen, (0..100).filter(|k| k % 2 == 1).collect::<Vec<_>>());
        // Fewer eligible than counted: nothing is taken twice in one step.
        let mut sweep = Sweep::new(Duration::from_secs(1));
        let step = sweep.take_where(&odd, 60, Duration::from_secs(1), |v| *v);
        assert_eq!(step.len(), 50);
    }
}
