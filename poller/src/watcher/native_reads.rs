//! Native balances in a step's plan, the way `native` chose: with traces, the watched wallets
//! a range's blocks name (senders, recipients, internal transfers, fee recipient,
//! withdrawals); with reads, every streamed wallet's and the polled share of the others' (or,
//! for a long catch-up, every wallet's once). Also the node's trace methods, asked about
//! when due.

use live_balances::NATIVE_TOKEN;
use live_balances::chain::{Fault, NativeCost, NativeSource, NativeStep, TraceProbe};
use live_balances::domain::model::BalanceKey;
use live_balances::domain::plan::ReadPlan;
use live_balances::runtime::clock::unix_now;
use tracing::{debug, info, warn};

use super::ChainWatcher;
use crate::error::PollerError;
use crate::heads::Head;
use crate::metrics::TraceSupport;
use crate::sweep::share_of;

/// Which wallets' native balances a step reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NativeReads {
    All,
    /// Every streamed wallet, and the share of the others due now.
    StreamedAndPolled,
    /// The share of the unstreamed wallets due now.
    Polled,
}

const NATIVE: BalanceKey = BalanceKey::Balance {
    token: NATIVE_TOKEN,
};

impl ChainWatcher {
    /// Asks the node which trace method it answers, when due: at start, then while none is
    /// known — soon after a question that settled nothing (a rate limit past the wait, an
    /// outage: not taken for "no traces"), rarely after the node said it offers none (a plan
    /// can change). Meanwhile native balances are read per wallet.
    pub(super) async fn probe_traces_if_due(&mut self) -> Result<(), PollerError> {
        if !self.native.probe_due() {
            return Ok(());
        }
        let chain = self.chain_id;
        let probe = self.reader.probe_traces().await;
        let support = self.native.probed(&probe)?;
        match &probe {
            TraceProbe::Found(source) => {
                info!(chain, method = source.name(), "the node answers traces");
            }
            TraceProbe::Missing => info!(
                chain,
                "the node offers no trace method; reading native balances per wallet"
            ),
            TraceProbe::Unknown(error) => {
                warn!(chain, %error, "asking for traces failed; reading native balances per wallet meanwhile")
            }
        }
        self.report.traces(support);
        Ok(())
    }

    /// What reading native balances per wallet and tracing the range would each cost.
    fn native_cost(&self, first: &Head, last: &Head, plan: &ReadPlan) -> NativeCost {
        let now = unix_now();
        let watched = self.watching.set();
        let wallets = watched.len();
        let streamed = watched.streamed_count(now);
        let blocks = last.number - first.number + 1;
        let with_withdrawals = if blocks == 1 {
            u64::from(last.has_withdrawals())
        } else if first.has_withdrawals() || last.has_withdrawals() {
            blocks
        } else {
            0
        };
        let unstreamed_due = share_of(
            wallets - streamed,
            self.sweeps.since_last(),
            self.native.poll_interval(),
        );
        NativeCost {
            blocks,
            blocks_with_withdrawals: with_withdrawals,
            streamed,
            wallets,
            polled: unstreamed_due.ceil() as usize,
            other_reads: plan.len(),
            chunk: self.reader.chunk(),
        }
    }

    /// Native balances the range `first..=last` may have changed.
    pub(super) async fn native_reads(
        &mut self,
        first: &Head,
        last: &Head,
        plan: &mut ReadPlan,
    ) -> Result<(), PollerError> {
        let step = self.native.choose(&self.native_cost(first, last, plan));
        let source = self.native.source();
        if let Some(before) = self.native.switch_to(step) {
            debug!(
                chain = self.chain_id,
                from = before.name(source),
                to = step.name(source),
                "native balance changes found another way (cheaper now)"
            );
        }
        self.report.native_source(step.name(source));
        match step {
            NativeStep::ReadStreamed => {
                self.wallet_native_reads(plan, NativeReads::StreamedAndPolled);
                return Ok(());
            }
            NativeStep::ReadAll => {
                self.wallet_native_reads(plan, NativeReads::All);
                return Ok(());
            }
            NativeStep::Trace => {
                // Traces find this range's changes; a change in a block read per wallet
                // while the stream's vouch had lapsed is found by reading it once.
                self.fresh_stream_reads(plan);
            }
        }
        match self.traced_native_reads(first, last, source, plan).await {
            Err(PollerError::Chain(error)) if error.fault() == Fault::Unsupported => {
                // The plan no longer offers traces: every wallet read once covers this
                // range, and reads go on until the node is asked again.
                warn!(chain = self.chain_id, %error, "the node stopped answering traces; reading native balances per wallet");
                self.native.traces_lost();
                self.report.traces(TraceSupport::Missing);
                self.wallet_native_reads(plan, NativeReads::All);
                Ok(())
            }
            other => other,
        }
    }

    /// A step without a block: nothing streamed changed; the others' periodic reads stay on
    /// time (unless traces find native changes).
    pub(super) fn polled_native_reads(&mut self, plan: &mut ReadPlan) {
        if self.native.last_step() != NativeStep::Trace {
            self.wallet_native_reads(plan, NativeReads::Polled);
        } else {
            self.fresh_stream_reads(plan);
        }
    }

    async fn traced_native_reads(
        &mut self,
        first: &Head,
        last: &Head,
        source: NativeSource,
        plan: &mut ReadPlan,
    ) -> Result<(), PollerError> {
        let (from, to) = (first.number, last.number);
        for number in from..=to {
            let head = if number == from {
                *first
            } else if number == to {
                *last
            } else {
                self.head(number.into()).await?
            };
            let accounts = self.reader.native_changes(&head, source).await?;
            for account in accounts {
                if self.watching.set().wallet(&account).is_some() {
                    plan.add_touched(account, NATIVE, None);
                }
            }
        }
        Ok(())
    }

    /// A wallet that began streaming (or streams again after its vouch lapsed) was read at
    /// the poll interval until now: its native balance is read once, at this step, with or
    /// without a block, so its stream shows the current value.
    fn fresh_stream_reads(&mut self, plan: &mut ReadPlan) {
        let fresh = self.watching.take_fresh_streams();
        if !fresh.is_empty() {
            debug!(
                chain = self.chain_id,
                wallets = fresh.len(),
                "streams began: native balances read"
            );
        }
        for owner in fresh {
            plan.add(owner, NATIVE);
        }
    }

    /// Per-wallet native reads: every wallet, or those with an open stream (every step) and
    /// this step's share of the others (spread over the native poll interval), or that share
    /// alone.
    fn wallet_native_reads(&mut self, plan: &mut ReadPlan, which: NativeReads) {
        let now = unix_now();
        self.fresh_stream_reads(plan);
        let watched = self.watching.set();
        // Read, not touched: nothing on chain named the wallet, so a zero it holds needs no
        // tombstone write every block.
        if which == NativeReads::All {
            for (owner, _) in watched.wallets() {
                plan.add(*owner, NATIVE);
            }
            return;
        }
        if which == NativeReads::StreamedAndPolled {
            for owner in watched.streamed(now) {
                plan.add(owner, NATIVE);
            }
        }
        for owner in self.sweeps.native_share(watched, now) {
            plan.add(owner, NATIVE);
        }
    }
}
