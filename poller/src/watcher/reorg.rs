//! What a watcher remembers to undo a reorg: which values each recent block wrote (a rewind
//! re-reads those written on the dropped branch), and, between a rewind and the next step's
//! writes, the ancestor it rewound to (values stored from blocks above it are on the dropped
//! branch, so the next writes replace them even at a lower block).

use std::collections::VecDeque;

use live_balances::domain::model::CURSOR_RECENT_BLOCKS;

use crate::held::ValueId;

#[derive(Debug, Default)]
pub(crate) struct ReorgMemory {
    /// Which values each recent block wrote, oldest first, as far back as the cursor's
    /// history of hashes reaches.
    recent_writes: VecDeque<(u64, Vec<ValueId>)>,
    /// After a rewind, until a step's writes land: the ancestor rewound to.
    rewound_above: Option<u64>,
}

impl ReorgMemory {
    /// Remembers which values `block` wrote.
    pub(crate) fn remember(&mut self, block: u64, ids: Vec<ValueId>) {
        if ids.is_empty() {
            return;
        }
        self.recent_writes.push_back((block, ids));
        while self.recent_writes.len() > CURSOR_RECENT_BLOCKS {
            self.recent_writes.pop_front();
        }
    }

    /// Rewinds to the common ancestor at `ancestor`: the values blocks above it wrote (to
    /// re-read), forgotten here; the next writes replace what the dropped branch stored.
    pub(crate) fn rewind_to(&mut self, ancestor: u64) -> Vec<ValueId> {
        let mut dropped = vec![];
        self.recent_writes.retain(|(block, ids)| {
            if *block > ancestor {
                dropped.extend(ids.iter().copied());
            }
            *block <= ancestor
        });
        self.rewound_above = Some(ancestor);
        dropped
    }

    /// The ancestor of a rewind whose replacement writes have not landed yet.
    pub(crate) fn rewound_above(&self) -> Option<u64> {
        self.rewound_above
    }

    /// A step's writes landed: the dropped branch's values are replaced.
    pub(crate) fn settled(&mut self) {
        self.rewound_above = None;
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::Address;
    use live_balances::domain::model::BalanceKey;

    use super::*;

    fn id(n: u8) -> ValueId {
        (
            Address::repeat_byte(n),
            BalanceKey::Balance {
                token: Address::repeat_byte(0xee),
            },
        )
    }

    #[test]
    fn a_rewind_returns_what_the_dropped_blocks_wrote_and_forgets_it() {
        let mut memory = ReorgMemory::default();
        memory.remember(10, vec![id(1)]);
        memory.remember(11, vec![]);
        memory.remember(12, vec![id(2), id(3)]);
        memory.remember(13, vec![id(4)]);
        // The ancestor's own writes stand.
        assert_eq!(memory.rewind_to(10), vec![id(2), id(3), id(4)]);
        assert_eq!(memory.rewound_above(), Some(10));
        // A second reorg deeper still finds the older write, and not the dropped ones again.
        assert_eq!(memory.rewind_to(9), vec![id(1)]);
        assert_eq!(memory.rewound_above(), Some(9));
        memory.settled();
        assert_eq!(memory.rewound_above(), None);
    }

    #[test]
    fn writes_are_remembered_as_far_back_as_the_cursor_history() {
        let mut memory = ReorgMemory::default();
        let blocks = CURSOR_RECENT_BLOCKS as u64 + 5;
        for block in 0..blocks {
            memory.remember(block, vec![id(block as u8)]);
        }
        assert_eq!(memory.rewind_to(0).len(), CURSOR_RECENT_BLOCKS);
    }
}
