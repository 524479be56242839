//! Read planning: which (owner, value) pairs a block range forces the poller to re-read.
//!
//! Values are always re-read on chain at the range's last block, never computed from event
//! amounts; logs only say *what* to re-read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alloy::primitives::{Address, B256, Log as PrimitiveLog};
use alloy::sol_types::SolEvent;

use crate::NATIVE_TOKEN;
use crate::abi::{IERC20, IWETH};
use crate::model::{BalanceKey, Session};

/// What one wallet's sessions ask the poller to watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    pub tokens: BTreeSet<Address>,
    pub spenders: BTreeSet<Address>,
}

impl Watch {
    /// Every value of this wallet: each token's balance, each (token, spender) allowance
    /// (not for the native pseudo-token, which has no allowance).
    pub fn keys(&self) -> impl Iterator<Item = BalanceKey> + '_ {
        let balances = self
            .tokens
            .iter()
            .map(|&token| BalanceKey::Balance { token });
        let allowances = self
            .tokens
            .iter()
            .filter(|t| **t != NATIVE_TOKEN)
            .flat_map(|&token| {
                self.spenders
                    .iter()
                    .map(move |&spender| BalanceKey::Allowance { token, spender })
            });
        balances.chain(allowances)
    }
}

/// Every watched wallet of one chain.
pub type Watchlist = HashMap<Address, Watch>;

/// Builds the watchlist of a chain from its live sessions.
pub fn watchlist<'a>(sessions: impl IntoIterator<Item = &'a Session>) -> Watchlist {
    let mut list = Watchlist::new();
    for s in sessions {
        let watch = list.entry(s.owner).or_default();
        watch.tokens.extend(s.tokens.iter().copied());
        watch.tokens.insert(NATIVE_TOKEN);
        watch.spenders.extend(s.spenders.iter().copied());
    }
    list
}

/// A log's meaning for balances: this owner's value under this key may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    pub owner: Address,
    pub key: BalanceKey,
    pub tx_hash: Option<B256>,
}

/// What a log says may have changed. Logs that only share a signature (ERC-721 `Transfer` has
/// a fourth indexed topic) or cannot be decoded say nothing.
pub fn touches(log: &PrimitiveLog, tx_hash: Option<B256>) -> Vec<Touch> {
    let token = log.address;
    let topics = log.topics();
    let balance = |owner| Touch {
        owner,
        key: BalanceKey::Balance { token },
        tx_hash,
    };
    match topics.first() {
        Some(&IERC20::Transfer::SIGNATURE_HASH) if topics.len() == 3 => {
            match IERC20::Transfer::decode_log(log) {
                Ok(t) => vec![balance(t.from), balance(t.to)],
                Err(_) => vec![],
            }
        }
        Some(&IERC20::Approval::SIGNATURE_HASH) if topics.len() == 3 => {
            match IERC20::Approval::decode_log(log) {
                Ok(a) => vec![Touch {
                    owner: a.owner,
                    key: BalanceKey::Allowance {
                        token,
                        spender: a.spender,
                    },
                    tx_hash,
                }],
                Err(_) => vec![],
            }
        }
        Some(&IWETH::Deposit::SIGNATURE_HASH) if topics.len() == 2 => {
            IWETH::Deposit::decode_log(log)
                .map(|d| vec![balance(d.dst)])
                .unwrap_or_default()
        }
        Some(&IWETH::Withdrawal::SIGNATURE_HASH) if topics.len() == 2 => {
            IWETH::Withdrawal::decode_log(log)
                .map(|w| vec![balance(w.src)])
                .unwrap_or_default()
        }
        _ => vec![],
    }
}

/// Event signatures whose first indexed topic is the owner (asked in one `eth_getLogs`).
pub fn owner_in_topic1_signatures() -> Vec<B256> {
    vec![
        IERC20::Transfer::SIGNATURE_HASH,
        IERC20::Approval::SIGNATURE_HASH,
        IWETH::Deposit::SIGNATURE_HASH,
        IWETH::Withdrawal::SIGNATURE_HASH,
    ]
}

/// The values to re-read at one block, each with the last transaction known to touch it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    pub reads: BTreeMap<(Address, BalanceKey), Option<B256>>,
}

impl ReadPlan {
    /// Keeps only touches of watched values; a later touch's tx hash wins.
    pub fn from_touches(touched: impl IntoIterator<Item = Touch>, watchlist: &Watchlist) -> Self {
        let mut plan = Self::default();
        for t in touched {
            let Some(watch) = watchlist.get(&t.owner) else {
                continue;
            };
            let watched = match t.key {
                BalanceKey::Balance { token } => watch.tokens.contains(&token),
                BalanceKey::Allowance { token, spender } => {
                    watch.tokens.contains(&token) && watch.spenders.contains(&spender)
                }
            };
            if watched {
                plan.reads.insert((t.owner, t.key), t.tx_hash);
            }
        }
        plan
    }

