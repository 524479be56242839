//! What the api knows of a chain's tokens beyond one wallet's values: the tokens (with
//! metadata) of each version of a token list, the tokens whose reads fail on the chain, and
//! the metadata of tokens named by address. Read from the table and kept in the process — a
//! list version never changes once written, and the rest changes rarely — so a snapshot of a
//! 5,000-token list costs the wallet's own items and one small read per list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Address;
use live_balances::NATIVE_TOKEN;
use live_balances::chain::known_chains::native_metadata;
use live_balances::domain::token_metadata::TokenMetadata;
use live_balances::runtime::clock::unix_now;
use live_balances::storage::{CachedListHead, StorageError, Table, TokenFact};
use tokio::time::Instant;

/// How long the chain's unreadable tokens are taken as known without asking whether facts
/// were recorded since (a fact expires a day after it was found; new ones bump a counter).
const UNREADABLE_FRESH: Duration = Duration::from_secs(600);
/// How long a named token's cached metadata is taken as known.
const METADATA_FRESH: Duration = Duration::from_secs(600);
/// How long "no metadata cached yet" is believed: the poller caches a discovered token's soon.
const NO_METADATA_FRESH: Duration = Duration::from_secs(20);
/// List versions kept in memory; beyond, the cache starts over (list versions are re-read
/// from the table on demand).
const MAX_LIST_VERSIONS: usize = 64;

/// One version of a token list on one chain.
#[derive(Debug)]
pub struct ListVersion {
    pub url: String,
    pub name: String,
    pub generation: u64,
    /// In list order.
    pub tokens: Vec<Address>,
    pub metadata: HashMap<Address, TokenMetadata>,
}

impl ListVersion {
    pub fn new(
        url: &str,
        name: &str,
        generation: u64,
        tokens: &[(Address, TokenMetadata)],
    ) -> Self {
        Self {
            url: url.to_string(),
            name: name.to_string(),
            generation,
            tokens: tokens.iter().map(|(a, _)| *a).collect(),
            metadata: tokens.iter().cloned().collect(),
        }
    }
}

#[derive(Debug, Default)]
struct Cached {
    lists: HashMap<(u64, String, u64), Arc<ListVersion>>,
    /// Per chain: when read, at which facts version, the set.
    unreadable: HashMap<u64, (Instant, u64, Arc<BTreeSet<Address>>)>,
    metadata: HashMap<(u64, Address), (Instant, Option<TokenMetadata>)>,
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    cached: Arc<Mutex<Cached>>,
}

impl Catalog {
    fn with<T>(&self, f: impl FnOnce(&mut Cached) -> T) -> T {
        // A poisoned lock only means another request panicked mid-update of a cache: start
        // that cache over rather than fail every request after it.
        let mut guard = self.cached.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = Cached::default();
            guard
        });
        f(&mut guard)
    }

    /// Keeps a list version this process has just read or written.
    pub fn remember_list(&self, chain_id: u64, version: ListVersion) -> Arc<ListVersion> {
        let version = Arc::new(version);
        self.with(|c| {
            if c.lists.len() >= MAX_LIST_VERSIONS {
                c.lists.clear();
            }
            c.lists.insert(
                (chain_id, version.url.clone(), version.generation),
                version.clone(),
            );
        });
        version
    }

    /// The version of a list `head` points at: from memory, else from the list cache.
    pub async fn list_version(
        &self,
        table: &Table,
        chain_id: u64,
        head: &CachedListHead,
    ) -> Result<Arc<ListVersion>, StorageError> {
        let key = (chain_id, head.url.clone(), head.generation);
        if let Some(known) = self.with(|c| c.lists.get(&key).cloned()) {
            return Ok(known);
        }
        let tokens = table.list_tokens(chain_id, head).await?;
        Ok(self.remember_list(
            chain_id,
            ListVersion::new(&head.url, &head.list_name, head.generation, &tokens),
        ))
    }

    /// The current version of each list in `urls` (one small read per list); a list not in
    /// the cache (never fetched) is left out.
    pub async fn current_lists(
        &self,
        table: &Table,
        chain_id: u64,
        urls: impl IntoIterator<Item = &String>,
    ) -> Result<Vec<Arc<ListVersion>>, StorageError> {
        let mut lists = vec![];
        for url in urls {
            if let Some(head) = table
                .list_head(chain_id, url)
                .await?
                .filter(|h| h.generation > 0)
            {
                lists.push(self.list_version(table, chain_id, &head).await?);
            }
        }
        Ok(lists)
    }

    /// Tokens whose reads fail on this chain for every holder. One small read tells whether
    /// the copy held here is current (another container, or the poller, may have found one
    /// since); the set itself is read again only then.
    pub async fn unreadable(
        &self,
        table: &Table,
        chain_id: u64,
    ) -> Result<Arc<BTreeSet<Address>>, StorageError> {
        let version = table.token_facts_version(chain_id).await?;
        let known = self.with(|c| {
            c.unreadable
                .get(&chain_id)
                .filter(|(at, at_version, _)| {
                    *at_version == version && at.elapsed() < UNREADABLE_FRESH
                })
                .map(|(_, _, set)| set.clone())
        });
        if let Some(known) = known {
            return Ok(known);
        }
        let set = Arc::new(
            table
                .token_facts(chain_id, TokenFact::Unreadable, unix_now())
                .await?,
        );
        self.with(|c| {
            c.unreadable
                .insert(chain_id, (Instant::now(), version, set.clone()))
        });
        Ok(set)
    }

    /// Metadata of tokens named by address, from the per-chain cache the api and the poller
    /// fill when they first meet a token (the native currency's is known); tokens without
    /// cached metadata are left out.
    pub async fn named_metadata(
        &self,
        table: &Table,
        chain_id: u64,
        tokens: &BTreeSet<Address>,
    ) -> Result<BTreeMap<Address, TokenMetadata>, StorageError> {
        let mut found = BTreeMap::new();
        let mut missing = vec![];
        self.with(|c| {
            for token in tokens {
                if *token == NATIVE_TOKEN {
                    found.insert(*token, native_metadata(chain_id));
                    continue;
                }
                match c.metadata.get(&(chain_id, *token)).filter(|(at, m)| {
                    at.elapsed()
                        < if m.is_some() {
                            METADATA_FRESH
                        } else {
                            NO_METADATA_FRESH
                        }
                }) {
                    Some((_, Some(m))) => {
                        found.insert(*token, m.clone());
                    }
                    Some((_, None)) => {}
                    None => missing.push(*token),
                }
            }
        });
        if missing.is_empty() {
            return Ok(found);
        }
        let cached = table
            .cached_token_metadata(chain_id, &missing, unix_now())
            .await?;
        self.with(|c| {
            for token in &missing {
                let metadata = cached.get(token).cloned().flatten();
                if let Some(m) = &metadata {
                    found.insert(*token, m.clone());
                }
                // Not cached yet is remembered too (briefly): a poller may cache it soon.
                c.metadata
                    .insert((chain_id, *token), (Instant::now(), metadata));
            }
        });
        Ok(found)
    }
}
