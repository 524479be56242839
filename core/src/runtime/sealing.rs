//! Sealing secrets at rest: webhook signing secrets are stored encrypted (AES-256-GCM with a
//! random 96-bit nonce) under a data key, so the table, its stream images and its backups never
//! hold them in the clear. Each sealed value is bound to its item (the associated data is the
//! subscription's id): a sealed secret copied into another subscription does not open.
//!
//! Where the data key comes from is [`crate::runtime::kms`]'s business (KMS in AWS, a local key under
//! `make dev` and the tests); this module only seals and opens, the same code everywhere.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

/// The stored form's version tag.
const SEALED_PREFIX: &str = "sealed.v1.";
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealingError {
    #[error("the sealed value is not one this service wrote")]
    Malformed,
    #[error("sealed under data key {0}, which this process does not have")]
    OtherKey(String),
    #[error("the sealed value does not open with the data key (tampered, or another item's)")]
    Mismatch,
    #[error("no data key is configured to seal webhook secrets")]
    NoKey,
}

/// A secret as the table holds it: sealed, or — written by a version before sealing — in the
/// clear, which is read as it is and sealed when next written.
#[derive(Clone, PartialEq, Eq)]
pub enum SealedSecret {
    Sealed(String),
    Legacy(String),
}

impl SealedSecret {
    /// From the stored text.
    pub fn from_stored(text: String) -> Self {
        if text.starts_with(SEALED_PREFIX) {
            Self::Sealed(text)
        } else {
            Self::Legacy(text)
        }
    }

    pub fn stored(&self) -> &str {
        match self {
            Self::Sealed(text) | Self::Legacy(text) => text,
        }
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sealed(_) => f.write_str("SealedSecret(sealed)"),
            Self::Legacy(_) => f.write_str("SealedSecret(legacy, redacted)"),
        }
    }
}

/// A data key: what seals and opens secrets. `Debug` never shows it.
#[derive(Clone)]
pub struct SealingKey {
    id: String,
    cipher: Aes256Gcm,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SealingKey {
    /// The key `id` (named in every value it seals) with its 32 bytes.
    pub fn new(id: &str, bytes: &[u8; 32]) -> Self {
        Self {
            id: id.to_string(),
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// Seals `secret` for the item `context`, with a fresh random nonce.
    pub fn seal(&self, secret: &str, context: &str, nonce: [u8; NONCE_LEN]) -> SealedSecret {
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: context.as_bytes(),
        };
        // Encrypting a short message with a valid key and nonce cannot fail.
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        SealedSecret::Sealed(format!(
            "{SEALED_PREFIX}{}.{}",
            self.id,
            STANDARD.encode(sealed)
        ))
    }

    /// The secret sealed for the item `context`.
    pub fn open(&self, sealed: &SealedSecret, context: &str) -> Result<String, SealingError> {
        let text = match sealed {
            SealedSecret::Legacy(plain) => return Ok(plain.clone()),
            SealedSecret::Sealed(text) => text,
        };
        let rest = text
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealingError::Malformed)?;
        let (id, encoded) = rest.split_once('.').ok_or(SealingError::Malformed)?;
        if id != self.id {
            return Err(SealingError::OtherKey(id.to_string()));
        }
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SealingError::Malformed)?;
        if bytes.len() <= NONCE_LEN {
            return Err(SealingError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealingError::Malformed)?;
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| SealingError::Mismatch)?;
        String::from_utf8(plain).map_err(|_| SealingError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_item_and_key() {
        let key = SealingKey::new("local", &[3; 32]);
        let sealed = key.seal("whsec_abc", "sub-1", [1; 12]);
        assert!(
            !sealed.stored().contains("whsec_abc"),
            "{}",
            sealed.stored()
        );
        assert!(!format!("{sealed:?}").contains("abc"));
        assert_eq!(key.open(&sealed, "sub-1").unwrap(), "whsec_abc");
        assert_eq!(key.open(&sealed, "sub-2"), Err(SealingError::Mismatch));
        let other = SealingKey::new("local", &[4; 32]);
        assert_eq!(other.open(&sealed, "sub-1"), Err(SealingError::Mismatch));
        let renamed = SealingKey::new("kms-1", &[3; 32]);
        assert_eq!(
            renamed.open(&sealed, "sub-1"),
            Err(SealingError::OtherKey("local".into()))
        );
        // Fresh nonces: the same secret seals differently each time.
        assert_ne!(key.seal("whsec_abc", "sub-1", [2; 12]), sealed);
        // Tampering with the ciphertext is caught.
        let mut text = sealed.stored().to_string();
        let last = text.pop().unwrap();
        text.push(if last == 'A' { 'B' } else { 'A' });
        assert!(key.open(&SealedSecret::from_stored(text), "sub-1").is_err());
    }

    #[test]
    fn secrets_stored_before_sealing_are_read_as_they_are() {
        let key = SealingKey::new("local", &[3; 32]);
        let legacy = SealedSecret::from_stored("whsec_old".into());
        assert_eq!(legacy, SealedSecret::Legacy("whsec_old".into()));
        assert_eq!(key.open(&legacy, "anything").unwrap(), "whsec_old");
        let garbage = SealedSecret::from_stored("sealed.v1.nodot".into());
        assert_eq!(key.open(&garbage, "x"), Err(SealingError::Malformed));
    }
}
