//! Which sequences run in each step (continuous batching, docs/engine.md): each step the engine
//! retires the sequences that finished ([`Scheduler::finish`]), gives the running ones the blocks
//! their next tokens need ([`Scheduler::grow`]), asks [`Scheduler::schedule`] which waiting pages
//! to admit, then decodes every running sequence together.
//!
//! Pages are admitted first come, first served, while fewer than `max_seqs` run, the KV pool has
//! the blocks of the page's prompt (and its first new token) with one block to spare for each
//! running sequence, and the step's prefill budget lasts (at least one page per step, so a page
//! longer than the budget still runs). A running sequence gets a block each time it fills one
//! (64 tokens), so pages hold memory for what they have written, not for their whole budget, and
//! pages that stop early never held the rest. When a block is needed and none is free, the
//! sequence admitted last is **preempted** (as vLLM does): its blocks are freed and it goes back
//! to the front of the queue, to be prefilled again with its prompt and the tokens it has written
//! (recomputed, not swapped). The decode batch keeps the order in which sequences were admitted.
//!
//! Pure bookkeeping over ids, lengths and block numbers: no tensors, no model.

use std::collections::VecDeque;

/// An engine-wide sequence number.
pub type SeqId = u64;

/// What [`Scheduler::grow`] changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Growth {
    /// Running sequences given blocks, with their whole tables now.
    pub grown: Vec<(SeqId, Vec<usize>)>,
    /// Sequences preempted (their blocks freed; back at the front of the queue, to be prefilled
    /// again with the slots they had filled).
    pub preempted: Vec<SeqId>,
}

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
    /// Tokens to prefill: the prompt, or for a preempted sequence the slots it had filled.
    prompt_len: usize,
    /// Blocks it needs to be admitted: its prefill and the next token's slot.
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
    /// Most blocks each sequence (waiting or running) can need: its prompt and whole budget.
    max_blocks: std::collections::HashMap<SeqId, usize>,
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
            max_blocks: Default::default(),
            max_prefill_tokens,
            typical_blocks: 1,
        }
    }

    /// Queue a sequence whose prompt has `prompt_len` tokens and whose prompt and output take at
    /// most `max_len` slots. The caller keeps `max_len` within the pool (a sequence that needs
    /// more blocks than the pool has would wait forever).
    pub fn add(&mut self, id: SeqId, prompt_len: usize, max_len: usize) {
        let max_blocks = self.blocks_for(max_len.max(prompt_len));
        let blocks = self.blocks_for(prompt_len + 1).min(max_blocks);
        self.typical_blocks = blocks;
        self.max_blocks.insert(id, max_blocks);
        self.waiting.push_back(Waiting { id, prompt_len, blocks });
    }

    /// Blocks of `slots` slots (at least one).
    fn blocks_for(&self, slots: usize) -> usize {
        slots.div_ceil(self.block_len).max(1)
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
        places.min(self.free_blocks.len().saturating_sub(self.running.len()) / self.typical_blocks.max(1))
    }

    /// Give each running sequence the blocks that cover `filled(id)` slots (its tokens so far and
    /// the one the next step writes), in admission order. Where no block is free, the sequence
    /// admitted last is preempted (it may be the one that needed the block) and its blocks reused;
    /// `filled(id)` of a preempted sequence, less one, is what it will prefill when admitted again.
    pub fn grow(&mut self, filled: impl Fn(SeqId) -> usize) -> Growth {
        let mut growth = Growth::default();
        let mut i = 0;
        'sequences: while i < self.running.len() {
            let id = self.running[i].0;
            let want = self.blocks_for(filled(id)).min(self.max_blocks.get(&id).copied().unwrap_or(usize::MAX));
            let had = self.running[i].1.len();
            while self.running[i].1.len() < want {
                if let Some(block) = self.free_blocks.pop() {
                    self.running[i].1.push(block);
                    continue;
                }
                let (victim, blocks) = self.running.pop().expect("a running sequence");
                self.free_blocks.extend(blocks);
                let prompt_len = filled(victim).saturating_sub(1);
                let blocks = self.blocks_for(prompt_len + 1);
                self.waiting.push_front(Waiting { id: victim, prompt_len, blocks });
                growth.grown.retain(|(g, _)| *g != victim);
                growth.preempted.push(victim);
                if victim == id {
                    break 'sequences;
                }
            }
            if self.running[i].1.len() > had {
                growth.grown.push((id, self.running[i].1.clone()));
            }
            i += 1;
        }
        growth
    }

    /// Whether nothing is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Admit what fits and list the decode batch. Only pages `ready` says are ready (encoded)
    /// are admitted, in order: the first one not ready, or one whose blocks are not free, stops
    /// the admissions. An admitted page's table covers its prefill and first new token; it grows
    /// by [`Scheduler::grow`].
    pub fn schedule(&mut self, ready: impl Fn(SeqId) -> bool) -> Schedule {
        let mut admit = Vec::new();
        let mut tokens = 0;
        while let Some(&Waiting { id, prompt_len, blocks }) = self.waiting.front() {
            // One block to spare for each running sequence: each takes one every 64 tokens.
            let fits = self.running.len() < self.max_seqs && blocks + self.running.len() <= self.free_blocks.len();
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
            self.max_blocks.remove(&id);
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
        self.max_blocks.remove(&id);
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
    fn pages_start_with_their_prompts_blocks_and_grow_as_they_write() {
        let mut s = Scheduler::new(8, 12, 4, 10_000);
        // Prompts of 5, 2 and 10 tokens (and the first new token): 2, 1 and 3 blocks of 4.
        for (id, prompt) in [(1, 5), (2, 2), (3, 10)] {
            s.add(id, prompt, 40);
        }
        let first = s.schedule(|_| true);
        let sizes: Vec<usize> = first.admit.iter().map(|(_, b)| b.len()).collect();
        assert_eq!(sizes, vec![2, 1, 3], "the prompt's blocks, not the budget's");
        assert_eq!(s.free_blocks(), 6);
        // Page 1 has filled 9 slots (3 blocks), page 2 4 (1 block), page 3 12 (3 blocks).
        let growth = s.grow(|id| [0, 9, 4, 12][id as usize]);
        assert_eq!(growth.grown.len(), 1);
        assert_eq!((growth.grown[0].0, growth.grown[0].1.len()), (1, 3));
        assert_eq!(&growth.grown[0].1[..2], first.admit[0].1.as_slice(), "a table only grows at its end");
        assert!(growth.preempted.is_empty());
        let mut all: Vec<usize> = s.running.iter().flat_map(|(_, b)| b.clone()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!((all.len(), s.free_blocks()), (7, 5), "no block given twice");
        // A page is admitted with a block to spare for each running one (1 + 3 ≤ 5), and never
        // holds more than its prompt and budget: 6 slots are 2 blocks.
        s.add(4, 1, 6);
        assert_eq!(ids(&s.schedule(|_| true)), vec![4]);
        s.grow(|id| [0, 9, 4, 12, 40][id as usize]);
        assert_eq!(s.running.iter().find(|(id, _)| *id == 4).unwrap().1.len(), 2);
    }

    #[test]
    fn the_page_admitted_last_is_preempted_when_blocks_run_out() {
        let mut s = Scheduler::new(8, 8, 4, 10_000);
        s.add(1, 3, 32);
        s.add(2, 3, 32);
        assert_eq!(ids(&s.schedule(|_| true)), vec![1, 2]);
        let filled = std::cell::Cell::new([0usize, 13, 13]);
        // 4 blocks each: all 8 in use.
        let growth = s.grow(|id| filled.get()[id as usize]);
        assert_eq!((growth.grown.len(), s.free_blocks()), (2, 0));
        // Page 1 needs a fifth block: page 2 (admitted last) gives its four back and waits at the
        // front of the queue, to prefill the 16 slots it had filled less the one being written.
        filled.set([0, 17, 17]);
        let growth = s.grow(|id| filled.get()[id as usize]);
        assert_eq!(growth.preempted, vec![2]);
        assert_eq!(growth.grown.iter().map(|(id, t)| (*id, t.len())).collect::<Vec<_>>(), vec![(1, 5)]);
        assert_eq!((s.running(), s.waiting(), s.free_blocks()), (1, 1, 3));
        s.add(3, 3, 32);
        assert_eq!(s.waiting_ids().collect::<Vec<_>>(), vec![2, 3], "the preempted page goes first");
        assert!(ids(&s.schedule(|_| true)).is_empty(), "its 5 blocks (and a spare) are not free");
        s.finish(1);
        let next = s.schedule(|_| true);
        assert_eq!(next.admit.iter().map(|(id, t)| (*id, t.len())).collect::<Vec<_>>(), vec![(2, 5), (3, 1)]);
        // Page 2 gives its one block to page 1; page 1 stops growing at its 12-slot cap.
        let mut s = Scheduler::new(8, 3, 4, 10_000);
        s.add(1, 3, 12);
        s.add(2, 1, 2);
        assert_eq!(ids(&s.schedule(|_| true)), vec![1, 2]);
        assert_eq!(s.grow(|id| [0, 6, 2][id as usize]).grown.len(), 1);
        let growth = s.grow(|id| [0, 9, 2][id as usize]);
        assert_eq!(growth.preempted, vec![2]);
        let growth = s.grow(|id| [0, 40, 2][id as usize]);
        assert!(growth.preempted.is_empty() && growth.grown.is_empty(), "page 1 is at its cap");
        // A page alone that needs a block no one can give preempts itself.
        let mut s = Scheduler::new(8, 2, 4, 10_000);
        s.add(1, 3, 100);
        assert_eq!(ids(&s.schedule(|_| true)), vec![1]);
        assert_eq!(s.grow(|_| 9).preempted, vec![1]);
        assert_eq!((s.running(), s.waiting(), s.free_blocks()), (0, 1, 2));
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
