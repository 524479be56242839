//! Property tests of request parsing (path segments, token lists, JSON bodies): no input
//! panics, every valid spelling of an owner reaches that owner, and no spelling — other case,
//! padding, percent-encoding — ever reaches a different one.

use alloy::primitives::Address;
use http::header::CONTENT_TYPE;
use live_balances::domain::address::lower;
use proptest::prelude::*;

use crate::error::ApiError;
use crate::request::{Request, addresses, chain_id, check_size, json_body, owner};
use crate::routes::sessions::SessionRequest;

fn any_address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>()
        .prop_map(Address::from)
        .prop_filter("a wallet", |a| !a.is_zero())
}

/// One way a client (or an attacker) might respell an owner segment.
#[derive(Debug, Clone)]
enum Respelling {
    Upper,
    Checksummed,
    /// `%xx` for the character at this index.
    PercentEncode(usize),
    Pad(&'static str, bool),
    /// The character at this index swapped for a look-alike.
    LookAlike(usize, char),
    Truncate(usize),
}

fn respelling() -> impl Strategy<Value = Respelling> {
    prop_oneof![
        Just(Respelling::Upper),
        Just(Respelling::Checksummed),
        (0usize..42).prop_map(Respelling::PercentEncode),
        (
            prop::sample::select(vec![" ", "%20", "0", "/", "+", "\t", "\u{200b}", "%00"]),
            any::<bool>()
        )
            .prop_map(|(p, front)| Respelling::Pad(p, front)),
        (
            2usize..42,
            prop::sample::select(vec!['O', 'o', 'l', 'I', '\u{0430}', '\u{ff10}'])
        )
            .prop_map(|(i, c)| Respelling::LookAlike(i, c)),
        (0usize..42).prop_map(Respelling::Truncate),
    ]
}

fn respell(a: &Address, how: &Respelling) -> String {
    let plain = lower(a);
    match how {
        Respelling::Upper => format!("0x{}", plain[2..].to_ascii_uppercase()),
        Respelling::Checksummed => a.to_checksum(None),
        Respelling::PercentEncode(i) => plain
            .char_indices()
            .map(|(j, c)| {
                if j == *i {
                    format!("%{:02X}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Respelling::Pad(pad, true) => format!("{pad}{plain}"),
        Respelling::Pad(pad, false) => format!("{plain}{pad}"),
        Respelling::LookAlike(i, c) => plain
            .char_indices()
            .map(|(j, d)| if j == *i { *c } else { d })
            .collect(),
        Respelling::Truncate(n) => plain[..*n].to_string(),
    }
}

fn request(content_type: Option<&str>, body: Vec<u8>) -> Option<Request> {
    let mut builder = http::Request::builder().method("POST").uri("/1/sessions/x");
    if let Some(ct) = content_type {
        builder = builder.header(CONTENT_TYPE, http::HeaderValue::from_str(ct).ok()?);
    }
    builder.body(bytes::Bytes::from(body)).ok()
}

proptest! {
    #[test]
    fn owner_never_panics(segment in "\\PC{0,50}") {
        let _ = owner(&segment);
    }

    #[test]
    fn a_respelled_owner_is_the_same_owner_or_refused(a in any_address(), how in respelling()) {
        let spelled = respell(&a, &how);
        match owner(&spelled) {
            Ok(parsed) => prop_assert_eq!(parsed, a, "{:?} {}", how, spelled),
            Err(e) => {
                prop_assert!(matches!(e, ApiError::InvalidOwner(_)));
                // The canonical spellings are always accepted.
                prop_assert!(
                    !matches!(how, Respelling::Upper | Respelling::Checksummed),
                    "{:?} refused: {}", how, spelled
                );
            }
        }
    }

    #[test]
    fn chain_ids_are_positive_decimal_numbers(segment in "[0-9+\\- .xa-f]{0,22}|\\PC{0,8}") {
        match chain_id(&segment) {
            Ok(id) => {
                prop_assert!(id > 0);
                prop_assert!(segment.bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(segment.parse::<u64>().ok(), Some(id));
            }
            Err(e) => prop_assert!(matches!(e, ApiError::InvalidChainId)),
        }
    }

    #[test]
    fn every_chain_id_round_trips(id in 1u64..) {
        prop_assert_eq!(chain_id(&id.to_string()).ok(), Some(id));
    }

    /// A token list is parsed in order, and a bad entry is named by its position.
    #[test]
    fn token_lists_keep_order_and_name_the_first_bad_entry(
        tokens in prop::collection::vec(any::<[u8; 20]>().prop_map(Address::from), 0..20),
        bad in prop::option::of(("[0-9a-z ]{0,41}", any::<prop::sample::Index>())),
    ) {
        let mut values: Vec<String> = tokens.iter().map(|t| t.to_checksum(None)).collect();
        match bad {
            None => prop_assert_eq!(addresses("customTokens", &values).ok(), Some(tokens)),
            Some((junk, at)) => {
                let at = at.index(values.len() + 1);
                values.insert(at, format!("0x{junk}"));
                prop_assume!(junk.len() != 40 || junk.contains(' '));
                match addresses("customTokens", &values) {
                    Err(ApiError::InvalidToken(message)) => {
                        let named = format!("customTokens[{at}]");
                        prop_assert!(message.starts_with(&named), "{}", message);
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }

    /// Any body with any content type: a JSON answer of the expected shape, or a clear
    /// error — and the content type is checked before the body is looked at.
    #[test]
    fn json_bodies_are_parsed_or_refused_clearly(
        content_type in prop::option::of(prop_oneof![
            Just("application/json".to_string()),
            Just("Application/JSON; charset=utf-8".to_string()),
            Just(" application/json ;".to_string()),
            "[a-z/+; =-]{0,30}",
        ]),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "\\{\"customTokens\":\\[(\"0x[0-9a-f]{40}\")?\\](,\"spenders\":\\[\\])?\\}".prop_map(String::into_bytes),
            "\\{\"[a-zA-Z]{1,12}\":(1|null|\\[\\]|\"x\")\\}".prop_map(String::into_bytes),
        ],
    ) {
        let Some(req) = request(content_type.as_deref(), body.clone()) else {
            return Ok(());
        };
        let declared = content_type.as_deref().is_some_and(|ct| {
            ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json")
        });
        match json_body::<SessionRequest>(&req) {
            Ok(parsed) => {
                prop_assert!(declared);
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let given = value["customTokens"].as_array().map_or(0, Vec::len);
                prop_assert_eq!(parsed.custom_tokens.len(), given);
            }
            Err(ApiError::UnsupportedMediaType) => prop_assert!(!declared),
            Err(ApiError::InvalidBody(_)) => {
                prop_assert!(declared);
                prop_assert!(serde_json::from_slice::<SessionRequest>(&body).is_err());
            }
            Err(other) => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn oversized_bodies_and_queries_are_refused_before_parsing(
        body_extra in 0usize..4096,
        query_extra in 0usize..4096,
    ) {
        let bounds = crate::settings::ApiSettings::from_vars(&live_balances::config::Vars::default())
            .unwrap()
            .bounds;
        let body = vec![b' '; bounds.max_body_bytes + body_extra];
        let mut req = request(Some("application/json"), body).unwrap();
        *req.uri_mut() = format!("/sse/balances?wallets={}", "x".repeat(bounds.max_query_bytes - 8 + query_extra))
            .parse()
            .unwrap();
        let checked = check_size(&req, &bounds);
        if body_extra > 0 {
            prop_assert!(matches!(checked, Err(ApiError::BodyTooLarge(_))));
        } else if query_extra > 0 {
            prop_assert!(matches!(checked, Err(ApiError::QueryTooLong(_))));
        } else {
            prop_assert!(checked.is_ok());
        }
    }
}
