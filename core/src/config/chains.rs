//! Where each chain is reached: its endpoints from `RPC_URL_<id>`/`WS_URL_<id>` (or the seed
//! names, or the single-chain form), its wrapped native token, and how every binary that
//! reaches a chain treats its endpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use alloy::primitives::{Address, address};

use super::ConfigError;
use super::vars::{Vars, invalid};
use crate::chain::known_chains::known_wrapped_native;
use crate::domain::address::parse_address;
use crate::runtime::redact::redact_url;

/// Multicall3's address on nearly every EVM chain.
pub const DEFAULT_MULTICALL: Address = address!("0xcA11bde05977b3631167028862bE2a173976CA11");

/// Where to reach one chain: one or more URLs of each kind, tried in order (the first while it
/// answers, the next while it is down or rate limited). `Debug` hides paths and queries, where
/// providers put API keys.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainEndpoints {
    pub chain_id: u64,
    /// Never empty.
    pub rpc_urls: Vec<String>,
    pub ws_urls: Vec<String>,
    /// The wrapped native token, always tracked (`WETH_<chainId>`, or the known one).
    pub weth: Option<Address>,
}

impl fmt::Debug for ChainEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>();
        f.debug_struct("ChainEndpoints")
            .field("chain_id", &self.chain_id)
            .field("rpc_urls", &redacted(&self.rpc_urls))
            .field("ws_urls", &redacted(&self.ws_urls))
            .field("weth", &self.weth)
            .finish()
    }
}

/// How every binary that reaches a chain treats its endpoints and batches its reads.
#[derive(Debug, Clone)]
pub struct RpcSettings {
    /// Longest one JSON-RPC request waits out rate limits (`Retry-After`) and failing
    /// endpoints before it fails (`RPC_MAX_WAIT_MS`).
    pub max_wait: Duration,
    pub multicall: Address,
    /// Most calls per Multicall3 `aggregate3` (the poller's reads and the api's alike).
    pub multicall_chunk: usize,
    /// Most blocks per `eth_getLogs` range (`MAX_BLOCK_RANGE`), the chain adapter's starting
    /// point before it learns what a provider refuses.
    pub max_block_range: u64,
}

impl RpcSettings {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            max_wait: vars.millis("RPC_MAX_WAIT_MS", 15_000)?,
            multicall: vars.address("MULTICALL_ADDRESS", DEFAULT_MULTICALL)?,
            multicall_chunk: vars.number("MULTICALL_CHUNK", 1000)?.max(1) as usize,
            max_block_range: vars.number("MAX_BLOCK_RANGE", 500)?.max(1),
        })
    }
}

/// Seed variable names kept for compatibility: (name, chain id, is WebSocket).
const SEED_NAMES: [(&str, u64, bool); 5] = [
    ("ETH_RPC", 1, false),
    ("ETH_WC_RPC", 1, true),
    ("ARBITRUM_RPC", 42161, false),
    ("SEPOLIA_RPC", 11155111, false),
    ("SEPOLIA_WC_RPC", 11155111, true),
];

/// Whether `name` is a variable [`chains`] reads an endpoint from.
pub(super) fn is_endpoint_variable(name: &str) -> bool {
    name.starts_with("RPC_URL")
        || name.starts_with("WS_URL")
        || SEED_NAMES.iter().any(|(n, ..)| *n == name)
}

/// An endpoint variable's value: one URL, or several separated by commas (a comma inside a
/// URL is written `%2C`), each of the scheme the variable takes, none twice. Errors name the
/// variable and the item's position, never a value (values hold API keys).
fn urls(name: &str, value: &str, ws: bool) -> Result<Vec<String>, ConfigError> {
    let allowed: &[&str] = if ws {
        &["ws://", "wss://"]
    } else {
        &["http://", "https://"]
    };
    let mut list: Vec<String> = vec![];
    for (i, item) in value.split(',').map(str::trim).enumerate() {
        let position = i + 1;
        if !allowed.iter().any(|p| item.starts_with(p)) {
            let which = if value.contains(',') {
                format!("URL {position} ")
            } else {
                String::new()
            };
            return Err(invalid(
                name,
                format!("{which}must start with {}", allowed.join(" or ")),
            ));
        }
        if list.iter().any(|u| u == item) {
            return Err(invalid(name, format!("URL {position} is listed twice")));
        }
        list.push(item.to_string());
    }
    Ok(list)
}

