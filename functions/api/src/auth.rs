//! Who a back-end request comes from. Orders and webhook subscriptions are back-end routes:
//! they need `Authorization: Bearer <API key>`, a key the operator issued
//! ([`live_balances::domain::api_key`]). The key is looked up by its hash; a revoked or unknown key is
//! refused, and every request counts against the key's quota. Everything a back end creates
//! belongs to its key's tenant, and another tenant's is, to it, not there.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::HeaderMap;
use http::request::Parts;
use live_balances::domain::api_key::{KeyHash, Tenant, looks_like_key};

use crate::error::ApiError;
use crate::limits;
use crate::request::KeyAuthenticated;
use crate::state::State;

/// An authenticated back end: its key's tenant and quotas.
#[derive(Debug, Clone)]
pub struct BackEnd {
    pub tenant: Tenant,
    /// The key's public id (never the key), for logs.
    pub key_id: String,
    /// Live webhook subscriptions its tenant may hold.
    pub max_webhooks: u64,
}

/// The bearer token of `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A back-end route's handler takes its caller first: the key is checked before anything else
/// of the request is read.
impl FromRequestParts<Arc<State>> for BackEnd {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, ApiError> {
        back_end(state, parts).await
    }
}

/// Authenticates a back-end request and counts it against its key's quota; the request then
/// carries [`KeyAuthenticated`] (a back end's session writes count against its key, not its
/// address).
async fn back_end(state: &State, parts: &mut Parts) -> Result<BackEnd, ApiError> {
    let presented = bearer(&parts.headers).ok_or(ApiError::ApiKeyRequired)?;
    // Not even shaped like a key: no read for it.
    if !looks_like_key(presented) {
        return Err(ApiError::InvalidApiKey);
    }
    let key = state
        .table
        .api_key(&KeyHash::of(presented))
        .await?
        .filter(|k| k.is_live())
        .ok_or(ApiError::InvalidApiKey)?;
    limits::admit_back_end_request(state, key.id(), key.quotas.requests_per_minute).await?;
    let caller = BackEnd {
        tenant: key.tenant.clone(),
        key_id: key.id().to_string(),
        max_webhooks: key.quotas.max_webhooks,
    };
    parts.extensions.insert(KeyAuthenticated);
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_from_authorization_only() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", value.parse().unwrap());
            headers
        };
        assert_eq!(bearer(&with("Bearer lbk_x")), Some("lbk_x"));
        assert_eq!(bearer(&with("bearer  lbk_x ")), Some("lbk_x"));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("lbk_x")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
