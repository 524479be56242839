//! The api's settings: those every binary shares ([`Settings`], reached through
//! [`std::ops::Deref`]) and what the api alone reads — its limits and bounds, how its streams
//! run, token-list fetching, how much detail a snapshot carries, and which spender a session
//! or an order is judged against. Both
//! shells (the function and the server) parse them from the same [`Vars`].

mod limits;
mod streams;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::time::Duration;

use alloy::primitives::Address;
use live_balances::config::{ConfigError, DEFAULT_SPENDER, Settings, Vars, chain_id, invalid};
use live_balances::domain::address::parse_address;

pub use limits::{ApiLimits, RequestBounds};
pub use streams::StreamSettings;

/// Every setting the api reads.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub shared: Settings,
    pub streams: StreamSettings,
    pub limits: ApiLimits,
    pub token_lists: TokenListSettings,
    pub bounds: RequestBounds,
    pub default_spender: Address,
    /// Sessions up to this many tokens get every token's allowances and metadata in
    /// `all_balances`; larger ones get them for named and held tokens
    /// (`FULL_DETAIL_MAX_TOKENS`).
    pub full_detail_max_tokens: usize,
    /// Per chain, the spender an order's allowance is judged against when the order names
    /// none (`ORDER_SPENDER_<chainId>`); chains not named use [`DEFAULT_SPENDER`] — CoW
    /// Protocol's GPv2VaultRelayer, at the same address on every chain it settles on.
    pub order_spenders: BTreeMap<u64, Address>,
}

/// Limits of token-list fetching: every one of them stands between a client and a request the
/// service makes on its behalf.
#[derive(Debug, Clone)]
pub struct TokenListSettings {
    /// Development only: allow `http://` and loopback hosts (a list served on this machine).
    pub allow_insecure: bool,
    /// How long a fetched list is used before it is revalidated.
    pub ttl: Duration,
    /// Whole fetch, redirects included.
    pub timeout: Duration,
    /// Largest list body, counted while it streams in.
    pub max_bytes: usize,
    pub max_redirects: usize,
    /// Most `tokensListsUrls` in one request.
    pub max_per_request: usize,
}

impl ApiSettings {
    /// The api's own settings from `vars` beside the `shared` ones (read with the chain
    /// secret, [`live_balances::runtime::secrets::load_settings`]).
    pub fn new(shared: Settings, vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            shared,
            default_spender: vars.address("DEFAULT_SPENDER", DEFAULT_SPENDER)?,
            order_spenders: order_spenders(vars)?,
            full_detail_max_tokens: vars.count("FULL_DETAIL_MAX_TOKENS", 1000)?,
            streams: StreamSettings::from_vars(vars)?,
            limits: ApiLimits::from_vars(vars)?,
            token_lists: TokenListSettings::from_vars(vars)?,
            bounds: RequestBounds::from_vars(vars)?,
        })
    }

    /// Every setting from `vars` alone.
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Self::new(Settings::parse(vars)?, vars)
    }

    /// The spender an order on `chain_id` is judged against when it names none.
    pub fn order_spender(&self, chain_id: u64) -> Address {
        self.order_spenders
            .get(&chain_id)
            .copied()
            .unwrap_or(DEFAULT_SPENDER)
    }
}

impl Deref for ApiSettings {
    type Target = Settings;

    fn deref(&self) -> &Settings {
        &self.shared
    }
}

/// `ORDER_SPENDER_<chainId>` variables: each chain's default order spender.
fn order_spenders(vars: &Vars) -> Result<BTreeMap<u64, Address>, ConfigError> {
    vars.per_chain("ORDER_SPENDER_")
        .map(|(name, chain, value)| {
            let chain_id = chain_id(name, chain)?;
            let spender = parse_address(value.trim()).map_err(|e| invalid(name, e.to_string()))?;
            Ok((chain_id, spender))
        })
        .collect()
}

impl TokenListSettings {
    fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            allow_insecure: vars.flag("TOKEN_LIST_ALLOW_INSECURE")?,
            ttl: vars.secs("TOKEN_LIST_TTL_SECS", 3600)?,
            timeout: vars.millis("TOKEN_LIST_TIMEOUT_MS", 5000)?,
            max_bytes: vars.count("TOKEN_LIST_MAX_BYTES", 5 << 20)?,
            max_redirects: vars.count("TOKEN_LIST_MAX_REDIRECTS", 3)?,
            max_per_request: vars.count("MAX_TOKEN_LISTS_PER_REQUEST", 5)?,
        })
    }
}

#[cfg(test)]
mod tests;
