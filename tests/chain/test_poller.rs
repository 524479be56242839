//! A poller started by one test — behind a proxy, with other endpoints — and cleaned up
//! after it whether it passes or fails.

use std::time::Duration;

use e2e::{DEADLINE, Environment};
use serde_json::Value;

/// A poller started for one test; on drop (pass or fail) it is stopped and, if the test had
/// stopped the stack's own poller, that one is started again so later tests find it running.
pub struct TestPoller {
    env: &'static Environment,
    name: &'static str,
    url: String,
    replaces_main: bool,
}

impl TestPoller {
    /// Starts poller `name` with `overrides` on the stack's environment; `replaces_main`
    /// SIGKILLs the stack's own poller first, so this one alone watches the chain.
    pub fn start(
        env: &'static Environment,
        name: &'static str,
        overrides: &[(String, String)],
        replaces_main: bool,
    ) -> anyhow::Result<Self> {
        if replaces_main {
            env.stack.kill_poller()?;
        }
        let url = env.stack.start_poller_as(name, overrides)?;
        Ok(Self {
            env,
            name,
            url,
            replaces_main,
        })
    }

    /// Base URL of its `/health` and `/metrics`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn processed_block(&self) -> anyhow::Result<u64> {
        let health: Value = self
            .env
            .http
            .get(format!("{}/health", self.url))
            .send()
            .await?
            .json()
            .await?;
        Ok(health["chains"][0]["processedBlock"]
            .as_u64()
            .unwrap_or_default())
    }

    pub async fn reached(&self, block: u64) -> anyhow::Result<()> {
        self.reached_within(block, DEADLINE).await
    }

    /// [`Self::reached`] with its own deadline.
    pub async fn reached_within(&self, block: u64, deadline: Duration) -> anyhow::Result<()> {
        local_stack::stack::wait_for(self.name, deadline, || async {
            let at = self.processed_block().await?;
            anyhow::ensure!(at >= block, "at {at}, waiting for {block}");
            Ok(())
        })
        .await
    }
}

impl Drop for TestPoller {
    fn drop(&mut self) {
        let _ = self.env.stack.stop_service(self.name);
        if self.replaces_main {
            let _ = self.env.stack.start_poller();
        }
    }
}
