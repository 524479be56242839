//! The (chain, wallet) pairs one multi-wallet stream carries: parsing `31337:0xabc,1:0xdef`
//! strictly (each bad pair named by its place and text), and the pair set's canonical order
//! and short fingerprint, which the stream's composite event id carries.

use alloy::primitives::{Address, keccak256};
use thiserror::Error;

use crate::domain::address::{AddressError, lower, parse_owner};

/// One wallet on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WalletPair {
    pub chain_id: u64,
    pub owner: Address,
}

/// Why one pair's text is not a pair.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairError {
    #[error("a pair is written chainId:owner, e.g. 1:0xd8da6bf26964af9d7eed9e03e53415d37aa96045")]
    Malformed,
    #[error("chain id must be a positive whole number")]
    ChainId,
    #[error("owner: {0}")]
    Owner(AddressError),
}

/// Why a list of pairs is refused, naming the offending pair (its 0-based index and text).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairListError {
    #[error("no wallets given: name at least one chainId:owner pair")]
    Empty,
    #[error("at most {max} pairs per stream, got {count}")]
    TooMany { max: usize, count: usize },
    #[error("wallets[{index}] {value:?}: {error}")]
    Invalid {
        index: usize,
        value: String,
        error: PairError,
    },
    #[error("wallets[{index}] {value:?} repeats wallets[{first}]")]
    Duplicate {
        index: usize,
        value: String,
        first: usize,
    },
}

/// Parses a chain id as every route takes it: digits only, above zero.
pub fn parse_chain_id(text: &str) -> Result<u64, PairError> {
    match text.parse::<u64>() {
        Ok(id) if id > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(PairError::ChainId),
    }
}

impl WalletPair {
    /// Parses `chainId:owner`.
    pub fn parse(text: &str) -> Result<Self, PairError> {
        let (chain, owner) = text.split_once(':').ok_or(PairError::Malformed)?;
        Ok(Self {
            chain_id: parse_chain_id(chain)?,
            owner: parse_owner(owner).map_err(PairError::Owner)?,
        })
    }

    /// The pair as clients write it, owner lowercase: `31337:0xabc…`.
    pub fn text(&self) -> String {
        format!("{}:{}", self.chain_id, lower(&self.owner))
    }
}

/// Checks a list of pairs: not empty, at most `max`, no pair twice (however its owner is
/// cased). The first problem found is reported.
pub fn check_pairs(pairs: &[(String, WalletPair)], max: usize) -> Result<(), PairListError> {
    if pairs.is_empty() {
        return Err(PairListError::Empty);
    }
    if pairs.len() > max {
        return Err(PairListError::TooMany {
            max,
            count: pairs.len(),
        });
    }
    for (index, (value, pair)) in pairs.iter().enumerate() {
        if let Some(first) = pairs[..index].iter().position(|(_, p)| p == pair) {
            return Err(PairListError::Duplicate {
                index,
                value: value.clone(),
                first,
            });
        }
    }
    Ok(())
}

