//! Building a wallet's `all_balances` ([`AllBalances`]) from what the table holds: its
//! tracked tokens' stored values (sparse: an absent value is zero), the tokens unreadable on
//! its chain, metadata, and its open orders judged on those values.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use alloy::primitives::{Address, U256};

use super::{AllBalances, OrderStatus};
use crate::domain::address::lower;
use crate::domain::model::{BalanceItem, BalanceKey, Spender, TokenRead};
use crate::domain::order::OrderState;
use crate::domain::permit2::Permit2Allowance;
use crate::domain::token_metadata::TokenMetadata;

/// What a wallet's snapshot is built from.
pub struct WalletView<'a> {
    /// Every tracked token.
    pub tokens: &'a BTreeSet<Address>,
    pub spenders: &'a BTreeSet<Spender>,
    /// Tokens the session names by address: always given in detail.
    pub named: &'a BTreeSet<Address>,
    /// The wallet's stored values (sparse: an absent value is zero).
    pub items: &'a [BalanceItem],
    /// Tokens whose reads fail on this chain for every holder.
    pub unreadable: &'a BTreeSet<Address>,
    pub metadata: &'a dyn Fn(&Address) -> Option<&'a TokenMetadata>,
    /// Whether every token gets its allowances and metadata (a small session), or only the
    /// named and the held ones.
    pub full_detail: bool,
    /// The newest block the wallet's values are known at, whatever the items say.
    pub block: u64,
}

impl fmt::Debug for WalletView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletView")
            .field("tokens", &self.tokens.len())
            .field("items", &self.items.len())
            .field("full_detail", &self.full_detail)
            .finish_non_exhaustive()
    }
}

impl WalletView<'_> {
    /// The stored values by key, and the tokens given in detail.
    fn detail(&self) -> (HashMap<BalanceKey, &TokenRead>, BTreeSet<Address>) {
        let values: HashMap<BalanceKey, &TokenRead> =
            self.items.iter().map(|i| (i.key, &i.read)).collect();
        let detailed = if self.full_detail {
            self.tokens.clone()
        } else {
            let held = self
                .items
                .iter()
                .filter(|i| i.read.value().is_some_and(|v| !v.is_zero()))
                .map(|i| i.key.token());
            self.named
                .iter()
                .copied()
                .chain(held)
                .filter(|t| self.tokens.contains(t))
                .collect()
        };
        (values, detailed)
    }
}

impl AllBalances {
    /// The snapshot of a wallet's tracked tokens: stored values where there are items, zero
    /// elsewhere; stored items of tokens no longer tracked are left out.
    pub fn of_wallet(view: &WalletView<'_>) -> Self {
        let (values, detailed) = view.detail();
        let (erc20, permit2): (Vec<Spender>, Vec<Spender>) = view
            .spenders
            .iter()
            .partition(|s| matches!(s, Spender::Erc20(_)));
        let (erc20, permit2): (Vec<Address>, Vec<Address>) = (
            erc20.iter().map(|s| s.address()).collect(),
            permit2.iter().map(|s| s.address()).collect(),
        );
        let mut snapshot = Self {
            block_number: view
                .items
                .iter()
                .filter(|i| view.tokens.contains(&i.key.token()))
                .map(|i| i.block)
                .max()
                .unwrap_or(0)
                .max(view.block),
            spenders: erc20.iter().map(lower).collect(),
            permit2_spenders: permit2.iter().map(lower).collect(),
            ..Self::default()
        };
        for token in view.tokens {
            let name = lower(token);
            let balance = values.get(&BalanceKey::Balance { token: *token });
            if view.unreadable.contains(token) || matches!(balance, Some(TokenRead::Failed)) {
                snapshot.errors.insert(name, "read_failed".into());
                continue;
            }
            let amount = balance.and_then(|r| r.value()).unwrap_or_default();
            snapshot.balances.insert(name.clone(), amount.to_string());
            if detailed.contains(token)
                && let Some(metadata) = (view.metadata)(token)
            {
                snapshot.tokens.insert(name.clone(), metadata.clone());
            }
            if *token == crate::NATIVE_TOKEN {
                continue;
            }
            for spender in view.spenders {
                let value = match values.get(&spender.key(*token)) {
                    Some(TokenRead::Value(v)) => *v,
                    Some(TokenRead::Failed) => continue,
                    None => U256::ZERO,
                };
                if !detailed.contains(token) && value.is_zero() {
                    continue;
                }
                let who = lower(&spender.address());
                match spender {
                    Spender::Erc20(_) => {
                        snapshot
                            .allowances
                            .entry(name.clone())
                            .or_default()
                            .insert(who, value.to_string());
                    }
                    Spender::Permit2(_) => {
                        snapshot
                            .permit2
                            .entry(name.clone())
                            .or_default()
                            .insert(who, Permit2Allowance::from_word(value).into());
                    }
                }
            }
        }
        snapshot
    }

