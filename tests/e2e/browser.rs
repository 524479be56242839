//! The demo page in a real headless Chromium, unchanged on both transports — served by the
//! api function through the local function URL, and by the api server: it starts a session, shows live amounts with decimals applied, follows a
//! transfer on anvil, and shows a token symbol made of markup as text. Three tabs of it share
//! one stream (counted by a proxy in front of the api), and when the tab holding it closes,
//! another takes it over without missing a change. Two wallets on two chains on one page
//! share one stream too (the multi-wallet stream), each row naming its wallet, and a second
//! tab of that page shares that stream.

use alloy::primitives::{Address, U256};
use anyhow::Context;
use e2e::browser::Browser;
use e2e::stream_proxy::StreamCountingProxy;
use e2e::{DEADLINE, Environment, SseClient, Transport};
use fantoccini::Locator;
use futures::FutureExt;
use live_balances::config::DEFAULT_SPENDER;
use live_balances::domain::address::lower;
use local_stack::devnet::Wallet;
use serde::Deserialize;

/// A symbol that would run script if the page ever inserted it as HTML (within the 32
/// characters the service keeps of a symbol).
const MARKUP_SYMBOL: &str = "<img src=x onerror=__pwned=1>";
const MARKUP_NAME: &str = "<script>window.__pwned=2</script>";

/// What the page shows, read in one script call.
#[derive(Debug, Deserialize)]
struct PageView {
    status: String,
    /// `leader` (this tab holds the stream) or `follower` (another tab shares it).
    role: String,
    error: String,
    rows: Vec<RowView>,
    log: Vec<String>,
    pwned: bool,
    images: u64,
}

#[derive(Debug, Deserialize, PartialEq)]
struct RowView {
    token: String,
    /// `chainId:owner` when the page follows several wallets, else empty.
    wallet: String,
    symbol: String,
    amount: String,
    raw: String,
    allowance: String,
    flashing: bool,
}

impl PageView {
    fn row(&self, token: Address) -> Option<&RowView> {
        self.rows.iter().find(|r| r.token == lower(&token))
    }

    fn wallet_row(&self, chain_id: u64, owner: Address, token: Address) -> Option<&RowView> {
        let wallet = format!("{chain_id}:{}", lower(&owner));
        self.rows
            .iter()
            .find(|r| r.wallet == wallet && r.token == lower(&token))
    }
}

const READ_PAGE: &str = r##"
const text = (el) => (el ? el.textContent : "");
return {
  status: document.getElementById("status").dataset.state,
  role: document.getElementById("role").dataset.role,
  error: text(document.getElementById("error")),
  rows: [...document.querySelectorAll("#balances tbody tr")].map((tr) => ({
    token: tr.dataset.token,
    wallet: tr.dataset.wallet || "",
    symbol: text(tr.querySelector(".symbol")),
    amount: text(tr.querySelector("td.amount")),
    raw: text(tr.querySelector("td.raw")),
    allowance: text(tr.querySelector("td.allowance")),
    flashing: tr.querySelector("td.amount").classList.contains("flash"),
  })),
  log: [...document.querySelectorAll("#log li")].map(text),
  pwned: window.__pwned !== undefined,
  images: document.querySelectorAll("img").length,
};
"##;

async fn read_page(browser: &Browser) -> anyhow::Result<PageView> {
    let value = browser.client.execute(READ_PAGE, vec![]).await?;
    Ok(serde_json::from_value(value)?)
}

async fn press_start(browser: &Browser) -> anyhow::Result<()> {
    browser
        .client
        .find(Locator::Id("start"))
        .await
        .context("Start button")?
        .click()
        .await?;
    Ok(())
}

