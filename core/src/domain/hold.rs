//! Holds: what keeps a wallet tracked with no stream open. A back end's open order holds its
//! wallet's session until the order's `validTo`; a live webhook subscription holds each of its
//! wallets' sessions until it is deleted or disabled. The session's expiry is then the latest of
//! its own (streams and session writes keep it `SESSION_TTL_SECS` ahead) and its holds', so the
//! poller — which follows a session until its expiry — keeps the wallet for as long as any
//! hold lives. When the last hold ends, the session lives on by the usual rules: one more
//! `SESSION_TTL_SECS` from then, or longer while a stream keeps it alive.
//!
//! Pure: the storage module (`storage/holds.rs`) applies [`next_expiry`] to the stored item.

use std::collections::BTreeMap;

use crate::domain::order::OrderId;

/// The `until` of a hold with no end of its own (a subscription, until it is deleted or
/// disabled): the year 3000.
pub const HOLD_FOREVER: u64 = 32_503_680_000;

/// Who holds a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder<'a> {
    /// An open order (an order id is unique per wallet).
    Order(&'a OrderId),
    /// A webhook subscription, by id.
    Webhook(&'a str),
}

impl Holder<'_> {
    /// Its key in the session's `holds` map.
    pub fn key(&self) -> String {
        match self {
            Self::Order(id) => format!("o#{id}"),
            Self::Webhook(id) => format!("w#{id}"),
        }
    }
}

/// The session's holds once `holder` holds it until `until` (`None`: lets go), with holds that
/// ended before `now` dropped.
pub fn holds_after(
    holds: &BTreeMap<String, u64>,
    holder: &str,
    until: Option<u64>,
    now: u64,
) -> BTreeMap<String, u64> {
    let mut next: BTreeMap<String, u64> = holds
        .iter()
        .filter(|(key, until)| key.as_str() != holder && **until >= now)
        .map(|(key, until)| (key.clone(), *until))
        .collect();
    if let Some(until) = until {
        next.insert(holder.to_string(), until);
    }
    next
}

/// The session's expiry after a hold changed: raised to a hold that reaches further than the
/// session lives now; else never past the latest of the remaining holds and one idle lifetime
/// from now (`idle`, the session TTL) — a hold let go of counts as the wallet's last use — and
/// never lowered below what the session's own use gave it (which is at most that far ahead).
pub fn next_expiry(current: u64, held_after: &BTreeMap<String, u64>, now: u64, idle: u64) -> u64 {
    let latest_hold = held_after.values().copied().max().unwrap_or(0);
    let bound = latest_hold.max(now.saturating_add(idle));
    current.min(bound).max(latest_hold)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;
    const IDLE: u64 = 3_600;

    fn holds(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn a_hold_raises_the_expiry_to_its_end() {
        let after = holds_after(&BTreeMap::new(), "o#a", Some(NOW + 86_400), NOW);
        assert_eq!(next_expiry(NOW + 100, &after, NOW, IDLE), NOW + 86_400);
        let forever = holds_after(&after, "w#s", Some(HOLD_FOREVER), NOW);
        assert_eq!(next_expiry(NOW + 86_400, &forever, NOW, IDLE), HOLD_FOREVER);
    }

    #[test]
    fn a_session_kept_alive_further_keeps_its_own_expiry() {
        // A stream keeps the session an hour ahead; an order ending sooner changes nothing.
        let after = holds_after(&BTreeMap::new(), "o#a", Some(NOW + 60), NOW);
        assert_eq!(next_expiry(NOW + 3_000, &after, NOW, IDLE), NOW + 3_000);
    }

    #[test]
    fn letting_go_falls_back_to_the_remaining_holds_or_one_idle_lifetime() {
        let before = holds(&[("w#s", HOLD_FOREVER), ("o#a", NOW + 500_000)]);
        // The subscription goes; the order still holds.
        let after = holds_after(&before, "w#s", None, NOW);
        assert_eq!(after, holds(&[("o#a", NOW + 500_000)]));
        assert_eq!(next_expiry(HOLD_FOREVER, &after, NOW, IDLE), NOW + 500_000);
        // The order goes too: one idle lifetime from now, the usual rules.
        let none = holds_after(&after, "o#a", None, NOW);
        assert!(none.is_empty());
        assert_eq!(next_expiry(NOW + 500_000, &none, NOW, IDLE), NOW + IDLE);
        // A session about to expire by its own rules is not lengthened by a let-go.
        assert_eq!(next_expiry(NOW + 10, &none, NOW, IDLE), NOW + 10);
    }

    #[test]
    fn ended_holds_are_dropped_and_replacing_a_hold_can_shorten_it() {
        let before = holds(&[("o#old", NOW - 1), ("o#a", NOW + 90_000)]);
        let after = holds_after(&before, "o#a", Some(NOW + 10_000), NOW);
        assert_eq!(after, holds(&[("o#a", NOW + 10_000)]));
        assert_eq!(next_expiry(NOW + 90_000, &after, NOW, IDLE), NOW + 10_000);
        assert_eq!(Holder::Webhook("ab").key(), "w#ab");
        assert_eq!(Holder::Order(&OrderId::parse("x").unwrap()).key(), "o#x");
    }
}
