//! The logs that can touch watched owners, asked of a provider that caps `eth_getLogs` by
//! block range or by result count.
//!
//! A range is cut into pieces no wider than the provider is known to take. A refused piece is
//! split: a range refused as too wide at the limit the provider names (else in half); one
//! refused for its result count in half (or at the range the provider suggests), down to one
//! block; within one block, by event signature, then — for the every-log query asked above
//! [`MAX_FILTERED_OWNERS`] owners — into owner-filtered queries, then by halving the owner
//! chunk. A single owner whose logs of one event in one block still exceed the cap is
//! reported as an overflow: every value it tracks is re-read, which needs no log at all.
//!
//! What the refusals taught is remembered (so later steps do not pay them again) and grown
//! back slowly while queries at the learned width succeed: a provider that refused a range
//! once is asked a wider one again after many answers, one refusal at a time.

use std::collections::BTreeSet;
use std::sync::Mutex;

use alloy::primitives::map::B256Set;
use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use futures::{StreamExt, TryStreamExt, stream};

use super::observer::LogLimitsView;
use super::{BalanceReader, ChainError, Fault, rpc_error};
use crate::chain::abi::IERC20;
use crate::domain::plan::owner_in_topic1_signatures;

/// Most owners in one `eth_getLogs` topic filter; more are split over several requests.
pub const OWNERS_PER_FILTER: usize = 1000;
/// Above this many owners, one request for every log of the watched event signatures (matched
/// to owners here) costs less than one filtered pair per chunk of owners: the request count
/// stays flat however many wallets are watched.
pub const MAX_FILTERED_OWNERS: usize = OWNERS_PER_FILTER;
/// Log queries of one call in flight at once (the pieces of a long range under a provider's
/// narrow range cap: a catch-up of 64 blocks at 3 blocks a query is 44 of them).
const QUERIES_IN_FLIGHT: usize = 8;
/// Answers at a learned range cap before a wider range is tried again.
const RANGE_GROWTH_AFTER: u32 = 100;
/// Answers at a learned result-count range before a wider one is tried again: a result cap is
/// hit by busy blocks, which pass.
const RESULTS_GROWTH_AFTER: u32 = 20;

/// The owners a log query is about, as the topics that name them in logs (each address
/// padded to a word), in no particular order. Kept by the caller and changed an owner at a
/// time: a poller asks about every watched owner every block, and wallets come and go in most
/// steps under session churn, so the list is neither copied nor built again each time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerTopics(Vec<B256>);

impl OwnerTopics {
    pub fn new<'a>(owners: impl IntoIterator<Item = &'a Address>) -> Self {
        Self(owners.into_iter().map(|o| o.into_word()).collect())
    }

    /// Adds `owner`, which the list does not hold.
    pub fn insert(&mut self, owner: &Address) {
        self.0.push(owner.into_word());
    }

    /// Removes `owner`, if the list holds it (the last owner takes its place).
    pub fn remove(&mut self, owner: &Address) {
        let topic = owner.into_word();
        if let Some(at) = self.0.iter().position(|t| *t == topic) {
            self.0.swap_remove(at);
        }
    }

    /// The topics, in no particular order.
    pub fn iter(&self) -> std::slice::Iter<'_, B256> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The logs among `logs` that [`BalanceReader::owner_logs`] returns for these owners: an
    /// event of [`owner_in_topic1_signatures`] naming one of them in its first indexed topic,
    /// or a Transfer naming one in its second.
    /// The node's own filters decide, matched here ([`Filter::matches`]), on the logs that
    /// name one of the owners in those topics at all: most logs name none (a catch-up matches
    /// every kept log of its blocks against a few new wallets), and a set lookup tells them
    /// apart at a fraction of the filters' cost.
    pub fn named_in<'a>(&self, logs: impl IntoIterator<Item = &'a Log>) -> Vec<Log> {
        let filters = LogQuery::by_owner(0, 0, &self.0).map(|q| q.filter());
        let owners: B256Set = self.0.iter().copied().collect();
        logs.into_iter()
            .filter(|log| {
                log.topics()
                    .iter()
                    .skip(1)
                    .take(2)
                    .any(|t| owners.contains(t))
            })
            .filter(|log| filters.iter().any(|f| f.matches(&log.inner)))
            .cloned()
            .collect()
    }
}

