//! Fetching a token list over HTTP within bounds: checked destinations (see [`super::guard`]),
//! a bounded number of checked redirects, one timeout for the whole fetch, and a body size
//! counted while it streams in (a `Content-Length` is not trusted).

use std::time::Duration;

use http::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{Client, Url};
use thiserror::Error;

use super::guard::{Destinations, Redirects, Refusal, checked_client, refusal_in, resolve_checked};

/// Why a list could not be fetched.
#[derive(Debug, Error)]
pub enum FetchError {
    #[error("not a valid URL")]
    InvalidUrl,
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the list server answered {0}")]
    Status(StatusCode),
    #[error("the list is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the list server could not be reached")]
    Unreachable(#[source] reqwest::Error),
}

/// Validators of a cached copy, sent so an unchanged list costs a 304.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// What a fetch brought back.
#[derive(Debug)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

/// An HTTP client that can only reach allowed destinations.
#[derive(Debug, Clone)]
pub struct ListFetcher {
    client: Client,
    destinations: Destinations,
    max_redirects: usize,
    max_bytes: usize,
    timeout: Duration,
}

impl ListFetcher {
    pub fn new(
        destinations: Destinations,
        max_redirects: usize,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = checked_client(destinations, Redirects::Follow(max_redirects), timeout)?;
        Ok(Self {
            client,
            destinations,
            max_redirects,
            max_bytes,
            timeout,
        })
    }

    /// Checks a list URL as given, before anything is stored or fetched.
    pub fn check(&self, url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url).map_err(|_| FetchError::InvalidUrl)?;
        self.destinations
            .check_url(&parsed)
            .map_err(FetchError::Refused)?;
        Ok(parsed)
    }

    pub async fn fetch(&self, url: &str, cached: &Validators) -> Result<Fetched, FetchError> {
        let url = self.check(url)?;
        // Resolved and checked here for a clear answer; the client's resolver checks again
        // at connect time (and for redirects), so a name that changes its answer in between
        // still cannot reach a refused address.
        if let Some(url::Host::Domain(host)) = url.host() {
            resolve_checked(self.destinations, host)
                .await
                .map_err(FetchError::Refused)?;
        }
        let mut request = self.client.get(url);
        if let Some(etag) = &cached.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(date) = &cached.last_modified {
            request = request.header(IF_MODIFIED_SINCE, date);
        }
        let mut response = request.send().await.map_err(|e| self.classify(e))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes as u64)
        {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(e))? {
            if bytes.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body { bytes, validators })
    }

    /// Finds our own refusal or redirect limit inside reqwest's error chain.
    fn classify(&self, error: reqwest::Error) -> FetchError {
        if error.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        match refusal_in(&error) {
            Some(Ok(refusal)) => return FetchError::Refused(refusal),
            Some(Err(_)) => return FetchError::TooManyRedirects(self.max_redirects),
            None => {}
        }
        FetchError::Unreachable(error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A listener on loopback that only counts connections: nothing may reach it.
    async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        (port, accepted)
    }

    #[tokio::test]
    async fn without_the_development_flag_nothing_local_is_contacted() {
        let (port, accepted) = counting_listener().await;
        let strict = ListFetcher::new(
            Destinations {
                allow_insecure: false,
            },
            3,
            1 << 20,
            Duration::from_secs(2),
        )
        .unwrap();
        let none = Validators::default();
        // A name that resolves to loopback: refused after DNS, before any connection, and the
        // refusal does not say where the name led.
        let by_name = strict
            .fetch(&format!("https://localhost:{port}/list.json"), &none)
            .await;
        assert!(
            matches!(
                by_name,
                Err(FetchError::Refused(Refusal::ResolvesToNonPublic))
            ),
            "{by_name:?}"
        );
        let plain_http = strict
            .fetch(&format!("http://127.0.0.1:{port}/"), &none)
            .await;
        assert!(
            matches!(plain_http, Err(FetchError::Refused(Refusal::Scheme))),
            "{plain_http:?}"
        );
        let literal = strict
            .fetch(&format!("https://127.0.0.1:{port}/"), &none)
            .await;
        assert!(
            matches!(literal, Err(FetchError::Refused(Refusal::NonPublic(_)))),
            "{literal:?}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection was made");
    }
}
