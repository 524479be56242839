//! Unit tests of the api's own settings: defaults and bounds of its streams, limits, token
//! lists, snapshot detail and spenders.

use std::time::Duration;

use alloy::primitives::address;

use super::*;

fn settings(vars: &[(&str, &str)]) -> Result<ApiSettings, ConfigError> {
    ApiSettings::from_vars(&Vars::new(
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    ))
}

#[test]
fn defaults() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.default_spender, DEFAULT_SPENDER);
    assert_eq!(s.streams.ping_interval, Duration::from_secs(15));
    assert_eq!(s.limits.max_tokens_per_session, 20_000);
    assert_eq!(s.streams.max_pairs, 10);
    assert_eq!(s.streams.chain_log_interval, Duration::from_millis(50));
    assert_eq!(s.streams.rescan_interval, Duration::from_secs(3600));
    assert_eq!(s.full_detail_max_tokens, 1000);
    let s = settings(&[
        ("RESCAN_INTERVAL_SECS", "60"),
        ("FULL_DETAIL_MAX_TOKENS", "5"),
    ])
    .unwrap();
    assert_eq!(s.streams.rescan_interval, Duration::from_secs(60));
    assert_eq!(s.full_detail_max_tokens, 5);
    assert!(settings(&[("FULL_DETAIL_MAX_TOKENS", "all")]).is_err());
    let pairs = |v: &str| settings(&[("MAX_PAIRS_PER_STREAM", v)]).map(|s| s.streams.max_pairs);
    assert_eq!(pairs("32").unwrap(), 32);
    assert!(pairs("0").is_err() && pairs("33").is_err());
}

#[test]
fn order_spender_per_chain_with_the_vault_relayer_by_default() {
    let s = settings(&[
        (
            "ORDER_SPENDER_100",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        ),
        ("MAX_ORDERS_PER_WALLET", "7"),
    ])
    .unwrap();
    assert_eq!(s.order_spender(1), DEFAULT_SPENDER);
    assert_eq!(
        s.order_spender(100),
        address!("0x5FbDB2315678afecb367f032d93F642f64180aa3")
    );
    assert_eq!(s.limits.max_orders_per_wallet, 7);
    assert_eq!(settings(&[]).unwrap().limits.max_orders_per_wallet, 100);
    for bad in [
        (
            "ORDER_SPENDER_x",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        ),
        ("ORDER_SPENDER_5", "0x12"),
    ] {
        assert!(settings(&[bad]).is_err(), "{bad:?}");
    }
}

#[test]
fn token_list_limits_and_weth_override() {
    let s = settings(&[
        ("RPC_URL_31337", "http://127.0.0.1:8545"),
        ("WETH_31337", "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        ("TOKEN_LIST_ALLOW_INSECURE", "true"),
    ])
    .unwrap();
    assert!(s.chains[&31337].weth.is_some());
    assert!(s.token_lists.allow_insecure);
    assert!(!settings(&[]).unwrap().token_lists.allow_insecure);
    assert_eq!(settings(&[]).unwrap().token_lists.max_bytes, 5 << 20);
    assert!(settings(&[("TOKEN_LIST_ALLOW_INSECURE", "maybe")]).is_err());
    assert!(settings(&[("RPC_URL_5", "http://x"), ("WETH_5", "0x12")]).is_err());
}
