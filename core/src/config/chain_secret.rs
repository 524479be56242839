//! The chain endpoints of a deployment kept in one Secrets Manager secret: which secret and
//! which chains (`CHAIN_SECRET_ID`, `CHAIN_IDS`), and how its JSON joins the environment.
//! The AWS call itself is in [`crate::runtime::secrets`].

use std::collections::BTreeSet;

use super::ConfigError;
use super::chains::{chain_id, is_endpoint_variable};
use super::vars::{Vars, invalid};

/// Where a deployment keeps its chain endpoints: one Secrets Manager secret
/// (`CHAIN_SECRET_ID`, a name or ARN) holding a JSON object whose keys are the endpoint
/// variables themselves (`{"RPC_URL_1":"https://…","WS_URL_1":"wss://…",…}`, a value listing
/// several URLs separated by commas as the variable would), read at start
/// by every binary that reaches a chain; `CHAIN_IDS` (`1,42161`) names the chains this
/// deployment serves. So no RPC URL, API key and all, sits in a function's or a task's plain
/// configuration. Without `CHAIN_SECRET_ID` the endpoints come from the environment (the
/// local stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSecret {
    pub secret_id: String,
    /// The chains served. The secret may hold more: a chain's URLs go into the secret before
    /// the deploy that lists it, and stay until after the deploy that drops it.
    pub chain_ids: BTreeSet<u64>,
}

impl ChainSecret {
    /// `CHAIN_SECRET_ID` with `CHAIN_IDS`, both or neither; `None` when neither is set.
    pub fn from_vars(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        match (vars.get("CHAIN_SECRET_ID"), vars.get("CHAIN_IDS")) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(invalid(
                "CHAIN_IDS",
                "names the chains of CHAIN_SECRET_ID, which is not set",
            )),
            (Some(_), None) => Err(invalid(
                "CHAIN_IDS",
                "required with CHAIN_SECRET_ID: the chains served, e.g. 1,42161",
            )),
            (Some(secret_id), Some(list)) => {
                let mut chain_ids = BTreeSet::new();
                for id in list.split(',').map(str::trim) {
                    if !chain_ids.insert(chain_id("CHAIN_IDS", id)?) {
                        return Err(invalid("CHAIN_IDS", format!("chain {id} is listed twice")));
                    }
                }
                Ok(Some(Self {
                    secret_id,
                    chain_ids,
                }))
            }
        }
    }

    /// `vars` with the endpoints of the served chains from `secret` (the secret's JSON text)
    /// added, ready for [`Settings::from_vars`]. The environment must not name endpoints of
    /// its own: two sources for one URL would leave which one is used to chance.
    pub fn merge(
        &self,
        vars: Vec<(String, String)>,
        secret: &str,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        if let Some((name, _)) = vars
            .iter()
            .find(|(k, v)| is_endpoint_variable(k) && !v.trim().is_empty())
        {
            return Err(invalid(
                name,
                "chain endpoints come from CHAIN_SECRET_ID; remove it from the environment",
            ));
        }
        let fail = |reason: String| ConfigError::ChainSecret {
            secret_id: self.secret_id.clone(),
            reason,
        };
        // serde_json's syntax errors give a position, never the text around it.
        let document: serde_json::Value =
            serde_json::from_str(secret).map_err(|e| fail(format!("not JSON ({e})")))?;
        let object = document.as_object().ok_or_else(|| {
            fail(r#"expected a JSON object such as {"RPC_URL_1":"https://…"}"#.into())
        })?;
        let mut merged = vars;
        let mut has_rpc = BTreeSet::new();
        for (key, value) in object {
            let chain = key
                .strip_prefix("RPC_URL_")
                .or_else(|| key.strip_prefix("WS_URL_"))
                .and_then(|id| chain_id(key, id).ok())
                .ok_or_else(|| {
                    fail(format!(
                        "key {key:?} is not RPC_URL_<chainId> or WS_URL_<chainId>"
                    ))
                })?;
            let value = value
                .as_str()
                .ok_or_else(|| fail(format!("{key} is not a string")))?;
            if !self.chain_ids.contains(&chain) {
                continue;
            }
            if key.starts_with("RPC_URL_") {
                has_rpc.insert(chain);
            }
            merged.push((key.clone(), value.to_string()));
        }
        if let Some(missing) = self.chain_ids.difference(&has_rpc).next() {
            return Err(fail(format!(
                "no RPC_URL_{missing}, and CHAIN_IDS lists chain {missing}"
            )));
        }
        Ok(merged)
    }
}
