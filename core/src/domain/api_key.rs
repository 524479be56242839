//! API keys: the credential of back ends. Browsers are anonymous (sessions, streams, balance
//! reads); a back end's routes — orders and webhook subscriptions — need a key the operator
//! issued, sent as `Authorization: Bearer <key>`.
//!
//! A key is 32 random bytes (`lbk_` + base64url), so it is stored and looked up by its SHA-256
//! alone: a table that leaks holds no key, and a hash of that much entropy cannot be reversed.
//! Each key belongs to a **tenant** (the name given when it was created): the orders and
//! subscriptions a key creates belong to its tenant, so a tenant's next key (a rotation) sees
//! them, and every other tenant's key finds nothing there. Each key carries its own quotas.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What every key starts with: recognisable in logs and by secret scanners.
pub const KEY_PREFIX: &str = "lbk_";
/// Longest tenant name.
pub const TENANT_MAX_LEN: usize = 64;

/// A tenant: whose orders and subscriptions these are. 1 to [`TENANT_MAX_LEN`] characters of
/// `a-z 0-9 - _ .`, so it can sit in a table key and a log line as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tenant(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "a tenant name is 1 to {TENANT_MAX_LEN} characters of lowercase letters, digits, '-', '_' or '.'"
)]
pub struct TenantError;

impl Tenant {
    pub fn parse(name: &str) -> Result<Self, TenantError> {
        let valid = !name.is_empty()
            && name.len() <= TENANT_MAX_LEN
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if valid {
            Ok(Self(name.to_string()))
        } else {
            Err(TenantError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one key may do, stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Back-end requests a minute with this key (every route that takes a key), counted in the
    /// table so every container shares the count.
    pub requests_per_minute: u64,
    /// Live webhook subscriptions the key's tenant may hold.
    pub max_webhooks: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            requests_per_minute: 600,
            max_webhooks: 100,
        }
    }
}

/// The SHA-256 of a key, hex: how the table knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    /// The hash of a presented key.
    pub fn of(key: &str) -> Self {
        Self(alloy::hex::encode(Sha256::digest(key.as_bytes())))
    }

    /// A stored hash, as the table holds it (64 lowercase hex digits).
    pub fn parse(hex: &str) -> Option<Self> {
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(hex.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's public id: the hash's first 12 hex digits, what listings and logs show and
    /// what a revocation names (never the key).
    pub fn id(&self) -> &str {
        &self.0[..12]
    }
}

/// An issued key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub hash: KeyHash,
    pub tenant: Tenant,
    pub quotas: Quotas,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; a revoked key is refused.
    pub revoked_at: Option<u64>,
}

impl ApiKey {
    pub fn id(&self) -> &str {
        self.hash.id()
    }

    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A key made from 32 random bytes: the key to hand to the tenant (shown once) and its
/// record to store.
pub fn issue(
    random: [u8; 32],
    tenant: Tenant,
    quotas: Quotas,
    created_at: u64,
) -> (String, ApiKey) {
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let record = ApiKey {
        hash: KeyHash::of(&key),
        tenant,
        quotas,
        created_at,
        revoked_at: None,
    };
    (key, record)
}

/// Whether a presented bearer token can be a key at all (before any table read).
pub fn looks_like_key(presented: &str) -> bool {
    presented.len() == KEY_PREFIX.len() + 43
        && presented.starts_with(KEY_PREFIX)
        && presented[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_stored_by_its_hash_only() {
        let tenant = Tenant::parse("dex-1").unwrap();
        let (key, record) = issue([7; 32], tenant, Quotas::default(), 1);
        assert!(looks_like_key(&key), "{key}");
        assert_eq!(record.hash, KeyHash::of(&key));
        assert_eq!(record.hash.as_str().len(), 64);
        assert!(!record.hash.as_str().contains(&key[4..]));
        assert_eq!(record.id(), &record.hash.as_str()[..12]);
        let (other, _) = issue([8; 32], Tenant::parse("x").unwrap(), Quotas::default(), 1);
        assert_ne!(KeyHash::of(&other), record.hash);
        assert_eq!(KeyHash::parse(record.hash.as_str()), Some(record.hash));
        assert_eq!(KeyHash::parse("ABC"), None);
    }

    #[test]
    fn presented_tokens_are_checked_before_any_read() {
        for bad in [
            "",
            "lbk_",
            "whsec_AAAA",
            "lbk_short",
            &format!("lbk_{}", "a".repeat(44)),
            &format!("lbk_{}!", "a".repeat(42)),
        ] {
            assert!(!looks_like_key(bad), "{bad}");
        }
    }

    #[test]
    fn tenant_names() {
        for good in ["dex", "a", "team-1.prod_x", &"a".repeat(64)] {
            assert!(Tenant::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Dex", "a b", "a#b", "a/b", &"a".repeat(65), "é"] {
            assert!(Tenant::parse(bad).is_err(), "{bad}");
        }
    }
}
