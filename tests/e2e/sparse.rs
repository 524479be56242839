//! The sparse tracking model end to end: only values that are not zero are stored, lists are
//! followed by reference, and every way a value changes still reaches the stream — a spender's
//! `transferFrom` (the allowance drops with no `Approval`), a listed zero turning non-zero, a
//! value dropping to zero, a list's new version, a contract sending ETH, a token coming into a
//! wallet with discovery on, a listed token turning non-zero without any event.

use std::time::Duration;

use alloy::primitives::{Address, U256, keccak256};
use e2e::list_server::{ListServer, token_list};
use e2e::table_rows::{put_first_read, put_session_without_log};
use e2e::{DEADLINE, Environment, SseClient, fresh_owner};
use live_balances::NATIVE_TOKEN;
use live_balances::domain::address::lower;
use live_balances::domain::model::{BalanceKey, TokenRead};
use local_stack::devnet::Wallet;
use serde_json::{Value, json};

const ETH: u64 = 1_000_000_000_000_000_000;

fn list_body(urls: &[String]) -> String {
    json!({ "tokensListsUrls": urls }).to_string()
}

/// What the table stores for `owner`: each item's key and read.
async fn stored(env: &Environment, owner: Address) -> anyhow::Result<Vec<(BalanceKey, TokenRead)>> {
    let table = env.stack.table().await;
    Ok(table
        .balances(env.chain_id(), &owner)
        .await?
        .into_iter()
        .map(|i| (i.key, i.read))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spenders_transfer_from_lowers_the_allowance_with_the_balance() -> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000_000).await?;
    let owner = Wallet::fresh(&env.stack.rpc_url).await?;
    let spender = Wallet::fresh(&env.stack.rpc_url).await?;
    actor
        .transfer(token, owner.address, U256::from(500))
        .await?;
    owner
        .approve(token, spender.address, U256::from(100))
        .await?;
    env.watch(
        &lower(&owner.address),
        &json!({"customTokens": [lower(&token)], "spenders": [lower(&spender.address)]})
            .to_string(),
    )
    .await?;
    let mut sse = SseClient::connect(env, &lower(&owner.address), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(
        snapshot.data["allowances"][lower(&token)][lower(&spender.address)],
        "100"
    );

    // The settlement case: the spender moves the owner's tokens. TestToken (like
    // OpenZeppelin 5) emits only a Transfer; the allowance drops all the same.
    let receipt = spender
        .transfer_from(token, owner.address, actor.address, U256::from(30))
        .await?;
    let mut balance = None;
    let mut allowance = None;
    while balance.is_none() || allowance.is_none() {
        let e = sse
            .wait_for("the balance and the allowance update", |e| {
                e.data["address"] == lower(&token)
                    && (e.event == "balance_update" || e.event == "allowance_update")
            })
            .await?;
        match e.event.as_str() {
            "balance_update" => balance = Some(e),
            _ => allowance = Some(e),
        }
    }
    let (Some(balance), Some(allowance)) = (balance, allowance) else {
        anyhow::bail!("the loop ends only with both");
    };
    assert_eq!(balance.data["balance"], "470");
    assert_eq!(allowance.data["allowance"], "70");
    assert_eq!(allowance.data["previousAllowance"], "100");
    assert_eq!(allowance.data["spender"], lower(&spender.address));
    // Read together, in the same step as the transfer that caused both.
    assert_eq!(allowance.data["blockNumber"], balance.data["blockNumber"]);
    assert_eq!(
        allowance.data["txHash"],
        receipt.transaction_hash.to_string()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listed_zero_turns_non_zero_and_drops_back_to_zero_storing_only_what_is_held()
-> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let (actor, held) = env.actor_with_token(1_000_000).await?;
    let idle = actor.deploy_token("Idle", "IDLE", 18).await?;
    let owner = Wallet::fresh(&env.stack.rpc_url).await?;
    let server = ListServer::start().await?;
    let url = server.serve(
        "zeros.json",
        token_list(&[
            (chain, lower(&held), "HELD".into(), 6),
            (chain, lower(&idle), "IDLE".into(), 18),
        ]),
    );
    env.watch(&lower(&owner.address), &list_body(&[url]))
        .await?;
    // Nothing but the wallet's ETH is stored: both listed tokens are zero.
    let items = stored(env, owner.address).await?;
    assert_eq!(
        items,
        vec![(
            BalanceKey::Balance {
                token: NATIVE_TOKEN
            },
            TokenRead::Value(U256::from(1000u64) * U256::from(ETH))
        )],
        "only the native balance is not zero"
    );
    let mut sse = SseClient::connect(env, &lower(&owner.address), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(snapshot.data["balances"][lower(&held)], "0");
    assert_eq!(snapshot.data["balances"][lower(&idle)], "0");

    actor.transfer(held, owner.address, U256::from(250)).await?;
    sse.follow_balance(&lower(&held), "0", "250").await?;
    owner.transfer(held, actor.address, U256::from(250)).await?;
    let drop = sse
        .wait_for("the drop to zero", |e| {
            e.event == "balance_update" && e.data["address"] == lower(&held)
        })
        .await?;
    assert_eq!(drop.data["balance"], "0");
    assert_eq!(drop.data["previousBalance"], "250");
    // The zero left behind is a tombstone (its write count goes on); the idle token is still
    // not stored at all.
    let items = stored(env, owner.address).await?;
    assert!(
        items.contains(&(
            BalanceKey::Balance { token: held },
            TokenRead::Value(U256::ZERO)
        )),
        "{items:?}"
    );
    assert!(!items.iter().any(|(k, _)| k.token() == idle), "{items:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_list_version_reaches_sessions_and_open_streams() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let (actor, kept) = env.actor_with_token(1_000_000).await?;
    let dropped = actor.deploy_token("Dropped", "DROP", 6).await?;
    let added = actor.deploy_token("Added", "ADD", 6).await?;
    let owner = fresh_owner();
    actor.transfer(kept, owner, U256::from(3)).await?;
    actor.mint(dropped, owner, U256::from(5)).await?;
    // Held before the list names it: the new version must read it.
    actor.mint(added, owner, U256::from(9)).await?;
    let server = ListServer::start().await?;
    let entry = |token: &Address, symbol: &str| (chain, lower(token), symbol.to_string(), 6u8);
    let url = server.serve(
        "moving.json",
        token_list(&[entry(&kept, "KEPT"), entry(&dropped, "DROP")]),
    );
    env.watch(&lower(&owner), &list_body(std::slice::from_ref(&url)))
        .await?;
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(snapshot.data["balances"][lower(&dropped)], "5");
    assert!(snapshot.data["balances"][lower(&added)].is_null());

    // The list changes; once its TTL has passed, any session request naming it revalidates
    // it (here another wallet's), and every follower tracks the new version.
    server.serve(
        "moving.json",
        token_list(&[entry(&kept, "KEPT"), entry(&added, "ADD")]),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.watch(
        &lower(&fresh_owner()),
        &list_body(std::slice::from_ref(&url)),
    )
    .await?;
    let fresh = sse
        .wait_for("a snapshot of the new version", |e| {
            e.event == "all_balances" && e.data["balances"][lower(&dropped)].is_null()
        })
        .await?;
    assert_eq!(fresh.data["balances"][lower(&kept)], "3");
    // The added token's value arrives once the poller has read it (it was never read before).
    let value = match fresh.data["balances"][lower(&added)].as_str() {
        Some("9") => "9".to_string(),
        _ => sse
            .wait_for("the added token's first value", |e| {
                e.event == "balance_update" && e.data["address"] == lower(&added)
            })
            .await?
            .data["balance"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    assert_eq!(value, "9");
    let (status, session): (u16, Value) = env
        .json_request(|| {
            env.http
                .get(env.url(&format!("/{chain}/sessions/{}", lower(&owner))))
        })
        .await?;
    assert_eq!(status, 200);
    let tokens: Vec<&str> = session["tokens"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(tokens.contains(&lower(&added).as_str()), "{session}");
    assert!(!tokens.contains(&lower(&dropped).as_str()), "{session}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contract_sending_eth_reaches_the_stream() -> anyhow::Result<()> {
    let env = Environment::get();
    let actor = Wallet::fresh(&env.stack.rpc_url).await?;
    let forwarder = actor.deploy_eth_forwarder().await?;
    let (_, token) = env.actor_with_token(1).await?;
    let owner = fresh_owner();
    env.watch(
        &lower(&owner),
        &json!({"customTokens": [lower(&token)]}).to_string(),
    )
    .await?;
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    // No log, and the wallet is neither the transaction's sender nor its recipient: only the
    // block's call trace names it.
    actor
        .forward_eth(forwarder, owner, U256::from(ETH / 4))
        .await?;
    sse.follow_balance(&lower(&NATIVE_TOKEN), "0", &(ETH / 4).to_string())
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_coming_into_a_wallet_with_discovery_on_are_tracked() -> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let (actor, known) = env.actor_with_token(1_000_000).await?;
    let airdrop = actor.deploy_token("Airdrop", "AIR", 4).await?;
    let owner = fresh_owner();
    let quiet = fresh_owner();
    for wallet in [owner, quiet] {
        let discover = wallet == owner;
        env.watch(
            &lower(&wallet),
            &json!({"customTokens": [lower(&known)], "discoverTokens": discover}).to_string(),
        )
        .await?;
    }
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    sse.wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    actor.mint(airdrop, owner, U256::from(77)).await?;
    actor.mint(airdrop, quiet, U256::from(77)).await?;
    let found = sse
        .wait_for("the discovered token", |e| {
            e.event == "balance_update" && e.data["address"] == lower(&airdrop)
        })
        .await?;
    assert_eq!(found.data["balance"], "77");
    assert!(
        found.data["previousBalance"].is_null(),
        "seen for the first time"
    );

    let session = |wallet: Address| async move {
        let (_, session): (u16, Value) = env
            .json_request(|| {
                env.http
                    .get(env.url(&format!("/{chain}/sessions/{}", lower(&wallet))))
            })
            .await?;
        anyhow::Ok(session)
    };
    let with = session(owner).await?;
    assert_eq!(with["discoveredTokens"], json!([lower(&airdrop)]), "{with}");
    assert_eq!(with["metadata"][lower(&airdrop)]["symbol"], "AIR");
    let without = session(quiet).await?;
    assert_eq!(without["discoveredTokens"], json!([]), "{without}");
    // A new stream shows it with the rest, metadata included.
    let mut again = SseClient::connect(env, &lower(&owner), None).await?;
    let snapshot = again
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(snapshot.data["balances"][lower(&airdrop)], "77");
    assert_eq!(snapshot.data["tokens"][lower(&airdrop)]["decimals"], 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listed_token_turning_non_zero_without_an_event_shows_when_a_stream_opens()
-> anyhow::Result<()> {
    let env = Environment::get();
    let chain = env.chain_id();
    let (actor, token) = env.actor_with_token(1).await?;
    let owner = fresh_owner();
    let server = ListServer::start().await?;
    let url = server.serve(
        "silent.json",
        token_list(&[(chain, lower(&token), "SIL".into(), 6)]),
    );
    env.watch(&lower(&owner), &list_body(&[url])).await?;
    drop(actor);
    // A session its writer read in full longer ago than the re-read interval (a fresh one
    // counts as re-read when it is written: a stream opening right after asks for nothing).
    let table = env.stack.table().await;
    let long_ago = live_balances::runtime::clock::unix_now() - 2 * 3_600;
    table
        .client()
        .update_item()
        .table_name(table.name())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(live_balances::storage::keys::session_pk(
                chain,
            )),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(lower(&owner)),
        )
        .update_expression("SET rescan_at = :then")
        .expression_attribute_values(
            ":then",
            aws_sdk_dynamodb::types::AttributeValue::N(long_ago.to_string()),
        )
        .send()
        .await?;
    // Storage written directly: no Transfer, no log of any kind (TestToken keeps balances in
    // its fifth slot: name, symbol, decimals, totalSupply, balanceOf).
    let mut key = [0u8; 64];
    key[12..32].copy_from_slice(owner.as_slice());
    key[63] = 4;
    let slot = keccak256(key);
    env.rpc(
        "anvil_setStorageAt",
        json!([lower(&token), slot.to_string(), format!("0x{:064x}", 4242)]),
    )
    .await?;
    env.mine().await?;
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    if snapshot.data["balances"][lower(&token)] != "4242" {
        // The stream's opening asked the poller to re-read the wallet's whole token set.
        let update = tokio::time::timeout(
            DEADLINE,
            sse.wait_for("the silent value", |e| {
                e.event == "balance_update" && e.data["address"] == lower(&token)
            }),
        )
        .await??;
        assert_eq!(update.data["balance"], "4242");
    }
    Ok(())
}

/// A session stored without its session-log entry (written by something that bypassed the
/// storage module, say) is not invisible until the poller's background pass: the stream that
/// opens on it asks for a re-read, whose entry names a wallet the poller does not watch, and
/// the poller reads that session at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_whose_log_entry_was_lost_is_watched_once_its_stream_opens() -> anyhow::Result<()>
{
    let env = Environment::get();
    let chain = env.chain_id();
    let (actor, token) = env.actor_with_token(1_000).await?;
    let owner = fresh_owner();
    actor.transfer(token, owner, U256::from(500)).await?;
    // The session and its value as the api stores them (revision 1, complete), put straight
    // into the table: no log entry.
    let now = live_balances::runtime::clock::unix_now();
    let block = env.block_number().await?;
    let table = env.stack.table().await;
    put_session_without_log(&table, chain, owner, token, block, now).await?;
    let key = BalanceKey::Balance { token };
    put_first_read(&table, chain, owner, key, U256::from(500), block, now).await?;

    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(snapshot.data["balances"][lower(&token)], "500");
    actor.transfer(token, owner, U256::from(250)).await?;
    sse.follow_balance(&lower(&token), "500", "750").await?;
    Ok(())
}

/// A new wallet's session is watched from the next block: a transfer mined right after its
/// POST reaches the table and its stream. The poller learns of it from the session log — one
/// read of that session — and never lists every session again after its start.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_session_is_watched_from_the_next_block_without_listing_every_session()
-> anyhow::Result<()> {
    let env = Environment::get();
    let (actor, token) = env.actor_with_token(1_000).await?;
    let owner = fresh_owner();
    env.watch(
        &lower(&owner),
        &json!({"customTokens": [lower(&token)]}).to_string(),
    )
    .await?;
    actor.transfer(token, owner, U256::from(300)).await?;
    let table = env.stack.table().await;
    let key = BalanceKey::Balance { token };
    local_stack::stack::wait_for("the transfer in the table", DEADLINE, || async {
        let stored = table
            .balance(env.chain_id(), &owner, &key)
            .await?
            .and_then(|i| i.read.value());
        anyhow::ensure!(stored == Some(U256::from(300)), "stored {stored:?}");
        Ok(())
    })
    .await?;
    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
    let snapshot = sse
        .wait_for("all_balances", |e| e.event == "all_balances")
        .await?;
    assert_eq!(snapshot.data["balances"][lower(&token)], "300");
    assert_eq!(
        env.session_changes(&env.stack.endpoints.poller, "full_listing")
            .await?,
        1,
        "the poller listed every session once, at its start"
    );
    Ok(())
}
