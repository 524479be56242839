//! Read planning: which (owner, value) pairs a block range forces the poller to re-read.
//!
//! Values are always re-read on chain at the range's last block, never computed from event
//! amounts; logs only say *what* to re-read.

use std::collections::BTreeMap;

use alloy::primitives::{Address, B256, Log as PrimitiveLog};
use alloy::sol_types::SolEvent;

use crate::chain::abi::{IERC20, IPermit2, IWETH};
use crate::domain::model::BalanceKey;
use crate::domain::permit2::PERMIT2;

/// A log's meaning for balances: this owner's value under this key may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    pub owner: Address,
    pub key: BalanceKey,
    pub tx_hash: Option<B256>,
    /// The owner sent tokens: a spender's `transferFrom` lowers its allowance with no
    /// `Approval` (and a spend through Permit2 lowers Permit2's amount with no event of
    /// Permit2's), so the owner's allowances of the token, of both kinds, may have changed too.
    pub sent: bool,
}

/// What a log says may have changed. Logs that only share a signature (ERC-721 `Transfer` has
/// a fourth indexed topic) or cannot be decoded say nothing.
pub fn touches(log: &PrimitiveLog, tx_hash: Option<B256>) -> Vec<Touch> {
    if log.address == PERMIT2 {
        return permit2_touch(log, tx_hash).into_iter().collect();
    }
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

/// What one of Permit2's own events says may have changed: the owner's Permit2 allowance of
/// the token to the spender (each event names all three).
fn permit2_touch(log: &PrimitiveLog, tx_hash: Option<B256>) -> Option<Touch> {
    let (owner, token, spender) = match *log.topics().first()? {
        IPermit2::Approval::SIGNATURE_HASH => IPermit2::Approval::decode_log(log)
            .map(|e| (e.owner, e.token, e.spender))
            .ok()?,
        IPermit2::Permit::SIGNATURE_HASH => IPermit2::Permit::decode_log(log)
            .map(|e| (e.owner, e.token, e.spender))
            .ok()?,
        IPermit2::Lockdown::SIGNATURE_HASH => IPermit2::Lockdown::decode_log(log)
            .map(|e| (e.owner, e.token, e.spender))
            .ok()?,
        IPermit2::NonceInvalidation::SIGNATURE_HASH => IPermit2::NonceInvalidation::decode_log(log)
            .map(|e| (e.owner, e.token, e.spender))
            .ok()?,
        _ => return None,
    };
    Some(Touch {
        owner,
        key: BalanceKey::Permit2 { token, spender },
        tx_hash,
        sent: false,
    })
}

/// Event signatures whose first indexed topic is the owner (asked in one `eth_getLogs`):
/// the tokens' own and Permit2's.
pub fn owner_in_topic1_signatures() -> Vec<B256> {
    vec![
        IERC20::Transfer::SIGNATURE_HASH,
        IERC20::Approval::SIGNATURE_HASH,
        IWETH::Deposit::SIGNATURE_HASH,
        IWETH::Withdrawal::SIGNATURE_HASH,
        IPermit2::Approval::SIGNATURE_HASH,
        IPermit2::Permit::SIGNATURE_HASH,
        IPermit2::Lockdown::SIGNATURE_HASH,
        IPermit2::NonceInvalidation::SIGNATURE_HASH,
    ]
}

/// Why a value is read: what its write must say and what a change of it means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadReason {
    /// The last transaction known to touch it.
    pub tx_hash: Option<B256>,
    /// The first read of a newly tracked value (no previous value to report).
    pub first_read: bool,
    /// Something on chain (a log, a trace) says it may have changed. A read for no such
    /// reason (a sweep, a stream's re-read) that finds a change found a silent one.
    pub touched: bool,
}

/// The values to re-read at one block, each with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    pub reads: BTreeMap<(Address, BalanceKey), ReadReason>,
}

impl ReadPlan {
    /// Adds a value read for no particular event (sweeps, re-reads, per-wallet natives).
    pub fn add(&mut self, owner: Address, key: BalanceKey) {
        self.reads.entry((owner, key)).or_default();
    }

    /// Adds the first read of a newly tracked value.
    pub fn add_first(&mut self, owner: Address, key: BalanceKey) {
        self.reads.entry((owner, key)).or_default().first_read = true;
    }

    /// Adds a value something on chain touched; a later touch's tx hash wins.
    pub fn add_touched(&mut self, owner: Address, key: BalanceKey, tx_hash: Option<B256>) {
        let reason = self.reads.entry((owner, key)).or_default();
        reason.touched = true;
        if tx_hash.is_some() {
            reason.tx_hash = tx_hash;
        }
    }

    /// Adds every read of `other`, keeping every reason either has.
    pub fn merge(&mut self, other: ReadPlan) {
        for (id, theirs) in other.reads {
            let ours = self.reads.entry(id).or_default();
            ours.first_read |= theirs.first_read;
            ours.touched |= theirs.touched;
            if theirs.tx_hash.is_some() {
                ours.tx_hash = theirs.tx_hash;
            }
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
    fn each_permit2_event_touches_the_permit2_allowance_it_names_and_only_from_permit2() {
        use alloy::primitives::aliases::{U48, U160};
        let from_permit2 = |event: &dyn Fn() -> LogData| PrimitiveLog {
            address: PERMIT2,
            data: event(),
        };
        let events: [&dyn Fn() -> LogData; 4] = [
            &|| {
                IPermit2::Approval {
                    owner: ALICE,
                    token: TOKEN,
                    spender: SPENDER,
                    amount: U160::from(5),
                    expiration: U48::from(9),
                }
                .encode_log_data()
            },
            &|| {
                IPermit2::Permit {
                    owner: ALICE,
                    token: TOKEN,
                    spender: SPENDER,
                    amount: U160::from(5),
                    expiration: U48::from(9),
                    nonce: U48::from(1),
                }
                .encode_log_data()
            },
            &|| {
                IPermit2::Lockdown {
                    owner: ALICE,
                    token: TOKEN,
                    spender: SPENDER,
                }
                .encode_log_data()
            },
            &|| {
                IPermit2::NonceInvalidation {
                    owner: ALICE,
                    token: TOKEN,
                    spender: SPENDER,
                    newNonce: U48::from(7),
                    oldNonce: U48::from(1),
                }
                .encode_log_data()
            },
        ];
        let signatures = owner_in_topic1_signatures();
        for event in events {
            let log = from_permit2(event);
            assert!(signatures.contains(&log.topics()[0]));
            assert_eq!(
                touches(&log, None),
                vec![Touch {
                    owner: ALICE,
                    key: BalanceKey::Permit2 {
                        token: TOKEN,
                        spender: SPENDER
                    },
                    tx_hash: None,
                    sent: false,
                }]
            );
            let elsewhere = PrimitiveLog {
                address: TOKEN,
                data: event(),
            };
            assert!(touches(&elsewhere, None).is_empty(), "not Permit2's event");
        }
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
        other.add_first(ALICE, key);
        plan.merge(other);
        assert_eq!(plan.len(), 2);
        assert_eq!(
            plan.reads[&(ALICE, key)],
            ReadReason {
                tx_hash: Some(B256::repeat_byte(2)),
                first_read: true,
                touched: true
            }
        );
        assert_eq!(plan.reads[&(BOB, key)], ReadReason::default());
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
