//! Which sequences run in each step (continuous batching, docs/engine.md): each step the engine
//! retires the sequences that finished ([`Scheduler::finish`]) and asks [`Scheduler::schedule`]
//! which waiting pages to admit, then decodes every running sequence together. Pages are admitted
//! first come, first served, while fewer than `max_seqs` run, the KV pool has the blocks the
//! page's prompt and token budget need (its whole length, reserved at admission, so a running
//! page never waits for memory), and the step's prefill budget lasts (at least one page per step,
//! so a page longer than the budget still runs); the decode batch keeps the order in which
//! sequences were admitted.
//!
//! Pure bookkeeping over ids, lengths and block numbers: no tensors, no model.

use std::collections::VecDeque;

/// An engine-wide sequence number.
pub type SeqId = u64;

/// What one step runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// Waiting sequences to encode and prefill now, each with the pool blocks it gets (in slot
    /// order: its block table).
    pub admit: Vec<(SeqId, Vec<usize>)>,
    /// Every running sequence (the admitted ones included): the decode batch.
    pub decode: Vec<SeqId>,
}

/// A sequence waiting for admission.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    id: SeqId,
    prompt_len: usize,
    /// Blocks its whole length needs.
    blocks: usize,
}

/// Continuous-batching scheduler over the blocks of a KV pool.
#[derive(Debug)]
pub struct Scheduler {
    /// Blocks not held by a sequence, taken from the end.
    free_blocks: Vec<usize>,
    block_len: usize,
    max_seqs: usize,
    waiting: VecDeque<Waiting>,
    /// Running sequences in admission order, with their blocks.
    running: Vec<(SeqId, Vec<usize>)>,
    max_prefill_tokens: usize,
    /// Blocks of the page added last (the estimate of what the next pages need).
    typical_blocks: usize,
}

impl Scheduler {
    /// A scheduler for at most `max_seqs` sequences at once over a pool of `blocks` blocks of
    /// `block_len` slots, prefilling at most `max_prefill_tokens` prompt tokens per step (but
    /// always at least one page).
    pub fn new(max_seqs: usize, blocks: usize, block_len: usize, max_prefill_tokens: usize) -> Self {
        Scheduler {
            free_blocks: (0..blocks).rev().collect(),
            block_len: block_len.max(1),
            max_seqs,
            waiting: VecDeque::new(),
            running: Vec::new(),
            max_prefill_tokens,
            typical_blocks: 1,
        }
    }

    /// Queue a sequence whose prompt has `prompt_len` tokens and whose prompt and output take at
    /// most `max_len` slots. The caller keeps `max_len` within the pool (a sequence that needs
    /// more blocks than the pool has would wait forever).
    pub fn add(&mut self, id: SeqId, prompt_len: usize, max_len: usize) {
        let blocks = max_len.max(prompt_len).div_ceil(self.block_len).max(1);
        self.typical_blocks = blocks;
        self.waiting.push_back(Waiting { id, prompt_len, blocks });
    }

    /// Sequences waiting for admission.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Sequences running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Blocks free now.
    pub fn free_blocks(&self) -> usize {
        self.free_blocks.len()
    }

    /// About how many more pages could be admitted now: the free places under `max_seqs`, and
    /// what the free blocks hold of pages like the last one added (the engine takes and encodes
    /// this many pages ahead of their admission).
    pub fn room(&self) -> usize {
        let places = self.max_seqs.saturating_sub(self.running.len());
        places.min(self.free_blocks.len() / self.typical_blocks.max(1))
    }

    /// Whether nothing is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Admit what fits and list the decode batch. Only pages `ready` says are ready (encoded)
    /// are admitted, in order: the first one not ready, or one whose blocks are not free, stops
    /// the admissions.
    pub fn schedule(&mut self, ready: impl Fn(SeqId) -> bool) -> Schedule {
        let mut admit = Vec::new();
        let mut tokens = 0;
        while let Some(&Waiting { id, prompt_len, blocks }) = self.waiting.front() {
            let fits = self.running.len() < self.max_seqs && blocks <= self.free_blocks.len();
            if !fits || !ready(id) || (!admit.is_empty() && tokens + prompt_len > self.max_prefill_tokens) {
                break;
            }
            self.waiting.pop_front();
            let table = self.free_blocks.split_off(self.free_blocks.len() - blocks);
            tokens += prompt_len;
            admit.push((id, table.clone()));
            self.running.push((id, table));
        }
        Schedule { admit, decode: self.running.iter().map(|(id, _)| *id).collect() }
    }

    /// Retire a running sequence (finished, or failed during its prefill): its blocks are free
    /// for the next admission. Unknown ids are ignored.
    pub fn finish(&mut self, id: SeqId) {
        if let Some(i) = self.running.iter().position(|(s, _)| *s == id) {
            let (_, blocks) = self.running.remove(i);
            self.free_blocks.extend(blocks);
        }
    }

