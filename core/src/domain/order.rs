//! Open orders and their fillability: whether a wallet's balance of the token an order sells,
//! and its allowance to the order's spender, both cover what the order still sells — and when
//! not, which of the two is short and by how much. A spender through Permit2 has two layers of
//! allowance (the token's to Permit2, and Permit2's own, which lapses at its expiration): what
//! it can spend is the smaller. Pure: the fanout, the api and the tests all judge an order by
//! [`Order::judge`].

use std::fmt;

use alloy::primitives::{Address, U256};
use thiserror::Error;

use crate::domain::model::{BalanceKey, Spender};
use crate::domain::permit2::{PERMIT2, Permit2Allowance};

/// Longest order id: a CoW Protocol order UID is 56 bytes, `0x` and 112 hex digits.
pub const ORDER_ID_MAX_LEN: usize = 128;

/// An order's id as its owner's client names it (a CoW order UID, a DEX's own id): 1 to
/// [`ORDER_ID_MAX_LEN`] characters of `A-Z a-z 0-9 _ . : -`, case kept — `0x` hex ids are
/// lowercased so one UID has one spelling.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "order id must be 1 to {ORDER_ID_MAX_LEN} characters of letters, digits, '_', '.', ':' or '-'"
)]
pub struct OrderIdError;

impl OrderId {
    pub fn parse(input: &str) -> Result<Self, OrderIdError> {
        let valid = !input.is_empty()
            && input.len() <= ORDER_ID_MAX_LEN
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if !valid {
            return Err(OrderIdError);
        }
        let hex = input.len() > 2
            && (input.starts_with("0x") || input.starts_with("0X"))
            && input[2..].bytes().all(|b| b.is_ascii_hexdigit());
        Ok(Self(if hex {
            input.to_ascii_lowercase()
        } else {
            input.to_string()
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an open order sells, as its owner's client registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub chain_id: u64,
    pub owner: Address,
    pub id: OrderId,
    pub sell_token: Address,
    /// What the order still sells (its remaining amount).
    pub sell_amount: U256,
    /// Whose allowance the settlement uses (the vault relayer by default), and through what.
    pub spender: Spender,
    /// Unix seconds; past it the order is gone.
    pub valid_to: u64,
}

impl Order {
    /// Whether the order is still open at `now` (Unix seconds).
    pub fn is_open(&self, now: u64) -> bool {
        self.valid_to >= now
    }

    /// The wallet's values the order's fillability is judged on: the sold token's balance,
    /// then the allowances its spender spends through.
    pub fn value_keys(&self) -> Vec<BalanceKey> {
        let token = self.sell_token;
        let mut keys = vec![BalanceKey::Balance { token }];
        if let Spender::Permit2(_) = self.spender {
            keys.push(Spender::Erc20(PERMIT2).key(token));
        }
        keys.push(self.spender.key(token));
        keys
    }

    /// Whether a change of the value under `key` can change this order's fillability.
    pub fn depends_on(&self, key: &BalanceKey) -> bool {
        self.value_keys().contains(key)
    }

    /// The order judged on the wallet's values (`value` of a key the wallet does not hold is
    /// zero).
    pub fn judge(&self, value: impl Fn(&BalanceKey) -> U256) -> Fillability {
        let token = self.sell_token;
        let balance = value(&BalanceKey::Balance { token });
        let allowance = match self.spender {
            Spender::Erc20(_) => value(&self.spender.key(token)),
            Spender::Permit2(_) => {
                let to_permit2 = value(&Spender::Erc20(PERMIT2).key(token));
                let inside = Permit2Allowance::from_word(value(&self.spender.key(token)));
                to_permit2.min(inside.spendable())
            }
        };
        Fillability::of(self.sell_amount, balance, allowance)
    }
}

/// Which of the two values does not cover the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Short {
    Balance,
    Allowance,
    Both,
}

impl Short {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Balance => "balance",
            Self::Allowance => "allowance",
            Self::Both => "both",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "balance" => Some(Self::Balance),
            "allowance" => Some(Self::Allowance),
            "both" => Some(Self::Both),
            _ => None,
        }
    }
}

/// Whether an order can be filled now, and if not, what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fillability {
    /// `None`: fillable.
    pub short: Option<Short>,
    /// How much more balance the order needs (zero when the balance covers it).
    pub balance_shortfall: U256,
    /// How much more allowance the order needs (zero when the allowance covers it).
    pub allowance_shortfall: U256,
}

