//! One owner's path written with other case, padding or encoding reaches that same owner's
//! session — on the session and SSE routes — or is refused; never another owner's.

use alloy::primitives::Address;
use e2e::{Environment, SseClient, fresh_owner};
use live_balances::domain::address::lower;

/// `owner` spelled every way a client or an attacker might, with whether it must be accepted.
fn spellings(owner: &Address) -> Vec<(String, bool)> {
    let plain = lower(owner);
    let hex = &plain[2..];
    let mut flipped = owner.to_checksum(None).into_bytes();
    // One letter's case flipped: a checksum typo (unless the address has no letters).
    if let Some(i) = flipped.iter().skip(2).position(u8::is_ascii_alphabetic) {
        flipped[i + 2] ^= 0x20;
    }
    vec![
        (plain.clone(), true),
        (format!("0x{}", hex.to_ascii_uppercase()), true),
        (format!("0X{hex}"), true),
        (owner.to_checksum(None), true),
        (format!("{plain}?x=1"), true),
        (String::from_utf8(flipped).unwrap_or_default(), false),
        (format!("%20{plain}"), false),
        (format!("{plain}%20"), false),
        (format!("{plain}%00"), false),
        (format!("%30x{hex}"), false),
        (format!("0x%{:02X}{}", hex.as_bytes()[0], &hex[1..]), false),
        (format!("%2530x{hex}"), false),
        (format!("0{plain}"), false),
        (format!("{plain}0"), false),
        (plain[..41].to_string(), false),
        (format!("{plain}+"), false),
        (format!("0x\u{ff10}{}", &hex[1..]), false),
        (format!("{plain}/x"), false),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn respelled_owner_paths_reach_the_same_session_or_are_refused() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let (_, token) = env.actor_with_token(1).await?;
    let (_, other_token) = env.actor_with_token(1).await?;
    let owner = fresh_owner();
    // A neighbour one hex digit away, with a session of its own: the one a sloppy parser
    // (truncation, look-alikes) could land on.
    let mut neighbour_bytes = owner.0;
    neighbour_bytes[19] ^= 0x01;
    let neighbour = Address::from(neighbour_bytes);
    env.watch(
        &lower(&owner),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&token)),
    )
    .await?;
    env.watch(
        &lower(&neighbour),
        &format!(r#"{{"customTokens":["{}"]}}"#, lower(&other_token)),
    )
    .await?;

    let mut answers = vec![];
    for (spelled, must_accept) in spellings(&owner) {
        let url = env.url(&format!("/{chain}/sessions/{spelled}"));
        let (status, body) = env.json_request(|| env.http.get(&url)).await?;
        answers.push(status);
        if status == 200 {
            assert_eq!(body["owner"], lower(&owner), "{spelled} reached {body}");
            let tokens = body["tokens"].as_array().cloned().unwrap_or_default();
            assert!(tokens.contains(&lower(&token).into()), "{spelled}: {body}");
            assert!(
                !tokens.contains(&lower(&other_token).into()),
                "{spelled}: {body}"
            );
        } else {
            assert!((400..500).contains(&status), "{spelled}: {status} {body}");
            assert!(!must_accept, "{spelled} refused: {status} {body}");
        }

        match SseClient::connect(env, &spelled, None).await {
            Ok(mut sse) => {
                let snapshot = sse
                    .wait_for("all_balances", |e| e.event == "all_balances")
                    .await?;
                let balances = &snapshot.data["balances"];
                assert!(
                    balances.get(lower(&token)).is_some()
                        && balances.get(lower(&other_token)).is_none(),
                    "{spelled} streamed another wallet: {balances}"
                );
            }
            Err(e) => assert!(!must_accept, "{spelled} stream refused: {e:#}"),
        }
    }
    eprintln!("session route answers per spelling: {answers:?}");
    Ok(())
}
