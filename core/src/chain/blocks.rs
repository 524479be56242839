//! Blocks as the poller needs them: headers, the logs that touch watched owners, the accounts
//! a block may have changed the native balance of (from call traces), and new heads by
//! WebSocket subscription.

use std::collections::BTreeSet;

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::{Address, B256};
use alloy::providers::ext::TraceApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder, WsConnect};
use alloy::rpc::types::trace::common::TraceResult;
use alloy::rpc::types::trace::geth::CallFrame;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{BalanceReader, ChainError, rpc_error};
use crate::abi::IERC20;
use crate::native::{call_frame_accounts, parity_trace_accounts};
use crate::plan::owner_in_topic1_signatures;

/// Most owners in one `eth_getLogs` topic filter; more are split over several requests.
pub const OWNERS_PER_FILTER: usize = 1000;
/// Above this many owners, one request for every log of the watched event signatures (matched
/// to owners here) costs less than one filtered pair per chunk of owners: the request count
/// stays flat however many wallets are watched.
pub const MAX_FILTERED_OWNERS: usize = OWNERS_PER_FILTER;

/// The root of an empty withdrawals list: a block whose header has it withdrew nothing.
const EMPTY_ROOT: B256 =
    alloy::primitives::b256!("0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// A block's identity and what its header says about native balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHead {
    pub number: u64,
    pub hash: B256,
    pub parent_hash: B256,
    /// The fee recipient: its balance changes in every block with a fee.
    pub beneficiary: Address,
    /// `None` before withdrawals existed; the empty root when there were none.
    pub withdrawals_root: Option<B256>,
}

impl BlockHead {
    fn of(header: &alloy::rpc::types::Header) -> Self {
        Self {
            number: header.number,
            hash: header.hash,
            parent_hash: header.parent_hash,
            beneficiary: header.beneficiary,
            withdrawals_root: header.withdrawals_root,
        }
    }

    fn has_withdrawals(&self) -> bool {
        self.withdrawals_root.is_some_and(|root| root != EMPTY_ROOT)
    }
}

/// How the poller learns which wallets' native balances a block changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeSource {
    /// `debug_traceBlockByNumber` with the `callTracer` (geth and most clients).
    CallTracer,
    /// `trace_block` (Parity-style: Erigon, Nethermind, Reth).
    ParityTraces,
    /// No trace method: every watched wallet's native balance is read instead.
    Reads,
}

impl NativeSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::CallTracer => "call_tracer",
            Self::ParityTraces => "parity_traces",
            Self::Reads => "reads",
        }
    }
}

fn call_tracer() -> serde_json::Value {
    serde_json::json!({ "tracer": "callTracer" })
}

impl BalanceReader {
    /// A block's header; `None` when the node does not have it (yet).
    pub async fn head(&self, tag: BlockNumberOrTag) -> Result<Option<BlockHead>, ChainError> {
        self.count("eth_getBlockByNumber");
        let block = self
            .provider
            .get_block_by_number(tag)
            .await
            .map_err(rpc_error)?;
        Ok(block.map(|b| BlockHead::of(&b.header)))
    }

    /// Logs in `[from, to]` that can touch one of `owners`, oldest first: Transfer from or
    /// to, Approval by, WETH Deposit to or Withdrawal from an owner. Up to
    /// [`MAX_FILTERED_OWNERS`] owners the node filters by owner topic (two requests per chunk
    /// of [`OWNERS_PER_FILTER`]); beyond, one request asks for every log of those events and
    /// the caller matches owners.
    pub async fn owner_logs(
        &self,
        from: u64,
        to: u64,
        owners: &[Address],
    ) -> Result<Vec<Log>, ChainError> {
        if owners.is_empty() {
            return Ok(vec![]);
        }
        let base = Filter::new().from_block(from).to_block(to);
        let mut logs = vec![];
        if owners.len() > MAX_FILTERED_OWNERS {
            let mut signatures = owner_in_topic1_signatures();
            signatures.dedup();
            self.count("eth_getLogs");
            let all = self
                .provider
                .get_logs(&base.event_signature(signatures))
                .await
                .map_err(rpc_error)?;
            logs.extend(all);
        } else {
            let topics: Vec<B256> = owners.iter().map(|o| o.into_word()).collect();
            for chunk in topics.chunks(OWNERS_PER_FILTER) {
                let by_topic1 = base
                    .clone()
                    .event_signature(owner_in_topic1_signatures())
                    .topic1(chunk.to_vec());
                let by_topic2 = base
                    .clone()
                    .event_signature(IERC20::Transfer::SIGNATURE_HASH)
                    .topic2(chunk.to_vec());
                self.count("eth_getLogs");
                self.count("eth_getLogs");
                let (a, b) = tokio::try_join!(
                    self.provider.get_logs(&by_topic1),
                    self.provider.get_logs(&by_topic2)
                )
                .map_err(rpc_error)?;
                logs.extend(a.into_iter().chain(b));
            }
        }
        logs.retain(|l| !l.removed);
        // Oldest first, so the last transaction to touch a value is the one reported; a log
        // matched by both filters (a transfer between two owners) once.
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        logs.dedup_by_key(|l| (l.block_number, l.log_index));
        Ok(logs)
    }