/// Logs of a range for some owners, oldest first, and the owners whose logs could not be had.
#[derive(Debug, Default)]
pub struct OwnerLogs {
    pub logs: Vec<Log>,
    pub overflows: Vec<LogOverflow>,
    /// The logs are every log of the watched events in the range, whoever they name (asked
    /// without an owner filter, no block narrowed to owners): any owner's logs can be told
    /// from them ([`OwnerTopics::named_in`]), not only the owners asked about.
    pub every_owner: bool,
}

/// An owner with more logs of one event in one block than the provider returns: any of its
/// values may have changed in that block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogOverflow {
    pub block: u64,
    pub owner: Address,
}

/// Which owners a query asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owners {
    /// Every log of the signatures (the caller matches owners).
    Any,
    /// Logs whose first indexed topic is one of these owners.
    Topic1(Vec<B256>),
    /// Logs whose second indexed topic is one of these owners.
    Topic2(Vec<B256>),
}

/// One `eth_getLogs`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogQuery {
    from: u64,
    to: u64,
    signatures: Vec<B256>,
    owners: Owners,
}

impl LogQuery {
    /// The two queries for `owners`' logs in `[from, to]`: every watched event naming one of
    /// them first, and Transfers to them.
    fn by_owner(from: u64, to: u64, owners: &[B256]) -> [Self; 2] {
        [
            Self {
                from,
                to,
                signatures: owner_in_topic1_signatures(),
                owners: Owners::Topic1(owners.to_vec()),
            },
            Self {
                from,
                to,
                signatures: vec![IERC20::Transfer::SIGNATURE_HASH],
                owners: Owners::Topic2(owners.to_vec()),
            },
        ]
    }

    fn blocks(&self) -> u64 {
        self.to - self.from + 1
    }

    fn filter(&self) -> Filter {
        let filter = Filter::new()
            .from_block(self.from)
            .to_block(self.to)
            .event_signature(self.signatures.clone());
        match &self.owners {
            Owners::Any => filter,
            Owners::Topic1(owners) => filter.topic1(owners.clone()),
            Owners::Topic2(owners) => filter.topic2(owners.clone()),
        }
    }

    fn with_range(&self, from: u64, to: u64) -> Self {
        Self {
            from,
            to,
            ..self.clone()
        }
    }

    /// The query cut into ranges of at most `width` blocks.
    fn pieces(&self, width: u64) -> Vec<Self> {
        let width = width.max(1);
        let mut pieces = vec![];
        let mut from = self.from;
        while from <= self.to {
            let to = self.to.min(from.saturating_add(width - 1));
            pieces.push(self.with_range(from, to));
            from = to + 1;
        }
        pieces
    }

    /// Two halves of the range, the first ending at `split_to` when that falls inside it.
    fn split_range(&self, split_to: Option<u64>) -> Vec<Self> {
        let middle = split_to
            .filter(|to| (self.from..self.to).contains(to))
            .unwrap_or(self.from + (self.to - self.from) / 2);
        vec![
            self.with_range(self.from, middle),
            self.with_range(middle + 1, self.to),
        ]
    }

