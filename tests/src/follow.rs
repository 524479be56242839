//! Following one token's balance on an SSE stream until it holds the chain's value, checking
//! every event on the way: update ids strictly increase (nothing delivered twice), each update
//! continues from the value before it (nothing lost), and — unless a reorg is expected —
//! blocks never go back.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::sol_types::SolCall;
use anyhow::{Context, bail, ensure};
use live_balances::chain::abi::IERC20;
use live_balances::domain::address::lower;
use serde_json::json;
use tokio::time::Instant;

use crate::{Environment, SseClient};

/// Whether the full-size fault scenarios were asked for (`FULL_FAULTS=1`); CI runs them
/// scaled down.
pub fn full_faults() -> bool {
    std::env::var("FULL_FAULTS").is_ok_and(|v| v == "1")
}

/// `balanceOf(owner)` of `token` read from the chain itself: the truth clients must reach.
pub async fn balance_of(env: &Environment, token: Address, owner: Address) -> anyhow::Result<U256> {
    let data = IERC20::balanceOfCall { owner }.abi_encode();
    let call = json!({ "to": lower(&token), "data": format!("0x{}", alloy::hex::encode(data)) });
    let reply = env.rpc("eth_call", json!([call, "latest"])).await?;
    let hex = reply.as_str().context("eth_call result")?;
    Ok(U256::from_str_radix(hex.trim_start_matches("0x"), 16)?)
}

/// One `balance_update` of the followed token.
#[derive(Debug, Clone)]
pub struct Update {
    pub id: String,
    pub previous: Option<String>,
    pub balance: String,
    pub block: u64,
}

/// What one client has seen of one token so far.
#[derive(Debug)]
pub struct Trail {
    pub token: String,
    /// The value the client holds now.
    pub value: String,
    pub updates: Vec<Update>,
    /// `all_balances` events seen while following (a resync restarts the chain of values).
    pub snapshots: u32,
    /// Changes restated after a snapshot that already showed them (see `follow_to`).
    pub restatements: u32,
    /// Reorgs legitimately bring values read at lower blocks.
    pub blocks_may_go_back: bool,
    /// Whether the value held came from an `all_balances` (no update since).
    from_snapshot: bool,
    last_update_id: String,
    last_block: u64,
}

impl Trail {
    /// A trail of `token` for a client that currently holds `value`.
    pub fn new(token: &Address, value: impl Into<String>) -> Self {
        Self {
            token: lower(token),
            value: value.into(),
            updates: vec![],
            snapshots: 0,
            restatements: 0,
            blocks_may_go_back: false,
            from_snapshot: true,
            last_update_id: String::new(),
            last_block: 0,
        }
    }

    /// Reads events until the client holds `want`, failing on the first broken promise or
    /// when `within` passes.
    pub async fn follow_to(
        &mut self,
        sse: &mut SseClient,
        want: &str,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while self.value != want {
            let e = sse.next(deadline).await.with_context(|| {
                format!(
                    "{} holds {}, waiting for {want} (after {} updates)",
                    self.token,
                    self.value,
                    self.updates.len()
                )
            })?;
            match e.event.as_str() {
                "balance_update" | "allowance_update" => {
                    let id = e.id.clone().context("update without id")?;
                    ensure!(
                        id > self.last_update_id,
                        "update ids must strictly increase: {id} after {}",
                        self.last_update_id
                    );
                    self.last_update_id = id.clone();
                    if e.event != "balance_update" || e.data["address"] != self.token.as_str() {
                        continue;
                    }
                    let previous = e.data["previousBalance"].as_str().map(str::to_string);
                    // The id before this one, for the failure message (an update at a higher
                    // position repeating a change the client holds is told apart from a replay).
                    let id_before = self
                        .updates
                        .last()
                        .map_or("", |u| u.id.as_str())
                        .to_string();
                    // `previousBalance: null` is the first value of a newly tracked token (the
                    // session's initial read). A resumed stream may carry it after the snapshot
                    // already showed that value: a restatement, not a change.
                    if previous.is_none() && e.data["balance"] == self.value.as_str() {
                        continue;
                    }
                    // A change to the value an `all_balances` showed, after it: the fanout
                    // appended its entry after the snapshot was read, and the stream ended
                    // before it reached that entry, so the reconnect (from the snapshot's id)
                    // replays it. The client already holds its value (docs/src/api/streams.md,
                    // "Resuming right after a snapshot"). Not a replay of an entry: ids still strictly increase.
                    if self.from_snapshot && e.data["balance"] == self.value.as_str() {
                        self.restatements += 1;
                        continue;
                    }
                    if previous.as_deref() != Some(self.value.as_str()) {
                        bail!(
                            "update does not continue from {} (id {id}, the previous update's {id_before}, {} updates and {} snapshots before): {:?}",
                            self.value,
                            self.updates.len(),
                            self.snapshots,
                            e.data
                        );
                    }
                    let block = e.data["blockNumber"].as_u64().context("blockNumber")?;
                    if !self.blocks_may_go_back {
                        ensure!(
                            block >= self.last_block,
                            "value went back to block {block} after {}: {:?}",
                            self.last_block,
                            e.data
                        );
                    }
                    self.last_block = block;
                    self.value = e.data["balance"].as_str().context("balance")?.to_string();
                    self.from_snapshot = false;
                    self.updates.push(Update {
                        id,
                        previous,
                        balance: self.value.clone(),
                        block,
                    });
                }
                "all_balances" => {
                    let id = e.id.clone().unwrap_or_default();
                    ensure!(
                        id >= self.last_update_id,
                        "a snapshot at {id} behind the last update {}",
                        self.last_update_id
                    );
                    self.snapshots += 1;
                    if let Some(v) = e.data["balances"][self.token.as_str()].as_str() {
                        self.value = v.to_string();
                    }
                    self.from_snapshot = true;
                }
                _ => {}
            }
        }
        Ok(())
    }
}
