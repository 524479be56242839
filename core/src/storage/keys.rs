//! Key layout of the one table: every item has string keys `pk` and `sk`.
//!
//! | item          | pk                       | sk                          |
//! |---------------|--------------------------|-----------------------------|
//! | session       | `S#{chain}`              | `{owner}`                   |
//! | balance       | `B#{chain}#{owner}`      | `T#{token}`                 |
//! | allowance     | `B#{chain}#{owner}`      | `A#{token}#{spender}`       |
//! | feed entry    | `F#{chain}#{owner}`      | `{feed position}`           |
//! | chain cursor  | `C#{chain}`              | `CURSOR`                    |
//! | token metadata| `M#{chain}`              | `{token}`                   |
//! | token list    | `L#{chain}#{url hash}`   | `HEAD`, `P#{page}`          |
//! | sessions ver. | `V#{chain}`              | `SESSIONS`                  |
//! | rate window   | `R#{what}#{who}`         | `{window start}`            |
//! | token facts   | `K#{chain}`              | `U#{token}`, `R#{token}`    |
//! | webhook       | `H#{id}`                 | `SUB`, `D#…`, `P#…`         |
//! | webhook index | `W#{chain}#{owner}`      | `{subscription id}`         |
//!
//! Sessions of a chain share a partition so the poller lists them with one query; all values
//! of a wallet share one so a snapshot is one query and their stream records stay in order.

use alloy::primitives::Address;

use crate::address::lower;
use crate::model::BalanceKey;

pub const SESSION_PREFIX: &str = "S#";
pub const BALANCE_PREFIX: &str = "B#";
pub const FEED_PREFIX: &str = "F#";
pub const CURSOR_SK: &str = "CURSOR";

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
    }
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

pub fn rate_pk(key: &str) -> String {
    format!("R#{key}")
}

pub fn token_facts_pk(chain_id: u64) -> String {
    format!("K#{chain_id}")
}

pub fn cursor_pk(chain_id: u64) -> String {
    format!("C#{chain_id}")
}

#[cfg(test)]
mod tests {
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
    }
}