    /// The narrower queries that together ask for this one's logs, for a single block whose
    /// logs exceed the provider's result cap; `Err` with the owner when none is narrower.
    fn narrower(&self, all_owners: &[B256]) -> Result<Vec<Self>, B256> {
        if self.signatures.len() > 1 {
            let (a, b) = self.signatures.split_at(self.signatures.len() / 2);
            return Ok([a, b]
                .into_iter()
                .map(|signatures| Self {
                    signatures: signatures.to_vec(),
                    ..self.clone()
                })
                .collect());
        }
        let halves = |owners: &Vec<B256>, make: fn(Vec<B256>) -> Owners| {
            let (a, b) = owners.split_at(owners.len() / 2);
            [a, b]
                .into_iter()
                .map(|half| Self {
                    owners: make(half.to_vec()),
                    ..self.clone()
                })
                .collect()
        };
        match &self.owners {
            Owners::Any => {
                // Every log of one event in one block is too many: ask by owner instead.
                let transfer = self.signatures == [IERC20::Transfer::SIGNATURE_HASH];
                let mut queries = vec![];
                for chunk in all_owners.chunks(OWNERS_PER_FILTER) {
                    queries.push(Self {
                        owners: Owners::Topic1(chunk.to_vec()),
                        ..self.clone()
                    });
                    if transfer {
                        queries.push(Self {
                            owners: Owners::Topic2(chunk.to_vec()),
                            ..self.clone()
                        });
                    }
                }
                Ok(queries)
            }
            Owners::Topic1(owners) if owners.len() > 1 => Ok(halves(owners, Owners::Topic1)),
            Owners::Topic2(owners) if owners.len() > 1 => Ok(halves(owners, Owners::Topic2)),
            Owners::Topic1(owners) | Owners::Topic2(owners) => {
                Err(owners.first().copied().unwrap_or_default())
            }
        }
    }
}

/// What a provider's log refusals taught, shared by a reader's clones.
#[derive(Debug, Default)]
pub(super) struct LogLimits(Mutex<LimitsState>);

#[derive(Debug, Default, Clone, Copy)]
struct LimitsState {
    range_cap: Option<u64>,
    /// While a wider cap is being tried: the cap that worked before it.
    range_proven: Option<u64>,
    range_answers: u32,
    /// Answers needed at the cap before it grows: doubled by a refused growth.
    range_patience: u32,
    results_range: Option<u64>,
    results_answers: u32,
    splits: u64,
    result_refusals: u64,
    overflows: u64,
}

impl LimitsState {
    fn view(&self) -> LogLimitsView {
        LogLimitsView {
            range_cap: self.range_cap,
            results_range: self.results_range,
            splits: self.splits,
            result_refusals: self.result_refusals,
            overflows: self.overflows,
        }
    }
}

impl LogLimits {
    fn with<T>(&self, f: impl FnOnce(&mut LimitsState) -> T) -> T {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    pub(super) fn view(&self) -> LogLimitsView {
        self.with(|s| s.view())
    }

    /// Widest range to ask for, at most `configured`.
    fn width(&self, configured: u64) -> u64 {
        self.with(|s| {
            [Some(configured), s.range_cap, s.results_range]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(configured)
                .max(1)
        })
    }

    /// A query of `blocks` blocks was answered; returns the new view when a limit grew.
    fn answered(&self, blocks: u64, configured: u64) -> Option<LogLimitsView> {
        self.with(|s| {
            let mut grew = false;
            if let Some(results) = s.results_range.filter(|r| blocks >= *r) {
                s.results_answers += 1;
                if s.results_answers >= RESULTS_GROWTH_AFTER {
                    s.results_answers = 0;
                    let wider = results.saturating_mul(2);
                    s.results_range = (wider < configured).then_some(wider);
                    grew = true;
                }
            }
            if let Some(cap) = s.range_cap.filter(|c| blocks >= *c) {
                s.range_answers += 1;
                if s.range_answers >= s.range_patience.max(RANGE_GROWTH_AFTER) {
                    s.range_answers = 0;
                    let wider = cap + (cap / 4).max(1);
                    s.range_proven = Some(cap);
                    s.range_cap = (wider < configured).then_some(wider);
                    grew = true;
                }
            }
            grew.then(|| s.view())
        })
    }

    /// A query of `blocks` blocks was refused as too wide; the provider named `limit`.
    fn range_refused(&self, blocks: u64, limit: Option<u64>) -> LogLimitsView {
        self.with(|s| {
            let cap = match (limit, s.range_proven.take()) {
                (Some(limit), _) if limit < blocks => limit,
                // A growth that was refused: back to the width that worked, and more patience.
                (_, Some(proven)) if proven < blocks => {
                    s.range_patience = s.range_patience.max(RANGE_GROWTH_AFTER) * 2;
                    proven
                }
                _ => blocks / 2,
            };
            s.range_cap = Some(cap.max(1));
            s.range_answers = 0;
            s.splits += 1;
            s.view()
        })
    }

    /// A query of `blocks` blocks was refused for its result count; the provider suggested
    /// `suggested` blocks.
    fn results_refused(&self, blocks: u64, suggested: Option<u64>) -> LogLimitsView {
        self.with(|s| {
            // One block refused teaches nothing about ranges (that block is busy, not the
            // range wide): the width is kept.
            if blocks > 1 {
                let width = suggested
                    .filter(|w| *w < blocks)
                    .unwrap_or(blocks / 2)
                    .max(1);
                s.results_range = Some(s.results_range.map_or(width, |r| r.min(width)));
                s.results_answers = 0;
            }
            s.splits += 1;
            s.result_refusals += 1;
            s.view()
        })
    }

    fn overflowed(&self) -> LogLimitsView {
        self.with(|s| {
            s.overflows += 1;
            s.view()
        })
    }
}

impl BalanceReader {
    /// What the provider's log refusals taught so far.
    pub fn log_limits(&self) -> LogLimitsView {
        self.log_limits.view()
    }