    /// Adds a value with no known transaction (native balances, sweeps, new sessions).
    pub fn add(&mut self, owner: Address, key: BalanceKey) {
        self.reads.entry((owner, key)).or_insert(None);
    }

    /// Adds the native balance of every watched owner: native transfers leave no log.
    pub fn add_native_balances(&mut self, watchlist: &Watchlist) {
        for owner in watchlist.keys() {
            self.add(
                *owner,
                BalanceKey::Balance {
                    token: NATIVE_TOKEN,
                },
            );
        }
    }

    /// Adds every watched value (reorg recovery, sweeps).
    pub fn add_everything(&mut self, watchlist: &Watchlist) {
        for (owner, watch) in watchlist {
            for key in watch.keys() {
                self.add(*owner, key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.reads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reads.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{LogData, U256};
    use alloy::sol_types::SolEvent;

    const TOKEN: Address = Address::repeat_byte(0x70);
    const ALICE: Address = Address::repeat_byte(0xa1);
    const BOB: Address = Address::repeat_byte(0xb0);
    const SPENDER: Address = Address::repeat_byte(0x5e);

    fn log_of(event: &impl SolEvent) -> PrimitiveLog {
        PrimitiveLog {
            address: TOKEN,
            data: event.encode_log_data(),
        }
    }

    fn watch_alice() -> Watchlist {
        let mut w = Watchlist::new();
        w.insert(
            ALICE,
            Watch {
                tokens: [TOKEN, NATIVE_TOKEN].into(),
                spenders: [SPENDER].into(),
            },
        );
        w
    }

    #[test]
    fn transfer_touches_both_sides_and_plan_keeps_watched_ones() {
        let log = log_of(&IERC20::Transfer {
            from: ALICE,
            to: BOB,
            value: U256::from(5),
        });
        let t = touches(&log, Some(B256::repeat_byte(1)));
        assert_eq!(t.len(), 2);
        let plan = ReadPlan::from_touches(t, &watch_alice());
        assert_eq!(plan.len(), 1);
        assert_eq!(
            plan.reads
                .get(&(ALICE, BalanceKey::Balance { token: TOKEN })),
            Some(&Some(B256::repeat_byte(1)))
        );
    }

    #[test]
    fn approval_to_unwatched_spender_is_ignored() {
        let ok = log_of(&IERC20::Approval {
            owner: ALICE,
            spender: SPENDER,
            value: U256::MAX,
        });
        let other = log_of(&IERC20::Approval {
            owner: ALICE,
            spender: BOB,
            value: U256::MAX,
        });
        let plan = ReadPlan::from_touches(
            touches(&ok, None).into_iter().chain(touches(&other, None)),
            &watch_alice(),
        );
        assert_eq!(plan.len(), 1);
        assert!(plan.reads.contains_key(&(
            ALICE,
            BalanceKey::Allowance {
                token: TOKEN,
                spender: SPENDER
            }
        )));
    }

    #[test]
    fn weth_deposit_and_withdrawal_touch_the_owner() {
        let d = log_of(&IWETH::Deposit {
            dst: ALICE,
            wad: U256::from(1),
        });
        let w = log_of(&IWETH::Withdrawal {
            src: ALICE,
            wad: U256::from(1),
        });
        assert_eq!(touches(&d, None)[0].owner, ALICE);
        assert_eq!(touches(&w, None)[0].owner, ALICE);
    }

    #[test]
    fn erc721_transfer_with_four_topics_is_ignored() {
        let mut topics = log_of(&IERC20::Transfer {
            from: ALICE,
            to: BOB,
            value: U256::ZERO,
        })
        .data
        .topics()
        .to_vec();
        topics.push(B256::with_last_byte(7));
        let nft = PrimitiveLog {
            address: TOKEN,
            data: LogData::new_unchecked(topics, Default::default()),
        };
        assert!(touches(&nft, None).is_empty());
    }

    #[test]
    fn malformed_data_is_ignored() {
        let mut log = log_of(&IERC20::Transfer {
            from: ALICE,
            to: BOB,
            value: U256::ZERO,
        });
        log.data = LogData::new_unchecked(log.data.topics().to_vec(), vec![1, 2, 3].into());
        assert!(touches(&log, None).is_empty());
    }

    #[test]
    fn native_balances_and_everything() {
        let mut plan = ReadPlan::default();
        plan.add_native_balances(&watch_alice());
        assert_eq!(plan.len(), 1);
        plan.add_everything(&watch_alice());
        // native + token balance + token allowance for the one spender
        assert_eq!(plan.len(), 3);
    }

    #[test]
    fn watchlist_merges_sessions_and_always_tracks_native() {
        let s = Session {
            chain_id: 1,
            owner: ALICE,
            tokens: [TOKEN].into(),
            spenders: [SPENDER].into(),
            token_lists: Default::default(),
            created_at: 0,
            expires_at: 10,
        };
        let w = watchlist([&s]);
        assert!(w[&ALICE].tokens.contains(&NATIVE_TOKEN));
        assert_eq!(w[&ALICE].keys().count(), 3);
    }
}
