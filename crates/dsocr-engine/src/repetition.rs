//! The two n-gram repetition blockers of the official code (docs/model.md §7.2).

use std::collections::{HashMap, HashSet};

/// How repeated n-grams are prevented.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RepetitionGuard {
    /// No blocking.
    None,
    /// Hugging Face `no_repeat_ngram_size = n` over prompt + output: never emit a token that
    /// completes an n-gram already present anywhere in the sequence (official `infer()`: 20).
    NoRepeatNgram {
        /// The n-gram size.
        n: usize,
    },
    /// The official vLLM scripts' processor over the generated tokens only: ban a token that would
    /// repeat an n-gram starting within the last `window` tokens, except whitelisted ids
    /// (`<td>`, `</td>`). Images: 30/90, PDFs: 20/50.
    Windowed {
        /// The n-gram size.
        n: usize,
        /// How far back n-grams are searched.
        window: usize,
        /// Token ids never banned.
        whitelist: Vec<u32>,
    },
    /// The official default (`NoRepeatNgram { n: 20 }`).
    #[default]
    OfficialDefault,
}

impl RepetitionGuard {
    /// The vLLM image-script setting: windowed 30/90 with `<td>`/`</td>` whitelisted.
    pub fn vllm_image() -> Self {
        RepetitionGuard::Windowed { n: 30, window: 90, whitelist: vec![128_821, 128_822] }
    }

    /// DeepSeek-OCR 2's vLLM image-script setting: windowed 20/90 with `<td>`/`</td>`
    /// whitelisted (docs/model-ocr2.md §7).
    pub fn vllm_image_ocr2() -> Self {
        RepetitionGuard::Windowed { n: 20, window: 90, whitelist: vec![128_821, 128_822] }
    }

    /// The vLLM PDF-script setting: windowed 20/50 with `<td>`/`</td>` whitelisted.
    pub fn vllm_pdf() -> Self {
        RepetitionGuard::Windowed { n: 20, window: 50, whitelist: vec![128_821, 128_822] }
    }

    fn resolved(&self) -> RepetitionGuard {
        match self {
            RepetitionGuard::OfficialDefault => RepetitionGuard::NoRepeatNgram { n: 20 },
            other => other.clone(),
        }
    }
}

/// Per-sequence state of a [`RepetitionGuard`].
#[derive(Debug, Clone)]
pub struct RepetitionState {
    guard: RepetitionGuard,
    /// Prompt + output ids.
    sequence: Vec<u32>,
    prompt_len: usize,
    /// For `NoRepeatNgram`: every (n−1)-gram seen → tokens that followed it.
    followers: HashMap<Vec<u32>, HashSet<u32>>,
}

impl RepetitionState {
    /// Start with the prompt ids.
    pub fn new(guard: &RepetitionGuard, prompt: &[u32]) -> Self {
        let mut s = RepetitionState { guard: guard.resolved(), sequence: Vec::new(), prompt_len: prompt.len(), followers: HashMap::new() };
        for &t in prompt {
            s.push_inner(t);
        }
        s
    }

    fn push_inner(&mut self, token: u32) {
        self.sequence.push(token);
        if let RepetitionGuard::NoRepeatNgram { n } = self.guard {
            let len = self.sequence.len();
            if n >= 1 && len >= n {
                let key = self.sequence[len - n..len - 1].to_vec();
                self.followers.entry(key).or_default().insert(token);
            }
        }
    }

    /// Record a generated token.
    pub fn push(&mut self, token: u32) {
        self.push_inner(token);
    }

    /// Tokens that may not come next.
    pub fn banned(&self) -> Vec<u32> {
        match &self.guard {
            RepetitionGuard::None | RepetitionGuard::OfficialDefault => Vec::new(),
            RepetitionGuard::NoRepeatNgram { n } => {
                let (n, len) = (*n, self.sequence.len());
                if n == 0 || len + 1 < n {
                    return Vec::new();
                }
                let prefix = &self.sequence[len + 1 - n..];
                let mut out: Vec<u32> = self.followers.get(prefix).map(|s| s.iter().copied().collect()).unwrap_or_default();
                out.sort_unstable();
                out
            }
            RepetitionGuard::Windowed { n, window, whitelist } => {
                let ids = &self.sequence[self.prompt_len..];
                let (n, len) = (*n, ids.len());
                if n == 0 || len < n {
                    return Vec::new();
                }
                let prefix = &ids[len - (n - 1)..];
                let mut out: Vec<u32> = (len.saturating_sub(*window)..=len - n)
                    .filter(|&s| &ids[s..s + n - 1] == prefix)
                    .map(|s| ids[s + n - 1])
                    .filter(|t| !whitelist.contains(t))
                    .collect();
                out.sort_unstable();
                out.dedup();
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_repeat_ngram_covers_prompt_and_output() {
        let mut s = RepetitionState::new(&RepetitionGuard::NoRepeatNgram { n: 3 }, &[1, 2, 3, 1]);
        assert!(s.banned().is_empty()); // last 2 = [3, 1]: never followed yet
        s.push(2); // sequence 1 2 3 1 2 → prefix [1, 2] was followed by 3
        assert_eq!(s.banned(), vec![3]);
        s.push(4);
        s.push(1);
        s.push(2); // [1,2] followed by 3 and 4
        assert_eq!(s.banned(), vec![3, 4]);
    }

    #[test]
    fn windowed_ignores_prompt_old_ngrams_and_whitelist() {
        let guard = RepetitionGuard::Windowed { n: 2, window: 3, whitelist: vec![9] };
        let mut s = RepetitionState::new(&guard, &[5, 6, 5]);
        s.push(5);
        s.push(6);
        s.push(5); // output 5 6 5: prefix [5], window starts at max(0, 3-3)=0: (5→6) banned
        assert_eq!(s.banned(), vec![6]);
        for t in [7, 8, 9, 7] {
            s.push(t);
        } // output 5 6 5 7 8 9 7; window 3 → starts 4..=5: [8,9], [9,7] → prefix [7] not there
        assert!(s.banned().is_empty());
        s.push(9);
        s.push(7); // ... 9 7 9 7: prefix [7]: s in 6..=7: ids[6]=7 → ban ids[7]=9, whitelisted
        assert!(s.banned().is_empty());
    }
}
