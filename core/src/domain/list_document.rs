//! Token lists in the Uniswap format (`{"name", "tokens": [{chainId, address, decimals,
//! symbol, name}]}`): validating a fetched document and keeping the entries of one chain.
//!
//! A list is outside input. A document that is not a token list is refused as a whole; bad
//! entries inside a good list are skipped and counted, so one typo in a 5,000-token list does
//! not refuse the other 4,999.

use std::collections::BTreeSet;

use alloy::primitives::Address;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::domain::address::parse_address;
use crate::domain::token_metadata::TokenMetadata;

/// Why a fetched document is not usable as a token list for the chain.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenListError {
    #[error("the token list is not JSON: {0}")]
    NotJson(String),
    #[error("the document is not a token list: {0}")]
    NotATokenList(&'static str),
    #[error("the token list has no valid token for chain {chain_id}")]
    NoTokensForChain { chain_id: u64 },
}

/// The entries of a list for one chain, in list order, each address once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTokens {
    pub list_name: String,
    pub tokens: Vec<(Address, TokenMetadata)>,
    pub skipped: SkippedEntries,
}

/// Entries of the chain that were left out, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SkippedEntries {
    /// Missing or malformed fields, bad checksum, out-of-range decimals, unusable text.
    pub invalid: usize,
    /// An address already listed earlier.
    pub duplicate: usize,
}

