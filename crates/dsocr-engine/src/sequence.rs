//! One page being generated: its KV blocks, tokens so far, sampler, repetition guard and text
//! stream.

use std::sync::Arc;
use std::time::Instant;

use dsocr_core::burn::prelude::*;

use crate::EngineError;
use crate::page::{Event, OcrOptions, PreparedPage, Timings};
use crate::repetition::RepetitionState;
use crate::sampler::Sampler;
use crate::stream::TextStream;
use crate::tokenizer::OcrTokenizer;

type Decode<'m> = Box<dyn Fn(&[u32]) -> String + 'm>;

/// A running page.
pub(crate) struct Sequence<'m> {
    /// The request's tag.
    pub tag: u64,
    /// Its KV pool blocks, in slot order.
    pub blocks: Vec<usize>,
    pub prompt_len: usize,
    budget: usize,
    /// Generated tokens (no EOS).
    pub tokens: Vec<u32>,
    pub stopped_on_eos: bool,
    guard: RepetitionState,
    sampler: Sampler,
    /// Tokens the guard bans for the next choice (computed once per step).
    bans: Vec<u32>,
    eos: u32,
    ignore_eos: bool,
    stream: Option<TextStream<Decode<'m>>>,
    pub image_size: (u32, u32),
    pub timings: Timings,
    first_token: Option<Instant>,
    /// The page and its options, to prefill it again if it is preempted.
    page: Arc<PreparedPage>,
    options: OcrOptions,
}

impl<'m> Sequence<'m> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        tag: u64,
        blocks: Vec<usize>,
        page: Arc<PreparedPage>,
        options: OcrOptions,
        budget: usize,
        stream: bool,
        eos: u32,
        tokenizer: &'m dyn OcrTokenizer,
    ) -> Self {
        let generation = &options.generation;
        let decode: Decode<'m> = Box::new(move |ids: &[u32]| tokenizer.decode(ids));
        Sequence {
            tag,
            blocks,
            prompt_len: page.prompt.len(),
            budget,
            tokens: Vec::new(),
            stopped_on_eos: false,
            guard: RepetitionState::new(&generation.repetition, &page.prompt.input_ids),
            sampler: Sampler::new(&generation.sampling),
            bans: Vec::new(),
            eos,
            ignore_eos: generation.ignore_eos,
            stream: stream.then(|| TextStream::new(decode)),
            image_size: page.image_size,
            timings: Timings { preprocess_s: page.preprocess.as_secs_f64(), ..Default::default() },
            first_token: None,
            page,
            options,
        }
    }

    /// The page and its options (to encode and prefill it again after a preemption).
    pub(crate) fn source(&self) -> (Arc<PreparedPage>, OcrOptions) {
        (self.page.clone(), self.options.clone())
    }

    /// The slot (= position) of the token the next decode step feeds: the last one chosen.
    pub(crate) fn next_slot(&self) -> usize {
        self.prompt_len + self.tokens.len() - 1
    }

    /// The token the next decode step feeds.
    pub(crate) fn last_token(&self) -> u32 {
        *self.tokens.last().expect("a running page has its first token")
    }

    /// Work out the repetition bans for the next choice; whether the choice needs this page's
    /// logits on the host (sampling, or a ban in force) rather than the device's argmax.
    pub(crate) fn needs_logits(&mut self) -> bool {
        self.bans = self.guard.banned();
        !self.sampler.is_greedy() || !self.bans.is_empty()
    }

    /// Whether the page chooses greedily (the device's argmax, less its bans).
    pub(crate) fn is_greedy(&self) -> bool {
        self.sampler.is_greedy()
    }

    /// The tokens banned for the next choice (after [`Sequence::needs_logits`]).
    pub(crate) fn bans(&self) -> &[u32] {
        &self.bans
    }

    /// Choose from this page's row of logits (after [`Sequence::needs_logits`]).
    pub(crate) fn pick(&mut self, row: &mut [f32]) -> u32 {
        self.sampler.pick(row, &self.bans)
    }

    /// Choose the first token from the prefill's logits `[1, V]`.
    pub(crate) fn choose(&mut self, logits: Tensor<2>) -> Result<u32, EngineError> {
        let read = |e| EngineError::Device(format!("cannot read logits back: {e:?}"));
        if self.needs_logits() {
            let mut row = logits.into_data().convert::<f32>().try_to_vec::<f32>().map_err(read)?;
            return Ok(self.pick(&mut row));
        }
        let id = dsocr_kernels::argmax_rows(logits).into_data().convert::<i64>().try_to_vec::<i64>().map_err(read)?;
        Ok(id[0] as u32)
    }

    /// Take the chosen token; `true` when the page is done (EOS, or its budget is spent).
    pub(crate) fn accept(&mut self, token: u32, on_event: &mut dyn FnMut(Event)) -> bool {
        let done = if self.tokens.len() >= self.budget {
            true
        } else if token == self.eos && !self.ignore_eos {
            self.stopped_on_eos = true;
            true
        } else {
            self.tokens.push(token);
            self.guard.push(token);
            if let Some(text) = self.stream.as_mut().and_then(|s| s.push(token)) {
                on_event(Event::Text { tag: self.tag, text });
            }
            self.tokens.len() >= self.budget
        };
        let first = *self.first_token.get_or_insert_with(Instant::now);
        if done {
            self.timings.decode_s = first.elapsed().as_secs_f64();
            self.timings.tokens = self.tokens.len();
            if let Some(text) = self.stream.as_mut().and_then(TextStream::finish) {
                on_event(Event::Text { tag: self.tag, text });
            }
        }
        done
    }
}
