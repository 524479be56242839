//! Key layout of the one table: every item has string keys `pk` and `sk`. Who writes and who
//! reads each kind: the storage module's docs (the book's `architecture/table.md`).
//!
//! | item          | pk                       | sk                          |
//! |---------------|--------------------------|-----------------------------|
//! | session       | `S#{chain}`              | `{owner}`                   |
//! | balance       | `B#{chain}#{owner}`      | `T#{token}`                 |
//! | allowance     | `B#{chain}#{owner}`      | `A#{token}#{spender}`       |
//! | Permit2 allowance | `B#{chain}#{owner}`  | `P#{token}#{spender}`       |
//! | open order    | `B#{chain}#{owner}`      | `O#{order id}`              |
//! | feed entry    | `F#{chain}#{owner}`      | `{feed position}`           |
//! | chain cursor  | `C#{chain}`              | `CURSOR`                    |
//! | token metadata| `M#{chain}`              | `{token}`                   |
//! | token list    | `L#{chain}#{url hash}`   | `HEAD`, `P#{generation}#{page}` |
//! | sessions signal | `V#{chain}`            | `SESSIONS`                  |
//! | session log   | `Q#{chain}#{bucket ms}`  | `{append ms}#{kind}#{owner or list hash}` |
//! | rate window   | `R#src#{source}`, `R#owner#{chain}#{owner}`, `R#hook#{source}`, `R#read#{source}`, `R#open#{source}`, `R#key#{key id}` | `{window start}` |
//! | token facts   | `K#{chain}`              | `U#{token}`, `R#{token}`, `VERSION` |
//! | chain log     | `G#{chain}#{bucket ms}`  | `{append ms}#{owner}#{feed position}` |
//! | webhook       | `H#{id}`                 | `SUB`                       |
//! | webhook delivered | `H#{id}`             | `D#{owner}` (newest position delivered from its feed) |
//! | webhook parked | `H#{id}`                | `P#{feed position}#{owner}` |
//! | webhook index | `W#{chain}#{owner}`      | `{subscription id}`         |
//! | API key       | `A#KEYS`                 | `{sha256 of the key}`       |
//! | tenant counts | `A#TENANTS`              | `{tenant}`                  |
//! | sealing key   | `A#SEALING`              | `{key id}` (the KMS-wrapped data key) |
//! | stream slot   | `N#src#{source}`, `N#wallet#{chain}#{owner}` | `{slot number}` |
//!
//! Sessions of a chain share a partition so the poller lists them with one query; all values
//! of a wallet share one so a snapshot is one query and their stream records stay in order —
//! its open orders too, so their status changes are ordered with the values they follow.
//! A list's URL is hashed (URLs can be long and contain `#`); its page keys carry the
//! generation zero-padded so one generation's pages are one `begins_with` range, in order.
//! Chain log and session log keys pad their milliseconds to 13 digits: string order is time
//! order. A session log entry's kind is one letter (`s` session, `t` streaming, `r` re-read,
//! `l` list, see `session_log.rs`), its subject a wallet or the keccak of a list's URL.

use alloy::primitives::{Address, keccak256};

use crate::domain::address::lower;
use crate::domain::model::{BalanceKey, FeedPosition};
use crate::domain::order::OrderId;

pub const SESSION_PREFIX: &str = "S#";
pub const BALANCE_PREFIX: &str = "B#";
pub const FEED_PREFIX: &str = "F#";
pub const CURSOR_SK: &str = "CURSOR";
pub const LIST_HEAD_SK: &str = "HEAD";
/// The one item of the sessions signal partition.
pub const SESSIONS_SIGNAL_SK: &str = "SESSIONS";
pub const UNREADABLE_TOKEN_PREFIX: &str = "U#";
pub const SILENT_TOKEN_PREFIX: &str = "R#";
/// The counter item of a chain's token facts.
pub const TOKEN_FACTS_VERSION_SK: &str = "VERSION";
pub const CHAIN_LOG_PREFIX: &str = "G#";
pub const SESSION_LOG_PREFIX: &str = "Q#";
/// Sort-key prefix of order items in a wallet's value partition.
pub const ORDER_SK_PREFIX: &str = "O#";
pub const SUBSCRIPTION_PREFIX: &str = "H#";
/// The subscription item of a webhook's partition.
pub const SUBSCRIPTION_SK: &str = "SUB";
/// Sort-key prefix of a webhook's parked deliveries.
pub const PARKED_PREFIX: &str = "P#";
/// The partition of every API key.
pub const API_KEYS_PK: &str = "A#KEYS";
/// The partition of the tenants' counters (their live webhook subscriptions).
pub const TENANTS_PK: &str = "A#TENANTS";
/// The partition of the wrapped data keys that seal webhook secrets.
pub const SEALING_PK: &str = "A#SEALING";