/// Polls the page until `want` holds, failing at the deadline with the last view.
async fn wait_page(
    browser: &Browser,
    what: &str,
    want: impl Fn(&PageView) -> bool,
) -> anyhow::Result<PageView> {
    local_stack::stack::wait_for(what, DEADLINE, || async {
        let view = read_page(browser).await?;
        anyhow::ensure!(want(&view), "page shows {view:?}");
        Ok(view)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_page_shows_live_amounts_and_markup_as_text() -> anyhow::Result<()> {
    let env = Environment::get();
    // The page at the root and at /demo, and the files it loads relatively, on both.
    let pages = [
        ("/", "text/html; charset=utf-8"),
        ("/demo", "text/html; charset=utf-8"),
        ("/demo.js", "text/javascript; charset=utf-8"),
        ("/demo.css", "text/css; charset=utf-8"),
    ];
    for transport in Transport::BOTH {
        for (path, content_type) in pages {
            let response = env.http.get(env.url_via(transport, path)).send().await?;
            assert_eq!(response.status(), 200, "{path} ({transport:?})");
            assert_eq!(response.headers()["content-type"], content_type, "{path}");
            let csp = response.headers()["content-security-policy"].to_str()?;
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        }
    }

    let browser = Browser::start(&env.stack.options.log_dir, 1000, 820).await?;
    // Whatever happens, end the session so its Chromium does not outlive the test.
    let outcome = std::panic::AssertUnwindSafe(async {
        for transport in Transport::BOTH {
            drive(env, &browser, transport)
                .await
                .with_context(|| format!("through {transport:?}"))?;
        }
        anyhow::Ok(())
    })
    .catch_unwind()
    .await;
    browser.finish(outcome).await
}

async fn drive(
    env: &'static Environment,
    browser: &Browser,
    transport: Transport,
) -> anyhow::Result<()> {
    // The watched wallet has a key (and 1,000 ETH), so it can approve.
    let wallet = Wallet::fresh(&env.stack.rpc_url).await?;
    let owner = wallet.address;
    let actor = Wallet::fresh(&env.stack.rpc_url).await?;
    let usd = actor.deploy_token("Browser USD", "bUSD", 6).await?;
    let markup = actor.deploy_token(MARKUP_NAME, MARKUP_SYMBOL, 18).await?;
    let eth = U256::from(10u64).pow(U256::from(18u64));
    actor
        .mint(usd, actor.address, U256::from(10_000_000u64))
        .await?;
    actor.transfer(usd, owner, U256::from(1_500_000u64)).await?;
    actor.mint(markup, owner, U256::from(2u64) * eth).await?;
    actor.send_eth(owner, eth / U256::from(2u64)).await?;

    let url = format!(
        "{}?chain={}&owner={}&tokens={},{}",
        env.url_via(transport, "/demo"),
        env.chain_id(),
        lower(&owner),
        lower(&usd),
        lower(&markup)
    );
    browser.client.goto(&url).await?;
    press_start(browser).await?;

    let view = wait_page(browser, "initial amounts and a live stream", |v| {
        v.status == "live"
            && v.row(usd).is_some_and(|r| r.amount == "1.5")
            && v.row(markup).is_some_and(|r| r.amount == "2")
    })
    .await?;
    assert_eq!(view.error, "", "no error shown");
    let row = view.row(usd).expect("row");
    assert_eq!((row.symbol.as_str(), row.raw.as_str()), ("bUSD", "1500000"));
    let native = view
        .row(live_balances::NATIVE_TOKEN)
        .context("native row")?;
    assert_eq!(native.amount, "1,000.5", "{native:?}");

    // Markup from the chain is text: the exact string, no element made of it, nothing ran.
    let row = view.row(markup).expect("row");
    assert_eq!(row.symbol, MARKUP_SYMBOL);
    assert!(!view.pwned, "script from a token symbol ran");
    assert_eq!(view.images, 0, "markup became an element");

    let receipt = actor
        .transfer(usd, owner, U256::from(250_000u64))
        .await
        .context("transfer")?;
    let block = receipt.block_number.context("mined")?;
    let view = wait_page(browser, "the transferred amount", |v| {
        v.row(usd).is_some_and(|r| r.amount == "1.75")
    })
    .await?;
    let row = view.row(usd).expect("row");
    assert_eq!(row.raw, "1750000");
    assert!(row.flashing, "the changed cell flashes: {row:?}");
    let logged = view
        .log
        .iter()
        .find(|line| line.contains("bUSD balance 1.75"))
        .with_context(|| format!("update logged: {:?}", view.log))?;
    let logged_block: u64 = logged
        .trim_start_matches('#')
        .split(' ')
        .next()
        .and_then(|b| b.parse().ok())
        .with_context(|| format!("block number in {logged:?}"))?;
    assert!(logged_block >= block, "{logged:?} before block {block}");

    // An approval to the default spender shows in the allowance column.
    wallet
        .approve(usd, DEFAULT_SPENDER, U256::from(5_000_000u64))
        .await?;
    let view = wait_page(browser, "the approved allowance", |v| {
        v.row(usd).is_some_and(|r| r.allowance == "5")
    })
    .await?;
    assert!(
        view.log.iter().any(|l| l.contains("bUSD allowance")),
        "{:?}",
        view.log
    );

    let png = browser.client.screenshot().await?;
    let name = format!("demo-{transport:?}.png").to_lowercase();
    std::fs::write(env.stack.options.log_dir.join(name), &png)?;
    if let (Some(path), Transport::FunctionUrl) = (std::env::var_os("DEMO_SCREENSHOT"), transport) {
        std::fs::write(&path, &png).with_context(|| format!("writing {path:?}"))?;
    }

    let view = read_page(browser).await?;
    assert!(!view.pwned && view.images == 0, "{view:?}");
    let errors = browser.console_errors().await?;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_tabs_share_one_stream_and_the_next_tab_takes_over() -> anyhow::Result<()> {
    let env = Environment::get();
    // The browser reaches the api through a proxy that counts the open SSE streams.
    let api = reqwest::Url::parse(&env.stack.endpoints.api)?;
    let proxy = StreamCountingProxy::start(&api.origin().ascii_serialization()).await?;
    let browser = Browser::start(&env.stack.options.log_dir, 1000, 820).await?;
    let outcome = std::panic::AssertUnwindSafe(drive_tabs(env, &browser, &proxy, api.path()))
        .catch_unwind()
        .await;
    browser.finish(outcome).await
}

/// The amounts a tab's log shows for `symbol`'s balance updates, oldest first.
fn logged_balances(view: &PageView, symbol: &str) -> Vec<String> {
    let marker = format!(" {symbol} balance ");
    let mut amounts: Vec<String> = view
        .log
        .iter()
        .filter_map(|line| line.split_once(&marker))
        .map(|(_, rest)| rest.split(' ').next().unwrap_or_default().to_string())
        .collect();
    amounts.reverse();
    amounts
}

async fn drive_tabs(
    env: &'static Environment,
    browser: &Browser,
    proxy: &StreamCountingProxy,
    api_path: &str,
) -> anyhow::Result<()> {
    let owner = e2e::fresh_owner();
    let actor = Wallet::fresh(&env.stack.rpc_url).await?;
    let usd = actor.deploy_token("Tabs USD", "tUSD", 6).await?;
    actor
        .mint(usd, actor.address, U256::from(10_000_000u64))
        .await?;
    actor.transfer(usd, owner, U256::from(1_500_000u64)).await?;
    let url = format!(
        "{}{api_path}/demo?chain={}&owner={}&tokens={}",
        proxy.url,
        env.chain_id(),
        lower(&owner),
        lower(&usd)
    );
    let shows =
        |amount: &'static str| move |v: &PageView| v.row(usd).is_some_and(|r| r.amount == amount);

    // Three tabs of the page: the first leads, the others follow; one stream between them.
    let mut tabs = vec![browser.client.window().await?];
    browser.client.goto(&url).await?;
    press_start(browser).await?;
    wait_page(browser, "tab 1 leading a live stream", |v| {
        v.status == "live" && v.role == "leader" && shows("1.5")(v)
    })
    .await?;
    for n in 2..=3 {
        tabs.push(browser.open_tab(&url).await?);
        press_start(browser).await?;
        wait_page(browser, &format!("tab {n} following, live"), |v| {
            v.status == "live" && v.role == "follower" && shows("1.5")(v)
        })
        .await?;
    }
    assert_eq!(proxy.open_streams(), 1, "one stream for three tabs");
    assert_eq!(proxy.peak_streams(), 1, "never more than one");

    // A transfer shows in all three.
    actor.transfer(usd, owner, U256::from(250_000u64)).await?;
    for tab in &tabs {
        browser.client.switch_to_window(tab.clone()).await?;
        wait_page(browser, "the transfer in every tab", shows("1.75")).await?;
    }
    assert_eq!(
        (proxy.open_streams(), proxy.peak_streams()),
        (1, 1),
        "{:?}",
        proxy.stream_requests()
    );

    // The leader's stream stalls, so the next change reaches the feed but not the leader;
    // then the leader tab closes. A client of our own, straight to the api, sees the change
    // land in the feed.
    let mut witness = SseClient::connect(env, &lower(&owner), None).await?;
    witness
        .wait_for("the witness's snapshot", |e| e.event == "all_balances")
        .await?;
    proxy.hold_streams(true);
    actor.transfer(usd, owner, U256::from(250_000u64)).await?;
    witness
        .follow_balance(&lower(&usd), "1750000", "2000000")
        .await?;
    browser.client.switch_to_window(tabs[0].clone()).await?;
    let leader = read_page(browser).await?;
    assert_eq!(leader.role, "leader");
    assert!(
        shows("1.75")(&leader),
        "the stalled leader never saw it: {leader:?}"
    );
    let requests_before = proxy.stream_requests().len();
    browser.client.close_window().await?;
    tabs.remove(0);
    proxy.hold_streams(false);

    // Another tab takes the stream over, resuming after the last id it saw: the missed
    // transfer arrives as an update (no fresh snapshot), in both remaining tabs.
    for tab in &tabs {
        browser.client.switch_to_window(tab.clone()).await?;
        wait_page(
            browser,
            "the missed transfer after the takeover",
            shows("2"),
        )
        .await?;
    }
    let resumed = proxy.stream_requests()[requests_before..].to_vec();
    assert!(
        resumed
            .iter()
            .any(|r| r.path_and_query.contains("?lastEventId=")),
        "the new leader resumes by id: {resumed:?}"
    );

    // And the next transfer, through the new leader.
    actor.transfer(usd, owner, U256::from(250_000u64)).await?;
    let mut roles = vec![];
    for tab in &tabs {
        browser.client.switch_to_window(tab.clone()).await?;
        let view = wait_page(browser, "the next transfer in both tabs", shows("2.25")).await?;
        // Every change exactly once, in order: nothing missed, nothing repeated, and one
        // snapshot only (the takeover resumed the stream, it did not start over).
        assert_eq!(
            logged_balances(&view, "tUSD"),
            ["1.75", "2", "2.25"],
            "{:?}",
            view.log
        );
        let snapshots = view.log.iter().filter(|l| l.contains("snapshot:")).count();
        assert_eq!(snapshots, 1, "{:?}", view.log);
        assert_eq!(view.status, "live");
        roles.push(view.role);
    }
    roles.sort();
    assert_eq!(roles, ["follower", "leader"]);
    // The closed tab's connection is gone too: one stream again.
    local_stack::stack::wait_for("one open stream", DEADLINE, || async {
        let open = proxy.open_streams();
        anyhow::ensure!(open == 1, "{open} streams open");
        Ok(())
    })
    .await?;

    let errors = browser.console_errors().await?;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_page_watches_two_wallets_on_two_chains_on_one_stream() -> anyhow::Result<()> {
    let env = Environment::get();
    let api = reqwest::Url::parse(&env.stack.endpoints.api)?;
    let proxy = StreamCountingProxy::start(&api.origin().ascii_serialization()).await?;
    let browser = Browser::start(&env.stack.options.log_dir, 1000, 820).await?;
    let outcome =
        std::panic::AssertUnwindSafe(drive_two_wallets(env, &browser, &proxy, api.path()))
            .catch_unwind()
            .await;
    browser.finish(outcome).await
}

async fn drive_two_wallets(
    env: &'static Environment,
    browser: &Browser,
    proxy: &StreamCountingProxy,
    api_path: &str,
) -> anyhow::Result<()> {
    // Wallet A on the default chain, wallet B on the second; one token each, both named in
    // the page's token field (each chain's session tracks both addresses).
    let second = env.second_chain_id()?;
    let (a, b) = (e2e::fresh_owner(), e2e::fresh_owner());
    let (actor_a, usd_a) = env.actor_with_token_on(env.chain_id(), 10_000_000).await?;
    let (actor_b, usd_b) = env.actor_with_token_on(second, 10_000_000).await?;
    actor_a.transfer(usd_a, a, U256::from(1_500_000u64)).await?;
    actor_b.transfer(usd_b, b, U256::from(2_500_000u64)).await?;
    let url = format!(
        "{}{api_path}/demo?chain={}&owner={}:{},{}:{}&tokens={},{}",
        proxy.url,
        env.chain_id(),
        env.chain_id(),
        lower(&a),
        second,
        lower(&b),
        lower(&usd_a),
        lower(&usd_b)
    );
    let first = env.chain_id();
    let shows = |raw_a: &'static str, raw_b: &'static str| {
        move |v: &PageView| {
            v.wallet_row(first, a, usd_a)
                .is_some_and(|r| r.raw == raw_a)
                && v.wallet_row(second, b, usd_b)
                    .is_some_and(|r| r.raw == raw_b)
        }
    };
    let mut tabs = vec![browser.client.window().await?];
    browser.client.goto(&url).await?;
    press_start(browser).await?;
    let view = wait_page(
        browser,
        "both wallets live on the page, the tab leading",
        |v| v.status == "live" && v.role == "leader" && shows("1500000", "2500000")(v),
    )
    .await?;
    assert_eq!(view.error, "", "no error shown");
    assert_eq!(proxy.open_streams(), 1, "one stream for both wallets");
    let requests = proxy.stream_requests();
    assert!(
        requests
            .iter()
            .all(|r| r.path_and_query.contains("/sse/balances?wallets=")),
        "{requests:?}"
    );

    // A second tab of the same page follows the first tab's stream: still one stream.
    tabs.push(browser.open_tab(&url).await?);
    press_start(browser).await?;
    let view = wait_page(
        browser,
        "the second tab following, both wallets live",
        |v| v.status == "live" && v.role == "follower" && shows("1500000", "2500000")(v),
    )
    .await?;
    assert_eq!(view.error, "", "no error shown in the second tab");
    assert_eq!(proxy.open_streams(), 1, "one stream for two tabs");

    // A change on each chain reaches its own row, in both tabs.
    actor_a.transfer(usd_a, a, U256::from(250_000u64)).await?;
    actor_b.transfer(usd_b, b, U256::from(500_000u64)).await?;
    for tab in &tabs {
        browser.client.switch_to_window(tab.clone()).await?;
        wait_page(
            browser,
            "both changes in every tab",
            shows("1750000", "3000000"),
        )
        .await?;
    }
    assert_eq!(
        (proxy.open_streams(), proxy.peak_streams()),
        (1, 1),
        "never more than one stream: {:?}",
        proxy.stream_requests()
    );
    let errors = browser.console_errors().await?;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    Ok(())
}
