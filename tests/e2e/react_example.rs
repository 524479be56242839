//! The React example (`clients/example`, on `@live-balances/react`) built with Vite, served
//! from its own origin and opened in headless Chromium against the real local stack, on both
//! transports: its two components on one wallet — the portfolio (`useBalances`) and a
//! headline (`useBalance`) — show the wallet's amounts, a transfer on anvil shows in both, and
//! the api sees one stream for both, never more (counted by a proxy in front of it).

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, U256};
use anyhow::Context;
use e2e::browser::Browser;
use e2e::static_site::StaticSite;
use e2e::stream_proxy::StreamCountingProxy;
use e2e::{DEADLINE, Environment, Transport};
use futures::FutureExt;
use live_balances::domain::address::lower;
use serde::Deserialize;

/// What the example shows, read in one script call.
#[derive(Debug, Deserialize)]
struct AppView {
    status: String,
    error: String,
    /// The portfolio: token -> amount with decimals applied.
    rows: Vec<(String, String)>,
    /// The headline's token and raw amount.
    headline: (String, String),
}

impl AppView {
    fn amount(&self, token: Address) -> Option<&str> {
        let token = lower(&token);
        self.rows
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, a)| a.as_str())
    }
}

const READ_APP: &str = r##"
const text = (el) => (el ? el.textContent : "");
const headline = document.getElementById("headline");
return {
  status: document.getElementById("status")?.dataset.status ?? "",
  error: text(document.getElementById("error")),
  rows: [...document.querySelectorAll("#balances tr")].map((tr) => [tr.dataset.token, text(tr.querySelector(".amount"))]),
  headline: [headline?.dataset.token ?? "", headline?.dataset.raw ?? ""],
};
"##;

#[tokio::test(flavor = "multi_thread")]
async fn the_react_example_shows_live_balances_on_one_stream() -> anyhow::Result<()> {
    let env = Environment::get();
    let site_dir = build_example(&env.stack.options.log_dir).await?;
    let site = StaticSite::start(&site_dir).await?;
    let browser = Browser::start(&env.stack.options.log_dir, 1000, 820).await?;
    let outcome = std::panic::AssertUnwindSafe(async {
        for transport in Transport::BOTH {
            drive(env, &browser, &site, transport)
                .await
                .with_context(|| format!("through {transport:?}"))?;
        }
        anyhow::Ok(())
    })
    .catch_unwind()
    .await;
    browser.finish(outcome).await
}

/// `vite build` of the example into the run's log folder, against the packages' builds (made
/// by `make client`; `make test` runs it first).
async fn build_example(log_dir: &Path) -> anyhow::Result<PathBuf> {
    let clients = local_stack::tools::Tools::locate()?.root.join("clients");
    for built in ["ts/dist/index.js", "react/dist/index.js"] {
        anyhow::ensure!(
            clients.join(built).exists(),
            "clients/{built} is missing: run `make client` (make test does)"
        );
    }
    let out = log_dir.join("react-example");
    let status = tokio::process::Command::new("node")
        .arg(clients.join("node_modules/vite/bin/vite.js"))
        .args(["build", "--logLevel", "warn", "--emptyOutDir", "--outDir"])
        .arg(&out)
        .current_dir(clients.join("example"))
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(DEADLINE * 2, status)
        .await
        .context("vite build took too long")?
        .context("node (installed by make install) on PATH")?;
    anyhow::ensure!(status.success(), "vite build of clients/example: {status}");
    Ok(out)
}

async fn read_app(browser: &Browser) -> anyhow::Result<AppView> {
    let value = browser.client.execute(READ_APP, vec![]).await?;
    Ok(serde_json::from_value(value)?)
}

async fn wait_app(
    browser: &Browser,
    what: &str,
    want: impl Fn(&AppView) -> bool,
) -> anyhow::Result<AppView> {
    local_stack::stack::wait_for(what, DEADLINE, || async {
        let view = read_app(browser).await?;
        anyhow::ensure!(want(&view), "the app shows {view:?}");
        Ok(view)
    })
    .await
}

async fn drive(
    env: &'static Environment,
    browser: &Browser,
    site: &StaticSite,
    transport: Transport,
) -> anyhow::Result<()> {
    let api = reqwest::Url::parse(&env.url_via(transport, "/"))?;
    let proxy = StreamCountingProxy::start(&api.origin().ascii_serialization()).await?;
    let owner = e2e::fresh_owner();
    let (actor, usd) = env.actor_with_token(10_000_000).await?;
    let other = actor.deploy_token("Other", "OTH", 18).await?;
    actor.transfer(usd, owner, U256::from(1_500_000u64)).await?;
    let url = format!(
        "{}/index.html?api={}{}&chain={}&owner={}&tokens={},{}",
        site.url,
        proxy.url,
        api.path(),
        env.chain_id(),
        lower(&owner),
        lower(&usd),
        lower(&other)
    );
    browser.client.goto(&url).await?;

    // Both components on the wallet, one of them on its first token only.
    let usd_hex = lower(&usd);
    let shows = |amount: &'static str, raw: &'static str| {
        let usd_hex = usd_hex.clone();
        move |v: &AppView| {
            v.status == "live"
                && v.amount(usd) == Some(amount)
                && v.headline == (usd_hex.clone(), raw.to_string())
        }
    };
    let view = wait_app(
        browser,
        "both components live with the wallet's amount",
        shows("1.5", "1500000"),
    )
    .await?;
    assert_eq!(view.error, "", "no error shown");
    assert_eq!(view.amount(other), Some("0"), "{view:?}");
    assert!(
        view.amount(live_balances::NATIVE_TOKEN).is_some(),
        "{view:?}"
    );
    assert_eq!(
        (proxy.open_streams(), proxy.peak_streams()),
        (1, 1),
        "one stream for two components: {:?}",
        proxy.stream_requests()
    );

    actor.transfer(usd, owner, U256::from(250_000u64)).await?;
    wait_app(
        browser,
        "the transfer in both components",
        shows("1.75", "1750000"),
    )
    .await?;
    assert_eq!(
        proxy.peak_streams(),
        1,
        "never more than one stream: {:?}",
        proxy.stream_requests()
    );
    let errors = browser.console_errors().await?;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    // Leave the page, so its stream ends before the proxy does.
    browser.client.goto("about:blank").await?;
    Ok(())
}
