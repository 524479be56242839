//! The poller's health: every configured chain's watcher made progress (a new block or an
//! idle check completed) recently enough by the one rule in `core::poller_health`. `/health`
//! answers it as JSON, and `poller healthcheck` (the container's check) asks that route.

use serde::Serialize;

use live_balances::poller_health::progress_is_fresh;

use crate::metrics::Metrics;

/// One chain's watcher, as `/health` reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainHealth {
    pub chain: u64,
    pub ok: bool,
    pub processed_block: u64,
    pub head_block: u64,
    pub native_source: &'static str,
}

/// The body of `/health`: `ok` when every chain is.
#[derive(Debug, Serialize)]
pub struct Health {
    pub ok: bool,
    pub chains: Vec<ChainHealth>,
}

impl Health {
    /// Each of `chains` as its watcher last reported to `metrics`, at `now` (Unix seconds).
    pub fn of(metrics: &Metrics, chains: &[u64], now: u64) -> Self {
        let states = metrics.chains();
        let chains: Vec<ChainHealth> = chains
            .iter()
            .map(|&chain| {
                let state = states.get(&chain).copied().unwrap_or_default();
                ChainHealth {
                    chain,
                    ok: progress_is_fresh(now.saturating_sub(state.last_progress)),
                    processed_block: state.processed,
                    head_block: state.head,
                    native_source: state.native_source,
                }
            })
            .collect();
        Self {
            ok: chains.iter().all(|c| c.ok),
            chains,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_without_recent_progress_makes_the_poller_unhealthy() {
        let metrics = Metrics::default();
        metrics.set_chain(1, 10, 12);
        let now = live_balances::clock::unix_now();
        let health = Health::of(&metrics, &[1], now);
        assert!(health.ok);
        let health = Health::of(&metrics, &[1, 2], now);
        assert!(!health.ok);
        assert!(health.chains[0].ok && !health.chains[1].ok);
        let later = Health::of(&metrics, &[1], now + 61);
        assert!(!later.ok);
        let json = serde_json::to_string(&health.chains[0]).unwrap();
        assert_eq!(
            json,
            r#"{"chain":1,"ok":true,"processedBlock":10,"headBlock":12,"nativeSource":""}"#
        );
    }
}
