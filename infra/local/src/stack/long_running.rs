//! The long-running processes beside the functions: the api's server and the poller, each
//! startable again (and as extra instances with their own overrides) under test.

use std::process::Command;
use std::time::Duration;

use super::{LocalStack, wait_for};

impl LocalStack {
    /// Starts the api's long-lived server (again, after it was killed or stopped), with the
    /// functions' environment, and waits until it answers.
    pub async fn start_server(&self) -> anyhow::Result<()> {
        self.start_server_as("server", self.options.server_port, &[])
            .await
            .map(|_| ())
    }

    /// Starts another server as service `name` on `port`, with `overrides` on top of the
    /// functions' environment (tests: a server behind a load balancer, other limits); waits
    /// until it answers and returns its base URL.
    pub async fn start_server_as(
        &self,
        name: &str,
        port: u16,
        overrides: &[(String, String)],
    ) -> anyhow::Result<String> {
        let mut env = vec![("SERVER_ADDR".to_string(), format!("127.0.0.1:{port}"))];
        // It reaches DynamoDB and the node as the functions do (tests put a fault proxy there).
        env.extend(self.options.functions_env.iter().cloned());
        env.extend(overrides.iter().cloned());
        let server = Command::new(self.tools.workspace_bin("server"));
        self.spawn_with(name, server, &env)?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let health = format!("{url}/health");
        wait_for("api server", Duration::from_secs(60), || async {
            self.check(name)?;
            let r = http
                .get(&health)
                .timeout(Duration::from_secs(5))
                .send()
                .await?;
            let _: serde_json::Value = r.json().await?;
            Ok(())
        })
        .await?;
        Ok(url)
    }

    /// Starts the poller (again, after [`Self::kill_poller`]).
    pub fn start_poller(&self) -> anyhow::Result<()> {
        let poller = Command::new(self.tools.workspace_bin("poller"));
        self.spawn("poller", poller)
    }

    /// Starts a poller as service `name` (its log is `<log_dir>/<name>.log`) with `overrides`
    /// on top of the stack's environment — another RPC URL, or a second poller beside the
    /// first (fault tests). It gets its own `/health` address, returned as a base URL.
    pub fn start_poller_as(
        &self,
        name: &str,
        overrides: &[(String, String)],
    ) -> anyhow::Result<String> {
        self.start_poller_binary_as(name, &self.tools.workspace_bin("poller"), overrides)
    }

    /// [`Self::start_poller_as`] from another build of the poller (the benchmarks measure the
    /// release build beside the debug one).
    pub fn start_poller_binary_as(
        &self,
        name: &str,
        binary: &std::path::Path,
        overrides: &[(String, String)],
    ) -> anyhow::Result<String> {
        let addr = format!("127.0.0.1:{}", crate::process::free_port()?);
        let mut env = vec![("POLLER_HTTP_ADDR".to_string(), addr.clone())];
        env.extend(overrides.iter().cloned());
        self.spawn_with(name, Command::new(binary), &env)?;
        Ok(format!("http://{addr}"))
    }
}
