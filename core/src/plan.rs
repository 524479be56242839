//! Read planning: which (owner, value) pairs a block range forces the poller to re-read.
//!
//! Values are always re-read on chain at the range's last block, never computed from event
//! amounts; logs only say *what* to re-read.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, Log as PrimitiveLog};
use alloy::sol_types::SolEvent;

use crate::abi::{IERC20, IWETH};
use crate::model::BalanceKey;

/// A log's meaning for balances: this owner's value under this key may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    pub owner: Address,
    pub key: BalanceKey,
    pub tx_hash: Option<B256>,
    /// The owner sent tokens: a spender's `transferFrom` lowers its allowance with no
    /// `Approval`, so the owner's allowances of the token may have changed too.
    pub sent: bool,
}

/// What a log says may have changed. Logs that only share a signature (ERC-721 `Transfer` has
/// a fourth indexed topic) or cannot be decoded say nothing.
pub fn touches(log: &PrimitiveLog, tx_hash: Option<B256>) -> Vec<Touch> {
    let token = log.address;
    let topics = log.topics();
    let balance = |owner, sent| Touch {
        owner,
        key: BalanceKey::Balance { token },
        tx_hash,
        sent,
    };
    match topics.first() {
        Some(&IERC20::Transfer::SIGNATURE_HASH) if topics.len() == 3 => {
            match IERC20::Transfer::decode_log(log) {
                Ok(t) => vec![balance(t.from, true), balance(t.to, false)],
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
                    sent: false,
                }],
                Err(_) => vec![],
            }
        }
        Some(&IWETH::Deposit::SIGNATURE_HASH) if topics.len() == 2 => {
            IWETH::Deposit::decode_log(log)
                .map(|d| vec![balance(d.dst, false)])
                .unwrap_or_default()
        }
        Some(&IWETH::Withdrawal::SIGNATURE_HASH) if topics.len() == 2 => {
            IWETH::Withdrawal::decode_log(log)
                .map(|w| vec![balance(w.src, false)])
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
    /// Adds a value with no known transaction (native balances, sweeps, new sessions).
    pub fn add(&mut self, owner: Address, key: BalanceKey) {
        self.reads.entry((owner, key)).or_insert(None);
    }

    /// Adds a value a log touched; a later touch's tx hash wins.
    pub fn add_touched(&mut self, owner: Address, key: BalanceKey, tx_hash: Option<B256>) {
        let entry = self.reads.entry((owner, key)).or_insert(None);
        if tx_hash.is_some() {
            *entry = tx_hash;
        }
    }

    /// Adds every read of `other`.
    pub fn merge(&mut self, other: ReadPlan) {
        for ((owner, key), tx_hash) in other.reads {
            self.add_touched(owner, key, tx_hash);
        }
    }

    pub fn contains(&self, owner: &Address, key: &BalanceKey) -> bool {
        self.reads.contains_key(&(*owner, *key))
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

    #[test]
    fn transfer_touches_both_sides_and_marks_the_sender() {
        let log = log_of(&IERC20::Transfer {
            from: ALICE,
            to: BOB,
            value: U256::from(5),
        });
        let t = touches(&log, Some(B256::repeat_byte(1)));
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].owner, t[0].sent), (ALICE, true));
        assert_eq!((t[1].owner, t[1].sent), (BOB, false));
        assert_eq!(t[0].key, BalanceKey::Balance { token: TOKEN });
        assert_eq!(t[0].tx_hash, Some(B256::repeat_byte(1)));
    }

    #[test]
    fn approval_touches_the_allowance() {
        let approval = log_of(&IERC20::Approval {
            owner: ALICE,
            spender: SPENDER,
            value: U256::MAX,
        });
        let t = touches(&approval, None);
        assert_eq!(
            t,
            vec![Touch {
                owner: ALICE,
                key: BalanceKey::Allowance {
                    token: TOKEN,
                    spender: SPENDER
                },
                tx_hash: None,
                sent: false,
            }]
        );
    }

    #[test]
    fn a_plan_keeps_the_last_known_transaction() {
        let key = BalanceKey::Balance { token: TOKEN };
        let mut plan = ReadPlan::default();
        plan.add_touched(ALICE, key, Some(B256::repeat_byte(1)));
        plan.add(ALICE, key);
        plan.add_touched(ALICE, key, Some(B256::repeat_byte(2)));
        let mut other = ReadPlan::default();
        other.add(BOB, key);
        plan.merge(other);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan.reads[&(ALICE, key)], Some(B256::repeat_byte(2)));
        assert!(plan.contains(&BOB, &key));
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
}
