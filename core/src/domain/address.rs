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

#[cfg(test)]
mod props {
    //! Property tests: every spelling of an address is either the same address or refused.

    use alloy::primitives::Address;
    use proptest::prelude::*;

    use super::*;

    fn any_address() -> impl Strategy<Value = Address> {
        any::<[u8; 20]>().prop_map(Address::from)
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(input in ".{0,64}") {
            let _ = parse_address(&input);
            let _ = parse_owner(&input);
        }

        #[test]
        fn accepts_only_0x_and_40_hex_digits(input in "(0[xX])?[0-9a-fA-FgG ]{38,42}") {
            if let Ok(a) = parse_address(&input) {
                let hex = &input[2..];
                prop_assert_eq!(hex.len(), 40);
                prop_assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
                prop_assert_eq!(lower(&a), format!("0x{}", hex.to_ascii_lowercase()));
            }
        }

        #[test]
        fn every_valid_spelling_is_the_same_address(a in any_address(), upper_prefix: bool) {
            let hex = format!("{a:x}");
            let prefix = if upper_prefix { "0X" } else { "0x" };
            let checksummed = a.to_checksum(None);
            for spelling in [
                format!("{prefix}{hex}"),
                format!("{prefix}{}", hex.to_ascii_uppercase()),
                checksummed.clone(),
            ] {
                prop_assert_eq!(parse_address(&spelling), Ok(a), "{}", spelling);
            }
            prop_assert_eq!(parse_address(&lower(&a)), Ok(a));
        }

        /// Flipping the case of one letter of a checksummed address breaks its checksum: the
        /// result is refused unless it became all one case (then it is the same address).
        #[test]
        fn a_case_typo_in_a_checksummed_address_is_refused(
            a in any_address(),
            pick in any::<prop::sample::Index>(),
        ) {
            let checksummed = a.to_checksum(None);
            let letters: Vec<usize> = checksummed
                .char_indices()
                .skip(2)
                .filter(|(_, c)| c.is_ascii_alphabetic())
                .map(|(i, _)| i)
                .collect();
            prop_assume!(!letters.is_empty());
            let i = letters[pick.index(letters.len())];
            let mut bytes = checksummed.into_bytes();
            bytes[i] ^= 0x20;
            let typo = String::from_utf8(bytes).unwrap();
            let hex = &typo[2..];
            let mixed = hex.bytes().any(|b| b.is_ascii_lowercase())
                && hex.bytes().any(|b| b.is_ascii_uppercase());
            if mixed {
                prop_assert_eq!(parse_address(&typo), Err(AddressError::BadChecksum), "{}", typo);
            } else {
                prop_assert_eq!(parse_address(&typo), Ok(a), "{}", typo);
            }
        }

        /// Padding, a changed length or a foreign character never yields an address.
        #[test]
        fn padded_or_altered_spellings_are_refused(
            a in any_address(),
            pad in prop::sample::select(vec![" ", "\t", "\n", "0", "%20", "/", "\u{200b}", "\u{ff10}"]),
            front: bool,
        ) {
            let spelled = lower(&a);
            let padded = if front { format!("{pad}{spelled}") } else { format!("{spelled}{pad}") };
            prop_assert_eq!(parse_address(&padded), Err(AddressError::Malformed), "{:?}", padded);
            prop_assert_eq!(parse_owner(&padded), Err(AddressError::Malformed));
        }

        #[test]
        fn an_owner_is_never_the_zero_address(input in "0x[0-9a-f]{40}|0x0{40}") {
            match parse_owner(&input) {
                Ok(owner) => prop_assert!(!owner.is_zero()),
                Err(e) => prop_assert_eq!(e, AddressError::Zero),
            }
        }
    }
}