    /// Which trace method this node answers, tried once on the latest block.
    pub async fn native_source(&self) -> NativeSource {
        self.count("debug_traceBlockByNumber");
        let geth: Result<Vec<TraceResult<CallFrame, String>>, _> = self
            .provider
            .raw_request(
                "debug_traceBlockByNumber".into(),
                (BlockNumberOrTag::Latest, call_tracer()),
            )
            .await;
        if geth.is_ok() {
            return NativeSource::CallTracer;
        }
        self.count("trace_block");
        if self.provider.trace_block(BlockId::latest()).await.is_ok() {
            return NativeSource::ParityTraces;
        }
        NativeSource::Reads
    }

    /// The accounts whose native balance block `head` may have changed (see
    /// [`crate::native`]), with its fee recipient and withdrawal recipients.
    pub async fn native_changes(
        &self,
        head: &BlockHead,
        source: NativeSource,
    ) -> Result<BTreeSet<Address>, ChainError> {
        let mut accounts = BTreeSet::from([head.beneficiary]);
        let number = BlockNumberOrTag::Number(head.number);
        match source {
            NativeSource::CallTracer => {
                self.count("debug_traceBlockByNumber");
                let traces: Vec<TraceResult<CallFrame, String>> = self
                    .provider
                    .raw_request("debug_traceBlockByNumber".into(), (number, call_tracer()))
                    .await
                    .map_err(rpc_error)?;
                for trace in traces {
                    match trace {
                        TraceResult::Success { result, .. } => {
                            call_frame_accounts(&result, &mut accounts)
                        }
                        // A transaction the tracer could not follow: its effects are unknown.
                        TraceResult::Error { error, tx_hash } => {
                            return Err(ChainError::Rpc(format!(
                                "trace of {tx_hash:?} failed: {error}"
                            )));
                        }
                    }
                }
            }
            NativeSource::ParityTraces => {
                self.count("trace_block");
                let traces = self
                    .provider
                    .trace_block(BlockId::number(head.number))
                    .await
                    .map_err(rpc_error)?;
                for trace in &traces {
                    parity_trace_accounts(&trace.trace, &mut accounts);
                }
            }
            NativeSource::Reads => {}
        }
        if head.has_withdrawals() {
            self.count("eth_getBlockByNumber");
            let block = self
                .provider
                .get_block_by_number(number)
                .await
                .map_err(rpc_error)?;
            let withdrawals = block.and_then(|b| b.withdrawals).unwrap_or_default();
            accounts.extend(withdrawals.iter().map(|w| w.address));
        }
        Ok(accounts)
    }
}

/// New heads from a WebSocket `newHeads` subscription; ends when the connection does.
pub struct HeadSubscription {
    /// Keeps the connection open for as long as the stream is read.
    _provider: DynProvider,
    heads: BoxStream<'static, BlockHead>,
}

impl std::fmt::Debug for HeadSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadSubscription")
    }
}

impl HeadSubscription {
    pub async fn connect(ws_url: &str) -> Result<Self, ChainError> {
        let provider = ProviderBuilder::new()
            .connect_ws(WsConnect::new(ws_url))
            .await
            .map_err(rpc_error)?
            .erased();
        let subscription = provider.subscribe_blocks().await.map_err(rpc_error)?;
        let heads = subscription
            .into_stream()
            .map(|header| BlockHead::of(&header))
            .boxed();
        Ok(Self {
            _provider: provider,
            heads,
        })
    }

    /// The next head, or `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<BlockHead> {
        self.heads.next().await
    }
}
