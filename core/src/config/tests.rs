//! Unit tests of the shared settings: defaults, every rule of the chain endpoints and the
//! chain secret, and that no error or `Debug` shows an endpoint's key.

use std::time::Duration;

use alloy::primitives::address;

use super::*;
use crate::chain::known_chains::known_wrapped_native;
use crate::runtime::redact::redact_url;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn defaults() {
    let s = settings(&[]).unwrap();
    assert!(s.chains.is_empty());
    assert_eq!(s.table.name, "live-balances");
    assert_eq!(s.rpc.multicall, DEFAULT_MULTICALL);
}

#[test]
fn metrics_are_prometheus_text_unless_emf_is_asked() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.metrics.format, MetricsFormat::Prometheus);
    assert_eq!(s.metrics.namespace, "LiveBalances");
    assert_eq!(s.metrics.flush_every, Duration::from_secs(60));
    let emf = settings(&[("METRICS_FORMAT", "emf"), ("METRICS_FLUSH_SECS", "0")]).unwrap();
    assert_eq!(emf.metrics.format, MetricsFormat::Emf);
    assert_eq!(
        emf.metrics.flush_every,
        Duration::from_secs(1),
        "at least a second"
    );
    let refused = settings(&[("METRICS_FORMAT", "statsd")]).unwrap_err();
    assert!(refused.to_string().contains("METRICS_FORMAT"), "{refused}");
}

#[test]
fn chains_from_explicit_and_seed_names() {
    let s = settings(&[
        ("RPC_URL_31337", "http://127.0.0.1:8545"),
        ("WS_URL_31337", "ws://127.0.0.1:8545"),
        ("ETH_RPC", "https://eth.example/v2/KEY"),
        ("ETH_WC_RPC", "wss://eth.example/ws/KEY"),
        ("ARBITRUM_RPC", "https://arb.example"),
        ("SEPOLIA_RPC", "https://sep.example"),
    ])
    .unwrap();
    assert_eq!(
        s.chains.keys().copied().collect::<Vec<_>>(),
        vec![1, 31337, 42161, 11155111]
    );
    assert_eq!(s.chains[&1].ws_urls, ["wss://eth.example/ws/KEY"]);
    assert!(s.chains[&42161].ws_urls.is_empty());
    assert_eq!(s.chains[&1].weth, known_wrapped_native(1));
    assert_eq!(s.chains[&31337].weth, None);
    assert_eq!(s.rpc.max_wait, Duration::from_secs(15));
}

#[test]
fn several_urls_per_chain_in_order() {
    let s = settings(&[
        (
            "RPC_URL_1",
            "https://a.example/KEY1, https://b.example/KEY2",
        ),
        ("WS_URL_1", "wss://a.example/KEY1,wss://b.example/KEY2"),
        ("RPC_MAX_WAIT_MS", "2500"),
    ])
    .unwrap();
    assert_eq!(
        s.chains[&1].rpc_urls,
        ["https://a.example/KEY1", "https://b.example/KEY2"]
    );
    assert_eq!(
        s.chains[&1].ws_urls,
        ["wss://a.example/KEY1", "wss://b.example/KEY2"]
    );
    assert_eq!(s.rpc.max_wait, Duration::from_millis(2500));
    for bad in [
        "https://a.example/KEY1,",
        "https://a.example/KEY1,wss://b.example/KEY2",
        "https://a.example/KEY1,https://a.example/KEY1",
    ] {
        let error = settings(&[("RPC_URL_1", bad)]).unwrap_err();
        assert!(!error.to_string().contains("KEY"), "{error}");
        assert!(error.to_string().contains("URL 2"), "{error}");
    }
}

#[test]
fn webhook_limits_have_defaults_and_bounds() {
    let d = settings(&[]).unwrap().webhooks.subscriptions;
    assert_eq!(
        (d.max_per_wallet, d.creates_per_source, d.max_wallets),
        (20, 10, 50)
    );
    let s = settings(&[
        ("WEBHOOK_MAX_PER_WALLET", "3"),
        ("WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE", "4"),
    ])
    .unwrap()
    .webhooks
    .subscriptions;
    assert_eq!((s.max_per_wallet, s.creates_per_source), (3, 4));
    // No wallet may be closed to every subscription.
    let s = settings(&[("WEBHOOK_MAX_PER_WALLET", "0")])
        .unwrap()
        .webhooks
        .subscriptions;
    assert_eq!(s.max_per_wallet, 1);
    assert!(settings(&[("WEBHOOK_MAX_WALLETS", "100")]).is_err());
    assert!(settings(&[("WEBHOOK_CREATES_PER_SOURCE_PER_MINUTE", "many")]).is_err());
}

