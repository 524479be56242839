//! Initial snapshot: a session with 5,000 tokens, POSTed, then `all_balances` over SSE.
//!
//! The tokens are the bench's real test tokens (the wallet holds some of each) plus random
//! addresses up to 5,000 (with the native currency): Multicall3 with `allowFailure` reads
//! those as failed, as it would a non-standard token, and they are stored and shown as errors.

use alloy::primitives::Address;
use e2e::{SseClient, fresh_owner};
use live_balances::address::lower;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::context::Bench;
use crate::proxy::{Counts, since};
use crate::stats::summary_ms;

/// Tokens in the session, the native currency and the chain's WETH (always tracked) included.
pub const SESSION_TOKENS: usize = 5000;

/// Returns the report and the owners whose sessions it created.
pub async fn run(
    bench: &Bench,
    real_tokens: &[Address],
    runs: usize,
) -> anyhow::Result<(Value, Vec<Address>)> {
    let mut tokens: Vec<Address> = real_tokens.to_vec();
    while tokens.len() < SESSION_TOKENS - 2 {
        tokens.push(fresh_owner());
    }
    let list: Vec<String> = tokens.iter().map(lower).collect();
    let body = serde_json::to_string(&json!({ "customTokens": list }))?;
    let (mut post_ms, mut sse_ms, mut total_ms) = (vec![], vec![], vec![]);
    let mut owners = vec![];
    let (mut post_db, mut post_rpc) = (Counts::new(), Counts::new());
    for _ in 0..runs {
        let owner = fresh_owner();
        owners.push(owner);
        // The wallet holds some of every real token: those values are non-zero.
        bench.automine(false).await?;
        for token in real_tokens {
            bench.send_transfer(*token, owner, 1_000).await?;
        }
        bench.mine().await?;
        bench.automine(true).await?;
        let (db0, rpc0) = (bench.db.counts(), bench.rpc.counts());
        let start = Instant::now();
        bench.env.watch(&lower(&owner), &body).await?;
        let posted = Instant::now();
        post_db = since(&bench.db.counts(), &db0);
        post_rpc = since(&bench.rpc.counts(), &rpc0);
        let mut sse = SseClient::connect(bench.env, &lower(&owner), None).await?;
        let snapshot = sse
            .wait_for("all_balances", |e| e.event == "all_balances")
            .await?;
        let done = Instant::now();
        let data = &snapshot.data;
        let shown = data["balances"].as_object().map_or(0, |m| m.len())
            + data["errors"].as_object().map_or(0, |m| m.len());
        anyhow::ensure!(
            shown == SESSION_TOKENS,
            "all_balances shows {shown} tokens, not {SESSION_TOKENS}"
        );
        let held = real_tokens
            .iter()
            .filter(|t| data["balances"][lower(t)] == "1000")
            .count();
        anyhow::ensure!(held == real_tokens.len(), "only {held} real balances shown");
        post_ms.push((posted - start).as_secs_f64() * 1000.0);
        sse_ms.push((done - posted).as_secs_f64() * 1000.0);
        total_ms.push((done - start).as_secs_f64() * 1000.0);
    }
    let total = summary_ms(&total_ms);
    let met = total["p50_ms"].as_f64().is_some_and(|v| v <= 1500.0);
    let report = json!({
        "tokens": SESSION_TOKENS,
        "real_tokens": real_tokens.len(),
        "random_addresses": SESSION_TOKENS - 1 - real_tokens.len(),
        "post_to_response": summary_ms(&post_ms),
        "sse_connect_to_all_balances": summary_ms(&sse_ms),
        "post_to_all_balances": total,
        "last_post_table_requests": post_db,
        "last_post_rpc_requests": post_rpc,
        "target_ms": 1500,
        "met": met,
    });
    Ok((report, owners))
}
