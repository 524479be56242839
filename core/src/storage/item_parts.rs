//! Parts several item shapes share, each one idea: an item's key, what a stored value is the
//! value of, a token's rendering metadata. The shapes embed them with `#[serde(flatten)]`, so
//! each part's attributes sit at the item's top level under their own names, as they always
//! have; the shapes decoded on a hot path gather them without flattening (see
//! [`super::value_decoding`]).

use std::fmt;

use alloy::primitives::Address;
use serde::{Deserialize, Serialize};

use super::StorageError;
use super::records::address;
use crate::domain::address::lower;
use crate::domain::model::BalanceKey;
use crate::domain::token_metadata::TokenMetadata;

/// An item's key: partition and sort key. Displayed `pk/sk`, as errors name an item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ItemKey {
    pub pk: String,
    pub sk: String,
}

impl ItemKey {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.pk, self.sk)
    }
}

/// What a stored value (or a change of it) is the value of: the wallet on its chain, the
/// token, and for an allowance its spender and whether the allowance is Permit2's.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ValueIdentity {
    pub chain_id: u64,
    pub owner: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spender: Option<String>,
    /// The spender's allowance is Permit2's, not the token's (see [`crate::domain::permit2`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permit2: bool,
}

impl ValueIdentity {
    pub fn new(chain_id: u64, owner: &Address, key: &BalanceKey) -> Self {
        let (token, spender, permit2) = match *key {
            BalanceKey::Balance { token } => (token, None, false),
            BalanceKey::Allowance { token, spender } => (token, Some(spender), false),
            BalanceKey::Permit2 { token, spender } => (token, Some(spender), true),
        };
        Self {
            chain_id,
            owner: lower(owner),
            token: lower(&token),
            spender: spender.as_ref().map(lower),
            permit2,
        }
    }

    /// The owner and which of its values this is; `key` names the item in errors.
    pub fn decode(&self, key: &str) -> Result<(Address, BalanceKey), StorageError> {
        let owner = address(key, "owner", &self.owner)?;
        let token = address(key, "token", &self.token)?;
        let spender = self
            .spender
            .as_deref()
            .map(|s| address(key, "spender", s))
            .transpose()?;
        let value = match (spender, self.permit2) {
            (None, false) => BalanceKey::Balance { token },
            (None, true) => {
                return Err(StorageError::corrupt(
                    key,
                    "a Permit2 value names no spender",
                ));
            }
            (Some(spender), false) => BalanceKey::Allowance { token, spender },
            (Some(spender), true) => BalanceKey::Permit2 { token, spender },
        };
        Ok((owner, value))
    }
}

/// A token's rendering metadata as stored: `symbol` absent means none is known.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct TokenMetadataAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
}

impl TokenMetadataAttributes {
    /// The metadata, when a symbol and decimals are known.
    pub fn metadata(&self) -> Option<TokenMetadata> {
        Some(TokenMetadata {
            symbol: self.symbol.clone()?,
            name: self.name.clone().unwrap_or_default(),
            decimals: self.decimals?,
        })
    }
}

impl From<Option<&TokenMetadata>> for TokenMetadataAttributes {
    fn from(metadata: Option<&TokenMetadata>) -> Self {
        match metadata {
            Some(m) => Self {
                symbol: Some(m.symbol.clone()),
                name: Some(m.name.clone()),
                decimals: Some(m.decimals),
            },
            None => Self::default(),
        }
    }
}
