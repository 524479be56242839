//! The configuration page (`docs/src/configuration.md`) held to the code: every variable the
//! binaries read is on it, and every variable on it is read. It lives in the server's crate
//! because the server's dependencies hold every binary's settings: the shared ones and the
//! chain secret (`live_balances::config`), the api's (`api::settings`) and the server's own,
//! and as dev-dependencies the poller's (`poller::settings`) and the fanout's
//! (`fanout::settings`).
//! The names come from what one [`Vars`] was asked for while each was parsed, from the direct
//! `std::env::var` reads in the binaries' sources, and from the few variables a library reads
//! for us.
use std::collections::BTreeSet;
use std::path::Path;

use api::settings::ApiSettings;
use fanout::settings::FanoutSettings;
use live_balances::config::{ChainSecret, Vars};
use poller::settings::PollerSettings;

use super::ServerSettings;

/// Read by a library rather than by our code: (name, where).
const READ_BY_LIBRARIES: &[(&str, &str)] = &[(
    "RUST_LOG",
    "tracing-subscriber's EnvFilter, core/src/runtime/logging.rs",
)];

/// The sources of the deployed binaries and the library they share.
const SOURCES: &[&str] = &[
    "core/src",
    "functions/api/src",
    "functions/fanout/src",
    "functions/webhooks/src",
    "server/src",
    "poller/src",
];

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ is inside the repository")
}

/// Every name the code reads.
fn names_read() -> BTreeSet<String> {
    // An empty environment reads every optional variable; the single-chain form gets past
    // the chain endpoints so their branch is read too.
    let vars = Vars::new([
        ("CHAIN_ID".to_string(), "1".to_string()),
        ("RPC_URL".to_string(), "http://127.0.0.1:8545".to_string()),
    ]);
    assert_eq!(ChainSecret::from_vars(&vars), Ok(None), "no chain secret");
    ApiSettings::from_vars(&vars).expect("settings from an almost empty environment");
    ServerSettings::from_vars(&vars).expect("server settings from an almost empty environment");
    PollerSettings::from_vars(&vars).expect("poller settings from an almost empty environment");
    FanoutSettings::from_vars(&vars).expect("fanout settings from an almost empty environment");
    let mut names = vars.asked();
    for dir in SOURCES {
        direct_reads(&repository().join(dir), &mut names);
    }
    names.extend(READ_BY_LIBRARIES.iter().map(|(n, _)| n.to_string()));
    names
}

/// `env::var("NAME")` and `env::var_os("NAME")` in the `.rs` files under `dir` (this file
/// aside: it names the pattern), outside their inline unit tests: a test's own knob (how many
/// items a measurement takes) is no setting of a deployed binary.
fn direct_reads(dir: &Path, names: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            direct_reads(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("settings/page.rs")
        {
            let text = std::fs::read_to_string(&path).expect("a source file");
            let text = without_unit_tests(&text);
            for call in ["env::var(\"", "env::var_os(\""] {
                for rest in text.split(call).skip(1) {
                    if let Some((name, _)) = rest.split_once('"') {
                        names.insert(name.to_string());
                    }
                }
            }
        }
    }
}

/// `text` up to its inline unit-test module (by convention the file's last item).
fn without_unit_tests(text: &str) -> &str {
    text.split_once("#[cfg(test)]\nmod tests {")
        .map_or(text, |(code, _)| code)
}

/// The variable names in the first column of the page's tables: every `NAME` in backticks
/// there, a per-chain one written `NAME_<id>`.
fn names_documented(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_string))
        .filter(|name| {
            let bare = name.strip_suffix("<id>").unwrap_or(name);
            !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .collect()
}

#[test]
fn every_variable_read_is_on_the_configuration_page_and_every_one_there_is_read() {
    let path = repository().join("docs/src/configuration.md");
    let page = std::fs::read_to_string(&path).expect("docs/src/configuration.md");
    let documented = names_documented(&page);
    let read = names_read();
    let missing: Vec<_> = read.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "read by the code but not in a table of {}: {missing:?}",
        path.display()
    );
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(
        unread.is_empty(),
        "in a table of {} but read by no binary: {unread:?}",
        path.display()
    );
}

#[test]
fn a_unit_test_module_s_reads_are_not_settings() {
    let file = "let a = std::env::var(\"READ\");\n#[cfg(test)]\nmod tests {\n    \
                fn t() { std::env::var(\"TEST_KNOB\"); }\n}\n";
    let mut names = BTreeSet::new();
    let dir = std::env::temp_dir().join(format!("page-reader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    std::fs::write(dir.join("lib.rs"), file).expect("a source file");
    direct_reads(&dir, &mut names);
    std::fs::remove_dir_all(&dir).expect("the temporary folder removed");
    assert_eq!(names, ["READ"].map(String::from).into());
}

#[test]
fn the_page_reader_finds_names_and_per_chain_names() {
    let page = "| variable | default |\n|---|---|\n| `RPC_URL_<id>` / `WS_URL_<id>` | — |\n\
                | `SSE_PING_SECS` | `15` |\n| `a` | x |\nprose `NOT_IN_A_TABLE`\n";
    let names = names_documented(page);
    assert_eq!(
        names,
        ["RPC_URL_<id>", "SSE_PING_SECS", "WS_URL_<id>"]
            .map(String::from)
            .into()
    );
}
