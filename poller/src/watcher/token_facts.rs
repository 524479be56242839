//! What the table keeps about a chain's tokens for every poller of it — tokens whose reads
//! fail, tokens seen changing without a log — read into the values held at start and every
//! ten minutes: another poller (or this one before a restart) may have learned them.

use std::time::Duration;

use live_balances::runtime::clock::unix_now;
use live_balances::storage::TokenFact;
use tokio::time::Instant;

use super::ChainWatcher;
use crate::error::PollerError;

/// How often the chain's token facts are read again.
const FACTS_EVERY: Duration = Duration::from_secs(600);

/// When the chain's token facts were last read.
#[derive(Debug, Default)]
pub(super) struct TokenFactsRead {
    at: Option<Instant>,
}

impl ChainWatcher {
    /// The chain's token facts into the values held, when a read is due.
    pub(super) async fn refresh_token_facts(&mut self) -> Result<(), PollerError> {
        if self
            .token_facts
            .at
            .is_some_and(|at| at.elapsed() < FACTS_EVERY)
        {
            return Ok(());
        }
        let now = unix_now();
        let unreadable = self
            .table
            .token_facts(self.chain_id, TokenFact::Unreadable, now)
            .await?;
        self.held.set_unreadable(unreadable);
        for token in self
            .table
            .token_facts(self.chain_id, TokenFact::Silent, now)
            .await?
        {
            self.held.mark_silent(token);
        }
        self.token_facts.at = Some(Instant::now());
        Ok(())
    }
}