#[test]
fn weth_override() {
    let s = settings(&[
        ("RPC_URL_31337", "http://127.0.0.1:8545"),
        ("WETH_31337", "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
    ])
    .unwrap();
    assert!(s.chains[&31337].weth.is_some());
    assert!(settings(&[("RPC_URL_5", "http://x"), ("WETH_5", "0x12")]).is_err());
}

#[test]
fn single_chain_form() {
    let s = settings(&[
        ("CHAIN_ID", "10"),
        ("RPC_URL", "https://op.example"),
        ("WS_URL", "wss://op.example"),
    ])
    .unwrap();
    assert_eq!(s.chains[&10].rpc_urls, ["https://op.example"]);
    assert_eq!(s.chains[&10].ws_urls, ["wss://op.example"]);
    assert!(settings(&[("CHAIN_ID", "x"), ("RPC_URL", "https://op.example")]).is_err());
}

#[test]
fn explicit_name_wins_over_seed_name() {
    let s = settings(&[
        ("ETH_RPC", "https://seed"),
        ("RPC_URL_1", "https://explicit"),
    ])
    .unwrap();
    assert_eq!(s.chains[&1].rpc_urls, ["https://explicit"]);
}

#[test]
fn rejects_bad_values() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("bad chain suffix", &[("RPC_URL_abc", "http://x")]),
        ("zero chain", &[("RPC_URL_0", "http://x")]),
        ("ws url in rpc", &[("RPC_URL_1", "ws://x")]),
        (
            "http url in ws",
            &[("RPC_URL_1", "http://x"), ("WS_URL_1", "http://x")],
        ),
        ("ws without rpc", &[("WS_URL_5", "ws://x")]),
        // The poller's own `SNAPSHOT_INTERVAL` is checked beside it (`poller::settings`).
        ("bad number", &[("FEED_TTL_SECS", "soon")]),
        ("bad multicall", &[("MULTICALL_ADDRESS", "0x12")]),
    ];
    for (name, vars) in cases {
        assert!(settings(vars).is_err(), "{name}");
    }
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn vars(list: &[(&str, &str)]) -> Vars {
    Vars::new(pairs(list))
}

