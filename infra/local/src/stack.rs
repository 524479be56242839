//! Starting and stopping the whole local stack, in dependency order, each part waited on
//! until it answers (with a deadline, never a bare sleep).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use alloy::providers::Provider;
use anyhow::{Context, bail};
use base64::Engine;
use live_balances::config::DEFAULT_MULTICALL;
use live_balances::storage::Table;
use tokio::time::Instant;
use tracing::info;

use crate::devnet::{install_multicall, install_weth};
use crate::process::Service;
use crate::tools::Tools;

/// Which chain the stack watches.
#[derive(Debug, Clone)]
pub enum ChainSource {
    /// A local anvil devnet; `block_time` `None` mines a block per transaction.
    Anvil { port: u16, block_time: Option<u64> },
    /// A real chain reached through the environment (`ETH_RPC`, `RPC_URL_<id>`, …).
    External {
        chain_id: u64,
        rpc_url: String,
        ws_url: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub dynamodb_port: u16,
    pub lambda_port: u16,
    /// Where the long-lived HTTP server (the api's second transport) listens.
    pub server_port: u16,
    pub chain: ChainSource,
    pub log_dir: PathBuf,
    pub table_name: String,
    /// Instances of the api function running at once (each takes up to
    /// `API_INVOCATIONS_PER_INSTANCE` invocations at a time and keeps serving the streams it
    /// started while it takes the next).
    pub lambda_concurrency: u32,
    /// Where the functions (not the poller or the pump) reach DynamoDB, when not directly:
    /// tests put a fault-injecting proxy there.
    pub functions_dynamodb_endpoint: Option<String>,
    /// Extra environment for the functions and the poller (intervals, limits).
    pub extra_env: Vec<(String, String)>,
    /// A second anvil devnet on this port (chain [`SECOND_ANVIL_CHAIN_ID`], set up like the
    /// first), served by the same poller and api; only beside [`ChainSource::Anvil`].
    pub second_anvil_port: Option<u16>,
}

/// A chain of the stack besides its default one.
#[derive(Debug, Clone)]
pub struct LocalChain {
    pub chain_id: u64,
    pub rpc_url: String,
}

/// A running local stack. Dropping it stops every process it started.
#[derive(Debug)]
pub struct LocalStack {
    pub tools: Tools,
    pub options: StackOptions,
    pub chain_id: u64,
    pub rpc_url: String,
    /// The second anvil devnet, when [`StackOptions::second_anvil_port`] asked for one.
    pub second_chain: Option<LocalChain>,
    pub dynamodb_url: String,
    /// Base URL of the api function's function URL: `…/lambda-url/api`.
    pub api_url: String,
    /// Base URL of the same api served by the long-lived server: `http://127.0.0.1:<port>`.
    pub server_url: String,
    pub fanout_invoke_url: String,
    /// The webhooks function's Invoke API: its own pump process feeds it, as its own event
    /// source mapping does in AWS, so a slow webhook target never holds up the fanout.
    pub webhooks_invoke_url: String,
    /// The poller's `/health` and `/metrics` base URL.
    pub poller_url: String,
    /// An API key of tenant `dev`, issued when the stack started: what a back end (and the
    /// tests of back-end routes) sends as `Authorization: Bearer …`. Its quotas are generous
    /// (every test of a run, and a developer's scripts, share it).
    pub api_key: String,
    env: BTreeMap<String, String>,
    services: Mutex<BTreeMap<String, Service>>,
}

const ANVIL_CHAIN_ID: u64 = 31337;
/// Instances of the fanout function: the pump invokes it once per shard at a time.
const FANOUT_INSTANCES: u32 = 2;
/// Instances of the webhooks function: its own pump invokes it once per shard at a time.
const WEBHOOKS_INSTANCES: u32 = 2;
/// Invocations each api instance polls for at once (`AWS_LAMBDA_MAX_CONCURRENCY`, as on Lambda
/// Managed Instances). `cargo lambda watch` deadlocks for good once more than 100 invocations
/// of a function wait for an instance, so the instances together poll for more invocations
/// than the tests ever have in flight (500 streams reconnecting).
const API_INVOCATIONS_PER_INSTANCE: u32 = 16;
/// The second devnet's chain id: anvil's default plus one.
pub const SECOND_ANVIL_CHAIN_ID: u64 = 31338;

/// Polls `check` until it succeeds or `deadline` passes, failing with `what` and the last error.
pub async fn wait_for<F, Fut, T>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= until => {
                return Err(e.context(format!("{what} not ready after {}s", deadline.as_secs())));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The first chain's id and RPC URL, and the environment every process gets for it.
fn chain_env(
    options: &StackOptions,
    dynamodb_url: &str,
) -> (u64, String, BTreeMap<String, String>) {
    let (chain_id, rpc_url, ws_url) = match &options.chain {
        ChainSource::Anvil { port, .. } => (
            ANVIL_CHAIN_ID,
            format!("http://127.0.0.1:{port}"),
            Some(format!("ws://127.0.0.1:{port}")),
        ),
        ChainSource::External {
            chain_id,
            rpc_url,
            ws_url,
        } => (*chain_id, rpc_url.clone(), ws_url.clone()),
    };
    let mut env = BTreeMap::from([
        // DynamoDB Local accepts any credentials; the SDK needs some.
        ("AWS_ACCESS_KEY_ID".to_string(), "local".to_string()),
        ("AWS_SECRET_ACCESS_KEY".into(), "local".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("DYNAMODB_ENDPOINT".into(), dynamodb_url.to_string()),
        ("TABLE_NAME".into(), options.table_name.clone()),
        (format!("RPC_URL_{chain_id}"), rpc_url.clone()),
        ("RUST_LOG".into(), "info".into()),
    ]);
    if let Some(ws) = ws_url {
        env.insert(format!("WS_URL_{chain_id}"), ws);
    }
    if matches!(options.chain, ChainSource::Anvil { .. }) {
        env.insert(
            format!("WETH_{chain_id}"),
            crate::devnet::DEVNET_WETH.to_string(),
        );
        // The devnet serves token lists from this machine in demos and tests, and webhook
        // receivers listen on it.
        env.insert("TOKEN_LIST_ALLOW_INSECURE".into(), "true".into());
        env.insert("WEBHOOK_ALLOW_INSECURE".into(), "true".into());
    }
    (chain_id, rpc_url, env)
}

/// The second anvil devnet, if asked for: its chain, with its URLs added to `env`.
fn second_chain_env(
    options: &StackOptions,
    env: &mut BTreeMap<String, String>,
) -> anyhow::Result<Option<LocalChain>> {
    match (options.second_anvil_port, &options.chain) {
        (None, _) => Ok(None),
        (Some(port), ChainSource::Anvil { .. }) => {
            let id = SECOND_ANVIL_CHAIN_ID;
            env.insert(format!("RPC_URL_{id}"), format!("http://127.0.0.1:{port}"));
            env.insert(format!("WS_URL_{id}"), format!("ws://127.0.0.1:{port}"));
            env.insert(format!("WETH_{id}"), crate::devnet::DEVNET_WETH.to_string());
            Ok(Some(LocalChain {
                chain_id: id,
                rpc_url: format!("http://127.0.0.1:{port}"),
            }))
        }
        (Some(_), ChainSource::External { .. }) => {
            bail!("a second anvil devnet runs only beside the first, not beside a real chain")
        }
    }
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let tools = Tools::locate()?;
        std::fs::create_dir_all(&options.log_dir)?;
        let dynamodb_url = format!("http://127.0.0.1:{}", options.dynamodb_port);
        let lambda = format!("http://127.0.0.1:{}", options.lambda_port);
        let (chain_id, rpc_url, mut env) = chain_env(&options, &dynamodb_url);
        let second_chain = second_chain_env(&options, &mut env)?;
        let poller_port = crate::process::free_port()?;
        env.insert(
            "POLLER_HTTP_ADDR".into(),
            format!("127.0.0.1:{poller_port}"),
        );
        // The data key that seals webhook secrets: a fresh one per stack (its table lives in
        // memory), from the environment as a deployment without KMS would give it.
        env.insert(
            "WEBHOOK_SECRETS_KEY".into(),
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()),
        );
        env.extend(options.extra_env.iter().cloned());
        let mut stack = Self {
            api_url: format!("{lambda}/lambda-url/api"),
            server_url: format!("http://127.0.0.1:{}", options.server_port),
            fanout_invoke_url: format!("{lambda}/2015-03-31/functions/fanout/invocations"),
            webhooks_invoke_url: format!("{lambda}/2015-03-31/functions/webhooks/invocations"),
            poller_url: format!("http://127.0.0.1:{poller_port}"),
            tools,
            options,
            chain_id,
            rpc_url,
            second_chain,
            dynamodb_url,
            api_key: String::new(),
            env,
            services: Mutex::new(BTreeMap::new()),
        };
        stack.start_dynamodb().await?;
        stack.api_key = stack
            .issue_api_key_with(
                "dev",
                live_balances::domain::api_key::Quotas {
                    requests_per_minute: 1_000_000,
                    max_webhooks: 100_000,
                },
            )
            .await?;
        stack.start_chains().await?;
        stack.start_functions().await?;
        stack.start_server().await?;
        stack.start_pump()?;
        stack.start_poller()?;
        Ok(stack)
    }

    /// The anvil devnets, when the stack runs its own chains.
    async fn start_chains(&self) -> anyhow::Result<()> {
        let ChainSource::Anvil { port, block_time } = self.options.chain else {
            return Ok(());
        };
        self.start_anvil("anvil", ANVIL_CHAIN_ID, port, block_time)
            .await?;
        if let Some(port) = self.options.second_anvil_port {
            let name = format!("anvil-{SECOND_ANVIL_CHAIN_ID}");
            self.start_anvil(&name, SECOND_ANVIL_CHAIN_ID, port, block_time)
                .await?;
        }
        Ok(())
    }

    /// The environment every process of the stack gets.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// Issues (and stores) a new API key of `tenant` with the default quotas, as
    /// `api-keys create` does; the key itself is only in the answer.
    pub async fn issue_api_key(&self, tenant: &str) -> anyhow::Result<String> {
        self.issue_api_key_with(tenant, live_balances::domain::api_key::Quotas::default())
            .await
    }

    /// [`Self::issue_api_key`] with `quotas`.
    pub async fn issue_api_key_with(
        &self,
        tenant: &str,
        quotas: live_balances::domain::api_key::Quotas,
    ) -> anyhow::Result<String> {
        let tenant = live_balances::domain::api_key::Tenant::parse(tenant)?;
        let (key, record) = live_balances::domain::api_key::issue(
            rand::random(),
            tenant,
            quotas,
            live_balances::runtime::clock::unix_now(),
        );
        self.table().await.create_api_key(&record).await?;
        Ok(key)
    }

    /// A client of the stack's table for this process (tests, the dev runner).
    pub async fn table(&self) -> Table {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.dynamodb_url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "local",
            ))
            .load()
            .await;
        Table::new(
            aws_sdk_dynamodb::Client::new(&conf),
            &self.options.table_name,
        )
    }

    fn spawn(&self, name: &str, command: Command) -> anyhow::Result<()> {
        self.spawn_with(name, command, &[])
    }

    /// Spawns with the stack's environment, `overrides` applied last, logging to
    /// `<log_dir>/<name>.log`.
    fn spawn_with(
        &self,
        name: &str,
        command: Command,
        overrides: &[(String, String)],
    ) -> anyhow::Result<()> {
        let log = self.log_of(name);
        self.spawn_logging_to(name, command, overrides, &log)
    }

    /// [`Self::spawn_with`], logging to `log`.
    fn spawn_logging_to(
        &self,
        name: &str,
        mut command: Command,
        overrides: &[(String, String)],
        log: &std::path::Path,
    ) -> anyhow::Result<()> {
        command
            .envs(&self.env)
            .envs(overrides.iter().cloned())
            .env("PATH", self.tools.path_env())
            .current_dir(&self.tools.root);
        let service = Service::spawn_logging_to(name, command, log)?;
        info!(service = name, pid = service.pid(), log = %service.log.display(), "started");
        self.services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(name.into(), service);
        Ok(())
    }

    fn check(&self, name: &str) -> anyhow::Result<()> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        match services.get_mut(name) {
            Some(s) => s.check_running(),
            None => bail!("{name} is not started"),
        }
    }

    /// Fails if any started process has exited.
    pub fn check_all(&self) -> anyhow::Result<()> {
        let names: Vec<String> = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .keys()
            .cloned()
            .collect();
        names.iter().try_for_each(|n| self.check(n))
    }

    async fn start_dynamodb(&self) -> anyhow::Result<()> {
        let mut java = Command::new("java");
        java.arg(format!(
            "-Djava.library.path={}",
            self.tools.dynamodb_lib().display()
        ))
        .arg("-jar")
        .arg(self.tools.dynamodb_jar())
        // One database for every access key and region, so no client can miss the table.
        .args(["-inMemory", "-sharedDb", "-port"])
        .arg(self.options.dynamodb_port.to_string());
        self.spawn("dynamodb", java)?;
        let table = self.table().await;
        wait_for("DynamoDB Local", Duration::from_secs(60), || async {
            self.check("dynamodb")?;
            Ok(table.create_if_missing().await?)
        })
        .await?;
        Ok(())
    }

    /// Starts anvil as service `name` for `chain_id` on `port`, with Multicall3 and the
    /// devnet WETH installed.
    async fn start_anvil(
        &self,
        name: &str,
        chain_id: u64,
        port: u16,
        block_time: Option<u64>,
    ) -> anyhow::Result<()> {
        let mut anvil = Command::new(self.tools.anvil());
        anvil
            .args(["--host", "127.0.0.1", "--port"])
            .arg(port.to_string());
        anvil.args(["--chain-id", &chain_id.to_string()]);
        if let Some(seconds) = block_time {
            anvil.args(["--block-time", &seconds.to_string()]);
        }
        self.spawn(name, anvil)?;
        let rpc_url = format!("http://127.0.0.1:{port}");
        let provider = crate::devnet::plain_provider(&rpc_url)?;
        let answered = wait_for(name, Duration::from_secs(30), || async {
            self.check(name)?;
            Ok(provider.get_chain_id().await?)
        })
        .await?;
        if answered != chain_id {
            bail!("{name} answers chain id {answered}, expected {chain_id}");
        }
        install_multicall(&rpc_url, DEFAULT_MULTICALL).await?;
        install_weth(&rpc_url).await
    }

    async fn start_functions(&self) -> anyhow::Result<()> {
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
        let health = format!("{}/health", self.api_url);
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
            ("fanout", &self.fanout_invoke_url),
            ("webhooks", &self.webhooks_invoke_url),
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
        if let Some(endpoint) = &self.options.functions_dynamodb_endpoint {
            env.push(("DYNAMODB_ENDPOINT".into(), endpoint.clone()));
        }
        let command = Command::new(self.tools.workspace_bin(function));
        let log = self.log_of("functions");
        self.spawn_logging_to(&format!("{function}-{instance}"), command, &env, &log)
    }

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
        // It reaches DynamoDB as the functions do (tests put a fault proxy there).
        if let Some(endpoint) = &self.options.functions_dynamodb_endpoint {
            env.push(("DYNAMODB_ENDPOINT".into(), endpoint.clone()));
        }
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

    /// Starts one pump per stream consumer, each reading the whole stream on its own: the
    /// fanout's (`pump`) and the webhooks function's (`pump-webhooks`).
    fn start_pump(&self) -> anyhow::Result<()> {
        self.start_pump_as("pump", &self.fanout_invoke_url.clone())?;
        self.start_pump_as("pump-webhooks", &self.webhooks_invoke_url.clone())
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
        pump.env("PUMP_INVOKE_URL", invoke_url).env(
            "PUMP_DEAD_LETTER",
            self.options
                .log_dir
                .join(format!("{name}-dead-letter.jsonl")),
        );
        self.spawn(name, pump)
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

    /// The process id of service `name`, while it runs (benchmarks read its memory).
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        let services = self.services.lock().ok()?;
        services.get(name).map(Service::pid)
    }

    /// The log file of service `name`.
    pub fn log_of(&self, name: &str) -> PathBuf {
        self.options.log_dir.join(format!("{name}.log"))
    }

    /// SIGKILLs the poller: no chance to store its cursor.
    pub fn kill_poller(&self) -> anyhow::Result<()> {
        self.kill_service("poller")
    }

    /// SIGKILLs service `name`, if it runs.
    pub fn kill_service(&self, name: &str) -> anyhow::Result<()> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        if let Some(mut service) = services.remove(name) {
            service.kill();
        }
        Ok(())
    }

    /// Sends SIGTERM to service `name` without waiting for it to exit (a drain under test);
    /// [`Self::has_exited`] tells when it has.
    pub fn terminate_service(&self, name: &str) -> anyhow::Result<()> {
        let services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let service = services
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("{name} is not started"))?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(service.pid().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {name} failed");
        Ok(())
    }

    /// Whether service `name` has exited (it is then forgotten, so it can be started again).
    pub fn has_exited(&self, name: &str) -> anyhow::Result<bool> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let exited = services.get_mut(name).is_none_or(|s| !s.is_running());
        if exited {
            services.remove(name);
        }
        Ok(exited)
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

    /// Stops one service with SIGTERM (e.g. to break a hop in a test).
    pub fn stop_service(&self, name: &str) -> anyhow::Result<()> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        if let Some(mut s) = services.remove(name) {
            s.stop(Duration::from_secs(5));
        }
        Ok(())
    }
}
