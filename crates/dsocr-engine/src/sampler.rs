//! Choosing each sequence's next token: greedy (the official default) or seeded sampling, after
//! the sequence's repetition guard has banned what it must (docs/model.md §7.1-7.2).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::repetition::RepetitionGuard;

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Sampling {
    /// The most likely token (the official default).
    #[default]
    Greedy,
    /// Sample from the temperature-scaled distribution, optionally restricted to the `top_k` most
    /// likely tokens and to the smallest set whose probability reaches `top_p`.
    Sample {
        /// Divides the logits (> 0).
        temperature: f32,
        /// Nucleus threshold in (0, 1]; 1 disables it.
        top_p: f32,
        /// Keep this many tokens; 0 disables it.
        top_k: usize,
        /// Seed of the sequence's random generator, for reproducible output.
        seed: u64,
    },
}

impl Sampling {
    /// Check the settings.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Sampling::Sample { temperature, top_p, .. }
                if !(temperature.is_finite() && temperature > 0.0 && top_p > 0.0 && top_p <= 1.0) =>
            {
                Err(format!("temperature must be > 0 and top_p in (0, 1], got {temperature} and {top_p}"))
            }
            _ => Ok(()),
        }
    }
}

/// How one page's tokens are generated.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most new tokens (default 8192; also capped by the engine's sequence capacity).
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Repetition blocking (default: the official vLLM recipe, see [`RepetitionGuard::vllm_image`]).
    pub repetition: RepetitionGuard,
    /// Keep generating after EOS until `max_new_tokens` (benchmarks).
    pub ignore_eos: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig { max_new_tokens: 8192, sampling: Sampling::Greedy, repetition: RepetitionGuard::vllm_image(), ignore_eos: false }
    }
}

/// One sequence's token chooser: its sampling settings and random generator.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    sampling: Sampling,
    rng: Option<StdRng>,
}

impl Sampler {
    pub(crate) fn new(sampling: &Sampling) -> Self {
        let rng = match sampling {
            Sampling::Sample { seed, .. } => Some(StdRng::seed_from_u64(*seed)),
            Sampling::Greedy => None,
        };
        Sampler { sampling: sampling.clone(), rng }
    }

    /// Whether the device's argmax is this sequence's choice when nothing is banned.
    pub(crate) fn is_greedy(&self) -> bool {
        matches!(self.sampling, Sampling::Greedy)
    }

    /// Choose from a row of logits with `banned` tokens excluded.
    pub(crate) fn pick(&mut self, row: &mut [f32], banned: &[u32]) -> u32 {
        for &t in banned {
            if let Some(x) = row.get_mut(t as usize) {
                *x = f32::NEG_INFINITY;
            }
        }
        match (&self.sampling, self.rng.as_mut()) {
            (Sampling::Sample { temperature, top_p, top_k, .. }, Some(rng)) => sample(row, *temperature, *top_p, *top_k, rng),
            _ => argmax(row),
        }
    }
}

/// Index of the first maximum (as `torch.argmax`).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}

/// Temperature, then top-k, then top-p (the Hugging Face order), then a draw.
fn sample(row: &[f32], temperature: f32, top_p: f32, top_k: usize, rng: &mut StdRng) -> u32 {
    let mut order: Vec<usize> = (0..row.len()).filter(|&i| row[i].is_finite()).collect();
    if order.is_empty() {
        return argmax(row);
    }
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    if top_k > 0 {
        order.truncate(top_k);
    }
    let max = row[order[0]] / temperature;
    let mut probs: Vec<f64> = order.iter().map(|&i| f64::from(row[i] / temperature - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if top_p < 1.0 {
        let mut acc = 0.0;
        let keep = probs.iter().position(|&p| {
            acc += p;
            acc >= f64::from(top_p)
        });
        let keep = keep.map_or(probs.len(), |k| k + 1);
        order.truncate(keep);
        probs.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut draw = rng.random::<f64>();
    for (i, p) in probs.iter().enumerate() {
        if draw < *p {
            return order[i] as u32;
        }
        draw -= p;
    }
    order[order.len() - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_respects_top_k_and_seed() {
        let row = [0.0, 5.0, 4.9, -1.0, f32::NEG_INFINITY];
        let mut a = StdRng::seed_from_u64(7);
        let mut b = StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let x = sample(&row, 1.0, 1.0, 2, &mut a);
            assert!(x == 1 || x == 2);
            assert_eq!(x, sample(&row, 1.0, 1.0, 2, &mut b));
        }
        // A tiny top_p keeps only the best token.
        assert_eq!(sample(&row, 1.0, 0.01, 0, &mut a), 1);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }
}