    /// The waiting sequences in the order they will be admitted.
    pub fn waiting_ids(&self) -> impl Iterator<Item = SeqId> + '_ {
        self.waiting.iter().map(|w| w.id)
    }

    /// Drop a sequence wherever it is (cancelled): waiting, it leaves the queue; running, its
    /// blocks are freed. Unknown ids are ignored.
    pub fn remove(&mut self, id: SeqId) {
        self.waiting.retain(|w| w.id != id);
        self.finish(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(schedule: &Schedule) -> Vec<SeqId> {
        schedule.admit.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn admits_while_places_and_the_prefill_budget_last() {
        let mut s = Scheduler::new(3, 100, 64, 1000);
        for (id, len) in [(1, 600), (2, 300), (3, 200), (4, 100)] {
            s.add(id, len, len + 64);
        }
        let first = s.schedule(|_| true);
        assert_eq!(ids(&first), vec![1, 2], "600 + 300 fit the budget, + 200 does not");
        assert_eq!(first.decode, vec![1, 2]);
        let second = s.schedule(|_| true);
        assert_eq!(ids(&second), vec![3], "one place left");
        assert_eq!(second.decode.len(), 3);
        assert_eq!(ids(&s.schedule(|_| true)), Vec::<SeqId>::new(), "three running: page 4 waits");
        assert_eq!((s.waiting(), s.running()), (1, 3));
    }

    #[test]
    fn each_page_holds_the_blocks_of_its_own_length() {
        let mut s = Scheduler::new(8, 10, 4, 10_000);
        // 9 slots: 3 blocks of 4; 4 slots: 1 block; 17 slots: 5 blocks; 5 slots: 2 blocks, of
        // which only one is left.
        for (id, prompt, max_len) in [(1, 5, 9), (2, 2, 4), (3, 10, 17), (4, 1, 5)] {
            s.add(id, prompt, max_len);
        }
        let first = s.schedule(|_| true);
        let sizes: Vec<usize> = first.admit.iter().map(|(_, b)| b.len()).collect();
        assert_eq!(sizes, vec![3, 1, 5], "each page's own length, not the longest");
        let mut all: Vec<usize> = first.admit.iter().flat_map(|(_, b)| b.clone()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9, "no block given twice");
        assert_eq!((s.free_blocks(), s.waiting()), (1, 1));
        assert!(ids(&s.schedule(|_| true)).is_empty(), "page 4 needs two blocks");
        s.finish(2);
        let next = s.schedule(|_| true);
        assert_eq!(ids(&next), vec![4]);
        assert!(next.admit[0].1.iter().all(|b| !first.admit[0].1.contains(b) && !first.admit[2].1.contains(b)), "only free blocks");
    }

    #[test]
    fn a_page_waits_for_blocks_and_takes_the_freed_ones() {
        let mut s = Scheduler::new(8, 6, 64, 10_000);
        s.add(1, 100, 300); // 5 blocks
        s.add(2, 100, 200); // 4 blocks
        assert_eq!(ids(&s.schedule(|_| true)), vec![1]);
        assert_eq!(s.room(), 0, "one free block holds no page like page 2");
        assert_eq!(ids(&s.schedule(|_| true)), Vec::<SeqId>::new(), "page 2 waits for blocks");
        s.finish(1);
        let next = s.schedule(|_| true);
        assert_eq!(ids(&next), vec![2]);
        assert_eq!(next.decode, vec![2]);
        s.finish(2);
        assert!(s.is_idle());
        assert_eq!(s.free_blocks(), 6);
    }

    #[test]
    fn a_retired_page_frees_its_place_and_batch_order_is_kept() {
        let mut s = Scheduler::new(2, 100, 64, 10_000);
        for id in 1..=3 {
            s.add(id, 900, 1000);
        }
        assert_eq!(ids(&s.schedule(|_| true)), vec![1, 2]);
        s.finish(1);
        s.finish(99); // unknown: ignored
        let next = s.schedule(|_| true);
        assert_eq!(ids(&next), vec![3]);
        assert_eq!(next.decode, vec![2, 3]);
        s.finish(2);
        s.finish(3);
        assert!(s.is_idle());
        assert_eq!(s.free_blocks(), 100);
    }

    #[test]
    fn a_removed_sequence_frees_its_blocks_or_its_place_in_the_queue() {
        let mut s = Scheduler::new(1, 100, 64, 10_000);
        for id in 1..=3 {
            s.add(id, 100, 200);
        }
        assert_eq!(ids(&s.schedule(|_| true)), vec![1]);
        s.remove(2); // waiting
        s.remove(1); // running
        assert_eq!(s.free_blocks(), 100);
        let next = s.schedule(|_| true);
        assert_eq!(ids(&next), vec![3], "page 3 takes the freed place; page 2 is gone");
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn a_page_longer_than_the_budget_still_runs_alone() {
        let mut s = Scheduler::new(4, 100, 64, 500);
        s.add(1, 2000, 2100);
        s.add(2, 100, 200);
        assert_eq!(ids(&s.schedule(|_| true)), vec![1]);
        assert_eq!(ids(&s.schedule(|_| true)), vec![2]);
    }

    #[test]
    fn only_ready_pages_are_admitted_in_order() {
        let mut s = Scheduler::new(4, 100, 64, 10_000);
        for id in 1..=3 {
            s.add(id, 100, 200);
        }
        assert!(ids(&s.schedule(|id| id != 1)).is_empty(), "page 1 is not encoded yet: pages 2 and 3 wait behind it");
        assert_eq!(ids(&s.schedule(|id| id == 1)), vec![1]);
        assert_eq!(ids(&s.schedule(|_| true)), vec![2, 3]);
    }
}