/// Parses the `wallets` query value: comma-separated `chainId:owner` pairs, in the client's
/// order, checked by [`check_pairs`].
pub fn parse_pair_list(text: &str, max: usize) -> Result<Vec<WalletPair>, PairListError> {
    let items: Vec<&str> = if text.trim().is_empty() {
        vec![]
    } else {
        text.split(',').collect()
    };
    // Counted before parsing: a long list is refused whole, not read pair by pair.
    if items.len() > max {
        return Err(PairListError::TooMany {
            max,
            count: items.len(),
        });
    }
    let pairs = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            WalletPair::parse(item.trim())
                .map(|pair| (item.to_string(), pair))
                .map_err(|error| PairListError::Invalid {
                    index,
                    value: item.to_string(),
                    error,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_pairs(&pairs, max)?;
    Ok(pairs.into_iter().map(|(_, pair)| pair).collect())
}

/// A stream's pairs in their canonical order (by chain, then owner), whatever order the
/// client named them in, with the set's fingerprint: the first 4 bytes of the keccak-256 of
/// the canonical text, as 8 hex digits. Two streams of the same pairs share it; an id from
/// another pair set carries another one (but for a 1 in 2³² coincidence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSet {
    pairs: Vec<WalletPair>,
    fingerprint: String,
}

impl PairSet {
    pub fn new(pairs: &[WalletPair]) -> Self {
        let mut pairs = pairs.to_vec();
        pairs.sort();
        pairs.dedup();
        let canonical: Vec<String> = pairs.iter().map(WalletPair::text).collect();
        let hash = keccak256(canonical.join(",").as_bytes());
        let fingerprint = alloy::hex::encode(&hash[..4]);
        Self { pairs, fingerprint }
    }

    /// The pairs in canonical order: the order of positions in the composite id.
    pub fn pairs(&self) -> &[WalletPair] {
        &self.pairs
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0xd8da6bf26964af9d7eed9e03e53415d37aa96045";
    const B: &str = "0x000000000000000000000000000000000000dead";

    #[test]
    fn parses_pairs_in_the_clients_order() {
        let pairs = parse_pair_list(&format!("31338:{A},31337:{B}, 31337:{A}"), 10).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0].chain_id, 31338);
        assert_eq!(pairs[1].text(), format!("31337:{B}"));
        assert_eq!(pairs[2].owner, A.parse::<Address>().unwrap());
    }

    #[test]
    fn names_the_offending_pair() {
        let cases = [
            (format!("1:{A},{A}"), 1, PairError::Malformed),
            (format!("0:{A}"), 0, PairError::ChainId),
            (format!("1:{A},x1:{A}"), 1, PairError::ChainId),
            (
                "1:0x12".to_string(),
                0,
                PairError::Owner(AddressError::Malformed),
            ),
            (
                format!("1:{A},2:0x{}", "0".repeat(40)),
                1,
                PairError::Owner(AddressError::Zero),
            ),
            (format!("1:{A},,2:{A}"), 1, PairError::Malformed),
        ];
        for (text, want_index, want) in cases {
            match parse_pair_list(&text, 10) {
                Err(PairListError::Invalid {
                    index,
                    value,
                    error,
                }) => {
                    assert_eq!((index, &error), (want_index, &want), "{text}");
                    assert!(text.contains(&value), "{text}: {value}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_duplicates_too_many_and_none() {
        let upper = format!("0x{}", A[2..].to_ascii_uppercase());
        match parse_pair_list(&format!("1:{A},2:{A},1:{upper}"), 10) {
            Err(PairListError::Duplicate {
                index: 2, first: 0, ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let many = vec![format!("1:{A}"); 11].join(",");
        assert_eq!(
            parse_pair_list(&many, 10),
            Err(PairListError::TooMany { max: 10, count: 11 })
        );
        assert_eq!(parse_pair_list("", 10), Err(PairListError::Empty));
        // The same wallet on two chains is two pairs.
        assert!(parse_pair_list(&format!("1:{A},2:{A}"), 2).is_ok());
    }

    #[test]
    fn the_fingerprint_names_the_set_not_its_order() {
        let a = WalletPair::parse(&format!("1:{A}")).unwrap();
        let b = WalletPair::parse(&format!("2:{A}")).unwrap();
        let c = WalletPair::parse(&format!("1:{B}")).unwrap();
        let ab = PairSet::new(&[a, b]);
        assert_eq!(ab, PairSet::new(&[b, a]));
        assert_eq!(ab.fingerprint().len(), 8);
        assert_ne!(ab.fingerprint(), PairSet::new(&[a, c]).fingerprint());
        assert_ne!(ab.fingerprint(), PairSet::new(&[a]).fingerprint());
        // Chain first, then owner: 0x…dead before 0xd8da….
        assert_eq!(PairSet::new(&[a, c]).pairs(), &[c, a]);
    }
}
