//! Head pacing: when a watcher looks for a new head and how long it waits between steps. A
//! live `newHeads` subscription announces heads (no request for them); a safety poll over
//! HTTP checks a subscription that has gone quiet — never more often than twice the chain's
//! last gap between announced heads, so a healthy one on a 12 s chain never sets it off; a
//! new subscription is followed by one head request (it announces nothing made before it).
//! Without a subscription the head is polled every `HEAD_POLL_INTERVAL_MS`. Between blocks,
//! idle work (sweeps, first reads, re-reads) wakes the watcher on its own clock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use live_balances::domain::model::ChainCursor;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::heads::{Head, HeadSignal};

/// Safety-net polling period while a head subscription is live: at least this, and at least
/// twice the chain's last gap between announced heads (up to the maximum), so a healthy
/// subscription on a 12 s chain never sets it off — a check due before the next block is
/// due would cost a request per block and find nothing.
const SUBSCRIBED_POLL_INTERVAL: Duration = Duration::from_secs(10);
const MAX_SUBSCRIBED_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// Why the head is asked for over HTTP while a subscription is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollReason {
    /// A new subscription announces nothing made before it.
    CatchUp,
    /// The subscription has been quiet for a while.
    Safety,
}

/// Where the next head comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadCheck {
    /// The subscription announced it: no request needed.
    Announced(Head),
    /// Ask the node (no subscription, or for this reason while one is live).
    Ask(Option<PollReason>),
    /// The subscription is live and quiet: nothing to do.
    Quiet,
}

/// A watcher's clock for heads and idle work.
#[derive(Debug)]
pub(crate) struct HeadPacing {
    heads: Arc<HeadSignal>,
    /// Polling period without a live subscription (`HEAD_POLL_INTERVAL_MS`).
    poll_interval: Duration,
    /// How long a chain may go without a step before idle work runs on its own.
    idle_after: Duration,
    last_step: Instant,
    /// Last time the head was asked for over HTTP, or announced by the subscription.
    last_poll: Instant,
    /// When the subscription last announced a head, which, and the gap before it.
    last_announced: Instant,
    last_announced_number: u64,
    announced_gap: Duration,
}

impl HeadPacing {
    /// `snapshot_interval`: the frequent sweep's period, which idle work keeps up with.
    pub(crate) fn new(
        heads: Arc<HeadSignal>,
        poll_interval: Duration,
        snapshot_interval: Duration,
    ) -> Self {
        Self {
            heads,
            poll_interval,
            idle_after: idle_after(snapshot_interval),
            last_step: Instant::now(),
            last_poll: Instant::now(),
            last_announced: Instant::now(),
            last_announced_number: 0,
            announced_gap: Duration::ZERO,
        }
    }

    pub(crate) fn subscribed(&self) -> bool {
        self.heads.subscribed.load(Ordering::SeqCst)
    }

    /// Where the chain's newest head comes from now. With a live subscription the newest
    /// header is already here (a head the cursor holds is no news); otherwise — no WebSocket,
    /// reconnecting, or the periodic safety check — it is asked for.
    pub(crate) fn check(&mut self, cursor: &ChainCursor) -> HeadCheck {
        let announced = self
            .heads
            .latest()
            .filter(|h| cursor.hash_at(h.number) != Some(h.hash));
        let subscribed = self.subscribed();
        let reason = match announced {
            Some(head) if subscribed => {
                // A head that arrives proves the subscription alive: the safety-net check
                // is only for one that has gone quiet.
                self.last_poll = Instant::now();
                self.announced_gap = self.last_announced.elapsed();
                self.last_announced = Instant::now();
                self.last_announced_number = head.number;
                return HeadCheck::Announced(head);
            }
            _ if subscribed => match self.poll_reason() {
                Some(reason) => Some(reason),
                None => return HeadCheck::Quiet,
            },
            _ => None,
        };
        self.last_poll = Instant::now();
        HeadCheck::Ask(reason)
    }

    /// Takes note of the head asked for `reason`; returns whether the subscription missed
    /// blocks (it is silent, not the chain) and must be made again.
    pub(crate) fn asked(&mut self, reason: Option<PollReason>, head: &Head) -> bool {
        match reason {
            Some(PollReason::CatchUp) => {
                // Counted from the new subscription.
                self.last_announced = Instant::now();
                self.last_announced_number = head.number;
                false
            }
            Some(PollReason::Safety) => head.number > self.last_announced_number + 1,
            None => false,
        }
    }

    /// The last head the subscription announced (or a catch-up found).
    pub(crate) fn last_announced(&self) -> u64 {
        self.last_announced_number
    }

    /// Asks the head subscription to subscribe again.
    pub(crate) fn resubscribe(&self) {
        self.heads.resubscribe();
    }

    /// Whether an HTTP head check is due while subscribed, and why: right after a
    /// (re)subscription, which announces nothing produced before it, and then as a periodic
    /// safety net.
    fn poll_reason(&self) -> Option<PollReason> {
        if self.heads.catch_up.swap(false, Ordering::SeqCst) {
            Some(PollReason::CatchUp)
        } else if self.last_poll.elapsed() >= safety_poll_interval(self.announced_gap) {
            Some(PollReason::Safety)
        } else {
            None
        }
    }

    /// A step (with or without a block) just completed.
    pub(crate) fn stepped(&mut self) {
        self.last_step = Instant::now();
    }

    /// Whether the chain went long enough without a step for idle work to run.
    pub(crate) fn idle_work_due(&self) -> bool {
        self.last_step.elapsed() >= self.idle_after
    }

