//! The functions as Lambda runs them: `cargo lambda watch` serving the runtime API, the
//! function URL and the invoke endpoint, the workspace's function binaries polling it as
//! instances, and one stream pump per consumer feeding the fanout and the webhooks function.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::{LocalStack, wait_for};

/// Instances of the fanout function: the pump invokes it once per shard at a time.
const FANOUT_INSTANCES: u32 = 2;
/// Instances of the webhooks function: its own pump invokes it once per shard at a time.
const WEBHOOKS_INSTANCES: u32 = 2;
/// Invocations each api instance polls for at once (`AWS_LAMBDA_MAX_CONCURRENCY`, as on Lambda
/// Managed Instances). `cargo lambda watch` deadlocks for good once more than 100 invocations
/// of a function wait for an instance, so the instances together poll for more invocations
/// than the tests ever have in flight (500 streams reconnecting).
const API_INVOCATIONS_PER_INSTANCE: u32 = 16;

impl LocalStack {
    pub(super) async fn start_functions(&self) -> anyhow::Result<()> {
        // `cargo lambda watch` serves the Lambda runtime API, the function URL and the invoke
        // endpoint; the function processes are the binaries `make build` built, started here
        // and polling that runtime API as Lambda's own instances do. Left to start instances
        // itself, it runs each through `cargo run` under a file watcher of its own: under load
        // (hundreds of open streams) new instances queued behind cargo's build lock and each
        // set inotify watches over the whole tree, tools included, until the kernel's limit
        // refused them — and invocations waited on instances that never came.
        let mut watch = Command::new("cargo");
        watch
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "--invoke-address",
                "127.0.0.1",
            ])
            .args(["--invoke-port", &self.options.lambda_port.to_string()]);
        self.spawn("functions", watch)?;
        // An instance whose first poll of the runtime API is refused exits (the fanout's
        // runtime at once), so the instances start once the emulator listens.
        let emulator = format!("127.0.0.1:{}", self.options.lambda_port);
        wait_for("cargo lambda watch", Duration::from_secs(60), || async {
            self.check("functions")?;
            tokio::net::TcpStream::connect(&emulator).await?;
            Ok(())
        })
        .await?;
        for instance in 0..self.options.lambda_concurrency.max(1) {
            self.start_function_instance("api", instance)?;
        }
        for instance in 0..FANOUT_INSTANCES {
            self.start_function_instance("fanout", instance)?;
        }
        for instance in 0..WEBHOOKS_INSTANCES {
            self.start_function_instance("webhooks", instance)?;
        }
        let http = reqwest::Client::new();
        let health = format!("{}/health", self.endpoints.api);
        wait_for("api function", Duration::from_secs(120), || async {
            self.check_all()?;
            // Any JSON answer means the function runs; health itself turns green only once the
            // poller, started after the functions, has written its first heartbeat.
            let r = http
                .get(&health)
                .timeout(Duration::from_secs(600))
                .send()
                .await?;
            let _: serde_json::Value = r.json().await?;
            Ok(())
        })
        .await?;
        for (name, url) in [
            ("fanout", &self.endpoints.fanout_invoke),
            ("webhooks", &self.endpoints.webhooks_invoke),
        ] {
            wait_for(
                &format!("{name} function"),
                Duration::from_secs(120),
                || async {
                    self.check_all()?;
                    let r = http
                        .post(url)
                        .json(&serde_json::json!({ "Records": [] }))
                        .timeout(Duration::from_secs(600))
                        .send()
                        .await?;
                    if !r.status().is_success() {
                        bail!("{name} answered {}", r.status());
                    }
                    Ok(())
                },
            )
            .await
            .with_context(|| format!("warming up {name}"))?;
        }
        Ok(())
    }

    /// Starts one instance of function `function` (a workspace binary) as service
    /// `<function>-<instance>`, logging to `functions.log` beside the emulator, with the
    /// environment Lambda gives an instance.
    fn start_function_instance(&self, function: &str, instance: u32) -> anyhow::Result<()> {
        let runtime_api = format!(
            "http://127.0.0.1:{}/.rt/{function}",
            self.options.lambda_port
        );
        let mut env = vec![
            ("AWS_LAMBDA_RUNTIME_API".to_string(), runtime_api),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), function.into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "1".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "4096".into()),
        ];
        if function == "api" {
            env.push((
                "AWS_LAMBDA_MAX_CONCURRENCY".into(),
                API_INVOCATIONS_PER_INSTANCE.to_string(),
            ));
        }
        env.extend(self.options.functions_env.iter().cloned());
        let binary = self
            .tools
            .workspace_bin_of(&self.options.functions_profile, function);
        let command = Command::new(binary);
        let log = self.log_of("functions");
        self.spawn_logging_to(&format!("{function}-{instance}"), command, &env, &log)
    }

    /// Stops the functions: the runtime emulator and every function instance.
    pub fn stop_functions(&self) -> anyhow::Result<()> {
        let names: Vec<String> = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .keys()
            .filter(|name| {
                ["api-", "fanout-", "webhooks-"]
                    .iter()
                    .any(|p| name.starts_with(p))
            })
            .cloned()
            .collect();
        for name in names.iter().map(String::as_str).chain(["functions"]) {
            self.stop_service(name)?;
        }
        Ok(())
    }

    /// Starts one pump per stream consumer, each reading the whole stream on its own: the
    /// fanout's (`pump`) and the webhooks function's (`pump-webhooks`).
    pub(super) fn start_pump(&self) -> anyhow::Result<()> {
        self.start_pump_as("pump", &self.endpoints.fanout_invoke.clone())?;
        self.start_pump_as("pump-webhooks", &self.endpoints.webhooks_invoke.clone())
    }

    /// Starts (again) a pump as service `name` feeding the function at `invoke_url`, from the
    /// start of the stream.
    pub fn start_pump_as(&self, name: &str, invoke_url: &str) -> anyhow::Result<()> {
        self.start_pump_from(name, invoke_url, false)
    }

    /// [`Self::start_pump_as`], from the end of the stream when `latest` (a measurement that
    /// must not wait for the backlog before it).
    pub fn start_pump_from(
        &self,
        name: &str,
        invoke_url: &str,
        latest: bool,
    ) -> anyhow::Result<()> {
        let mut pump = Command::new(self.tools.workspace_bin("pump"));
        if latest {
            pump.env("PUMP_FROM", "latest");
        }
        // The function's filter criteria, as its event source mapping applies them in AWS.
        let function = invoke_url
            .split("/functions/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .with_context(|| format!("{invoke_url} names no function"))?;
        let filters = crate::stream_filter::patterns_of(function)?;
        pump.env("PUMP_FILTERS", serde_json::to_string(&filters)?);
        pump.env("PUMP_INVOKE_URL", invoke_url).env(
            "PUMP_DEAD_LETTER",
            self.options
                .log_dir
                .join(format!("{name}-dead-letter.jsonl")),
        );
        self.spawn(name, pump)
    }
}
