//! A watcher's periodic re-reads, spread over their intervals (see `crate::sweep`): held
//! values of tokens seen changing silently every `SNAPSHOT_INTERVAL`, every held value every
//! `SWEEP_ALL_INTERVAL` within `SWEEP_READS_PER_BLOCK` reads a step, and — while native
//! balances are read per wallet — each unstreamed wallet's native balance every
//! `NATIVE_POLL_SECS`. Each step takes the share of the time since the last sweep.

use std::time::Duration;

use crate::sweep::Sweep;
use alloy::primitives::Address;
use tokio::time::Instant;

use crate::held::{HeldValues, ValueId};
use crate::watched::WatchedSet;

/// The three sweeps and their common clock.
#[derive(Debug)]
pub(crate) struct Sweeps {
    silent: Sweep<ValueId>,
    all: Sweep<ValueId>,
    native: Sweep<Address>,
    /// When the held values were last swept: each sweep takes the share of the time since.
    last: Instant,
}

impl Sweeps {
    /// `budget`: most values the sweep of every held value takes in one step.
    pub(crate) fn new(
        snapshot_interval: Duration,
        all_interval: Duration,
        budget: usize,
        native_interval: Duration,
    ) -> Self {
        Self {
            silent: Sweep::new(snapshot_interval),
            all: Sweep::with_budget(all_interval, budget),
            native: Sweep::new(native_interval),
            last: Instant::now(),
        }
    }

    /// Time since the held values were last swept: what this step's shares cover.
    pub(crate) fn since_last(&self) -> Duration {
        self.last.elapsed()
    }

    /// This step's share of the wallets with no stream open at `now`, whose native balances
    /// are polled.
    pub(crate) fn native_share(&mut self, watched: &WatchedSet, now: u64) -> Vec<Address> {
        let elapsed = self.since_last();
        let unstreamed = watched.len() - watched.streamed_count(now);
        self.native
            .take_where(watched.by_owner(), unstreamed, elapsed, |wallet| {
                wallet.streaming_until <= now
            })
    }

    /// This step's share of the two sweeps of held values — silent tokens' first — and the
    /// clock restarted.
    pub(crate) fn held_share(&mut self, held: &HeldValues) -> Vec<ValueId> {
        let elapsed = self.since_last();
        self.last = Instant::now();
        let mut due = self.silent.take(held.silent_values(), elapsed);
        due.extend(self.all.take(held.all(), elapsed));
        due
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::U256;
    use live_balances::domain::model::{BalanceKey, Session, TokenRead};

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn held(owners: u8, silent_token: Address) -> HeldValues {
        let mut held = HeldValues::default();
        held.mark_silent(silent_token);
        for n in 1..=owners {
            let owner = Address::repeat_byte(n);
            for token in [silent_token, Address::repeat_byte(0xee)] {
                held.set(
                    owner,
                    BalanceKey::Balance { token },
                    TokenRead::Value(U256::ONE),
                );
            }
        }
        held
    }

    #[test]
    fn each_step_takes_its_share_of_the_time_since_the_last() {
        let silent = Address::repeat_byte(0x51);
        let held = held(10, silent);
        let mut sweeps = Sweeps::new(10 * SECOND, 100 * SECOND, 1_000, 10 * SECOND);
        // A tenth of the silent interval: one of the ten silent values, and a hundredth of
        // the twenty held values rounds down to none.
        sweeps.last -= SECOND;
        let due = sweeps.held_share(&held);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.token(), silent);
        // The clock restarted: nothing more is due at once.
        assert!(sweeps.since_last() < SECOND);
        assert!(sweeps.held_share(&held).is_empty());
        // A whole interval of each: every value once.
        sweeps.last -= 100 * SECOND;
        let due = sweeps.held_share(&held);
        assert_eq!(due.len(), 10 + 20);
    }

    #[test]
    fn the_budget_bounds_the_sweep_of_every_held_value() {
        let held = held(10, Address::repeat_byte(0x51));
        let mut sweeps = Sweeps::new(Duration::ZERO, 10 * SECOND, 3, 10 * SECOND);
        sweeps.last -= 10 * SECOND;
        assert_eq!(sweeps.held_share(&held).len(), 3);
    }

    /// A set watching wallets `0x01…` to `0x0a…`, none streamed.
    fn ten_wallets() -> WatchedSet {
        let mut watched = WatchedSet::new(None);
        for n in 1..=10 {
            let session = Session {
                expires_at: u64::MAX,
                ..Session::new(1, Address::repeat_byte(n), 0)
            };
            watched.upsert(&session, true);
        }
        watched
    }

    #[test]
    fn native_polls_share_the_held_values_clock() {
        let watched = ten_wallets();
        let mut sweeps = Sweeps::new(10 * SECOND, 10 * SECOND, 1_000, 10 * SECOND);
        sweeps.last -= 5 * SECOND;
        assert_eq!(sweeps.native_share(&watched, 0).len(), 5);
        // Taken before the held values' sweep restarts the clock, which it does not touch.
        assert!(sweeps.since_last() >= 5 * SECOND);
        sweeps.held_share(&HeldValues::default());
        assert!(sweeps.native_share(&watched, 0).is_empty());
    }

    #[test]
    fn native_polls_skip_the_streamed_wallets() {
        let mut watched = ten_wallets();
        // Wallets 1..=4 stream until 100; wallet 5's stream ended at 50.
        for n in 1..=4 {
            watched.set_streaming(&Address::repeat_byte(n), 100, 0, 0);
        }
        watched.set_streaming(&Address::repeat_byte(5), 50, 0, 0);
        assert_eq!(watched.streamed_count(60), 4);
        let mut sweeps = Sweeps::new(10 * SECOND, 10 * SECOND, 1_000, 10 * SECOND);
        sweeps.last -= 10 * SECOND;
        let polled = sweeps.native_share(&watched, 60);
        let expected: Vec<Address> = (5..=10).map(Address::repeat_byte).collect();
        assert_eq!(
            polled, expected,
            "one interval: every unstreamed wallet once"
        );
        assert_eq!(
            watched.streamed(60).collect::<Vec<_>>(),
            (1..=4).map(Address::repeat_byte).collect::<Vec<_>>()
        );
        // Once the streams end, every wallet is polled.
        assert_eq!(watched.streamed_count(100), 0);
        watched.remove(&Address::repeat_byte(1));
        assert_eq!(watched.streamed_count(60), 3);
    }
}