    /// Logs in `[from, to]` that can touch one of `owners`, oldest first: Transfer from or
    /// to, Approval by, WETH Deposit to or Withdrawal from an owner. Up to
    /// [`MAX_FILTERED_OWNERS`] owners the node filters by owner topic (two requests per chunk
    /// of [`OWNERS_PER_FILTER`]); beyond, one request asks for every log of those events and
    /// the caller matches owners. Ranges and queries are split as the provider requires (see
    /// the module docs).
    pub async fn owner_logs(
        &self,
        from: u64,
        to: u64,
        owners: &OwnerTopics,
    ) -> Result<OwnerLogs, ChainError> {
        if owners.is_empty() || from > to {
            return Ok(OwnerLogs::default());
        }
        let topics = &owners.0;
        let whole = |signatures: Vec<B256>, owners: Owners| LogQuery {
            from,
            to,
            signatures,
            owners,
        };
        let queries: Vec<LogQuery> = if owners.len() > MAX_FILTERED_OWNERS {
            let mut signatures = owner_in_topic1_signatures();
            signatures.dedup();
            vec![whole(signatures, Owners::Any)]
        } else {
            topics
                .chunks(OWNERS_PER_FILTER)
                .flat_map(|chunk| LogQuery::by_owner(from, to, chunk))
                .collect()
        };
        let width = self.log_limits.width(self.max_log_range);
        let pieces: Vec<_> = queries
            .iter()
            .flat_map(|q| q.pieces(width))
            .map(|piece| self.logs_of(piece, topics))
            .collect();
        let answers: Vec<OwnerLogs> = stream::iter(pieces)
            .buffer_unordered(QUERIES_IN_FLIGHT)
            .try_collect()
            .await?;
        let every_owner =
            owners.len() > MAX_FILTERED_OWNERS && answers.iter().all(|a| a.every_owner);
        let mut logs = vec![];
        let mut overflows = BTreeSet::new();
        for answer in answers {
            logs.extend(answer.logs);
            overflows.extend(answer.overflows);
        }
        logs.retain(|l| !l.removed);
        // Oldest first, so the last transaction to touch a value is the one reported; a log
        // matched by two queries (a transfer between two owners) once.
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        logs.dedup_by_key(|l| (l.block_number, l.log_index));
        Ok(OwnerLogs {
            logs,
            overflows: overflows.into_iter().collect(),
            every_owner,
        })
    }

