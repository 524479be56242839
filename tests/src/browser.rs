//! Headless Chromium driven over WebDriver: chromedriver (Debian `chromium-driver`) runs as a
//! child process of the test on a free port, so it ends with the test binary.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, ClientBuilder};
use local_stack::process::{Service, free_port};
use serde_json::{Value, json};

use crate::DEADLINE;

/// Installed by `infra/install.sh` from Debian; `CHROMEDRIVER` / `CHROMIUM` override.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One headless Chromium session. Call [`Browser::close`] to end it: chromedriver dies with
/// the test binary, but only a closed session also ends its Chromium.
pub struct Browser {
    pub client: Client,
    driver_url: String,
    _driver: Service,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width` x `height` window.
    pub async fn start(log_dir: &Path, width: u32, height: u32) -> anyhow::Result<Self> {
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        let port = free_port()?;
        let mut command = Command::new(&driver_bin);
        command.arg(format!("--port={port}"));
        let driver = Service::spawn("chromedriver", command, log_dir)
            .with_context(|| format!("{driver_bin} (Debian package chromium-driver)"))?;
        let driver_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        local_stack::stack::wait_for("chromedriver", DEADLINE, || async {
            let status: Value = http
                .get(format!("{driver_url}/status"))
                .send()
                .await?
                .json()
                .await?;
            anyhow::ensure!(status["value"]["ready"] == true, "not ready: {status}");
            Ok(())
        })
        .await?;

        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    format!("--window-size={width},{height}"),
                ],
            },
            // Lets the test read the page's console (`se/log`).
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let capabilities = capabilities.as_object().cloned().context("capabilities")?;
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .context("starting a Chromium session")?;
        Ok(Self {
            client,
            driver_url,
            _driver: driver,
        })
    }

    /// Console entries logged at `SEVERE` (errors, CSP violations, failed loads) so far;
    /// reading them empties chromedriver's buffer.
    pub async fn console_errors(&self) -> anyhow::Result<Vec<String>> {
        let session = self
            .client
            .session_id()
            .await?
            .context("no WebDriver session")?;
        let reply: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await?
            .json()
            .await?;
        let entries = reply["value"]
            .as_array()
            .with_context(|| format!("browser log: {reply}"))?;
        Ok(entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect())
    }

    /// Opens `url` in a new tab of the same browser (same origin storage, locks and channels)
    /// and switches to it.
    pub async fn open_tab(&self, url: &str) -> anyhow::Result<WindowHandle> {
        let tab = self.client.new_window(true).await?.handle;
        self.client.switch_to_window(tab.clone()).await?;
        self.client.goto(url).await?;
        Ok(tab)
    }

    /// Ends the session and its Chromium.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.close().await?;
        Ok(())
    }

    /// Ends the session after a test drove it, then gives the test's outcome (a panic goes on
    /// as a panic): call with `AssertUnwindSafe(test).catch_unwind().await`, so a failing test
    /// does not leave its Chromium running.
    pub async fn finish<T>(
        self,
        outcome: std::thread::Result<anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        self.close().await?;
        match outcome {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
