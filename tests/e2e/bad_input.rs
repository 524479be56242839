//! Bad input to the two routes, through both transports: a 4xx with a JSON
//! `{"code","message"}` body, and nothing stored.

use e2e::{Environment, Transport, fresh_owner};
use live_balances::domain::address::lower;

struct Case {
    name: &'static str,
    chain: String,
    owner: String,
    content_type: &'static str,
    body: String,
    status: u16,
    code: &'static str,
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_session_requests_get_a_json_4xx_and_store_nothing() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id().to_string();
    let owner = fresh_owner();
    let token = lower(&fresh_owner());
    let good_body = format!(r#"{{"customTokens":["{token}"]}}"#);
    let json = "application/json";
    let case = |name, chain: &str, owner: &str, content_type, body: &str, status, code| Case {
        name,
        chain: chain.into(),
        owner: owner.into(),
        content_type,
        body: body.into(),
        status,
        code,
    };
    let o = lower(&owner);
    let cases = [
        case(
            "malformed owner",
            &chain,
            "0x1234",
            json,
            &good_body,
            400,
            "invalid_owner",
        ),
        case(
            "owner not hex",
            &chain,
            "0xzz97970c51812dc3a010c7d01b50e0d17dc79c8",
            json,
            &good_body,
            400,
            "invalid_owner",
        ),
        case(
            "owner bad checksum",
            &chain,
            "0x70997970c51812dc3A010C7d01b50e0d17dc79C8",
            json,
            &good_body,
            400,
            "invalid_owner",
        ),
        case(
            "zero owner",
            &chain,
            "0x0000000000000000000000000000000000000000",
            json,
            &good_body,
            400,
            "invalid_owner",
        ),
        case(
            "chain not a number",
            "mainnet",
            &o,
            json,
            &good_body,
            400,
            "invalid_chain_id",
        ),
        case(
            "unknown chain",
            "99999",
            &o,
            json,
            &good_body,
            404,
            "unknown_chain",
        ),
        case(
            "malformed JSON",
            &chain,
            &o,
            json,
            "{\"customTokens\": [",
            400,
            "invalid_body",
        ),
        case(
            "unknown field",
            &chain,
            &o,
            json,
            &format!(r#"{{"customTokenz":["{token}"]}}"#),
            400,
            "invalid_body",
        ),
        case(
            "wrong type",
            &chain,
            &o,
            json,
            r#"{"customTokens":"0x00"}"#,
            400,
            "invalid_body",
        ),
        case(
            "empty token set",
            &chain,
            &o,
            json,
            r#"{"customTokens":[]}"#,
            400,
            "empty_token_set",
        ),
        case("no body", &chain, &o, json, "", 400, "invalid_body"),
        case(
            "malformed token",
            &chain,
            &o,
            json,
            r#"{"customTokens":["0x12"]}"#,
            400,
            "invalid_token",
        ),
        case(
            "wrong content type",
            &chain,
            &o,
            "text/plain",
            &good_body,
            415,
            "unsupported_media_type",
        ),
        case(
            "body too large",
            &chain,
            &o,
            json,
            &format!(r#"{{"customTokens":["{}"]}}"#, "a".repeat(300_000)),
            413,
            "body_too_large",
        ),
    ];
    for (c, transport) in cases.iter().flat_map(|c| Transport::BOTH.map(|t| (c, t))) {
        let url = env.url_via(transport, &format!("/{}/sessions/{}", c.chain, c.owner));
        let (status, body) = env
            .json_request(|| {
                env.http
                    .post(&url)
                    .header("content-type", c.content_type)
                    .body(c.body.clone())
            })
            .await?;
        assert_eq!(status, c.status, "{} ({transport:?}): {body}", c.name);
        assert_eq!(body["code"], c.code, "{} ({transport:?}): {body}", c.name);
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{} ({transport:?}): {body}",
            c.name
        );
    }
    // Nothing was stored for the owner all the valid-owner cases used.
    let table = env.stack.table().await;
    assert_eq!(table.session(env.chain_id(), &owner).await?, None);
    assert!(table.balances(env.chain_id(), &owner).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_stream_requests_get_a_json_4xx() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let no_session = lower(&fresh_owner());
    let cases: [(&str, String, Option<&str>, u16, &str); 4] = [
        (
            "malformed owner",
            format!("/sse/{chain}/balances/0x12"),
            None,
            400,
            "invalid_owner",
        ),
        (
            "unknown chain",
            format!("/sse/99999/balances/{no_session}"),
            None,
            404,
            "unknown_chain",
        ),
        (
            "no session",
            format!("/sse/{chain}/balances/{no_session}"),
            None,
            404,
            "session_not_found",
        ),
        ("unknown route", "/nope".to_string(), None, 404, "not_found"),
    ];
    for ((name, path, last_id, want_status, want_code), transport) in cases
        .into_iter()
        .flat_map(|c| Transport::BOTH.map(|t| (c.clone(), t)))
    {
        let url = env.url_via(transport, &path);
        let (status, body) = env
            .json_request(|| {
                let request = env.http.get(&url);
                match last_id {
                    Some(id) => request.header("last-event-id", id),
                    None => request,
                }
            })
            .await?;
        assert_eq!(status, want_status, "{name} ({transport:?}): {body}");
        assert_eq!(body["code"], want_code, "{name} ({transport:?}): {body}");
    }
    Ok(())
}