pub(super) fn chains(all: &Vars) -> Result<BTreeMap<u64, ChainEndpoints>, ConfigError> {
    let vars = all.all();
    for name in [
        "RPC_URL_<id>",
        "WS_URL_<id>",
        "WETH_<id>",
        "RPC_URL",
        "WS_URL",
    ]
    .into_iter()
    .chain(SEED_NAMES.iter().map(|(n, ..)| *n))
    {
        all.record(name);
    }
    let mut rpc: BTreeMap<u64, (String, Vec<String>)> = BTreeMap::new();
    let mut ws: BTreeMap<u64, (String, Vec<String>)> = BTreeMap::new();
    for (name, value) in vars {
        let value = value.trim();
        let (chain_id, is_ws) = if let Some(id) = name.strip_prefix("RPC_URL_") {
            (chain_id(name, id)?, false)
        } else if let Some(id) = name.strip_prefix("WS_URL_") {
            (chain_id(name, id)?, true)
        } else if let Some((_, id, is_ws)) = SEED_NAMES.iter().find(|(n, ..)| n == name) {
            (*id, *is_ws)
        } else {
            continue;
        };
        let parsed = urls(name, value, is_ws)?;
        let target = if is_ws { &mut ws } else { &mut rpc };
        // The explicit per-chain name wins over a seed name for the same chain.
        let explicit = name.starts_with("RPC_URL_") || name.starts_with("WS_URL_");
        if explicit || !target.contains_key(&chain_id) {
            target.insert(chain_id, (name.clone(), parsed));
        }
    }
    // The single-chain form (`CHAIN_ID` with `RPC_URL`, `WS_URL`) suits deploy templates,
    // where variable names cannot be computed.
    if let Some(id) = all.get("CHAIN_ID") {
        let chain_id = chain_id("CHAIN_ID", &id)?;
        for (name, is_ws) in [("RPC_URL", false), ("WS_URL", true)] {
            if let Some(value) = vars.get(name) {
                let target = if is_ws { &mut ws } else { &mut rpc };
                target
                    .entry(chain_id)
                    .or_insert((name.to_string(), urls(name, value.trim(), is_ws)?));
            }
        }
    }
    if let Some((chain_id, (name, _))) = ws.iter().find(|(id, _)| !rpc.contains_key(id)) {
        return Err(ConfigError::WebSocketWithoutRpc {
            name: name.clone(),
            chain_id: *chain_id,
        });
    }
    rpc.into_iter()
        .map(|(chain_id, (_, rpc_urls))| {
            let ws_urls = ws
                .get(&chain_id)
                .map(|(_, u)| u.clone())
                .unwrap_or_default();
            let weth_name = format!("WETH_{chain_id}");
            let weth = match vars.get(&weth_name) {
                Some(v) => {
                    Some(parse_address(v.trim()).map_err(|e| invalid(&weth_name, e.to_string()))?)
                }
                None => known_wrapped_native(chain_id),
            };
            Ok((
                chain_id,
                ChainEndpoints {
                    chain_id,
                    rpc_urls,
                    ws_urls,
                    weth,
                },
            ))
        })
        .collect()
}

/// A chain id where a variable gives one (its name's suffix, or its value): a positive whole
/// number.
pub fn chain_id(name: &str, id: &str) -> Result<u64, ConfigError> {
    match id.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(
            name,
            "the suffix must be a chain id (a positive whole number)",
        )),
    }
}