impl Fillability {
    /// The order selling `amount` judged against the wallet's `balance` and `allowance`.
    pub fn of(amount: U256, balance: U256, allowance: U256) -> Self {
        let balance_shortfall = amount.saturating_sub(balance);
        let allowance_shortfall = amount.saturating_sub(allowance);
        let short = match (balance_shortfall.is_zero(), allowance_shortfall.is_zero()) {
            (true, true) => None,
            (false, true) => Some(Short::Balance),
            (true, false) => Some(Short::Allowance),
            (false, false) => Some(Short::Both),
        };
        Self {
            short,
            balance_shortfall,
            allowance_shortfall,
        }
    }

    pub fn fillable(&self) -> bool {
        self.short.is_none()
    }

    /// Whether going from `self` to `next` is news for the order's watchers: a value crossed
    /// the order's amount (fillable flipped, or the short side changed). A shortfall that only
    /// grows or shrinks is not — the current amounts are in every `all_balances`.
    pub fn crossed(&self, next: &Self) -> bool {
        self.short != next.short
    }
}

/// An order with its fillability as last judged: what the table holds per open order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    pub order: Order,
    pub status: Fillability,
    /// Block of the values the status was judged on.
    pub block: u64,
    /// Writes of the order so far (its registration and each status change), counted by
    /// DynamoDB: orders its feed entries against a snapshot exactly, as a value's version does.
    pub version: u64,
    /// The tenant whose API key registered it: only that tenant's keys see or change it
    /// (`None`: registered before keys, no key's).
    pub tenant: Option<crate::domain::api_key::Tenant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(n: u64) -> U256 {
        U256::from(n)
    }

    #[test]
    fn fillable_when_both_values_cover_the_amount_exactly_or_more() {
        for (balance, allowance) in [(100, 100), (101, 100), (100, u64::MAX)] {
            let f = Fillability::of(u(100), u(balance), u(allowance));
            assert!(f.fillable(), "{balance} {allowance}");
            assert_eq!(f.balance_shortfall, U256::ZERO);
            assert_eq!(f.allowance_shortfall, U256::ZERO);
        }
        assert!(Fillability::of(U256::ZERO, U256::ZERO, U256::ZERO).fillable());
    }

    #[test]
    fn says_which_value_is_short_and_by_how_much() {
        let f = Fillability::of(u(100), u(60), u(500));
        assert_eq!(
            (f.short, f.balance_shortfall),
            (Some(Short::Balance), u(40))
        );
        assert_eq!(f.allowance_shortfall, U256::ZERO);
        let f = Fillability::of(u(100), u(100), u(99));
        assert_eq!(
            (f.short, f.allowance_shortfall),
            (Some(Short::Allowance), u(1))
        );
        let f = Fillability::of(u(100), U256::ZERO, u(30));
        assert_eq!(f.short, Some(Short::Both));
        assert_eq!(
            (f.balance_shortfall, f.allowance_shortfall),
            (u(100), u(70))
        );
        assert!(!f.fillable());
        // The largest amounts do not overflow.
        let f = Fillability::of(U256::MAX, U256::ZERO, U256::MAX);
        assert_eq!(f.balance_shortfall, U256::MAX);
    }

    #[test]
    fn only_a_crossing_is_news() {
        let fillable = Fillability::of(u(100), u(200), u(200));
        let still = Fillability::of(u(100), u(150), u(100));
        let short = Fillability::of(u(100), u(50), u(200));
        let shorter = Fillability::of(u(100), u(10), u(200));
        let both = Fillability::of(u(100), u(10), u(0));
        assert!(!fillable.crossed(&still));
        assert!(fillable.crossed(&short));
        assert!(short.crossed(&fillable));
        assert!(!short.crossed(&shorter));
        assert!(short.crossed(&both));
    }

    #[test]
    fn order_ids_are_bounded_plain_text_and_hex_has_one_spelling() {
        assert_eq!(OrderId::parse("0xABcd12").unwrap().as_str(), "0xabcd12");
        assert_eq!(
            OrderId::parse("Order-7.b:1_x").unwrap().as_str(),
            "Order-7.b:1_x"
        );
        let uid = format!("0x{}", "Ab".repeat(56));
        assert_eq!(
            OrderId::parse(&uid).unwrap().as_str(),
            uid.to_ascii_lowercase()
        );
        for bad in [
            "",
            "a#b",
            "a b",
            "a/b",
            "é",
            "x\n",
            &"a".repeat(ORDER_ID_MAX_LEN + 1),
        ] {
            assert_eq!(OrderId::parse(bad), Err(OrderIdError), "{bad:?}");
        }
        assert!(OrderId::parse(&"a".repeat(ORDER_ID_MAX_LEN)).is_ok());
    }

    #[test]
    fn an_order_depends_on_its_token_balance_and_its_spenders_allowance_only() {
        let order = Order {
            chain_id: 1,
            owner: Address::repeat_byte(1),
            id: OrderId::parse("o1").unwrap(),
            sell_token: Address::repeat_byte(2),
            sell_amount: u(5),
            spender: Spender::Erc20(Address::repeat_byte(3)),
            valid_to: 100,
        };
        let token = Address::repeat_byte(2);
        let allowance = |spender| BalanceKey::Allowance { token, spender };
        assert!(order.depends_on(&BalanceKey::Balance { token }));
        assert!(order.depends_on(&allowance(Address::repeat_byte(3))));
        assert!(!order.depends_on(&allowance(Address::repeat_byte(4))));
        assert!(!order.depends_on(&allowance(PERMIT2)));
        assert!(!order.depends_on(&BalanceKey::Balance {
            token: Address::repeat_byte(9)
        }));
        assert!(order.is_open(100));
        assert!(!order.is_open(101));
    }

    #[test]
    fn a_permit2_order_needs_the_tokens_allowance_to_permit2_and_permit2s_unexpired_amount() {
        let token = Address::repeat_byte(2);
        let router = Address::repeat_byte(3);
        let order = Order {
            chain_id: 1,
            owner: Address::repeat_byte(1),
            id: OrderId::parse("o1").unwrap(),
            sell_token: token,
            sell_amount: u(100),
            spender: Spender::Permit2(router),
            valid_to: 100,
        };
        let to_permit2 = BalanceKey::Allowance {
            token,
            spender: PERMIT2,
        };
        let inside = BalanceKey::Permit2 {
            token,
            spender: router,
        };
        assert!(order.depends_on(&to_permit2));
        assert!(order.depends_on(&inside));
        assert!(!order.depends_on(&BalanceKey::Allowance {
            token,
            spender: router
        }));
        let word = |amount: u64, expired: bool| {
            Permit2Allowance {
                amount: u(amount),
                expiration: 50,
                nonce: 1,
                expired,
            }
            .word()
        };
        let judge = |erc20: u64, permit2: U256| {
            order.judge(|key| match key {
                BalanceKey::Balance { .. } => u(1_000),
                k if *k == to_permit2 => u(erc20),
                k if *k == inside => permit2,
                _ => U256::ZERO,
            })
        };
        assert!(judge(100, word(100, false)).fillable());
        let low_erc20 = judge(99, word(500, false));
        assert_eq!(
            (low_erc20.short, low_erc20.allowance_shortfall),
            (Some(Short::Allowance), u(1))
        );
        let low_inside = judge(500, word(40, false));
        assert_eq!(low_inside.allowance_shortfall, u(60));
        let expired = judge(500, word(500, true));
        assert_eq!(
            (expired.short, expired.allowance_shortfall),
            (Some(Short::Allowance), u(100)),
            "an expired Permit2 amount spends nothing"
        );
        assert!(
            !judge(500, U256::ZERO).fillable(),
            "never approved inside Permit2"
        );
    }
}
