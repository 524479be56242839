//! Parsing the parts of a request that come from outside: path segments, headers, bodies.

use alloy::primitives::Address;
use http::header::CONTENT_TYPE;
use lambda_http::Request;
use live_balances::address::{parse_address, parse_owner};
use live_balances::chain::BalanceReader;

use crate::error::ApiError;
use crate::state::State;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub fn chain_id(segment: &str) -> Result<u64, ApiError> {
    match segment.parse::<u64>() {
        Ok(id) if id > 0 && segment.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(ApiError::InvalidChainId),
    }
}

/// The `{chain_id}` and `{owner}` segments every wallet route has, checked in that order: a
/// well-formed chain id, a valid owner, a chain this deployment serves.
pub fn wallet<'s>(
    state: &'s State,
    chain: &str,
    owner: &str,
) -> Result<(u64, Address, &'s BalanceReader), ApiError> {
    let chain_id = chain_id(chain)?;
    let owner = self::owner(owner)?;
    Ok((chain_id, owner, state.reader(chain_id)?))
}

pub fn owner(segment: &str) -> Result<Address, ApiError> {
    parse_owner(segment).map_err(|e| ApiError::InvalidOwner(e.to_string()))
}

/// Parses a list of token addresses; the error names the first bad one by position.
pub fn addresses(field: &str, values: &[String]) -> Result<Vec<Address>, ApiError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            parse_address(v).map_err(|e| ApiError::InvalidToken(format!("{field}[{i}]: {e}")))
        })
        .collect()
}

/// The JSON body, refused unless declared as JSON, within size, and of the expected shape
/// (unknown fields included, so a typo is an error rather than silently ignored).
pub fn json_body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let declared_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !declared_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::BodyTooLarge(MAX_BODY_BYTES));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidBody(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids() {
        assert_eq!(chain_id("31337").unwrap(), 31337);
        for bad in ["0", "-1", "+1", "abc", "", "1.5", "99999999999999999999999"] {
            assert!(chain_id(bad).is_err(), "{bad}");
        }
    }
}
