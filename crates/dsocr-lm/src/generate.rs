//! Generation: prefill, then one token per step until EOS or the token budget (MODEL_SPEC §6).

use std::time::{Duration, Instant};

use burn::prelude::*;
use burn::tensor::DType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::decode_loop::DeviceDecoder;
use crate::model::{DeepseekLm, LmError};
use crate::repetition::{RepetitionGuard, RepetitionState};

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
        /// Seed of the random generator, for reproducible output.
        seed: u64,
    },
}

/// Settings of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Most new tokens per sequence (default 8192; also capped by the context length).
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Repetition blocking (default: no repeated 20-gram over prompt + output).
    pub repetition: RepetitionGuard,
    /// Keep generating after EOS until `max_new_tokens` (benchmarks).
    pub ignore_eos: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig { max_new_tokens: 8192, sampling: Sampling::Greedy, repetition: RepetitionGuard::default(), ignore_eos: false }
    }
}

/// One prompt to continue.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// The prompt ids (for repetition blocking).
    pub ids: Vec<u32>,
    /// The decoder input `[T, H]` (see [`DeepseekLm::embed_prompt`]).
    pub embeds: Tensor<2>,
}

/// What one sequence produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The new tokens, without the EOS that ended them.
    pub tokens: Vec<u32>,
    /// Whether generation stopped on EOS (false: the token budget ran out).
    pub stopped_on_eos: bool,
}

/// Timings of one generation call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GenerationStats {
    /// Prefill until the first token was known.
    pub prefill: Duration,
    /// All decode steps.
    pub decode: Duration,
    /// Decode steps run (tokens after the first, per sequence).
    pub decode_steps: usize,
}

/// Continue every prompt as one batch. `on_token(sequence, token)` is called for each new token
/// as soon as it is chosen (not for the EOS that ends a sequence).
pub fn generate(
    lm: &DeepseekLm,
    prompts: Vec<Prompt>,
    config: &GenerationConfig,
    mut on_token: impl FnMut(usize, u32),
) -> Result<(Vec<Generated>, GenerationStats), LmError> {
    if prompts.is_empty() {
        return Ok((Vec::new(), GenerationStats::default()));
    }
    if let Sampling::Sample { temperature, top_p, .. } = config.sampling
        && !(temperature.is_finite() && temperature > 0.0 && top_p > 0.0 && top_p <= 1.0)
    {
        return Err(LmError::Settings(format!("temperature must be > 0 and top_p in (0, 1], got {temperature} and {top_p}")));
    }
    let max_pos = lm.config().max_position_embeddings;
    let longest = prompts.iter().map(|p| p.embeds.dims()[0]).max().unwrap_or(0);
    if longest == 0 || longest >= max_pos {
        return Err(LmError::Input(format!("prompt length {longest} must be between 1 and {} (the context length)", max_pos - 1)));
    }
    let budget = config.max_new_tokens.min(max_pos - longest);
    let eos = lm.config().eos_token_id;
    let mut guards: Vec<RepetitionState> = prompts.iter().map(|p| RepetitionState::new(&config.repetition, &p.ids)).collect();
    let mut rng = match config.sampling {
        Sampling::Sample { seed, .. } => Some(StdRng::seed_from_u64(seed)),
        Sampling::Greedy => None,
    };
    let batch = prompts.len();
    let mut outputs = vec![Generated { tokens: Vec::new(), stopped_on_eos: false }; batch];
    let mut done = vec![false; batch];
    let mut stats = GenerationStats::default();
    if budget == 0 {
        return Ok((outputs, stats));
    }

    let t0 = Instant::now();
    let mut cache = lm.new_cache(batch, longest + budget);
    let logits = lm.prefill(prompts.into_iter().map(|p| p.embeds).collect(), &mut cache);
    let (mut next, _) = choose(logits, None, &guards, &config.sampling, rng.as_mut());
    stats.prefill = t0.elapsed();
    let mut decoder = DeviceDecoder::new(lm, cache, &next, budget - 1);
    for step in 0..budget {
        for (s, &token) in next.iter().enumerate() {
            if done[s] {
                continue;
            }
            if token == eos && !config.ignore_eos {
                done[s] = true;
                outputs[s].stopped_on_eos = true;
                continue;
            }
            outputs[s].tokens.push(token);
            guards[s].push(token);
            on_token(s, token);
        }
        if done.iter().all(|&d| d) || step + 1 == budget {
            break;
        }
        let t = Instant::now();
        let (logits, argmax) = decoder.step();
        let (chosen, from_argmax) = choose(logits, Some(argmax), &guards, &config.sampling, rng.as_mut());
        if !from_argmax {
            // The device fed its argmax back as the next input; this step chose on the host.
            decoder.set_tokens(&chosen);
        }
        next = chosen;
        stats.decode += t.elapsed();
        stats.decode_steps += 1;
    }
    Ok((outputs, stats))
}

/// Pick one token per row of `logits` `[B, V]`; `device_argmax` is their argmax where the device
/// already computed it. Returns the tokens and whether they are that argmax.
fn choose(
    logits: Tensor<2>,
    device_argmax: Option<Tensor<1, Int>>,
    guards: &[RepetitionState],
    sampling: &Sampling,
    rng: Option<&mut StdRng>,
) -> (Vec<u32>, bool) {
    let bans: Vec<Vec<u32>> = guards.iter().map(RepetitionState::banned).collect();
    if matches!(sampling, Sampling::Greedy) && bans.iter().all(Vec::is_empty) {
        // The common case stays on the device: only B ids come back.
        let [b, _] = logits.dims();
        let argmax = device_argmax.unwrap_or_else(|| logits.argmax(1).reshape([b]));
        let ids = argmax.into_data().convert::<i64>().try_to_vec::<i64>().expect("argmax ids");
        return (ids.into_iter().map(|v| v as u32).collect(), true);
    }
    let [b, v] = logits.dims();
    let host = logits.cast(DType::F32).into_data().try_to_vec::<f32>().expect("f32 logits");
    let mut rng = rng;
    let chosen = (0..b)
        .map(|s| {
            let mut row = host[s * v..(s + 1) * v].to_vec();
            for &t in &bans[s] {
                if let Some(x) = row.get_mut(t as usize) {
                    *x = f32::NEG_INFINITY;
                }
            }
            match sampling {
                Sampling::Greedy => argmax(&row),
                Sampling::Sample { temperature, top_p, top_k, .. } => {
                    sample(&row, *temperature, *top_p, *top_k, rng.as_deref_mut().expect("sampling has a generator"))
                }
            }
        })
        .collect();
    (chosen, false)
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
