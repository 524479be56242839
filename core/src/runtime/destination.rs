//! Where the service may send a request a client named — a token-list fetch, a webhook
//! delivery. Such a request is made on a client's behalf, so it must never reach the
//! service's own network: loopback, private ranges, link-local (the cloud metadata address
//! 169.254.169.254), and every other non-public address are refused — for the URL as given,
//! after every redirect, and after DNS resolution (a public-looking name may resolve to a
//! private address). [`checked_client`] is the one HTTP client built on these rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Client, Url, redirect};
use thiserror::Error;

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("only https URLs are fetched")]
    Scheme,
    #[error("URLs with credentials are not fetched")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    /// An address written in the URL itself (never one a name resolved to).
    #[error("{0} is not a public address")]
    NonPublic(IpAddr),
    /// A name that resolves to a non-public address: which one is not said (it would tell a
    /// caller about the network the service runs in).
    #[error("the host resolves to an address that is not public")]
    ResolvesToNonPublic,
    #[error("the host does not resolve to any address")]
    Unresolvable,
}

/// Whether a client follows redirects, each target checked, or never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Up to this many, each target checked (token lists move).
    Follow(usize),
    /// A 3xx is the answer (webhook deliveries: following one would turn the POST into a GET,
    /// and send the signed headers to another host).
    Never,
}

/// A redirect chain longer than the client allows (found in a request error's sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("more than {0} redirects")]
pub struct TooManyRedirects(pub usize);

/// An HTTP client that can only reach allowed destinations: every redirect target is checked
/// (at most `max_redirects` followed, or none), every name is resolved through
/// [`CheckedResolver`], no proxy from the environment is used (it would connect on our
/// behalf, unchecked), and one `timeout` bounds the whole request. A refusal surfaces as a
/// [`Refusal`], a long chain as a [`TooManyRedirects`], both among the request error's sources.
pub fn checked_client(
    destinations: Destinations,
    redirects: Redirects,
    timeout: Duration,
) -> Result<Client, reqwest::Error> {
    let policy = match redirects {
        Redirects::Never => redirect::Policy::none(),
        Redirects::Follow(max_redirects) => redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(TooManyRedirects(max_redirects));
            }
            match destinations.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        }),
    };
    Client::builder()
        .redirect(policy)
        .dns_resolver(CheckedResolver::shared(destinations))
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("live-balances/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Our own refusal or redirect limit inside a request error's chain of sources.
pub fn refusal_in(error: &reqwest::Error) -> Option<Result<Refusal, TooManyRedirects>> {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return Some(Ok(refusal.clone()));
        }
        if let Some(limit) = e.downcast_ref::<TooManyRedirects>() {
            return Some(Err(*limit));
        }
        source = e.source();
    }
    None
}

/// The rules every destination is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Destinations {
    /// Development only: `http://` and loopback hosts (a list served on this machine).
    pub allow_insecure: bool,
}

impl Destinations {
    /// Checks a URL before it is requested (the first one and each redirect target). Hosts
    /// given as IP literals are checked here; names are checked when they are resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_insecure => {}
            _ => return Err(Refusal::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        match url.host() {
            None => Err(Refusal::NoHost),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = canonical(ip);
        if is_public(ip) || (self.allow_insecure && ip.is_loopback()) {
            Ok(())
        } else {
            Err(Refusal::NonPublic(ip))
        }
    }
}

/// IPv4 addresses carried inside IPv6 ones (mapped, compatible, NAT64, 6to4) are judged as
/// the IPv4 address they reach.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded =
        |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match s {
        // ::a.b.c.d (deprecated IPv4-compatible), except :: and ::1.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) => embedded(hi, lo),
        // 64:ff9b::/96 NAT64.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        // 2002::/16 6to4.
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        _ => ip,
    }
}

/// Globally routable unicast: everything else (private, loopback, link-local, shared,
/// documentation, benchmarking, reserved, multicast, unspecified, unique-local) is refused.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // Global unicast is 2000::/3; within it, documentation and Teredo are refused.
            (s[0] & 0xe000) == 0x2000
                && !(s[0] == 0x2001 && s[1] == 0x0db8)
                && !(s[0] == 0x2001 && s[1] == 0)
                && v6 != Ipv6Addr::UNSPECIFIED
        }
    }
}

/// DNS resolution that refuses a name if any address it resolves to is refused, so the
/// connection can only go to an address that was checked.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    pub destinations: Destinations,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let destinations = self.destinations;
        Box::pin(async move {
            let addrs = resolve_checked(destinations, name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Resolves a host name; refused unless every address it resolves to is allowed.
pub async fn resolve_checked(
    destinations: Destinations,
    host: &str,
) -> Result<Vec<SocketAddr>, Refusal> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|_| Refusal::Unresolvable)?
        .collect();
    if addrs.is_empty() {
        return Err(Refusal::Unresolvable);
    }
    for addr in &addrs {
        destinations
            .check_ip(addr.ip())
            .map_err(|_| Refusal::ResolvesToNonPublic)?;
    }
    Ok(addrs)
}

impl CheckedResolver {
    pub fn shared(destinations: Destinations) -> Arc<Self> {
        Arc::new(Self { destinations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Destinations {
        Destinations {
            allow_insecure: false,
        }
    }

    #[test]
    fn refuses_non_public_addresses_in_every_spelling() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:db8::1",
            "ff02::1",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(strict().check_ip(ip).is_err(), "{ip} must be refused");
        }
        for ip in ["1.1.1.1", "140.82.112.3", "2606:4700::1111"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(strict().check_ip(ip).is_ok(), "{ip} is public");
        }
    }

    #[test]
    fn urls() {
        let check = |d: Destinations, u: &str| d.check_url(&Url::parse(u).unwrap());
        let dev = Destinations {
            allow_insecure: true,
        };
        assert_eq!(check(strict(), "https://tokens.example/list.json"), Ok(()));
        assert_eq!(
            check(strict(), "http://tokens.example/"),
            Err(Refusal::Scheme)
        );
        assert_eq!(check(strict(), "file:///etc/passwd"), Err(Refusal::Scheme));
        assert_eq!(check(strict(), "ftp://x/"), Err(Refusal::Scheme));
        assert_eq!(
            check(strict(), "https://user:pw@tokens.example/"),
            Err(Refusal::Credentials)
        );
        assert!(check(strict(), "https://169.254.169.254/latest/meta-data").is_err());
        assert!(check(strict(), "https://[::ffff:a9fe:a9fe]/").is_err());
        // Decimal and hex IPv4 spellings are normalised by the URL parser, then refused.
        assert!(check(strict(), "https://2852039166/").is_err());
        assert!(check(strict(), "https://0xa9.0xfe.0xa9.0xfe/").is_err());
        assert_eq!(check(dev, "http://127.0.0.1:8080/list.json"), Ok(()));
        assert!(
            check(dev, "http://169.254.169.254/").is_err(),
            "dev mode still refuses metadata"
        );
        assert!(check(dev, "http://10.0.0.1/").is_err());
    }

    #[tokio::test]
    async fn resolver_refuses_names_of_loopback_without_naming_the_address() {
        let resolver = CheckedResolver {
            destinations: strict(),
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(resolver.resolve(name).await.is_err());
        let refusal = resolve_checked(strict(), "localhost").await.unwrap_err();
        assert_eq!(refusal, Refusal::ResolvesToNonPublic);
        let text = refusal.to_string();
        assert!(!text.contains("127.") && !text.contains("::1"), "{text}");
    }
}
