//! The server's hub: every SSE stream of the process subscribes here by wallet, and the hub —
//! not each connection — reads a wallet's change feed when the chain's change log names it,
//! once for all of that wallet's streams, and hands the entries to them in memory. Reads grow
//! with changed wallets, not with connections: per chain, one log query per interval, plus one
//! feed query per wallet that changed and has a stream here. A stream reads the table itself
//! only to start (its snapshot, or a resume) and to catch up once if it joined after the hub
//! handed out entries it needs. Sessions are kept alive per wallet, not per stream, and each
//! token list the wallets follow is checked once for all of them.
//!
//! What a stream sends, and in which order, is exactly what it would read from the feed
//! itself: a [`FeedBatch`] says which position it continues from, and a stream that is not
//! there yet reads the gap from the feed before taking it.

mod keep_alive;
mod lists;
mod tail;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use alloy::primitives::Address;
use bytes::Bytes;
use live_balances::domain::model::{FeedEvent, FeedPosition};
use live_balances::storage::{ChainLogEntry, Table};
use live_balances::wire::sse::SseEvent;
use tokio::sync::{Notify, broadcast, watch};

use crate::settings::ApiSettings;

/// Batches a stream may fall behind its wallet's news before it is dropped (it resumes with
/// `Last-Event-ID`): at one batch per log interval, seconds of changes.
const NEWS_CAPACITY: usize = 64;

type WalletKey = (u64, Address);

/// What the hub tells the streams of one wallet.
#[derive(Debug, Clone)]
pub enum News {
    Entries(Arc<FeedBatch>),
    /// The session could not be kept alive: it has expired.
    SessionExpired,
    /// A list the wallet's tokens come from has a new version: tokens were added or removed,
    /// so each stream sends a fresh `all_balances`.
    ListsMoved,
}

/// Feed entries the hub read for a wallet: everything after `after`, in feed order, each
/// with its SSE frame (encoded once for every stream of the wallet).
#[derive(Debug)]
pub struct FeedBatch {
    pub after: FeedPosition,
    pub entries: Vec<(FeedEvent, Bytes)>,
}

struct Wallet {
    news: broadcast::Sender<News>,
    streams: usize,
    /// How far the hub has read the wallet's feed; `None` until its first stream starts.
    read_to: Option<FeedPosition>,
    /// The newest position the change log named for it.
    announced: Option<FeedPosition>,
    /// Read the feed whatever the log says (log entries may have been missed).
    stale: bool,
    /// The lists the wallet's streams showed tokens from, at the newest version shown.
    lists: HashMap<String, u64>,
    /// When a stream here last asked for the background re-read of the wallet's token set.
    rescan_asked: Option<tokio::time::Instant>,
}

impl Wallet {
    fn due(&self) -> Option<FeedPosition> {
        let read_to = self.read_to.as_ref()?;
        let announced = self.announced.as_ref().is_some_and(|a| a > read_to);
        (announced || self.stale).then(|| read_to.clone())
    }
}

struct Inner {
    table: Table,
    wallets: Mutex<HashMap<WalletKey, Wallet>>,
    /// Per chain: woken when a wallet of it becomes due.
    due: HashMap<u64, Arc<Notify>>,
    draining: watch::Sender<bool>,
    streams: AtomicUsize,
}

/// The process's hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("streams", &self.open_streams())
            .field("wallets", &self.wallets())
            .finish()
    }
}

impl Hub {
    /// A hub for the configured chains, with its tasks running: per chain a reader of the
    /// change log and a reader of due wallets' feeds, and the keep-alive of live wallets.
    pub fn start(table: Table, settings: &ApiSettings) -> Self {
        let due = settings
            .chains
            .keys()
            .map(|c| (*c, Arc::new(Notify::new())))
            .collect();
        let hub = Self {
            inner: Arc::new(Inner {
                table,
                wallets: Mutex::new(HashMap::new()),
                due,
                draining: watch::channel(false).0,
                streams: AtomicUsize::new(0),
            }),
        };
        for chain_id in settings.chains.keys() {
            tokio::spawn(tail::follow_log(
                hub.clone(),
                *chain_id,
                settings.streams.chain_log_interval,
            ));
            tokio::spawn(tail::read_due_wallets(hub.clone(), *chain_id));
        }
        let keep_alive = settings
            .streams
            .keep_alive
            .min(settings.session_ttl / 3)
            .max(std::time::Duration::from_secs(1));
        tokio::spawn(keep_alive::run(
            hub.clone(),
            keep_alive,
            settings.session_ttl,
        ));
        tokio::spawn(lists::watch(
            hub.clone(),
            keep_alive.min(lists::CHECK_AT_LEAST),
        ));
        hub
    }

