//! Uniswap's Permit2: where it lives, and one allowance inside it as the service carries it.
//!
//! Inside Permit2, `allowance(owner, token, spender)` is an amount (uint160), an expiration
//! (uint48, Unix seconds) and a nonce (uint48). Spending through Permit2 lowers the amount with
//! no event of Permit2's own, and an allowance lapses when its expiration passes with no event
//! at all, so the service reads it like any other value and marks it `expired` as of the block
//! it was read at.
//!
//! Every value the service tracks travels as one uint256 (the table, the stream, the change
//! feeds compare words), so a Permit2 allowance travels packed into one word the way Permit2
//! packs it into its storage slot — amount in the low 160 bits, expiration in the next 48 —
//! with the nonce in the next 47 bits and `expired` in the top bit. A change of any of them is a
//! change of the word. A nonce needs 2^47 permits to outgrow its bits (Permit2 moves it by at
//! most 65,535 at a time); such a read is refused rather than misreported.

use alloy::primitives::{Address, U256, address};

/// Permit2's address on every chain Uniswap deployed it to (the devnets install it there too).
pub const PERMIT2: Address = address!("0x000000000022D473030F116dDEE9F6B43aC78BA3");

const AMOUNT_BITS: usize = 160;
const EXPIRATION_BITS: usize = 48;
const NONCE_BITS: usize = 47;
const EXPIRATION_SHIFT: usize = AMOUNT_BITS;
const NONCE_SHIFT: usize = AMOUNT_BITS + EXPIRATION_BITS;
const EXPIRED_BIT: usize = 255;

/// One owner's Permit2 allowance of one token to one spender, as read at one block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permit2Allowance {
    /// What the spender may still move (uint160).
    pub amount: U256,
    /// Unix seconds; past it the amount cannot be spent.
    pub expiration: u64,
    /// The next nonce a signed permit must carry.
    pub nonce: u64,
    /// The block's time was past `expiration` while the amount was not zero: Permit2 would
    /// refuse to spend it.
    pub expired: bool,
}

/// A Permit2 read that does not fit the word (a nonce of 2^47 or more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Permit2 nonce {0} is past what the service carries (2^47)")]
pub struct NonceTooLarge(pub u64);

impl Permit2Allowance {
    /// The allowance Permit2 answered, judged at a block whose timestamp is `block_time`.
    pub fn read(
        amount: U256,
        expiration: u64,
        nonce: u64,
        block_time: u64,
    ) -> Result<Self, NonceTooLarge> {
        if nonce >> NONCE_BITS != 0 {
            return Err(NonceTooLarge(nonce));
        }
        Ok(Self {
            amount,
            expiration,
            nonce,
            expired: !amount.is_zero() && block_time > expiration,
        })
    }

    /// What a spender can move now: the amount, or zero once expired.
    pub fn spendable(&self) -> U256 {
        if self.expired {
            U256::ZERO
        } else {
            self.amount
        }
    }

    /// The allowance packed into one word (see the module's docs).
    pub fn word(&self) -> U256 {
        let mask = |bits: usize| (U256::from(1u8) << bits) - U256::from(1u8);
        let mut word = self.amount & mask(AMOUNT_BITS);
        word |= (U256::from(self.expiration) & mask(EXPIRATION_BITS)) << EXPIRATION_SHIFT;
        word |= (U256::from(self.nonce) & mask(NONCE_BITS)) << NONCE_SHIFT;
        if self.expired {
            word |= U256::from(1u8) << EXPIRED_BIT;
        }
        word
    }

    /// The allowance a word carries.
    pub fn from_word(word: U256) -> Self {
        let field = |shift: usize, bits: usize| -> u64 {
            let value = (word >> shift) & ((U256::from(1u8) << bits) - U256::from(1u8));
            value.to::<u64>()
        };
        Self {
            amount: word & ((U256::from(1u8) << AMOUNT_BITS) - U256::from(1u8)),
            expiration: field(EXPIRATION_SHIFT, EXPIRATION_BITS),
            nonce: field(NONCE_SHIFT, NONCE_BITS),
            expired: word.bit(EXPIRED_BIT),
        }
    }

    /// When a live allowance lapses: the expiration of a spendable amount, else never.
    pub fn lapses_at(&self) -> Option<u64> {
        (!self.amount.is_zero() && !self.expired).then_some(self.expiration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_survives_the_word_at_its_widest() {
        let widest = Permit2Allowance {
            amount: (U256::from(1u8) << 160) - U256::from(1u8),
            expiration: (1 << 48) - 1,
            nonce: (1 << 47) - 1,
            expired: true,
        };
        assert_eq!(Permit2Allowance::from_word(widest.word()), widest);
        let some =
            Permit2Allowance::read(U256::from(1_000u64), 1_700_000_000, 3, 1_600_000_000).unwrap();
        assert_eq!(Permit2Allowance::from_word(some.word()), some);
        assert!(!some.expired);
    }

    #[test]
    fn a_never_set_allowance_is_the_zero_word_so_it_is_not_stored() {
        let unset = Permit2Allowance::read(U256::ZERO, 0, 0, 1_700_000_000).unwrap();
        assert_eq!(unset.word(), U256::ZERO);
        assert!(!unset.expired, "nothing to spend, nothing expired");
    }

    #[test]
    fn an_amount_expires_only_once_the_block_time_is_past_its_expiration() {
        let at = |time| Permit2Allowance::read(U256::from(5u8), 100, 1, time).unwrap();
        assert!(
            !at(100).expired,
            "Permit2 spends at the expiration's own second"
        );
        assert!(at(101).expired);
        assert_eq!(at(101).spendable(), U256::ZERO);
        assert_eq!(at(100).spendable(), U256::from(5u8));
        assert_eq!(at(100).lapses_at(), Some(100));
        assert_eq!(at(101).lapses_at(), None);
        assert_ne!(at(100).word(), at(101).word(), "expiring changes the word");
    }

    #[test]
    fn a_nonce_past_the_words_bits_is_refused() {
        assert_eq!(
            Permit2Allowance::read(U256::ZERO, 0, 1 << 47, 0),
            Err(NonceTooLarge(1 << 47))
        );
    }
}
