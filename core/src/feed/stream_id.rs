//! The `id` of a multi-wallet stream's events: one composite id that resumes every pair
//! exactly — the fingerprint of the pair set, then each pair's feed position in the set's
//! canonical order, each position in base 36 without leading zeros:
//!
//! `m1.<8 hex fingerprint>.<position>.<position>…`, e.g. `m1.3fa09c21.0.2k9x1m7q4c2d1h`
//!
//! Opaque to clients, and bounded: a position is at most 40 decimal digits, so at most
//! [`POSITION_CHARS`] base-36 characters, and an id of `n` pairs is at most
//! [`max_len`]`(n)` = 11 + 27·n characters (281 at 10 pairs, 875 at the most a deployment may
//! configure, [`crate::config::MAX_PAIRS_LIMIT`]). An id that does not read — another format,
//! a single-wallet id, another pair set — is [`StreamIdError`]: the stream starts over from
//! fresh snapshots rather than refusing the client.

use alloy::primitives::U256;
use thiserror::Error;

use crate::domain::model::FeedPosition;
use crate::feed::pairs::PairSet;

/// The format's tag: a later format gets another one.
const TAG: &str = "m1";
/// Longest base-36 spelling of a feed position (`10^40 - 1` takes 26 digits).
pub const POSITION_CHARS: usize = 26;

/// Why an id is not one of this pair set's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamIdError {
    #[error("not a multi-wallet stream id")]
    Format,
    #[error("an id of another set of pairs")]
    OtherPairSet,
}

/// Longest id of a stream of `pairs` pairs: tag, fingerprint and a dot before each part.
pub fn max_len(pairs: usize) -> usize {
    TAG.len() + 1 + 8 + pairs * (1 + POSITION_CHARS)
}

/// The id of a stream of `set` whose pairs stand at `positions` (canonical order).
pub fn encode(set: &PairSet, positions: &[&FeedPosition]) -> String {
    let mut id = String::with_capacity(max_len(positions.len()));
    id.push_str(TAG);
    id.push('.');
    id.push_str(set.fingerprint());
    for position in positions {
        id.push('.');
        id.push_str(&compact(position));
    }
    id
}

/// Each pair's position (canonical order), if `id` is an id of `set`.
pub fn decode(set: &PairSet, id: &str) -> Result<Vec<FeedPosition>, StreamIdError> {
    if id.len() > max_len(set.pairs().len()) {
        return Err(StreamIdError::Format);
    }
    let mut parts = id.trim().split('.');
    if parts.next() != Some(TAG) {
        return Err(StreamIdError::Format);
    }
    let fingerprint = parts.next().ok_or(StreamIdError::Format)?;
    if fingerprint.len() != 8 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StreamIdError::Format);
    }
    let positions = parts.map(expand).collect::<Result<Vec<_>, _>>()?;
    if fingerprint != set.fingerprint() || positions.len() != set.pairs().len() {
        return Err(StreamIdError::OtherPairSet);
    }
    Ok(positions)
}

/// A position in base 36, lowercase, without leading zeros (`0` for the start).
fn compact(position: &FeedPosition) -> String {
    // A position is always decimal digits; the start stands in should one not parse.
    let value = U256::from_str_radix(position.as_str(), 10).unwrap_or_default();
    if value.is_zero() {
        return "0".into();
    }
    value
        .to_base_be(36)
        .map(|digit| char::from_digit(digit as u32, 36).unwrap_or('0'))
        .collect()
}

fn expand(text: &str) -> Result<FeedPosition, StreamIdError> {
    let canonical = !text.is_empty()
        && text.len() <= POSITION_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        && (text == "0" || !text.starts_with('0'));
    if !canonical {
        return Err(StreamIdError::Format);
    }
    let value = U256::from_str_radix(text, 36).map_err(|_| StreamIdError::Format)?;
    FeedPosition::parse(&value.to_string()).map_err(|_| StreamIdError::Format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::pairs::WalletPair;
    use proptest::prelude::*;

    fn set(n: usize) -> PairSet {
        let pairs: Vec<WalletPair> = (0..n)
            .map(|i| WalletPair {
                chain_id: 1 + i as u64 % 2,
                owner: alloy::primitives::Address::repeat_byte(1 + i as u8),
            })
            .collect();
        PairSet::new(&pairs)
    }

    fn position(digits: &str) -> FeedPosition {
        FeedPosition::parse(digits).unwrap()
    }

    #[test]
    fn round_trips_and_is_compact() {
        let set = set(3);
        let positions = [
            position("0"),
            position("49039400000000000002871395842"),
            position(&"9".repeat(40)),
        ];
        let id = encode(&set, &positions.iter().collect::<Vec<_>>());
        assert!(
            id.starts_with(&format!("m1.{}.0.", set.fingerprint())),
            "{id}"
        );
        assert!(id.len() <= max_len(3), "{id}");
        assert_eq!(decode(&set, &id).unwrap(), positions);
        // The largest position takes exactly the bound.
        assert_eq!(compact(&positions[2]).len(), POSITION_CHARS);
        assert_eq!(max_len(10), 281);
    }

    #[test]
    fn foreign_ids_are_told_apart() {
        let three = set(3);
        let p = position("12345");
        let id = encode(&three, &[&p, &p, &p]);
        // Another pair set: another fingerprint, or another number of positions.
        assert_eq!(decode(&set(2), &id), Err(StreamIdError::OtherPairSet));
        let two = encode(&three, &[&p, &p]);
        assert_eq!(decode(&three, &two), Err(StreamIdError::OtherPairSet));
        // A single-wallet id, other formats, non-canonical spellings, positions past the
        // feed's width, an id longer than the bound.
        for bad in [
            format!("{:0>40}", 42),
            "42".to_string(),
            String::new(),
            "m2.00000000.1.1.1".to_string(),
            format!("m1.{}.01.1.1", three.fingerprint()),
            format!("m1.{}.A.1.1", three.fingerprint()),
            format!("m1.{}..1.1", three.fingerprint()),
            format!(
                "m1.{}.{}.1.1",
                three.fingerprint(),
                "z".repeat(POSITION_CHARS)
            ),
            format!("m1.{}.1.1.1.{}", three.fingerprint(), "1".repeat(300)),
            "m1.xyz.1.1.1".to_string(),
        ] {
            assert_eq!(decode(&three, &bad), Err(StreamIdError::Format), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_positions_round_trip_within_the_bound(
            digits in proptest::collection::vec("[0-9]{1,40}", 1..12)
        ) {
            let set = set(digits.len());
            let positions: Vec<FeedPosition> = digits.iter().map(|d| position(d)).collect();
            let id = encode(&set, &positions.iter().collect::<Vec<_>>());
            prop_assert!(id.len() <= max_len(positions.len()));
            prop_assert_eq!(decode(&set, &id).unwrap(), positions);
        }
    }
}
