//! Native balance changes from call traces: which trace method (if any) the node offers —
//! asked so that a rate limit, a timeout or an outage during the question is not taken for
//! "no traces" — and the accounts a traced block may have changed the native balance of.

use std::collections::BTreeSet;

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::providers::ext::TraceApi;
use alloy::rpc::types::trace::common::TraceResult;
use alloy::rpc::types::trace::geth::CallFrame;

use super::{BalanceReader, BlockHead, ChainError, Fault, rpc_error};
use crate::domain::native::{call_frame_accounts, parity_trace_accounts};

/// How the poller learns which wallets' native balances a block changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeSource {
    /// `debug_traceBlockByNumber` with the `callTracer` (geth and most clients).
    CallTracer,
    /// `trace_block` (Parity-style: Erigon, Nethermind, Reth).
    ParityTraces,
    /// No trace method: watched wallets' native balances are read instead.
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

    /// The JSON-RPC method this source sends per block.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Self::CallTracer => Some("debug_traceBlockByNumber"),
            Self::ParityTraces => Some("trace_block"),
            Self::Reads => None,
        }
    }
}

/// What asking the node for traces found.
#[derive(Debug)]
pub enum TraceProbe {
    /// The node answers this trace method.
    Found(NativeSource),
    /// The node refuses both methods as not offered.
    Missing,
    /// No answer that settles it (a rate limit past the wait, a timeout, an outage, an error
    /// that does not say "not offered"): ask again later.
    Unknown(ChainError),
}

fn call_tracer() -> serde_json::Value {
    serde_json::json!({ "tracer": "callTracer" })
}

impl BalanceReader {
    /// Which trace method this node answers, tried on the latest block: geth's first, then
    /// Parity's. Only a refusal that says the method is not offered counts as missing.
    pub async fn probe_traces(&self) -> TraceProbe {
        let geth: Result<Vec<TraceResult<CallFrame, String>>, _> = self
            .provider
            .raw_request(
                "debug_traceBlockByNumber".into(),
                (BlockNumberOrTag::Latest, call_tracer()),
            )
            .await;
        match geth.map_err(rpc_error) {
            Ok(_) => return TraceProbe::Found(NativeSource::CallTracer),
            Err(e) if e.fault() != Fault::Unsupported => return TraceProbe::Unknown(e),
            Err(_) => {}
        }
        match self
            .provider
            .trace_block(BlockId::latest())
            .await
            .map_err(rpc_error)
        {
            Ok(_) => TraceProbe::Found(NativeSource::ParityTraces),
            Err(e) if e.fault() == Fault::Unsupported => TraceProbe::Missing,
            Err(e) => TraceProbe::Unknown(e),
        }
    }

    /// The accounts whose native balance block `head` may have changed (see
    /// [`crate::domain::native`]), with its fee recipient and withdrawal recipients. A trace method
    /// the node stopped offering fails with [`Fault::Unsupported`].
    pub async fn native_changes(
        &self,
        head: &BlockHead,
        source: NativeSource,
    ) -> Result<BTreeSet<Address>, ChainError> {
        let mut accounts = BTreeSet::from([head.beneficiary]);
        let number = BlockNumberOrTag::Number(head.number);
        match source {
            NativeSource::CallTracer => {
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
                            return Err(ChainError::other(format!(
                                "trace of {tx_hash:?} failed: {error}"
                            )));
                        }
                    }
                }
            }
            NativeSource::ParityTraces => {
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