#[test]
fn chain_secret_is_read_with_its_chain_list() {
    assert_eq!(ChainSecret::from_vars(&vars(&[])).unwrap(), None);
    assert_eq!(
        ChainSecret::from_vars(&vars(&[("CHAIN_SECRET_ID", ""), ("CHAIN_IDS", " ")])).unwrap(),
        None
    );
    let secret = ChainSecret::from_vars(&vars(&[
        (
            "CHAIN_SECRET_ID",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:rpc-AbCdEf",
        ),
        ("CHAIN_IDS", " 42161, 1 ,8453"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(
        secret.secret_id,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:rpc-AbCdEf"
    );
    assert_eq!(
        secret.chain_ids.iter().copied().collect::<Vec<_>>(),
        vec![1, 8453, 42161]
    );
    let refused: &[(&str, &[(&str, &str)])] = &[
        ("ids without secret", &[("CHAIN_IDS", "1")]),
        ("secret without ids", &[("CHAIN_SECRET_ID", "rpc")]),
        (
            "not a number",
            &[("CHAIN_SECRET_ID", "rpc"), ("CHAIN_IDS", "1,eth")],
        ),
        ("zero", &[("CHAIN_SECRET_ID", "rpc"), ("CHAIN_IDS", "0")]),
        (
            "empty item",
            &[("CHAIN_SECRET_ID", "rpc"), ("CHAIN_IDS", "1,,2")],
        ),
        (
            "twice",
            &[("CHAIN_SECRET_ID", "rpc"), ("CHAIN_IDS", "1,2,1")],
        ),
    ];
    for (case, pairs) in refused {
        let error = ChainSecret::from_vars(&vars(pairs)).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { name, .. } if name == "CHAIN_IDS"),
            "{case}: {error}"
        );
    }
}

fn secret(ids: &[u64]) -> ChainSecret {
    ChainSecret {
        secret_id: "live-balances/rpc".into(),
        chain_ids: ids.iter().copied().collect(),
    }
}

#[test]
fn chain_secret_merges_into_endpoints() {
    let env = pairs(&[
        ("TABLE_NAME", "t"),
        ("WETH_8453", "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
    ]);
    let document = r#"{
        "RPC_URL_1": "https://eth.example/v2/KEY1",
        "WS_URL_1": "wss://eth.example/ws/KEY1",
        "RPC_URL_8453": "https://base.example/KEY2, https://base-fallback.example/KEY3",
        "RPC_URL_10": "https://op.example/not-served-yet"
    }"#;
    let merged = secret(&[1, 8453]).merge(env, document).unwrap();
    let s = Settings::from_vars(merged).unwrap();
    assert_eq!(s.table.name, "t");
    assert_eq!(s.chains.keys().copied().collect::<Vec<_>>(), vec![1, 8453]);
    assert_eq!(s.chains[&1].rpc_urls, ["https://eth.example/v2/KEY1"]);
    assert_eq!(s.chains[&1].ws_urls, ["wss://eth.example/ws/KEY1"]);
    assert_eq!(s.chains[&1].weth, known_wrapped_native(1));
    assert!(s.chains[&8453].ws_urls.is_empty());
    assert_eq!(
        s.chains[&8453].rpc_urls,
        [
            "https://base.example/KEY2",
            "https://base-fallback.example/KEY3"
        ]
    );
    assert_eq!(
        s.chains[&8453].weth,
        Some(address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"))
    );
}

#[test]
fn chain_secret_refusals_name_keys_never_values() {
    /// (case, environment, secret document)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("not json", &[], "https://x.example/KEY {"),
        ("not an object", &[], r#"["https://x.example/KEY"]"#),
        ("a bare string", &[], r#""https://x.example/KEY""#),
        ("number value", &[], r#"{"RPC_URL_1": 5}"#),
        (
            "unknown key",
            &[],
            r#"{"RPC_URL_1":"https://x.example/KEY","ETH_RPC":"https://y/KEY"}"#,
        ),
        (
            "bad chain in key",
            &[],
            r#"{"RPC_URL_one":"https://x.example/KEY"}"#,
        ),
        (
            "listed chain missing",
            &[],
            r#"{"RPC_URL_2":"https://x.example/KEY"}"#,
        ),
        ("ws only", &[], r#"{"WS_URL_1":"wss://x.example/KEY"}"#),
        (
            "endpoint in the environment too",
            &[("RPC_URL_1", "https://env.example/KEY")],
            r#"{"RPC_URL_1":"https://x.example/KEY"}"#,
        ),
        (
            "seed name in the environment",
            &[("ETH_RPC", "https://env.example/KEY")],
            r#"{"RPC_URL_1":"https://x.example/KEY"}"#,
        ),
    ];
    for (case, env, document) in cases {
        let error = secret(&[1]).merge(pairs(env), document).unwrap_err();
        assert!(!error.to_string().contains("KEY"), "{case}: {error}");
    }
    // A value of the wrong scheme is refused when the endpoints are parsed, by name.
    let merged = secret(&[1])
        .merge(vec![], r#"{"RPC_URL_1":"wss://x.example/KEY"}"#)
        .unwrap();
    let error = Settings::from_vars(merged).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Invalid { name, .. } if name == "RPC_URL_1"),
        "{error}"
    );
    assert!(!error.to_string().contains("KEY"), "{error}");
}

#[test]
fn debug_hides_keys() {
    let s = settings(&[("RPC_URL_1", "https://user:pw@eth.example/v2/SECRETKEY?k=1")]).unwrap();
    let shown = format!("{:?}", s.chains[&1]);
    assert!(
        !shown.contains("SECRETKEY") && !shown.contains("pw"),
        "{shown}"
    );
    assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
}
