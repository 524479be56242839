//! Following every value of one wallet on an SSE stream — balances, native included, and
//! allowances — checking each update on the way: ids strictly increase (nothing delivered
//! twice) and each update continues from the value the client held (nothing lost, nothing out
//! of order). [`crate::follow::Trail`] does this for one token; the provider tests follow a
//! wallet's tokens, ETH and allowances at once.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{Context, bail, ensure};
use live_balances::domain::address::lower;
use serde_json::Value;
use tokio::time::Instant;

use crate::SseClient;

/// The key of a balance in a [`Ledger`].
pub fn balance_key(token: &Address) -> String {
    format!("balance {}", lower(token))
}

/// The key of an allowance in a [`Ledger`].
pub fn allowance_key(token: &Address, spender: &Address) -> String {
    format!("allowance {} {}", lower(token), lower(spender))
}

/// What one client holds of one wallet.
#[derive(Debug, Default)]
pub struct Ledger {
    pub values: BTreeMap<String, String>,
    /// Updates applied (each one a change the client saw).
    pub updates: u64,
    last_id: String,
    /// Keys whose value came from an `all_balances` with no update since.
    from_snapshot: BTreeMap<String, bool>,
}

impl Ledger {
    /// The value held for `key` (`"0"` when never shown).
    pub fn value(&self, key: &str) -> &str {
        self.values.get(key).map_or("0", String::as_str)
    }

    fn snapshot(&mut self, data: &Value) {
        self.values.clear();
        self.from_snapshot.clear();
        if let Some(balances) = data["balances"].as_object() {
            for (token, value) in balances {
                if let Some(v) = value.as_str() {
                    let key = format!("balance {token}");
                    self.values.insert(key.clone(), v.to_string());
                    self.from_snapshot.insert(key, true);
                }
            }
        }
        if let Some(allowances) = data["allowances"].as_object() {
            for (token, spenders) in allowances {
                for (spender, value) in spenders.as_object().into_iter().flatten() {
                    if let Some(v) = value.as_str() {
                        let key = format!("allowance {token} {spender}");
                        self.values.insert(key.clone(), v.to_string());
                        self.from_snapshot.insert(key, true);
                    }
                }
            }
        }
    }

    /// Applies one event, failing on a broken promise.
    pub fn apply(&mut self, e: &crate::Event) -> anyhow::Result<()> {
        let (key, value, previous) = match e.event.as_str() {
            "all_balances" => {
                let id = e.id.clone().unwrap_or_default();
                ensure!(
                    id >= self.last_id,
                    "a snapshot at {id} behind the last update {}",
                    self.last_id
                );
                self.snapshot(&e.data);
                return Ok(());
            }
            "balance_update" => (
                format!("balance {}", e.data["address"].as_str().unwrap_or_default()),
                &e.data["balance"],
                &e.data["previousBalance"],
            ),
            "allowance_update" => (
                format!(
                    "allowance {} {}",
                    e.data["address"].as_str().unwrap_or_default(),
                    e.data["spender"].as_str().unwrap_or_default()
                ),
                &e.data["allowance"],
                &e.data["previousAllowance"],
            ),
            _ => return Ok(()),
        };
        let id = e.id.clone().context("update without id")?;
        ensure!(
            id > self.last_id,
            "update ids must strictly increase: {id} after {}",
            self.last_id
        );
        self.last_id = id.clone();
        let value = value.as_str().context("value")?.to_string();
        let held = self.value(&key).to_string();
        // A first value the client already holds, or a change an `all_balances` already
        // showed (see `follow::Trail`): restatements, not changes.
        let restates = value == held
            && (previous.is_null() || self.from_snapshot.get(&key).copied().unwrap_or(false));
        if restates {
            return Ok(());
        }
        let previous = previous.as_str().unwrap_or("0");
        if previous != held {
            bail!(
                "{key}: update {id} does not continue from {held}: {:?}",
                e.data
            );
        }
        self.values.insert(key.clone(), value);
        self.from_snapshot.insert(key, false);
        self.updates += 1;
        Ok(())
    }

    /// Reads events until the client holds `want` for `key`, checking each; fails when
    /// `within` passes.
    pub async fn wait_for(
        &mut self,
        sse: &mut SseClient,
        key: &str,
        want: &str,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while self.value(key) != want {
            let e = sse
                .next(deadline)
                .await
                .with_context(|| format!("{key} holds {}, waiting for {want}", self.value(key)))?;
            self.apply(&e)?;
        }
        Ok(())
    }
}