/// Whose open streams a slot partition counts.
#[derive(Debug, Clone, Copy)]
pub enum StreamSlots<'a> {
    /// Streams open from one source address.
    Source(&'a str),
    /// Streams open on one wallet.
    Wallet(u64, &'a Address),
}

pub fn stream_slots_pk(slots: StreamSlots<'_>) -> String {
    match slots {
        StreamSlots::Source(source) => format!("N#src#{source}"),
        StreamSlots::Wallet(chain_id, owner) => format!("N#wallet#{chain_id}#{}", lower(owner)),
    }
}

pub fn subscription_pk(id: &str) -> String {
    format!("{SUBSCRIPTION_PREFIX}{id}")
}

/// The partition indexing a wallet's webhook subscriptions.
pub fn webhook_wallet_pk(chain_id: u64, owner: &Address) -> String {
    format!("W#{chain_id}#{}", lower(owner))
}

/// What a webhook got delivered from one wallet's feed.
pub fn delivered_sk(owner: &Address) -> String {
    format!("D#{}", lower(owner))
}

pub fn parked_sk(position: &FeedPosition, owner: &Address) -> String {
    format!("{PARKED_PREFIX}{position}#{}", lower(owner))
}

pub fn session_pk(chain_id: u64) -> String {
    format!("{SESSION_PREFIX}{chain_id}")
}

pub fn session_sk(owner: &Address) -> String {
    lower(owner)
}

pub fn balance_pk(chain_id: u64, owner: &Address) -> String {
    format!("{BALANCE_PREFIX}{chain_id}#{}", lower(owner))
}

pub fn balance_sk(key: &BalanceKey) -> String {
    match key {
        BalanceKey::Balance { token } => format!("T#{}", lower(token)),
        BalanceKey::Allowance { token, spender } => {
            format!("A#{}#{}", lower(token), lower(spender))
        }
        BalanceKey::Permit2 { token, spender } => {
            format!("P#{}#{}", lower(token), lower(spender))
        }
    }
}

/// The value a balance partition's sort key names (`None`: not a value's, an order's say).
pub fn parse_balance_sk(sk: &str) -> Option<BalanceKey> {
    use crate::domain::address::parse_address;
    if let Some(token) = sk.strip_prefix("T#") {
        return parse_address(token)
            .ok()
            .map(|token| BalanceKey::Balance { token });
    }
    let pair = |rest: &str| -> Option<(Address, Address)> {
        let (token, spender) = rest.split_once('#')?;
        Some((parse_address(token).ok()?, parse_address(spender).ok()?))
    };
    if let Some(rest) = sk.strip_prefix("P#") {
        let (token, spender) = pair(rest)?;
        return Some(BalanceKey::Permit2 { token, spender });
    }
    let (token, spender) = pair(sk.strip_prefix("A#")?)?;
    Some(BalanceKey::Allowance { token, spender })
}

pub fn order_sk(id: &OrderId) -> String {
    format!("{ORDER_SK_PREFIX}{id}")
}

/// Whether a sort key of a wallet's value partition is an order's.
pub fn is_order_sk(sk: &str) -> bool {
    sk.starts_with(ORDER_SK_PREFIX)
}

pub fn feed_pk(chain_id: u64, owner: &Address) -> String {
    format!("{FEED_PREFIX}{chain_id}#{}", lower(owner))
}

pub fn token_metadata_pk(chain_id: u64) -> String {
    format!("M#{chain_id}")
}

pub fn version_pk(chain_id: u64) -> String {
    format!("V#{chain_id}")
}

/// What a rate window counts: each kind of limited write, and whose.
#[derive(Debug, Clone, Copy)]
pub enum RateWindow<'a> {
    /// Session writes from one source address.
    SessionSource(&'a str),
    /// Session writes for one wallet.
    SessionOwner(u64, &'a Address),
    /// Webhook subscriptions created from one source address.
    WebhookSource(&'a str),
    /// Balance reads that go to the chain, from one source address.
    ChainReadSource(&'a str),
    /// Streams opened from one source address.
    StreamOpenSource(&'a str),
    /// Back-end requests of one API key (by its public id).
    ApiKey(&'a str),
}

pub fn rate_pk(window: RateWindow<'_>) -> String {
    match window {
        RateWindow::SessionSource(source) => format!("R#src#{source}"),
        RateWindow::SessionOwner(chain_id, owner) => format!("R#owner#{chain_id}#{}", lower(owner)),
        RateWindow::WebhookSource(source) => format!("R#hook#{source}"),
        RateWindow::ChainReadSource(source) => format!("R#read#{source}"),
        RateWindow::StreamOpenSource(source) => format!("R#open#{source}"),
        RateWindow::ApiKey(id) => format!("R#key#{id}"),
    }
}

pub fn token_facts_pk(chain_id: u64) -> String {
    format!("K#{chain_id}")
}

pub fn cursor_pk(chain_id: u64) -> String {
    format!("C#{chain_id}")
}

pub fn list_pk(chain_id: u64, url: &str) -> String {
    format!("L#{chain_id}#{}", keccak256(url.as_bytes()))
}

/// The prefix every page of one generation of a list shares.
pub fn list_pages_prefix(generation: u64) -> String {
    format!("P#{generation:020}#")
}

pub fn list_page_sk(generation: u64, page: usize) -> String {
    format!("{}{page:05}", list_pages_prefix(generation))
}

pub fn token_fact_sk(prefix: &str, token: &Address) -> String {
    format!("{prefix}{}", lower(token))
}

pub fn chain_log_pk(chain_id: u64, bucket_start_ms: u64) -> String {
    format!("{CHAIN_LOG_PREFIX}{chain_id}#{bucket_start_ms}")
}

pub fn chain_log_sk(at_ms: u64, owner: &Address, position: &FeedPosition) -> String {
    format!("{}#{}#{position}", chain_log_time(at_ms), lower(owner))
}

pub fn session_log_pk(chain_id: u64, bucket_start_ms: u64) -> String {
    format!("{SESSION_LOG_PREFIX}{chain_id}#{bucket_start_ms}")
}

/// `kind_and_subject`: `{kind}#{owner or list hash}`.
pub fn session_log_sk(at_ms: u64, kind_and_subject: &str) -> String {
    format!("{}#{kind_and_subject}", chain_log_time(at_ms))
}

/// The start of a chain log (and session log) sort key: milliseconds padded to 13 digits, so string order is
/// time order (and a range from a time is a key condition).
pub fn chain_log_time(at_ms: u64) -> String {
    format!("{at_ms:013}")
}

#[cfg(test)]
mod tests {
    /// The partition keys' literal starts (`S#`, `A#KEYS`, `R#src#`) of a Markdown table's
    /// pk column (`column`, 0-based).
    fn partition_starts(table: &str, column: usize) -> std::collections::BTreeSet<String> {
        table
            .lines()
            .map(|line| line.trim_start_matches("//!").trim())
            .filter(|line| {
                line.starts_with('|') && !line.starts_with("|-") && !line.starts_with("| item")
            })
            .filter_map(|line| line.split('|').nth(column + 1).map(str::to_string))
            .flat_map(|cell| {
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(|key| key.split('{').next().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn this_layout_and_the_books_writers_and_readers_name_the_same_items() {
        let here = partition_starts(include_str!("keys.rs"), 1);
        let book = partition_starts(include_str!("../../../docs/src/architecture/table.md"), 1);
        assert!(here.contains("S#") && here.contains("A#KEYS"), "{here:?}");
        assert_eq!(here, book, "keys.rs and docs/src/architecture/table.md");
    }

    use super::*;

    #[test]
    fn keys_are_lowercase_and_distinct_per_kind() {
        let owner = Address::repeat_byte(0xAB);
        let token = Address::repeat_byte(0xCD);
        let spender = Address::repeat_byte(0xEF);
        assert_eq!(balance_pk(1, &owner), format!("B#1#0x{}", "ab".repeat(20)));
        assert_eq!(
            balance_sk(&BalanceKey::Balance { token }),
            format!("T#0x{}", "cd".repeat(20))
        );
        assert_eq!(
            balance_sk(&BalanceKey::Allowance { token, spender }),
            format!("A#0x{}#0x{}", "cd".repeat(20), "ef".repeat(20))
        );
        assert_ne!(feed_pk(1, &owner), balance_pk(1, &owner));
        assert_ne!(session_pk(1), session_pk(10));
        assert_eq!(list_page_sk(7, 3), "P#00000000000000000007#00003");
        for key in [
            BalanceKey::Balance { token },
            BalanceKey::Allowance { token, spender },
        ] {
            assert_eq!(parse_balance_sk(&balance_sk(&key)), Some(key));
        }
        assert_eq!(parse_balance_sk("O#0x12"), None);
        assert_eq!(parse_balance_sk("T#nope"), None);
        assert!(list_page_sk(7, 3).starts_with(&list_pages_prefix(7)));
    }
}
