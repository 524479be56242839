//! Property tests of configuration parsing from arbitrary variable maps: no panic, every
//! well-formed chain variable is taken, and no spelling of an endpoint leaks its key.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::runtime::redact::redact_url;

/// Names the parser reads, plus junk, so maps hit every branch.
fn var_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "RPC_URL",
            "WS_URL",
            "CHAIN_ID",
            "ETH_RPC",
            "ETH_WC_RPC",
            "ARBITRUM_RPC",
            "SEPOLIA_RPC",
            "SEPOLIA_WC_RPC",
            "TABLE_NAME",
            "MULTICALL_ADDRESS",
            "DEFAULT_SPENDER",
            "SNAPSHOT_INTERVAL",
            "HEAD_POLL_INTERVAL_MS",
            "MAX_BLOCK_RANGE",
            "MULTICALL_CHUNK",
            "SSE_MAX_SECS",
            "MAX_TOKENS_PER_SESSION",
            "POLLER_HTTP_ADDR",
        ])
        .prop_map(str::to_string),
        "(RPC_URL_|WS_URL_)[0-9a-z-]{0,22}",
        "[A-Z_]{1,12}",
    ]
}

fn var_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "(https?|wss?|ftp)://[a-z0-9.:@/?=&%-]{0,30}",
        "[0-9]{1,25}",
        "0x[0-9a-fA-F]{0,42}",
        "\\PC{0,20}",
    ]
}

proptest! {
    #[test]
    fn never_panics_on_any_variables(
        vars in prop::collection::vec((var_name(), var_value()), 0..12),
    ) {
        if let Ok(settings) = Settings::from_vars(vars) {
            for (id, chain) in &settings.chains {
                prop_assert!(*id > 0);
                prop_assert_eq!(chain.chain_id, *id);
                prop_assert!(!chain.rpc_urls.is_empty());
                prop_assert!(chain.rpc_urls.iter().all(|u| u.starts_with("http")));
                prop_assert!(chain.ws_urls.iter().all(|u| u.starts_with("ws")));
            }
            prop_assert!(settings.rpc.max_block_range >= 1 && settings.rpc.multicall_chunk >= 1);
        }
    }

    #[test]
    fn every_well_formed_chain_variable_is_taken(
        chains in prop::collection::btree_map(1u64..=u64::MAX, ("https?", "[a-z]{1,10}"), 1..6),
    ) {
        let vars = chains.iter().flat_map(|(id, (scheme, host))| {
            [
                (format!("RPC_URL_{id}"), format!("{scheme}://{host}.example")),
                (format!("WS_URL_{id}"), format!("wss://{host}.example")),
            ]
        });
        let settings = Settings::from_vars(vars).unwrap();
        prop_assert_eq!(
            settings.chains.keys().copied().collect::<Vec<_>>(),
            chains.keys().copied().collect::<Vec<_>>()
        );
        for (id, (scheme, host)) in &chains {
            let chain = &settings.chains[id];
            prop_assert_eq!(&chain.rpc_urls, &[format!("{scheme}://{host}.example")]);
            prop_assert_eq!(&chain.ws_urls, &[format!("wss://{host}.example")]);
        }
    }

    /// Keys live in userinfo, paths, queries and fragments; none survives redaction, and
    /// the endpoints' `Debug` (what logs print) is redacted.
    #[test]
    fn redaction_never_shows_a_key(
        scheme in prop::sample::select(vec!["http", "https", "ws", "wss", ""]),
        host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        key in "[A-Z][A-Z0-9_]{7,31}",
        place in 0usize..6,
    ) {
        let sep = if scheme.is_empty() { "" } else { "://" };
        let url = match place {
            0 => format!("{scheme}{sep}{host}/v2/{key}"),
            1 => format!("{scheme}{sep}{host}?apikey={key}"),
            2 => format!("{scheme}{sep}user:{key}@{host}"),
            3 => format!("{scheme}{sep}{key}@{host}/rpc"),
            4 => format!("{scheme}{sep}{host}#{key}"),
            _ => format!("{scheme}{sep}{host}/a/b?x=1&key={key}#frag"),
        };
        let shown = redact_url(&url);
        prop_assert!(!shown.contains(&key), "{} shown as {}", url, shown);
        let endpoints = ChainEndpoints {
            chain_id: 1,
            rpc_urls: vec![url.clone(), url.clone()],
            ws_urls: vec![url.clone()],
            weth: None,
        };
        let debug = format!("{endpoints:?}");
        prop_assert!(!debug.contains(&key), "{}", debug);
    }

    /// Whatever a chain secret holds, merging it never panics and a refusal never
    /// quotes a value (values are URLs with keys).
    #[test]
    fn chain_secret_refusals_never_quote_values(
        entries in prop::collection::vec((
            prop_oneof![
                "(RPC_URL_|WS_URL_)[0-9]{1,3}",
                "(RPC_URL_|WS_URL_)[0-9a-z]{0,4}",
                // Without a K, so no key name spells the marker the values carry.
                "[A-J_]{1,10}",
            ],
            prop_oneof![
                "(https?|wss?)://[a-z]{1,8}/KEY[A-Z0-9]{8}",
                "[a-z]{0,6}KEY[A-Z0-9]{8}",
            ],
        ), 0..6),
        ids in prop::collection::btree_set(1u64..5, 1..3),
        shape in 0usize..3,
    ) {
        let object: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let document = match shape {
            0 => serde_json::Value::Object(object).to_string(),
            1 => serde_json::Value::Array(object.into_values().collect()).to_string(),
            _ => format!("{{{}", entries.iter().map(|(_, v)| v.as_str()).collect::<String>()),
        };
        let secret = ChainSecret { secret_id: "s".into(), chain_ids: ids };
        let outcome = secret
            .merge(vec![], &document)
            .and_then(Settings::from_vars);
        match outcome {
            Ok(settings) => prop_assert_eq!(
                settings.chains.keys().copied().collect::<BTreeSet<_>>(),
                secret.chain_ids
            ),
            Err(error) => prop_assert!(!error.to_string().contains("KEY"), "{}", error),
        }
    }
}
