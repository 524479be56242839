//! The request as the router sees it, whichever transport brought it, and parsing the parts
//! of it that come from outside: path segments, headers, bodies, the client's address.

use std::net::{IpAddr, Ipv6Addr};

use alloy::primitives::Address;
use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use live_balances::chain::BalanceReader;
use live_balances::domain::address::{parse_address, parse_owner};
use live_balances::feed::pairs::parse_chain_id;

use crate::error::ApiError;
use crate::settings::RequestBounds;
use crate::state::State;

/// A request as both transports hand it to the router: method, the path as the client sent it
/// (not percent-decoded), headers and the whole body. What only the transport knows travels
/// in extensions: [`ClientAddress`] and [`Deadline`].
pub type Request = http::Request<Bytes>;

/// The client's address as the transport saw it — the function URL's request context, or the
/// entry the load balancer appended to `X-Forwarded-For` — never anything the client wrote.
/// Rate limits key on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

/// Set by the router on a request authenticated with an API key (`auth`): its session writes
/// (an order registration) count against the key's quota, not against its address.
#[derive(Debug, Clone, Copy)]
pub struct KeyAuthenticated;

/// When the transport will cut the response off (a Lambda invocation's deadline): streams end
/// themselves before it. Absent on the server, whose streams are bounded by `SSE_MAX_SECS`.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub std::time::Instant);

/// The first value of query parameter `name` (form-decoded), as both transports pass the query
/// in the request's URI.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The address a load balancer appended to `X-Forwarded-For`: the last entry of the last such
/// header. Entries before it are whatever the client sent and are never used. `None` when
/// there is none or it is not an IP address.
pub fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry.parse().ok()
}

/// The client address rate limits key on: the load balancer's `X-Forwarded-For` entry when
/// the server sits behind one (`trust_forwarded_for`), else the peer of the connection. A
/// missing or malformed entry behind a load balancer falls back to the peer (the balancer
/// itself): every such request shares one window, never one a client can choose.
pub fn client_address(
    headers: &HeaderMap,
    peer: IpAddr,
    trust_forwarded_for: bool,
) -> ClientAddress {
    let ip = if trust_forwarded_for {
        forwarded_client(headers).unwrap_or(peer)
    } else {
        peer
    };
    // An IPv4 client of a dual-stack listener is one client, however it is written.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ClientAddress(ip.to_string())
}

/// What a rate limit counts a request against: the client's address, an IPv6 client by its
/// /64 (one subscriber's usual allocation: a client choosing addresses within it is still one
/// client). Refused when the transport gave no address — a limit that could be skipped would
/// be none.
pub fn rate_source(req: &Request) -> Result<String, ApiError> {
    let ip = req
        .extensions()
        .get::<ClientAddress>()
        .and_then(|ClientAddress(address)| address.parse::<IpAddr>().ok())
        .ok_or(ApiError::UnknownSource)?;
    Ok(match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    })
}

/// Refuses a request whose body or query string is larger than the bounds allow, whatever its
/// route, before anything of it is parsed.
pub fn check_size(req: &Request, bounds: &RequestBounds) -> Result<(), ApiError> {
    if req.body().len() > bounds.max_body_bytes {
        return Err(ApiError::BodyTooLarge(bounds.max_body_bytes));
    }
    if req.uri().query().map_or(0, str::len) > bounds.max_query_bytes {
        return Err(ApiError::QueryTooLong(bounds.max_query_bytes));
    }
    Ok(())
}

pub fn chain_id(segment: &str) -> Result<u64, ApiError> {
    parse_chain_id(segment).map_err(|_| ApiError::InvalidChainId)
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

/// The JSON body, refused unless declared as JSON and of the expected shape (unknown fields
/// included, so a typo is an error rather than silently ignored). Its size was checked by the
/// router, for every route alike.
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
    serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidBody(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_load_balancers_entry_is_the_last_one() {
        let peer: IpAddr = "10.0.0.7".parse().unwrap();
        // A client wrote the first entries; the balancer appended the last.
        let headers = forwarded(&["1.1.1.1, 2.2.2.2", "203.0.113.9"]);
        assert_eq!(client_address(&headers, peer, true).0, "203.0.113.9");
        let headers = forwarded(&["9.9.9.9,198.51.100.4"]);
        assert_eq!(client_address(&headers, peer, true).0, "198.51.100.4");
        assert_eq!(
            client_address(&forwarded(&["2001:db8::1"]), peer, true).0,
            "2001:db8::1"
        );
        // Nothing usable: the peer, never a client's word.
        for junk in [&[][..], &["not-an-ip"], &["1.2.3.4, "], &["1.2.3.4:80"]] {
            assert_eq!(
                client_address(&forwarded(junk), peer, true).0,
                "10.0.0.7",
                "{junk:?}"
            );
        }
    }

    #[test]
    fn query_parameters_are_decoded_and_the_first_wins() {
        let req = |uri: &str| http::Request::get(uri).body(Bytes::new()).unwrap();
        let r = req("/sse/1/balances/0x?lastEventId=0042&lastEventId=7&x=%20y");
        assert_eq!(query_param(&r, "lastEventId").as_deref(), Some("0042"));
        assert_eq!(query_param(&r, "x").as_deref(), Some(" y"));
        assert_eq!(query_param(&req("/a"), "lastEventId"), None);
    }

    #[test]
    fn without_a_load_balancer_the_header_is_ignored() {
        let peer: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(client_address(&headers, peer, false).0, "127.0.0.1");
    }

    #[test]
    fn rate_limits_key_ipv4_by_address_and_ipv6_by_its_64() {
        let source = |address: Option<&str>| {
            let mut req = http::Request::get("/").body(Bytes::new()).unwrap();
            if let Some(a) = address {
                req.extensions_mut().insert(ClientAddress(a.into()));
            }
            rate_source(&req).map_err(|e| e.code().as_str())
        };
        assert_eq!(source(Some("203.0.113.9")).unwrap(), "203.0.113.9");
        assert_eq!(source(Some("::ffff:203.0.113.9")).unwrap(), "203.0.113.9");
        // Every address of one /64 is one source; the next /64 is another.
        let a = source(Some("2001:db8:1:2:aaaa::1")).unwrap();
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(source(Some("2001:db8:1:2:ffff:ffff:ffff:ffff")).unwrap(), a);
        assert_ne!(source(Some("2001:db8:1:3::1")).unwrap(), a);
        // Unknown or unreadable: refused, never let through unlimited.
        assert_eq!(source(None), Err("unknown_source"));
        assert_eq!(source(Some("not-an-ip")), Err("unknown_source"));
    }

    #[test]
    fn chain_ids() {
        assert_eq!(chain_id("31337").unwrap(), 31337);
        for bad in ["0", "-1", "+1", "abc", "", "1.5", "99999999999999999999999"] {
            assert!(chain_id(bad).is_err(), "{bad}");
        }
    }
}
