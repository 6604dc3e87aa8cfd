//! What a consumer's channel has handed out and what became of it, so that
//! one `multiple` ack settles a run of committed deliveries without ever
//! covering one still in flight or waiting.
//!
//! Batches commit out of delivery order (a message may wait behind a batch
//! in flight that names the same people, while later ones commit: see
//! [`crate::schedule`]). A delivery is acked with `multiple` only up to the
//! *frontier*: the last committed delivery before the first one not yet
//! settled.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Handed out; not yet committed, rejected or handed back.
    Open,
    /// Committed: to be acked.
    Committed,
    /// Rejected or handed back on its own.
    Settled,
}

/// The open deliveries of one channel, in delivery-tag order, each with
/// what acks it (`A`: lapin's acker, or anything in a test).
#[derive(Debug)]
pub struct Ledger<A> {
    entries: VecDeque<(u64, State, A)>,
}

impl<A> Default for Ledger<A> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
        }
    }
}

impl<A> Ledger<A> {
    /// A delivery handed out (tags only grow on a channel).
    pub fn open(&mut self, tag: u64, acker: A) {
        debug_assert!(self.entries.back().is_none_or(|(last, ..)| *last < tag));
        self.entries.push_back((tag, State::Open, acker));
    }

    /// Its transaction committed: ack it with the next `multiple`.
    pub fn committed(&mut self, tag: u64) {
        self.mark(tag, State::Committed);
    }

    /// Rejected or handed back on its own: no ack covers it.
    pub fn settled(&mut self, tag: u64) {
        self.mark(tag, State::Settled);
    }

    fn mark(&mut self, tag: u64, state: State) {
        if let Ok(i) = self.entries.binary_search_by_key(&tag, |(t, ..)| *t) {
            self.entries[i].1 = state;
        }
    }

    /// Forget every settled delivery at the front, and say which one to ack
    /// with `multiple` to settle the committed ones among them: the last
    /// committed before the first still open (none if none was committed).
    pub fn advance(&mut self) -> Option<A> {
        let mut ack = None;
        while let Some((_, state, _)) = self.entries.front() {
            match state {
                State::Open => break,
                State::Committed => ack = self.entries.pop_front().map(|(.., a)| a),
                State::Settled => {
                    self.entries.pop_front();
                }
            }
        }
        ack
    }

    /// Deliveries not yet acked or settled.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(tags: &[u64]) -> Ledger<u64> {
        let mut l = Ledger::default();
        for &t in tags {
            l.open(t, t);
        }
        l
    }

    #[test]
    fn in_order_commits_ack_the_last_one() {
        let mut l = ledger(&[1, 2, 3]);
        for t in [1, 2, 3] {
            l.committed(t);
        }
        assert_eq!(l.advance(), Some(3));
        assert!(l.is_empty());
    }

    #[test]
    fn a_commit_behind_an_open_delivery_waits_for_it() {
        let mut l = ledger(&[1, 2, 3, 4]);
        l.committed(3);
        l.committed(4);
        assert_eq!(l.advance(), None, "1 and 2 are still open");
        l.committed(1);
        assert_eq!(l.advance(), Some(1), "2 is still open: 3 and 4 wait");
        assert_eq!(l.len(), 3);
        l.committed(2);
        assert_eq!(l.advance(), Some(4));
        assert!(l.is_empty());
    }

    #[test]
    fn the_ack_never_names_a_delivery_settled_on_its_own() {
        let mut l = ledger(&[1, 2, 3]);
        l.committed(1);
        l.committed(2);
        l.settled(3);
        assert_eq!(
            l.advance(),
            Some(2),
            "3 was rejected: acking it again would close the channel"
        );
        assert!(l.is_empty());
    }

    #[test]
    fn settled_deliveries_alone_need_no_ack() {
        let mut l = ledger(&[5, 6]);
        l.settled(5);
        l.settled(6);
        assert_eq!(l.advance(), None);
        assert!(l.is_empty());
    }

    #[test]
    fn an_unknown_tag_changes_nothing() {
        let mut l = ledger(&[1]);
        l.committed(9);
        assert_eq!(l.advance(), None);
        assert_eq!(l.len(), 1);
    }
}