/// Parses a token-list document and keeps the valid entries of `chain_id`.
pub fn parse_for_chain(document: &[u8], chain_id: u64) -> Result<ChainTokens, TokenListError> {
    let value: Value =
        serde_json::from_slice(document).map_err(|e| TokenListError::NotJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or(TokenListError::NotATokenList("top level is not an object"))?;
    let list_name =
        object
            .get("name")
            .and_then(Value::as_str)
            .ok_or(TokenListError::NotATokenList(
                "`name` is missing or not a string",
            ))?;
    let entries =
        object
            .get("tokens")
            .and_then(Value::as_array)
            .ok_or(TokenListError::NotATokenList(
                "`tokens` is missing or not an array",
            ))?;

    let mut seen = BTreeSet::new();
    let mut tokens = vec![];
    let mut skipped = SkippedEntries::default();
    for entry in entries {
        // Entries of other chains are not this chain's business, valid or not.
        let entry_chain = entry.get("chainId").and_then(Value::as_u64);
        if entry_chain.is_some_and(|c| c != chain_id) {
            continue;
        }
        match entry_chain.and_then(|_| token_entry(entry)) {
            None => skipped.invalid += 1,
            Some((address, _)) if !seen.insert(address) => skipped.duplicate += 1,
            Some(token) => tokens.push(token),
        }
    }
    if tokens.is_empty() {
        return Err(TokenListError::NoTokensForChain { chain_id });
    }
    Ok(ChainTokens {
        list_name: list_name
            .chars()
            .take(crate::domain::token_metadata::MAX_NAME_CHARS)
            .collect(),
        tokens,
        skipped,
    })
}

fn token_entry(entry: &Value) -> Option<(Address, TokenMetadata)> {
    let address = parse_address(entry.get("address")?.as_str()?).ok()?;
    let decimals = u8::try_from(entry.get("decimals")?.as_u64()?).ok()?;
    let symbol = entry.get("symbol")?.as_str()?;
    let name = entry.get("name")?.as_str()?;
    let metadata = TokenMetadata::new(symbol, name, decimals).ok()?;
    (!address.is_zero()).then_some((address, metadata))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const USDC: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
    const DAI: &str = "0x6b175474e89094c44da98b954eedeac495271d0f";

    fn token(chain: Value, address: &str, decimals: Value, symbol: &str) -> Value {
        json!({"chainId": chain, "address": address, "decimals": decimals, "symbol": symbol, "name": "n"})
    }

    fn list(tokens: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({"name": "Test", "version": {"major": 1, "minor": 0, "patch": 0}, "tokens": tokens}))
            .unwrap()
    }

    #[test]
    fn keeps_valid_entries_of_the_chain_and_counts_the_rest() {
        let doc = list(vec![
            token(json!(1), USDC, json!(6), "USDC"),
            token(json!(1), DAI, json!(18), "DAI"),
            token(json!(1), &USDC.to_lowercase(), json!(6), "USDC2"),
            token(json!(10), DAI, json!(18), "DAI"),
            token(
                json!(1),
                "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB49",
                json!(6),
                "BADSUM",
            ),
            token(json!(1), "0x1234", json!(6), "SHORT"),
            token(json!(1), DAI, json!(300), "BIGDEC"),
            token(json!(1), DAI, json!(-1), "NEGDEC"),
            token(json!(1), DAI, json!(18), ""),
            token(json!("1"), DAI, json!(18), "STRCHAIN"),
            json!({"chainId": 1, "address": DAI}),
            json!(42),
        ]);
        let parsed = parse_for_chain(&doc, 1).unwrap();
        assert_eq!(parsed.list_name, "Test");
        let symbols: Vec<_> = parsed
            .tokens
            .iter()
            .map(|(_, m)| m.symbol.as_str())
            .collect();
        assert_eq!(symbols, ["USDC", "DAI"]);
        assert_eq!(
            parsed.skipped,
            SkippedEntries {
                invalid: 8,
                duplicate: 1
            }
        );
    }

    #[test]
    fn refuses_documents_that_are_not_token_lists() {
        let cases: [(&str, &[u8]); 6] = [
            ("html", b"<html>nope</html>"),
            ("empty", b""),
            ("array", b"[]"),
            ("no tokens", br#"{"name":"x"}"#),
            ("tokens not array", br#"{"name":"x","tokens":{}}"#),
            ("no name", br#"{"tokens":[]}"#),
        ];
        for (case, doc) in cases {
            assert!(
                matches!(
                    parse_for_chain(doc, 1),
                    Err(TokenListError::NotJson(_) | TokenListError::NotATokenList(_))
                ),
                "{case}"
            );
        }
    }

    #[test]
    fn a_list_without_the_chain_is_refused() {
        let doc = list(vec![token(json!(10), DAI, json!(18), "DAI")]);
        assert_eq!(
            parse_for_chain(&doc, 1),
            Err(TokenListError::NoTokensForChain { chain_id: 1 })
        );
    }
}

#[cfg(test)]
mod props {
    //! Property tests of token-list parsing, the one parser that takes whole documents from
    //! anywhere on the internet: no panic on any bytes or JSON shape, every entry of the chain
    //! either kept or counted, kept text bounded and free of control characters.

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::token_metadata::{MAX_NAME_CHARS, MAX_SYMBOL_CHARS};

    const CHAIN: u64 = 1;

    /// Any JSON value, nested a few levels.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An entry that may be valid or broken in any field.
    fn any_entry() -> impl Strategy<Value = Value> {
        let chain = prop_oneof![
            3 => Just(json!(CHAIN)),
            1 => Just(json!(10)),
            1 => any_json(),
        ];
        let address = prop_oneof![
            4 => any::<[u8; 20]>().prop_map(|b| json!(alloy::hex::encode_prefixed(b))),
            1 => prop::sample::select(vec![1u8, 2, 3]).prop_map(|b| {
                json!(alloy::hex::encode_prefixed([b; 20]))
            }),
            1 => any_json(),
        ];
        let decimals = prop_oneof![4 => (0u64..=255).prop_map(Value::from), 1 => any_json()];
        let text = prop_oneof![4 => "[A-Za-z0-9 ]{1,12}".prop_map(Value::from), 1 => any_json()];
        (chain, address, decimals, text.clone(), text).prop_map(
            |(chain, address, decimals, symbol, name)| {
                json!({"chainId": chain, "address": address, "decimals": decimals,
                       "symbol": symbol, "name": name})
            },
        )
    }

    proptest! {
        #[test]
        fn any_bytes_are_a_list_or_a_clear_error(document in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_for_chain(&document, CHAIN);
        }

        #[test]
        fn any_json_is_a_list_or_a_clear_error(document in any_json(), name in any_json()) {
            let _ = parse_for_chain(&serde_json::to_vec(&document).unwrap(), CHAIN);
            let wrapped = json!({"name": name, "tokens": document});
            let _ = parse_for_chain(&serde_json::to_vec(&wrapped).unwrap(), CHAIN);
        }

        /// Every entry of the chain (or without a usable chain id) is kept, invalid or a
        /// duplicate; other chains' entries are ignored. Kept addresses are unique, in list
        /// order, never zero, and their text is bounded without control characters.
        #[test]
        fn every_entry_of_the_chain_is_kept_or_counted(entries in prop::collection::vec(any_entry(), 0..40)) {
            let document = serde_json::to_vec(&json!({"name": "L", "tokens": entries})).unwrap();
            let of_chain = entries
                .iter()
                .filter(|e| e["chainId"].as_u64().is_none_or(|c| c == CHAIN))
                .count();
            match parse_for_chain(&document, CHAIN) {
                Ok(list) => {
                    prop_assert_eq!(
                        list.tokens.len() + list.skipped.invalid + list.skipped.duplicate,
                        of_chain
                    );
                    let unique: BTreeSet<_> = list.tokens.iter().map(|(a, _)| *a).collect();
                    prop_assert_eq!(unique.len(), list.tokens.len());
                    for (address, meta) in &list.tokens {
                        prop_assert!(!address.is_zero());
                        prop_assert!(!meta.symbol.is_empty());
                        prop_assert!(meta.symbol.chars().count() <= MAX_SYMBOL_CHARS);
                        prop_assert!(meta.name.chars().count() <= MAX_NAME_CHARS);
                        prop_assert!(!meta.symbol.chars().chain(meta.name.chars()).any(char::is_control));
                    }
                    let first_seen: Vec<Address> = entries
                        .iter()
                        .filter(|e| e["chainId"].as_u64() == Some(CHAIN))
                        .filter_map(token_entry)
                        .map(|(a, _)| a)
                        .fold(vec![], |mut kept, a| {
                            if !kept.contains(&a) {
                                kept.push(a);
                            }
                            kept
                        });
                    let kept: Vec<Address> = list.tokens.iter().map(|(a, _)| *a).collect();
                    prop_assert_eq!(kept, first_seen);
                }
                Err(TokenListError::NoTokensForChain { chain_id }) => {
                    prop_assert_eq!(chain_id, CHAIN);
                    let valid = entries
                        .iter()
                        .filter(|e| e["chainId"].as_u64() == Some(CHAIN))
                        .filter_map(token_entry)
                        .count();
                    prop_assert_eq!(valid, 0);
                }
                Err(other) => prop_assert!(false, "a well-formed list refused: {}", other),
            }
        }
    }
}
