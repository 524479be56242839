//! Signing webhook deliveries, the Standard Webhooks way (so a receiver can verify with any of
//! that scheme's libraries, or by hand in a few lines):
//!
//! - `webhook-id`: the delivery's idempotency id (its feed position);
//! - `webhook-timestamp`: Unix seconds when this attempt was signed;
//! - `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed
//!   with the bytes the secret (`whsec_` + base64) encodes.
//!
//! A receiver refuses a timestamp more than [`REPLAY_WINDOW`] from its own clock, so a captured
//! request cannot be replayed later; every retry is signed anew with a fresh timestamp.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// How far a delivery's timestamp may be from the receiver's clock, either way.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the secret is not whsec_ followed by base64")]
    BadSecret,
    #[error("the timestamp is not Unix seconds")]
    BadTimestamp,
    #[error("the timestamp is outside the replay window")]
    OutsideWindow,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// A new secret from 32 random bytes.
pub fn secret_from(random: [u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(random))
}

fn key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SignatureError::BadSecret)?;
    STANDARD
        .decode(encoded)
        .map_err(|_| SignatureError::BadSecret)
}

fn mac(
    secret: &str,
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> Result<Hmac<Sha256>, SignatureError> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&key(secret)?).map_err(|_| SignatureError::BadSecret)?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(mac)
}

/// The `webhook-signature` header value of one attempt.
pub fn sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> Result<String, SignatureError> {
    let digest = mac(secret, id, timestamp, body)?.finalize().into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(digest)))
}

/// Checks a delivery as a receiver does: the timestamp within [`REPLAY_WINDOW`] of `now`, and
/// one of the space-separated signatures a valid `v1` one (compared in constant time).
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    let timestamp: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if now.abs_diff(timestamp) > REPLAY_WINDOW.as_secs() {
        return Err(SignatureError::OutsideWindow);
    }
    let expected = mac(secret, id, timestamp, body)?;
    let matches = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|given| expected.clone().verify_slice(&given).is_ok());
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example, so receivers using its libraries
    /// verify what we sign.
    #[test]
    fn signs_the_specifications_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn verifies_its_own_and_refuses_tampering_stale_and_bad_secrets() {
        let secret = secret_from([7; 32]);
        let body = br#"{"id":"1"}"#;
        let signature = sign(&secret, "1", 1000, body).unwrap();
        assert_eq!(verify(&secret, "1", "1000", &signature, body, 1000), Ok(()));
        // Several signatures (a rotated secret): any one valid suffices.
        let both = format!("v1,AAAA {signature}");
        assert_eq!(verify(&secret, "1", "1000", &both, body, 1290), Ok(()));
        let tampered = br#"{"id":"2"}"#;
        assert_eq!(
            verify(&secret, "1", "1000", &signature, tampered, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secret, "2", "1000", &signature, body, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secret, "1", "1000", &signature, body, 1301),
            Err(SignatureError::OutsideWindow)
        );
        assert_eq!(
            verify(&secret, "1", "x", &signature, body, 1000),
            Err(SignatureError::BadTimestamp)
        );
        let other = secret_from([8; 32]);
        assert_eq!(
            verify(&other, "1", "1000", &signature, body, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(sign("nope", "1", 0, body), Err(SignatureError::BadSecret));
    }
}
