//! Parsing of addresses that come from outside (paths, bodies, env): strict, canonical, explained.

use alloy::primitives::{Address, address};
use thiserror::Error;

/// The pseudo-token that stands for the chain's native currency.
pub const NATIVE_TOKEN: Address = address!("0xEeeeeEeeeEeEeeEeEeEeeEEEeeeeEeeeeeeeEEeE");

/// Why a string is not an acceptable address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("address must be 0x followed by 40 hex characters")]
    Malformed,
    #[error("mixed-case address fails its EIP-55 checksum")]
    BadChecksum,
    #[error("the zero address is not a wallet")]
    Zero,
}

/// Parses `0x` + 40 hex digits. All-lower or all-upper case is accepted as is; mixed case must
/// carry a valid EIP-55 checksum, because a typo in a checksummed address is exactly what the
/// checksum exists to catch.
pub fn parse_address(input: &str) -> Result<Address, AddressError> {
    let hex = input
        .strip_prefix("0x")
        .or_else(|| input.strip_prefix("0X"))
        .ok_or(AddressError::Malformed)?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AddressError::Malformed);
    }
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        Address::parse_checksummed(format!("0x{hex}"), None).map_err(|_| AddressError::BadChecksum)
    } else {
        hex.parse::<Address>().map_err(|_| AddressError::Malformed)
    }
}

/// Parses an address that names a wallet: as [`parse_address`], and never the zero address.
pub fn parse_owner(input: &str) -> Result<Address, AddressError> {
    let owner = parse_address(input)?;
    if owner.is_zero() {
        return Err(AddressError::Zero);
    }
    Ok(owner)
}

/// The one spelling used in table keys and on the wire: lowercase `0x…`.
pub fn lower(address: &Address) -> String {
    format!("{address:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lower_upper_and_checksummed() {
        let lower_case = "0xd8da6bf26964af9d7eed9e03e53415d37aa96045";
        let upper_case = "0xD8DA6BF26964AF9D7EED9E03E53415D37AA96045";
        let checksummed = "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045";
        let a = parse_address(lower_case).unwrap();
        assert_eq!(parse_address(upper_case).unwrap(), a);
        assert_eq!(parse_address(checksummed).unwrap(), a);
        assert_eq!(lower(&a), lower_case);
    }

    #[test]
    fn rejects_bad_input() {
        let cases = [
            (
                "no prefix",
                "d8da6bf26964af9d7eed9e03e53415d37aa96045",
                AddressError::Malformed,
            ),
            (
                "short",
                "0xd8da6bf26964af9d7eed9e03e53415d37aa9604",
                AddressError::Malformed,
            ),
            (
                "long",
                "0xd8da6bf26964af9d7eed9e03e53415d37aa960455",
                AddressError::Malformed,
            ),
            (
                "non hex",
                "0xg8da6bf26964af9d7eed9e03e53415d37aa96045",
                AddressError::Malformed,
            ),
            ("empty", "", AddressError::Malformed),
            (
                "bad checksum",
                "0xD8dA6BF26964aF9D7eEd9e03E53415D37aA96045",
                AddressError::BadChecksum,
            ),
            (
                "unicode",
                "0xd8da6bf26964af9d7eed9e03e53415d37aa9604é",
                AddressError::Malformed,
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse_address(input), Err(want), "{name}");
        }
        assert_eq!(
            parse_owner("0x0000000000000000000000000000000000000000"),
            Err(AddressError::Zero)
        );
    }

    #[test]
    fn native_token_is_the_conventional_pseudo_address() {
        assert_eq!(
            lower(&NATIVE_TOKEN),
            "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
        );
    }
}