    /// One piece's logs, split as its refusals require.
    async fn logs_of(&self, query: LogQuery, all_owners: &[B256]) -> Result<OwnerLogs, ChainError> {
        let mut found = OwnerLogs {
            every_owner: query.owners == Owners::Any,
            ..OwnerLogs::default()
        };
        let mut pending = vec![query];
        while let Some(query) = pending.pop() {
            let error = match self.provider.get_logs(&query.filter()).await {
                Ok(logs) => {
                    if let Some(view) = self.log_limits.answered(query.blocks(), self.max_log_range)
                    {
                        self.observer.log_limits(view);
                    }
                    found.logs.extend(logs);
                    continue;
                }
                Err(e) => rpc_error(e),
            };
            match error.fault() {
                Fault::LogRangeRefused { limit } if query.blocks() > 1 => {
                    let view = self.log_limits.range_refused(query.blocks(), limit);
                    self.observer.log_limits(view);
                    let width = view.range_cap.unwrap_or(1);
                    pending.extend(query.pieces(width));
                }
                Fault::LogResultsRefused { suggested } => {
                    let suggested_to = suggested
                        .filter(|(from, _)| *from == query.from)
                        .map(|(_, to)| to);
                    let view = self.log_limits.results_refused(
                        query.blocks(),
                        suggested_to.map(|to| to - query.from + 1),
                    );
                    self.observer.log_limits(view);
                    if query.blocks() > 1 {
                        pending.extend(query.split_range(suggested_to));
                        continue;
                    }
                    match query.narrower(all_owners) {
                        Ok(narrower) => {
                            // A block asked of the node by owner holds only those owners' logs.
                            if narrower.iter().any(|q| q.owners != Owners::Any) {
                                found.every_owner = false;
                            }
                            pending.extend(narrower);
                        }
                        Err(owner) => {
                            self.observer.log_limits(self.log_limits.overflowed());
                            found.overflows.push(LogOverflow {
                                block: query.from,
                                owner: Address::from_word(owner),
                            });
                        }
                    }
                }
                _ => return Err(error),
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(n: u8) -> B256 {
        Address::repeat_byte(n).into_word()
    }

    fn query(from: u64, to: u64, owners: Owners) -> LogQuery {
        LogQuery {
            from,
            to,
            signatures: owner_in_topic1_signatures(),
            owners,
        }
    }

    /// A log of `signature` with these indexed topics.
    fn log_of(signature: B256, indexed: &[B256]) -> Log {
        let mut topics = vec![signature];
        topics.extend_from_slice(indexed);
        Log {
            inner: alloy::primitives::Log {
                address: Address::repeat_byte(0xee),
                data: alloy::primitives::LogData::new_unchecked(topics, Default::default()),
            },
            ..Log::default()
        }
    }

    #[test]
    fn the_logs_named_for_owners_are_those_their_filtered_queries_return() {
        use crate::chain::abi::{IPermit2, IWETH};
        let (watched, other) = (owner(1), owner(2));
        let owners = OwnerTopics::new(&[Address::repeat_byte(1)]);
        let named = [
            log_of(IERC20::Transfer::SIGNATURE_HASH, &[watched, other]),
            log_of(IERC20::Transfer::SIGNATURE_HASH, &[other, watched]),
            log_of(IERC20::Approval::SIGNATURE_HASH, &[watched, other]),
            log_of(IWETH::Deposit::SIGNATURE_HASH, &[watched]),
            log_of(IWETH::Withdrawal::SIGNATURE_HASH, &[watched]),
            log_of(IPermit2::Approval::SIGNATURE_HASH, &[watched, other, other]),
            log_of(IPermit2::Lockdown::SIGNATURE_HASH, &[watched]),
        ];
        let not_named = [
            // Another owner's, an approval naming the owner as spender, another event.
            log_of(IERC20::Transfer::SIGNATURE_HASH, &[other, other]),
            log_of(IERC20::Approval::SIGNATURE_HASH, &[other, watched]),
            log_of(
                IPermit2::Approval::SIGNATURE_HASH,
                &[other, watched, watched],
            ),
            log_of(B256::repeat_byte(0x77), &[watched, watched]),
            log_of(IERC20::Transfer::SIGNATURE_HASH, &[]),
        ];
        let found = owners.named_in(named.iter().chain(not_named.iter()));
        assert_eq!(found, named);
    }

    #[test]
    fn ranges_are_cut_and_split() {
        let q = query(10, 20, Owners::Any);
        let pieces = q.pieces(3);
        let ranges: Vec<_> = pieces.iter().map(|p| (p.from, p.to)).collect();
        assert_eq!(ranges, [(10, 12), (13, 15), (16, 18), (19, 20)]);
        let halves: Vec<_> = q.split_range(None).iter().map(|p| (p.from, p.to)).collect();
        assert_eq!(halves, [(10, 15), (16, 20)]);
        let at: Vec<_> = q
            .split_range(Some(11))
            .iter()
            .map(|p| (p.from, p.to))
            .collect();
        assert_eq!(at, [(10, 11), (12, 20)]);
        // A suggestion outside the range is ignored.
        let outside: Vec<_> = q
            .split_range(Some(30))
            .iter()
            .map(|p| (p.from, p.to))
            .collect();
        assert_eq!(outside, [(10, 15), (16, 20)]);
    }

    #[test]
    fn one_block_narrows_by_signature_then_owner_down_to_an_overflow() {
        let owners: Vec<B256> = (1..=3).map(owner).collect();
        // Every log of every event: by signature first.
        let q = query(7, 7, Owners::Any);
        let by_signature = q.narrower(&owners).expect("narrower");
        assert_eq!(by_signature.len(), 2);
        assert!(
            by_signature
                .iter()
                .all(|n| n.signatures.len() < q.signatures.len())
        );
        // One event for everyone: by owner, both sides of a transfer.
        let transfers = LogQuery {
            signatures: vec![IERC20::Transfer::SIGNATURE_HASH],
            ..q.clone()
        };
        let by_owner = transfers.narrower(&owners).expect("narrower");
        assert_eq!(
            by_owner
                .iter()
                .map(|n| n.owners.clone())
                .collect::<Vec<_>>(),
            [
                Owners::Topic1(owners.clone()),
                Owners::Topic2(owners.clone())
            ]
        );
        // Owner chunks halve, down to one owner, which cannot be narrowed.
        let halves = by_owner[1].narrower(&owners).expect("halves");
        assert_eq!(
            halves.iter().map(|n| n.owners.clone()).collect::<Vec<_>>(),
            [
                Owners::Topic2(vec![owners[0]]),
                Owners::Topic2(vec![owners[1], owners[2]])
            ]
        );
        assert_eq!(halves[0].narrower(&owners), Err(owners[0]));
    }

    #[test]
    fn limits_are_learned_and_grow_back_slowly() {
        let limits = LogLimits::default();
        assert_eq!(limits.width(500), 500);
        // A provider that takes 3 blocks and says so.
        let view = limits.range_refused(500, Some(3));
        assert_eq!(view.range_cap, Some(3));
        assert_eq!(limits.width(500), 3);
        // One that does not say: halved until it answers.
        let silent = LogLimits::default();
        silent.range_refused(20, None);
        assert_eq!(silent.width(500), 10);
        silent.range_refused(10, None);
        assert_eq!(silent.width(500), 5);
        // Answers at the cap grow it a quarter (at least one block) after a while ...
        for _ in 0..RANGE_GROWTH_AFTER - 1 {
            assert_eq!(silent.answered(5, 500), None);
        }
        assert_eq!(silent.answered(5, 500).and_then(|v| v.range_cap), Some(6));
        // ... and a refused growth goes back, with more patience before the next try.
        silent.range_refused(6, None);
        assert_eq!(silent.width(500), 5);
        for _ in 0..RANGE_GROWTH_AFTER {
            assert_eq!(silent.answered(5, 500), None);
        }
        // Narrow answers do not count toward growth.
        assert_eq!(silent.answered(1, 500), None);

        // Result caps: the suggested width, then doubling back after busy blocks pass.
        let results = LogLimits::default();
        results.results_refused(8, None);
        assert_eq!(results.width(500), 4);
        results.results_refused(4, Some(1));
        assert_eq!(results.width(500), 1);
        for _ in 0..RESULTS_GROWTH_AFTER {
            results.answered(1, 500);
        }
        assert_eq!(results.width(500), 2);
        // A single busy block narrows nothing.
        results.results_refused(1, None);
        assert_eq!(results.width(500), 2);
        assert_eq!(results.view().splits, 3);
    }
}