    /// Subscribes a stream to its wallet's news. Subscribe before reading the position the
    /// stream starts from: nothing the hub hands out after that is missed.
    pub fn subscribe(&self, chain_id: u64, owner: Address) -> Subscription {
        let key = (chain_id, owner);
        let news = {
            let mut wallets = self.lock();
            let wallet = wallets.entry(key).or_insert_with(|| Wallet {
                news: broadcast::channel(NEWS_CAPACITY).0,
                streams: 0,
                read_to: None,
                announced: None,
                stale: false,
                lists: HashMap::new(),
                rescan_asked: None,
            });
            wallet.streams += 1;
            wallet.news.subscribe()
        };
        self.inner.streams.fetch_add(1, Ordering::Relaxed);
        Subscription {
            hub: self.clone(),
            key,
            news,
        }
    }

    /// Ends every stream: each sends a `retry:` hint and closes, so its client reconnects
    /// (to another task, behind a load balancer) and resumes with `Last-Event-ID`.
    pub fn drain(&self) {
        self.inner.draining.send_replace(true);
    }

    /// Turns true when the process drains.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.inner.draining.subscribe()
    }

    pub fn open_streams(&self) -> usize {
        self.inner.streams.load(Ordering::Relaxed)
    }

    /// Wallets with at least one stream here.
    pub fn wallets(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<WalletKey, Wallet>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .wallets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn table(&self) -> &Table {
        &self.inner.table
    }

    fn wake(&self, chain_id: u64) {
        if let Some(notify) = self.inner.due.get(&chain_id) {
            notify.notify_one();
        }
    }

    /// Takes what the change log says: wallets here with entries past what the hub read.
    fn announce(&self, chain_id: u64, entries: &[ChainLogEntry]) {
        let mut woke = false;
        {
            let mut wallets = self.lock();
            for entry in entries {
                if let Some(wallet) = wallets.get_mut(&(entry.chain_id, entry.owner)) {
                    if wallet
                        .announced
                        .as_ref()
                        .is_none_or(|a| *a < entry.position)
                    {
                        wallet.announced = Some(entry.position.clone());
                    }
                    woke |= wallet.due().is_some();
                }
            }
        }
        if woke {
            self.wake(chain_id);
        }
    }

    /// Every wallet of the chain is read at once: log entries may have been missed.
    fn mark_stale(&self, chain_id: u64) {
        for (key, wallet) in self.lock().iter_mut() {
            if key.0 == chain_id {
                wallet.stale = true;
            }
        }
        self.wake(chain_id);
    }

    /// Wallets of the chain whose feed must be read, each from where the hub read to, with
    /// the announcement that made it due.
    fn due(&self, chain_id: u64) -> Vec<(WalletKey, FeedPosition, Option<FeedPosition>)> {
        self.lock()
            .iter()
            .filter(|(key, _)| key.0 == chain_id)
            .filter_map(|(key, w)| w.due().map(|from| (*key, from, w.announced.clone())))
            .collect()
    }

    /// Hands what the hub read after `after` to the wallet's streams. An announcement that
    /// the read did not reach (an entry no longer in the feed) is dropped, so it does not make
    /// the wallet due again and again.
    fn publish(
        &self,
        key: WalletKey,
        after: FeedPosition,
        announced: Option<FeedPosition>,
        entries: Vec<FeedEvent>,
    ) {
        let last = entries.last().map(|e| e.position().clone());
        let batch = (!entries.is_empty()).then(|| {
            let entries = entries
                .into_iter()
                .map(|entry| {
                    let frame = Bytes::from(SseEvent::from(entry.clone()).encode());
                    (entry, frame)
                })
                .collect();
            News::Entries(Arc::new(FeedBatch {
                after: after.clone(),
                entries,
            }))
        });
        let mut wallets = self.lock();
        let Some(wallet) = wallets.get_mut(&key) else {
            return;
        };
        if wallet.read_to.as_ref() != Some(&after) {
            return;
        }
        wallet.stale = false;
        if wallet.announced == announced {
            wallet.announced = None;
        }
        if let (Some(last), Some(batch)) = (last, batch) {
            wallet.read_to = Some(last);
            // No receiver left is not an error: the wallet is about to be released.
            let _ = wallet.news.send(batch);
        }
    }

    /// Every wallet with a stream here.
    fn live_wallets(&self) -> Vec<WalletKey> {
        self.lock().keys().copied().collect()
    }

    /// Every list followed by a wallet here, once: (chain, url).
    fn followed_lists(&self) -> Vec<(u64, String)> {
        let mut lists: Vec<(u64, String)> = self
            .lock()
            .iter()
            .flat_map(|(key, w)| w.lists.keys().map(|url| (key.0, url.clone())))
            .collect();
        lists.sort();
        lists.dedup();
        lists
    }

    /// A list is at `generation` now: the wallets that showed another version of it get a
    /// fresh snapshot.
    fn list_is_at(&self, chain_id: u64, url: &str, generation: u64) {
        for (key, wallet) in self.lock().iter_mut() {
            if key.0 != chain_id {
                continue;
            }
            if let Some(shown) = wallet.lists.get_mut(url)
                && *shown != generation
            {
                *shown = generation;
                let _ = wallet.news.send(News::ListsMoved);
            }
        }
    }

    fn session_expired(&self, key: WalletKey) {
        if let Some(wallet) = self.lock().get(&key) {
            let _ = wallet.news.send(News::SessionExpired);
        }
    }

    fn release(&self, key: WalletKey) {
        let mut wallets = self.lock();
        if let Some(wallet) = wallets.get_mut(&key) {
            wallet.streams -= 1;
            if wallet.streams == 0 {
                wallets.remove(&key);
            }
        }
        self.inner.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One stream's place at its wallet; dropping it leaves.
pub struct Subscription {
    hub: Hub,
    key: WalletKey,
    news: broadcast::Receiver<News>,
}

impl Subscription {
    /// Tells the hub where this stream starts (the position its snapshot or resume stands
    /// at) and returns how far the hub has read the wallet's feed. If that is further, the
    /// entries in between were handed out before this stream joined: it reads them itself.
    pub fn start_at(&self, position: &FeedPosition) -> FeedPosition {
        let (read_to, due) = {
            let mut wallets = self.hub.lock();
            match wallets.get_mut(&self.key) {
                Some(wallet) => {
                    if wallet.read_to.is_none() {
                        // A resumed stream's position may be long before anything the log
                        // still names: the hub reads the feed from it once, at once.
                        wallet.read_to = Some(position.clone());
                        wallet.stale = true;
                    }
                    let read_to = wallet.read_to.clone().unwrap_or_else(|| position.clone());
                    (read_to, wallet.due().is_some())
                }
                None => (position.clone(), false),
            }
        };
        if due {
            self.hub.wake(self.key.0);
        }
        read_to
    }

    /// Whether this stream opening should ask for the background re-read of the wallet's
    /// token set (and the revalidation of its lists): once per `every` per wallet here, not
    /// once per stream — ten tabs of a wallet ask once.
    pub fn asks_rescan(&self, every: std::time::Duration) -> bool {
        let mut wallets = self.hub.lock();
        let Some(wallet) = wallets.get_mut(&self.key) else {
            return true;
        };
        let now = tokio::time::Instant::now();
        let due = wallet.rescan_asked.is_none_or(|at| now - at >= every);
        if due {
            wallet.rescan_asked = Some(now);
        }
        due
    }

    /// The lists (and their versions) this stream's snapshot showed tokens from.
    pub fn follows_lists(&self, lists: &[(String, u64)]) {
        if let Some(wallet) = self.hub.lock().get_mut(&self.key) {
            for (url, generation) in lists {
                let shown = wallet.lists.entry(url.clone()).or_insert(*generation);
                *shown = (*shown).max(*generation);
            }
        }
    }

    /// The wallet's next news; `Lagged` when this stream fell too far behind.
    pub async fn recv(&mut self) -> Result<News, broadcast::error::RecvError> {
        self.news.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.release(self.key);
    }
}
