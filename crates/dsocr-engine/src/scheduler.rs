//! Which sequences run in each step (continuous batching, docs/engine.md): each step the engine
//! retires the sequences that finished ([`Scheduler::finish`]) and asks [`Scheduler::schedule`]
//! which waiting pages to admit into free pool rows, then decodes every running sequence
//! together. Pages are admitted first come, first served, while rows are free and the step's
//! prefill budget lasts (at least one page per step, so a page longer than the budget still
//! runs); the decode batch keeps the order in which sequences were admitted.
//!
//! Pure bookkeeping over ids, prompt lengths and row numbers: no tensors, no model.

use std::collections::VecDeque;

/// An engine-wide sequence number.
pub type SeqId = u64;

/// What one step runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// Waiting sequences to encode and prefill now, each with the pool row it gets.
    pub admit: Vec<(SeqId, usize)>,
    /// Every running sequence (the admitted ones included), with its row: the decode batch.
    pub decode: Vec<(SeqId, usize)>,
}

/// Continuous-batching scheduler over a fixed number of pool rows.
#[derive(Debug)]
pub struct Scheduler {
    /// Rows not holding a sequence, taken from the end.
    free_rows: Vec<usize>,
    waiting: VecDeque<(SeqId, usize)>,
    running: Vec<(SeqId, usize)>,
    max_prefill_tokens: usize,
}

impl Scheduler {
    /// A scheduler for `rows` pool rows, prefilling at most `max_prefill_tokens` prompt tokens
    /// per step (but always at least one page).
    pub fn new(rows: usize, max_prefill_tokens: usize) -> Self {
        Scheduler { free_rows: (0..rows).rev().collect(), waiting: VecDeque::new(), running: Vec::new(), max_prefill_tokens }
    }

    /// Queue a sequence whose prompt has `prompt_len` tokens.
    pub fn add(&mut self, id: SeqId, prompt_len: usize) {
        self.waiting.push_back((id, prompt_len));
    }

    /// Sequences waiting for a row.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Sequences holding a row.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Rows free now.
    pub fn free_rows(&self) -> usize {
        self.free_rows.len()
    }

    /// Whether nothing is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Admit what fits and list the decode batch. Only pages `ready` says are ready (encoded)
    /// are admitted, in order: the first one not ready stops the admissions.
    pub fn schedule(&mut self, ready: impl Fn(SeqId) -> bool) -> Schedule {
        let mut admit = Vec::new();
        let mut tokens = 0;
        while let (Some(&(id, len)), Some(&row)) = (self.waiting.front(), self.free_rows.last()) {
            if !ready(id) || (!admit.is_empty() && tokens + len > self.max_prefill_tokens) {
                break;
            }
            self.waiting.pop_front();
            self.free_rows.pop();
            tokens += len;
            admit.push((id, row));
            self.running.push((id, row));
        }
        Schedule { admit, decode: self.running.clone() }
    }

    /// Retire a running sequence (finished, or failed during its prefill): its row is free for
    /// the next admission. Unknown ids are ignored.
    pub fn finish(&mut self, id: SeqId) {
        if let Some(i) = self.running.iter().position(|&(s, _)| s == id) {
            let (_, row) = self.running.remove(i);
            self.free_rows.push(row);
        }
    }

    /// The waiting sequences in the order they will be admitted.
    pub fn waiting_ids(&self) -> impl Iterator<Item = SeqId> + '_ {
        self.waiting.iter().map(|&(id, _)| id)
    }

    /// Drop a sequence wherever it is (cancelled): waiting, it leaves the queue; running, its
    /// row is freed. Unknown ids are ignored.
    pub fn remove(&mut self, id: SeqId) {
        self.waiting.retain(|&(s, _)| s != id);
        self.finish(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_while_rows_and_the_prefill_budget_last() {
        let mut s = Scheduler::new(3, 1000);
        for (id, len) in [(1, 600), (2, 300), (3, 200), (4, 100)] {
            s.add(id, len);
        }
        let first = s.schedule(|_| true);
        assert_eq!(first.admit, vec![(1, 0), (2, 1)], "600 + 300 fit the budget, + 200 does not");
        assert_eq!(first.decode, vec![(1, 0), (2, 1)]);
        let second = s.schedule(|_| true);
        assert_eq!(second.admit, vec![(3, 2)], "one row left");
        assert_eq!(second.decode.len(), 3);
        assert_eq!(s.schedule(|_| true).admit, vec![], "no free row: page 4 waits");
        assert_eq!((s.waiting(), s.running(), s.free_rows()), (1, 3, 0));
    }

    #[test]
    fn a_retired_row_goes_to_the_next_waiting_page_and_batch_order_is_kept() {
        let mut s = Scheduler::new(2, 10_000);
        for id in 1..=3 {
            s.add(id, 900);
        }
        assert_eq!(s.schedule(|_| true).admit, vec![(1, 0), (2, 1)]);
        s.finish(1);
        s.finish(99); // unknown: ignored
        let next = s.schedule(|_| true);
        assert_eq!(next.admit, vec![(3, 0)], "page 3 takes row 0");
        assert_eq!(next.decode, vec![(2, 1), (3, 0)]);
        s.finish(2);
        s.finish(3);
        assert!(s.is_idle());
        assert_eq!(s.free_rows(), 2);
    }

    #[test]
    fn a_removed_sequence_frees_its_row_or_its_place_in_the_queue() {
        let mut s = Scheduler::new(1, 10_000);
        for id in 1..=3 {
            s.add(id, 100);
        }
        assert_eq!(s.schedule(|_| true).admit, vec![(1, 0)]);
        s.remove(2); // waiting
        s.remove(1); // running
        let next = s.schedule(|_| true);
        assert_eq!(next.admit, vec![(3, 0)], "page 3 takes the freed row; page 2 is gone");
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn a_page_longer_than_the_budget_still_runs_alone() {
        let mut s = Scheduler::new(4, 500);
        s.add(1, 2000);
        s.add(2, 100);
        assert_eq!(s.schedule(|_| true).admit, vec![(1, 0)]);
        assert_eq!(s.schedule(|_| true).admit, vec![(2, 1)]);
    }

    #[test]
    fn only_ready_pages_are_admitted_in_order() {
        let mut s = Scheduler::new(4, 10_000);
        for id in 1..=3 {
            s.add(id, 100);
        }
        assert_eq!(s.schedule(|id| id != 1).admit, vec![], "page 1 is not encoded yet: pages 2 and 3 wait behind it");
        assert_eq!(s.schedule(|id| id == 1).admit, vec![(1, 0)]);
        assert_eq!(s.schedule(|_| true).admit, vec![(2, 1), (3, 2)]);
    }
}
