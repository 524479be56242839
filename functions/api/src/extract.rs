//! What a handler takes from a request, as axum extractors: the path's captured segments as
//! the client wrote them, and the whole request with its body. Both refuse with the api's own
//! JSON errors, never axum's plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, MatchedPath};
use http::request::Parts;

use crate::error::ApiError;
use crate::request::Request;

/// The segments the route's `{…}` captures matched, in the route's order, exactly as the
/// client wrote them: not percent-decoded, because judging an owner's spelling is the owner
/// parser's (an encoded `0x…` is refused, not quietly read).
#[derive(Debug)]
pub struct Segments<const N: usize>(pub [String; N]);

impl<S: Send + Sync, const N: usize> FromRequestParts<S> for Segments<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .ok_or(ApiError::NotFound)?;
        captured(route.as_str(), parts.uri.path())
            .try_into()
            .map(Self)
            .map_err(|_| ApiError::NotFound)
    }
}

/// The segments of `path` that `route`'s captures matched (routes capture whole segments).
fn captured(route: &str, path: &str) -> Vec<String> {
    route
        .split('/')
        .zip(path.split('/'))
        .filter(|(pattern, _)| pattern.starts_with('{'))
        .map(|(_, segment)| segment.to_string())
        .collect()
}

/// The request with its whole body, as the handlers read it. The body was collected within
/// its bounds before routing (`crate::exchange`), so this only takes it.
#[derive(Debug)]
pub struct WholeRequest(pub Request);

impl<S: Send + Sync> FromRequest<S> for WholeRequest {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| ApiError::InvalidBody(format!("the body could not be read: {e}")))?;
        Ok(Self(http::Request::from_parts(parts, bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_are_the_segments_as_written() {
        assert_eq!(
            captured(
                "/{chain_id}/balance/{owner}/{token}",
                "/1/balance/%30x12/0xEe"
            ),
            ["1", "%30x12", "0xEe"]
        );
        assert_eq!(
            captured("/sse/balances", "/sse/balances"),
            Vec::<String>::new()
        );
    }
}
