//! What the service knows of well-known chains without being told: the wrapped native token
//! (always tracked beside the native currency) and the native currency's symbol.

use alloy::primitives::{Address, address};

use crate::domain::token_metadata::TokenMetadata;

/// The canonical wrapped native token (WETH, WXDAI, …) of a well-known chain. Other chains
/// name theirs with `WETH_<chainId>`.
pub fn known_wrapped_native(chain_id: u64) -> Option<Address> {
    Some(match chain_id {
        1 => address!("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"),
        // OP Stack chains share the predeploy.
        10 | 8453 => address!("0x4200000000000000000000000000000000000006"),
        100 => address!("0xe91D153E0b41518A2Ce8Dd3D7944Fa863463a97d"),
        137 => address!("0x0d500B1d8E8eF31E21C99d1Db9A6444d3ADf1270"),
        42161 => address!("0x82aF49447D8a07e3bd95BD0d56f35241523fBab1"),
        11155111 => address!("0xfFf9976782d46CC05630D1f6eBAb18b2324d6B14"),
        _ => return None,
    })
}

/// Metadata of the native currency: what `0xEeee…EEeE` stands for on the chain.
pub fn native_metadata(chain_id: u64) -> TokenMetadata {
    match chain_id {
        100 => TokenMetadata::native("XDAI", "xDai"),
        137 => TokenMetadata::native("POL", "Polygon Ecosystem Token"),
        _ => TokenMetadata::native("ETH", "Ether"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnet_and_unknown_chains() {
        assert!(known_wrapped_native(1).is_some());
        assert_eq!(known_wrapped_native(31337), None);
        assert_eq!(native_metadata(1).decimals, 18);
        assert_eq!(native_metadata(100).symbol, "XDAI");
    }
}