    /// The pause once caught up: the next head is announced (or polled for) — with a live
    /// subscription polling is only a safety net — but idle work that falls due wakes the
    /// watcher too.
    pub(crate) fn caught_up_pause(&self) -> Duration {
        let poll = if self.subscribed() {
            self.poll_interval
                .max(safety_poll_interval(self.announced_gap))
        } else {
            self.poll_interval
        };
        poll.min(self.idle_after)
    }

    /// Sleeps for `pause` or until a new head is announced, unless told to stop first;
    /// returns whether to stop.
    pub(crate) async fn wait_or_stop(
        &self,
        stop: &mut watch::Receiver<bool>,
        pause: Duration,
    ) -> bool {
        if pause.is_zero() {
            return *stop.borrow();
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => *stop.borrow(),
            _ = self.heads.new_head.notified() => *stop.borrow(),
            _ = stop.changed() => true,
        }
    }
}

/// How long a chain may go without a step before the sweeps run on their own: shorter than
/// mainnet's 12 s blocks would only split each block's sweep in two.
fn idle_after(snapshot_interval: Duration) -> Duration {
    (snapshot_interval / 4)
        .min(Duration::from_secs(15))
        .max(Duration::from_millis(500))
}

/// How long a live subscription may stay silent before the head is asked for over HTTP, given
/// the last gap between two heads it announced.
fn safety_poll_interval(announced_gap: Duration) -> Duration {
    (announced_gap * 2).clamp(SUBSCRIBED_POLL_INTERVAL, MAX_SUBSCRIBED_POLL_INTERVAL)
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Address, B256};

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn head(number: u64) -> Head {
        Head {
            number,
            hash: B256::repeat_byte(number as u8),
            parent_hash: B256::repeat_byte(number.saturating_sub(1) as u8),
            beneficiary: Address::ZERO,
            withdrawals_root: None,
            timestamp: 0,
        }
    }

    fn cursor_at(number: u64) -> ChainCursor {
        let hash = head(number).hash;
        ChainCursor {
            chain_id: 1,
            block: number,
            hash,
            recent: vec![(number, hash)],
            updated_at: 0,
        }
    }

    fn pacing(subscribed: bool) -> (HeadPacing, Arc<HeadSignal>) {
        let heads = Arc::new(HeadSignal::default());
        heads.subscribed.store(subscribed, Ordering::SeqCst);
        let pacing = HeadPacing::new(heads.clone(), 250 * Duration::from_millis(1), 60 * SECOND);
        (pacing, heads)
    }

    #[test]
    fn a_healthy_subscription_never_waits_out_its_safety_check() {
        assert_eq!(safety_poll_interval(SECOND), SUBSCRIBED_POLL_INTERVAL);
        // Mainnet: the next block is due well before the check.
        assert_eq!(safety_poll_interval(12 * SECOND), 24 * SECOND);
        assert_eq!(
            safety_poll_interval(3600 * SECOND),
            MAX_SUBSCRIBED_POLL_INTERVAL
        );
    }

    #[test]
    fn without_a_subscription_every_check_asks_the_node() {
        let (mut pacing, _) = pacing(false);
        assert_eq!(pacing.check(&cursor_at(5)), HeadCheck::Ask(None));
        assert_eq!(pacing.caught_up_pause(), 250 * Duration::from_millis(1));
    }

    #[test]
    fn a_live_subscription_announces_then_stays_quiet_until_its_safety_check() {
        let (mut pacing, heads) = pacing(true);
        heads.announce(head(6));
        assert_eq!(pacing.check(&cursor_at(5)), HeadCheck::Announced(head(6)));
        assert_eq!(pacing.last_announced(), 6);
        // The announced head processed: nothing new, nothing due.
        assert_eq!(pacing.check(&cursor_at(6)), HeadCheck::Quiet);
        pacing.last_poll -= SUBSCRIBED_POLL_INTERVAL;
        assert_eq!(
            pacing.check(&cursor_at(6)),
            HeadCheck::Ask(Some(PollReason::Safety))
        );
        // The check found the chain two blocks past what was announced: resubscribe.
        assert!(!pacing.asked(Some(PollReason::Safety), &head(7)));
        assert!(pacing.asked(Some(PollReason::Safety), &head(8)));
    }

    #[test]
    fn a_new_subscription_asks_once_for_what_it_never_announced() {
        let (mut pacing, heads) = pacing(true);
        heads.catch_up.store(true, Ordering::SeqCst);
        assert_eq!(
            pacing.check(&cursor_at(5)),
            HeadCheck::Ask(Some(PollReason::CatchUp))
        );
        assert!(!pacing.asked(Some(PollReason::CatchUp), &head(9)));
        assert_eq!(pacing.last_announced(), 9);
        assert_eq!(pacing.check(&cursor_at(9)), HeadCheck::Quiet);
    }

    #[test]
    fn idle_work_falls_due_on_its_own_clock() {
        let (mut pacing, _) = pacing(true);
        assert_eq!(idle_after(60 * SECOND), 15 * SECOND);
        assert_eq!(idle_after(Duration::ZERO), Duration::from_millis(500));
        // Subscribed: the safety poll is far off, idle work comes first.
        assert_eq!(pacing.caught_up_pause(), 10 * SECOND);
        pacing.stepped();
        assert!(!pacing.idle_work_due());
        pacing.last_step -= 15 * SECOND;
        assert!(pacing.idle_work_due());
        pacing.stepped();
        assert!(!pacing.idle_work_due());
    }
}
