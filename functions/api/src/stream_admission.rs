//! Whether a stream may open: at most `STREAM_OPENS_PER_SOURCE_PER_MINUTE` openings a minute
//! from one source (counted in the table), and at most `MAX_STREAMS_PER_SOURCE` streams open at
//! once from one source and `MAX_STREAMS_PER_WALLET` on one wallet. What an open stream holds
//! depends on the transport, because what it uses up does:
//!
//! - under the function URL every stream is a Lambda instance of the account's concurrency,
//!   and instances share nothing: the counts live in the table, as leased slots
//!   ([`live_balances::storage::SlotLease`]) renewed while the stream runs — a stream whose
//!   instance died frees its slot when the lease runs out;
//! - on the server a stream is memory and a descriptor of one task: each task counts its own
//!   streams in memory (so the caps hold per task; the load balancer spreads a source's
//!   streams over the tasks).
//!
//! The [`StreamTickets`] travel with the response body and are given back when it is dropped
//! — the stream ended, or its client left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use live_balances::feed::pairs::WalletPair;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::keys::StreamSlots;
use live_balances::storage::{SlotLease, Table, Written};

use crate::error::ApiError;
use crate::limits;
use crate::request::Request;
use crate::state::State;
use crate::telemetry::OpenStream;

/// One task's open streams by what they are counted against (the server's counts).
#[derive(Debug, Clone, Default)]
pub struct LocalStreamCounts(Arc<Mutex<HashMap<String, u32>>>);

impl LocalStreamCounts {
    /// Counts one more stream against each of `counted` if every one is below its max; else
    /// none, and which is full.
    fn take(&self, counted: &[(String, u32, &'static str)]) -> Result<(), ApiError> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (key, max, whose) in counted {
            if counts.get(key).copied().unwrap_or(0) >= *max {
                return Err(ApiError::TooManyStreams { whose, max: *max });
            }
        }
        for (key, ..) in counted {
            *counts.entry(key.clone()).or_default() += 1;
        }
        Ok(())
    }

    fn give_back(&self, counted: &[String]) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for key in counted {
            if let Some(n) = counts.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(key);
                }
            }
        }
    }
}

/// What an open stream holds; given back on drop.
#[derive(Debug)]
pub struct StreamTickets {
    held: Held,
    _open: OpenStream,
}

#[derive(Debug)]
enum Held {
    Table {
        table: Table,
        leases: Vec<SlotLease>,
        renewal: tokio::task::AbortHandle,
    },
    Local {
        counts: LocalStreamCounts,
        keys: Vec<String>,
    },
}

impl Drop for StreamTickets {
    fn drop(&mut self) {
        match &mut self.held {
            Held::Local { counts, keys } => counts.give_back(keys),
            Held::Table {
                table,
                leases,
                renewal,
            } => {
                renewal.abort();
                let (table, leases) = (table.clone(), std::mem::take(leases));
                // Given back in the background; a lease that is not runs out by itself.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(release(table, leases));
                }
            }
        }
    }
}

async fn release(table: Table, leases: Vec<SlotLease>) {
    for lease in &leases {
        if let Err(error) = table.release_stream_slot(lease).await {
            tracing::warn!(%error, slot = lease.slot, "stream slot not given back; its lease runs out");
        }
    }
}

/// How long a slot's lease lasts: how long a stream whose instance died keeps its slot.
const LEASE: Duration = Duration::from_secs(120);
/// How often a running stream renews its leases: two renewals may fail before one runs out.
const RENEW_EVERY: Duration = Duration::from_secs(40);

/// Admits a stream of `wallets` from the request's source (the opening already counted by
/// [`opened`]), or refuses it with `429 too_many_streams`.
pub async fn admit(
    state: &State,
    source: &str,
    wallets: &[WalletPair],
) -> Result<StreamTickets, ApiError> {
    let bounds = &state.settings.bounds;
    if let Some(counts) = &state.local_streams {
        let mut counted = vec![(
            format!("src:{source}"),
            bounds.max_streams_per_source,
            "from one source",
        )];
        counted.extend(wallets.iter().map(|w| {
            (
                format!("wallet:{}:{}", w.chain_id, w.owner),
                bounds.max_streams_per_wallet,
                "on one wallet",
            )
        }));
        counts.take(&counted)?;
        return Ok(StreamTickets {
            held: Held::Local {
                counts: counts.clone(),
                keys: counted.into_iter().map(|(k, ..)| k).collect(),
            },
            _open: OpenStream::opened(),
        });
    }
    let holder = format!("{:032x}", rand::random::<u128>());
    let mut wanted = vec![(
        StreamSlots::Source(source),
        bounds.max_streams_per_source,
        "from one source",
    )];
    wanted.extend(wallets.iter().map(|w| {
        (
            StreamSlots::Wallet(w.chain_id, &w.owner),
            bounds.max_streams_per_wallet,
            "on one wallet",
        )
    }));
    let mut leases = Vec::with_capacity(wanted.len());
    for (slots, max, whose) in wanted {
        let now = unix_now();
        let claimed = state
            .table
            .claim_stream_slot(slots, max, &holder, now, now + LEASE.as_secs())
            .await;
        match claimed {
            Ok(Some(slot)) => leases.push(slot),
            refused => {
                release(state.table.clone(), leases).await;
                refused?;
                tracing::warn!(whose, max, "stream refused: every slot taken");
                return Err(ApiError::TooManyStreams { whose, max });
            }
        }
    }
    let renewal = tokio::spawn(renew(state.table.clone(), leases.clone()));
    Ok(StreamTickets {
        held: Held::Table {
            table: state.table.clone(),
            leases,
            renewal: renewal.abort_handle(),
        },
        _open: OpenStream::opened(),
    })
}

/// Counts the opening of a stream against its source's window; the source, for [`admit`].
pub async fn opened(state: &State, req: &Request) -> Result<String, ApiError> {
    limits::admit_stream_open(state, req).await
}

/// Renews `leases` for as long as the stream runs (this task is aborted when its tickets are
/// dropped).
async fn renew(table: Table, leases: Vec<SlotLease>) {
    let mut ticker = tokio::time::interval(RENEW_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let until = unix_now() + LEASE.as_secs();
        for slot in &leases {
            match table.renew_stream_slot(slot, until).await {
                Ok(Written::Yes) => {}
                // Its lease ran out (renewals failed for its whole length) and another stream
                // took the slot: this one runs on uncounted until it ends, at most
                // `SSE_MAX_SECS`.
                Ok(Written::Skipped) => {
                    tracing::warn!(slot = slot.slot, "stream slot lost to another stream")
                }
                Err(error) => tracing::warn!(%error, "stream slot not renewed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_counts_refuse_past_any_cap_and_count_nothing_then() {
        let counts = LocalStreamCounts::default();
        let key = |k: &str, max| (k.to_string(), max, "x");
        counts.take(&[key("src", 2), key("w1", 1)]).unwrap();
        // w1 is full: refused, and src is not counted for it.
        assert!(counts.take(&[key("src", 2), key("w1", 1)]).is_err());
        counts.take(&[key("src", 2), key("w2", 1)]).unwrap();
        assert!(
            counts.take(&[key("src", 2), key("w3", 1)]).is_err(),
            "src full"
        );
        counts.give_back(&["src".into(), "w1".into()]);
        counts.take(&[key("src", 2), key("w1", 1)]).unwrap();
    }
}