    /// Adds the wallet's orders open at `now`, each judged on the wallet's stored values
    /// (sparse: an absent value is zero, an unreadable one counts as zero) at the snapshot's
    /// block.
    pub fn with_orders(mut self, orders: &[OrderState], items: &[BalanceItem], now: u64) -> Self {
        let value = |key: &BalanceKey| {
            items
                .iter()
                .find(|i| i.key == *key)
                .and_then(|i| i.read.value())
                .unwrap_or_default()
        };
        self.orders = orders
            .iter()
            .filter(|o| o.order.is_open(now))
            .map(|o| {
                let status = o.order.judge(value);
                OrderStatus::new(&o.order, &status, self.block_number)
            })
            .collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::FeedPosition;
    use crate::wire::sse::SseEvent;

    fn wallet_item(owner: Address, key: BalanceKey, read: TokenRead, block: u64) -> BalanceItem {
        BalanceItem {
            chain_id: 1,
            owner,
            key,
            read,
            block,
            tx_hash: None,
        }
    }

    #[test]
    fn a_sparse_wallet_lists_every_tracked_token_and_details_small_sessions() {
        let owner = Address::repeat_byte(1);
        let held = Address::repeat_byte(2);
        let zero = Address::repeat_byte(3);
        let dead = Address::repeat_byte(4);
        let gone = Address::repeat_byte(5);
        let spender = Address::repeat_byte(9);
        let tokens: BTreeSet<Address> = [held, zero, dead, crate::NATIVE_TOKEN].into();
        let items = [
            wallet_item(
                owner,
                BalanceKey::Balance { token: held },
                TokenRead::Value(U256::from(5)),
                7,
            ),
            // A token no longer tracked (its list dropped it): left out.
            wallet_item(
                owner,
                BalanceKey::Balance { token: gone },
                TokenRead::Value(U256::from(1)),
                9,
            ),
        ];
        let metadata = TokenMetadata::new("Z", "Zero", 6).unwrap();
        let lookup = |_: &Address| Some(&metadata);
        let spenders: BTreeSet<Spender> = [Spender::Erc20(spender)].into();
        let named: BTreeSet<Address> = [crate::NATIVE_TOKEN].into();
        let unreadable: BTreeSet<Address> = [dead].into();
        let view = |full_detail| WalletView {
            tokens: &tokens,
            spenders: &spenders,
            named: &named,
            items: &items,
            unreadable: &unreadable,
            metadata: &lookup,
            full_detail,
            block: 8,
        };
        let full = AllBalances::of_wallet(&view(true));
        assert_eq!(full.balances[&lower(&held)], "5");
        assert_eq!(full.balances[&lower(&zero)], "0", "an absent value is zero");
        assert!(!full.balances.contains_key(&lower(&gone)));
        assert_eq!(full.errors[&lower(&dead)], "read_failed");
        assert_eq!(full.allowances[&lower(&zero)][&lower(&spender)], "0");
        assert!(!full.allowances.contains_key(&lower(&crate::NATIVE_TOKEN)));
        assert!(full.tokens.contains_key(&lower(&zero)));
        assert_eq!(
            full.block_number, 8,
            "the session's read block when items are older"
        );
        assert_eq!(full.spenders, vec![lower(&spender)]);

        // A large session: detail only for named and held tokens.
        let large = AllBalances::of_wallet(&view(false));
        assert_eq!(large.balances, full.balances);
        assert!(!large.allowances.contains_key(&lower(&zero)));
        assert_eq!(large.allowances[&lower(&held)][&lower(&spender)], "0");
        assert!(!large.tokens.contains_key(&lower(&zero)));
        assert!(large.tokens.contains_key(&lower(&held)));
        assert!(large.tokens.contains_key(&lower(&crate::NATIVE_TOKEN)));
    }

    #[test]
    fn snapshot_groups_balances_allowances_and_errors() {
        let owner = Address::repeat_byte(1);
        let token = Address::repeat_byte(2);
        let bad = Address::repeat_byte(4);
        let spender = Address::repeat_byte(3);
        let item = |key, read, block| BalanceItem {
            chain_id: 1,
            owner,
            key,
            read,
            block,
            tx_hash: None,
        };
        let items = [
            item(
                BalanceKey::Balance { token },
                TokenRead::Value(U256::from(5)),
                10,
            ),
            item(
                BalanceKey::Allowance { token, spender },
                TokenRead::Value(U256::from(9)),
                12,
            ),
            item(BalanceKey::Balance { token: bad }, TokenRead::Failed, 11),
        ];
        let usd = TokenMetadata::new("<b>USD</b>", "Dollar", 6).unwrap();
        let metadata = |t: &Address| (*t == token).then_some(&usd);
        let snap = AllBalances::of_wallet(&WalletView {
            tokens: &BTreeSet::from([token, bad]),
            spenders: &BTreeSet::from([Spender::Erc20(spender)]),
            named: &BTreeSet::new(),
            items: &items,
            unreadable: &BTreeSet::new(),
            metadata: &metadata,
            full_detail: true,
            block: 0,
        });
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["balances"][format!("{token:#x}")], "5");
        assert_eq!(
            v["tokens"][format!("{token:#x}")],
            serde_json::json!({"symbol": "<b>USD</b>", "name": "Dollar", "decimals": 6})
        );
        assert_eq!(
            v["allowances"][format!("{token:#x}")][format!("{spender:#x}")],
            "9"
        );
        assert_eq!(v["errors"][format!("{bad:#x}")], "read_failed");
        assert_eq!(v["blockNumber"], 12);
        let framed = SseEvent::AllBalances {
            position: FeedPosition::start(),
            snapshot: snap,
        }
        .encode();
        assert!(framed.starts_with(&format!("event: all_balances\nid: {}\n", "0".repeat(40))));
    }
}
