//! The environment as the settings read it: each variable trimmed, a blank one absent, read
//! with its default and named in the error when it does not parse. Every binary's settings
//! (core's shared ones and each binary's own) parse from one [`Vars`], which remembers every
//! name it was asked for so the configuration page can be held to the code.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use alloy::primitives::Address;

use super::ConfigError;
use crate::domain::address::parse_address;

/// The variables, and the names asked for so far (a per-chain one as `PREFIX_<id>`).
#[derive(Debug, Default)]
pub struct Vars {
    values: BTreeMap<String, String>,
    asked: RefCell<BTreeSet<String>>,
}

impl Vars {
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            values: vars
                .into_iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .collect(),
            asked: RefCell::default(),
        }
    }

    /// The process's environment.
    pub fn from_env() -> Self {
        Self::new(std::env::vars())
    }

    /// Every name asked for since this was made.
    pub fn asked(&self) -> BTreeSet<String> {
        self.asked.borrow().clone()
    }

    /// Notes that `name` is read, where the reader goes through [`Self::all`].
    pub(crate) fn record(&self, name: &str) {
        self.asked.borrow_mut().insert(name.to_string());
    }

    /// Every non-blank variable, untrimmed, for readers that walk them all (the chain
    /// endpoints); such a reader records its names itself.
    pub(crate) fn all(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.record(name);
        self.values.get(name).map(|v| v.trim().to_string())
    }

    /// The variables named `{prefix}<id>`, one per chain: (name, the id's text, value).
    pub fn per_chain<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a str, &'a String)> {
        self.record(&format!("{prefix}<id>"));
        self.values
            .iter()
            .filter_map(move |(name, value)| name.strip_prefix(prefix).map(|id| (name, id, value)))
    }

    pub fn number(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        number(name, self.get(name), default)
    }

    pub fn count(&self, name: &str, default: usize) -> Result<usize, ConfigError> {
        Ok(self.number(name, default as u64)? as usize)
    }

    pub fn secs(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.number(name, default)?))
    }

    pub fn millis(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.number(name, default)?))
    }

    pub fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        flag(name, self.get(name))
    }

    /// A flag that is `default` when unset.
    pub fn flag_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            value => flag(name, value),
        }
    }

    pub fn address(&self, name: &str, default: Address) -> Result<Address, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_address(&v).map_err(|e| invalid(name, e.to_string())),
        }
    }

    /// A listening address, `0.0.0.0:8080` when unset.
    pub fn socket(&self, name: &str) -> Result<std::net::SocketAddr, ConfigError> {
        match self.get(name) {
            None => Ok(std::net::SocketAddr::from(([0, 0, 0, 0], 8080))),
            Some(v) => v
                .parse()
                .map_err(|_| invalid(name, "expected host:port, e.g. 0.0.0.0:8080")),
        }
    }
}

/// The error of a variable whose value does not fit.
pub fn invalid(name: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        reason: reason.into(),
    }
}

fn number(name: &str, value: Option<String>, default: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| invalid(name, format!("expected a whole number, got {v:?}"))),
    }
}

fn flag(name: &str, value: Option<String>) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(invalid(
            name,
            format!("expected true or false, got {other:?}"),
        )),
    }
}
