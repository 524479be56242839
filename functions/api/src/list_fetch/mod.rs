//! Token lists named by sessions: checked, fetched once per TTL for every container that asks
//! (a lease in the table elects one fetcher; the others wait for its result), revalidated with
//! ETag / If-Modified-Since, validated and filtered to the chain, cached in the table.

mod fetch;
pub use live_balances::runtime::destination as guard;

use std::time::Duration;

use std::sync::Arc;

use lambda_http::tracing;
use live_balances::domain::list_document::{self, ChainTokens, SkippedEntries};
use live_balances::runtime::clock::unix_now;
use live_balances::storage::{CachedListHead, StorageError, Table, Written};
use thiserror::Error;
use tokio::time::{Instant, sleep};

pub use fetch::FetchError;
use fetch::{Fetched, ListFetcher, Validators};
use guard::Destinations;

use crate::catalog::{Catalog, ListVersion};
use crate::settings::TokenListSettings;

/// Why a list named by a request cannot be used.
#[derive(Debug, Error)]
pub enum ListError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Invalid(#[from] list_document::TokenListError),
    #[error("another request is fetching this list; try again shortly")]
    Busy,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A list's tokens for one chain, as used by a session.
#[derive(Debug, Clone)]
pub struct ResolvedList {
    pub version: Arc<ListVersion>,
    pub skipped: SkippedEntries,
}

/// Gap between two looks at a list another request is fetching.
const WAIT_STEP: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct TokenLists {
    fetcher: ListFetcher,
    settings: TokenListSettings,
}

impl TokenLists {
    pub fn new(settings: &TokenListSettings) -> Result<Self, reqwest::Error> {
        let destinations = Destinations {
            allow_insecure: settings.allow_insecure,
        };
        Ok(Self {
            fetcher: ListFetcher::new(
                destinations,
                settings.max_redirects,
                settings.max_bytes,
                settings.timeout,
            )?,
            settings: settings.clone(),
        })
    }

    pub fn settings(&self) -> &TokenListSettings {
        &self.settings
    }

    /// Checks a URL as given (scheme, credentials, literal addresses) without fetching it.
    pub fn check(&self, url: &str) -> Result<(), FetchError> {
        self.fetcher.check(url).map(|_| ())
    }

    /// The list's tokens for the chain: from the cache while fresh, else fetched (or
    /// revalidated) by exactly one of the requests that need it.
    pub async fn resolve(
        &self,
        table: &Table,
        catalog: &Catalog,
        chain_id: u64,
        url: &str,
    ) -> Result<ResolvedList, ListError> {
        self.check(url)?;
        let ttl = self.settings.ttl.as_secs();
        let lease = self.settings.timeout.as_secs() + 5;
        let give_up = Instant::now() + self.settings.timeout + Duration::from_secs(2);
        loop {
            let now = unix_now();
            let head = table.list_head(chain_id, url).await?;
            let cached = head.filter(|h| h.generation > 0);
            if let Some(h) = cached.as_ref().filter(|h| h.fetched_at + ttl > now) {
                return load(table, catalog, chain_id, h).await;
            }
            match table
                .claim_list_fetch(chain_id, url, now, now.saturating_sub(ttl), now + lease)
                .await?
            {
                Written::Yes => {
                    return self
                        .refresh(table, catalog, chain_id, url, cached, now)
                        .await;
                }
                // Another request holds the lease or has just refreshed the list: look again,
                // and past the wait use the stale copy.
                Written::Skipped if Instant::now() < give_up => sleep(WAIT_STEP).await,
                Written::Skipped => match cached {
                    Some(h) => return load(table, catalog, chain_id, &h).await,
                    None => return Err(ListError::Busy),
                },
            }
        }
    }

    /// Fetches the list again (conditionally, when a copy is cached) and stores what changed.
    async fn refresh(
        &self,
        table: &Table,
        catalog: &Catalog,
        chain_id: u64,
        url: &str,
        cached: Option<CachedListHead>,
        now: u64,
    ) -> Result<ResolvedList, ListError> {
        let (parsed, validators) = match self.fetch_parsed(chain_id, url, cached.as_ref()).await {
            Ok(Refetched::Changed(parsed, validators)) => (parsed, validators),
            Ok(Refetched::Current(head)) => {
                tracing::info!(chain = chain_id, url, "token list not modified");
                table.revalidated_list(chain_id, url, now).await?;
                return load(table, catalog, chain_id, head).await;
            }
            Err(error) => {
                table.release_list_fetch(chain_id, url).await?;
                return match cached {
                    // A list that served well before outlives a passing outage of its host.
                    Some(head) if is_passing(&error) => {
                        tracing::warn!(chain = chain_id, url, %error, "token list refresh failed; using the cached copy");
                        load(table, catalog, chain_id, &head).await
                    }
                    _ => Err(error),
                };
            }
        };
        let head = CachedListHead {
            url: url.to_string(),
            list_name: parsed.list_name.clone(),
            etag: validators.etag,
            last_modified: validators.last_modified,
            fetched_at: now,
            generation: cached.as_ref().map_or(1, |h| h.generation + 1),
            token_count: parsed.tokens.len(),
            skipped: parsed.skipped,
            lease_until: None,
        };
        store_version(table, catalog, chain_id, &head, parsed, now).await
    }

    /// The list's document for `chain_id`, fetched with the cached copy's validators.
    async fn fetch_parsed<'c>(
        &self,
        chain_id: u64,
        url: &str,
        cached: Option<&'c CachedListHead>,
    ) -> Result<Refetched<'c>, ListError> {
        let validators = cached
            .map(|h| Validators {
                etag: h.etag.clone(),
                last_modified: h.last_modified.clone(),
            })
            .unwrap_or_default();
        match (self.fetcher.fetch(url, &validators).await?, cached) {
            (Fetched::NotModified, Some(head)) => Ok(Refetched::Current(head)),
            (Fetched::NotModified, None) => {
                Err(FetchError::Status(http::StatusCode::NOT_MODIFIED).into())
            }
            (Fetched::Body { bytes, validators }, _) => {
                let tokens = list_document::parse_for_chain(&bytes, chain_id)?;
                Ok(Refetched::Changed(tokens, validators))
            }
        }
    }
}

