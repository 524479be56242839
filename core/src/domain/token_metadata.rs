//! Token metadata (symbol, name, decimals): what a client needs to render an amount. It comes
//! from token lists or from the token contract, so every field is attacker-controlled text:
//! it is bounded and stripped of control characters here, and escaped by whoever renders it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest symbol kept, in characters.
pub const MAX_SYMBOL_CHARS: usize = 32;
/// Longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// How to render a token's amounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenMetadata {
    pub symbol: String,
    pub name: String,
    pub decimals: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetadataError {
    #[error("symbol must be 1 to {MAX_SYMBOL_CHARS} characters without control characters")]
    Symbol,
    #[error("name must be at most {MAX_NAME_CHARS} characters without control characters")]
    Name,
}

impl TokenMetadata {
    /// Validated metadata: a non-empty bounded symbol, a bounded name (empty allowed: some
    /// contracts have none), no control characters in either.
    pub fn new(symbol: &str, name: &str, decimals: u8) -> Result<Self, MetadataError> {
        let clean = |s: &str, max: usize| {
            let s = s.trim();
            (s.chars().count() <= max && !s.chars().any(char::is_control)).then(|| s.to_string())
        };
        let symbol = clean(symbol, MAX_SYMBOL_CHARS)
            .filter(|s| !s.is_empty())
            .ok_or(MetadataError::Symbol)?;
        let name = clean(name, MAX_NAME_CHARS).ok_or(MetadataError::Name)?;
        Ok(Self {
            symbol,
            name,
            decimals,
        })
    }

    /// The native currency of an EVM chain: 18 decimals everywhere this service runs.
    pub fn native(symbol: &str, name: &str) -> Self {
        Self {
            symbol: symbol.to_string(),
            name: name.to_string(),
            decimals: 18,
        }
    }

    /// Metadata as read from a contract: `symbol()` and `name()` as returned (an ABI string,
    /// or the `bytes32` some old tokens return), `decimals()`. Text that is not valid UTF-8
    /// or breaks the bounds is cut to what is usable rather than refused, since the token is
    /// tracked anyway; `None` when there is no usable symbol or no decimals.
    pub fn from_contract(
        symbol: Option<&str>,
        name: Option<&str>,
        decimals: Option<u8>,
    ) -> Option<Self> {
        let usable = |s: &str, max: usize| -> String {
            s.chars()
                .filter(|c| !c.is_control())
                .take(max)
                .collect::<String>()
                .trim()
                .to_string()
        };
        let symbol = usable(symbol?, MAX_SYMBOL_CHARS);
        let name = name.map(|n| usable(n, MAX_NAME_CHARS)).unwrap_or_default();
        Self::new(&symbol, &name, decimals?).ok()
    }
}

/// Text from a `bytes32` return value (old tokens such as MKR): the bytes up to the first
/// zero, when they are UTF-8.
pub fn bytes32_text(word: &[u8; 32]) -> Option<String> {
    let end = word.iter().position(|b| *b == 0).unwrap_or(32);
    std::str::from_utf8(&word[..end]).ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_control_characters() {
        assert!(TokenMetadata::new("USDC", "USD Coin", 6).is_ok());
        assert!(
            TokenMetadata::new("<b>X</b>", "", 18).is_ok(),
            "markup is text"
        );
        assert_eq!(TokenMetadata::new("", "x", 1), Err(MetadataError::Symbol));
        assert_eq!(
            TokenMetadata::new("A\u{7}", "x", 1),
            Err(MetadataError::Symbol)
        );
        assert_eq!(
            TokenMetadata::new(&"S".repeat(33), "x", 1),
            Err(MetadataError::Symbol)
        );
        assert_eq!(
            TokenMetadata::new("S", &"n".repeat(65), 1),
            Err(MetadataError::Name)
        );
        assert_eq!(
            TokenMetadata::new(" DAI ", " Dai ", 18).unwrap().symbol,
            "DAI"
        );
    }

    #[test]
    fn contract_metadata_is_cut_to_usable() {
        let m = TokenMetadata::from_contract(Some("AB\u{0}C"), Some(&"n".repeat(100)), Some(8))
            .unwrap();
        assert_eq!(m.symbol, "ABC");
        assert_eq!(m.name.len(), MAX_NAME_CHARS);
        assert_eq!(TokenMetadata::from_contract(Some("X"), None, None), None);
        assert_eq!(TokenMetadata::from_contract(None, Some("X"), Some(1)), None);
        assert_eq!(
            TokenMetadata::from_contract(Some("\u{1}"), None, Some(1)),
            None
        );
    }

    #[test]
    fn bytes32_symbols() {
        let mut word = [0u8; 32];
        word[..3].copy_from_slice(b"MKR");
        assert_eq!(bytes32_text(&word).as_deref(), Some("MKR"));
        word[3] = 0xff;
        assert_eq!(bytes32_text(&word), None);
    }
}