/// What a refetch found.
enum Refetched<'c> {
    /// The host says the cached copy is current.
    Current(&'c CachedListHead),
    /// A document, parsed for the chain, with its validators for the next refetch.
    Changed(ChainTokens, Validators),
}

/// A failure of the list's host that a cached copy may outlive (not a document gone bad).
fn is_passing(error: &ListError) -> bool {
    matches!(
        error,
        ListError::Fetch(
            FetchError::Timeout(_) | FetchError::Unreachable(_) | FetchError::Status(_)
        )
    )
}

/// Stores a fetched version of a list (the poller learns of one replacing another).
async fn store_version(
    table: &Table,
    catalog: &Catalog,
    chain_id: u64,
    head: &CachedListHead,
    parsed: ChainTokens,
    now: u64,
) -> Result<ResolvedList, ListError> {
    table
        .store_list(chain_id, head, &parsed.tokens, now)
        .await?;
    // Sessions follow lists by reference: a new version is news for the poller, which
    // tracks the tokens it gained and forgets those it lost for every follower. It learns of
    // it from the session log entry `store_list` writes with the new head.
    let url = head.url.as_str();
    tracing::info!(
        chain = chain_id,
        url,
        tokens = parsed.tokens.len(),
        skipped_invalid = parsed.skipped.invalid,
        skipped_duplicate = parsed.skipped.duplicate,
        "token list fetched"
    );
    let version = catalog.remember_list(
        chain_id,
        ListVersion::new(url, &parsed.list_name, head.generation, &parsed.tokens),
    );
    Ok(ResolvedList {
        version,
        skipped: parsed.skipped,
    })
}

async fn load(
    table: &Table,
    catalog: &Catalog,
    chain_id: u64,
    head: &CachedListHead,
) -> Result<ResolvedList, ListError> {
    Ok(ResolvedList {
        version: catalog.list_version(table, chain_id, head).await?,
        skipped: head.skipped,
    })
}
