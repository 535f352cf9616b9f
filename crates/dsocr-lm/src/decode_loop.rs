//! The device side of the decode loop: the step's input tokens and the KV cache live on the
//! device, and each step is [`DeepseekLm::decode_step_on_device`]: issued launch by launch, or
//! captured once as a graph and replayed (one CUDA graph launch per step instead of ≈ 130 kernel
//! launches, each costing host time in Burn's fusion layer).
//!
//! A capture runs the step four times (three warm-ups so every buffer and fused kernel exists,
//! then the recorded run). Those runs advance the cache's slot counter and overwrite the input
//! tokens; afterwards both are restored, and the slots they wrote (past the filled ones) are
//! rewritten by the real steps before any step attends to them.

use std::cell::RefCell;
use std::rc::Rc;

use burn::prelude::*;
use burn::tensor::Graph;

use crate::kv_cache::KvCache;
use crate::model::DeepseekLm;

/// A captured step is worth its four set-up runs only for requests with more steps than this.
const MIN_STEPS_TO_CAPTURE: usize = 16;

/// What one step returns: the logits `[B, V]` (f32) and their argmax `[B]`.
pub(crate) type StepOutput = (Tensor<2>, Tensor<1, Int>);

/// The tensors a step reads and writes in place.
struct StepState {
    tokens: Tensor<1, Int>,
    cache: KvCache,
}

type StepFn<'a> = Box<dyn FnMut() -> StepOutput + 'a>;

/// Runs the decode steps of one request.
pub(crate) struct DeviceDecoder<'a> {
    lm: &'a DeepseekLm,
    state: Rc<RefCell<StepState>>,
    /// Steps still to run; decides whether a capture pays off.
    steps_left: usize,
    graph: Option<Graph<StepOutput, StepFn<'a>>>,
    /// The tokens the next step embeds, as the host last set them (to restore after a capture).
    host_tokens: Vec<u32>,
}

impl<'a> DeviceDecoder<'a> {
    /// A decoder continuing `cache` (after the prefill) from `first` (one token per sequence),
    /// for at most `steps` steps.
    pub(crate) fn new(lm: &'a DeepseekLm, cache: KvCache, first: &[u32], steps: usize) -> Self {
        let tokens = Tensor::<1, Int>::from_data(ids(first), &lm.device());
        let state = Rc::new(RefCell::new(StepState { tokens, cache }));
        DeviceDecoder { lm, state, steps_left: steps, graph: None, host_tokens: first.to_vec() }
    }

    /// Make the next step embed `tokens` instead of the previous step's argmax (written into the
    /// input buffer in place, where a captured graph reads it).
    pub(crate) fn set_tokens(&mut self, tokens: &[u32]) {
        self.host_tokens = tokens.to_vec();
        let mut state = self.state.borrow_mut();
        let src = Tensor::<1, Int>::from_data(ids(tokens), &self.lm.device());
        let dst = std::mem::replace(&mut state.tokens, src.clone());
        state.tokens = dsocr_kernels::overwrite_ints(dst, src);
    }

    /// Run one step.
    pub(crate) fn step(&mut self) -> StepOutput {
        if self.graph.is_none() && self.lm.decode_graph() && self.steps_left > MIN_STEPS_TO_CAPTURE {
            self.capture();
        }
        self.steps_left = self.steps_left.saturating_sub(1);
        match self.graph.as_mut() {
            Some(graph) => {
                // SAFETY: the recorded launches read and write the weights (borrowed from `lm`
                // for 'a, which outlives the graph), the cache and token buffers (owned by
                // `state`, which the graph's closure keeps alive and nothing replaces: every
                // update is in place) and intermediates the graph itself keeps; everything runs
                // on this thread's one stream.
                let hardware = graph.is_hardware();
                let out = unsafe { graph.replay() }.clone();
                if hardware {
                    // The closure did not run: only the device counter advanced.
                    self.state.borrow_mut().cache.note_replayed(1);
                }
                out
            }
            None => {
                let mut state = self.state.borrow_mut();
                let StepState { tokens, cache } = &mut *state;
                self.lm.decode_step_on_device(tokens, cache)
            }
        }
    }

    /// Capture the step, then undo what the capture's runs did to the state.
    fn capture(&mut self) {
        let (lm, state) = (self.lm, self.state.clone());
        let len = state.borrow().cache.len();
        let step: StepFn<'a> = Box::new(move || {
            let mut state = state.borrow_mut();
            let StepState { tokens, cache } = &mut *state;
            lm.decode_step_on_device(tokens, cache)
        });
        let graph = burn::tensor::capture(&lm.device(), step);
        tracing::debug!(hardware = graph.is_hardware(), "decode step captured");
        self.state.borrow_mut().cache.set_len(len);
        let tokens = self.host_tokens.clone();
        self.set_tokens(&tokens);
        self.graph = Some(graph);
    }
}

fn ids(tokens: &[u32]) -> TensorData {
    TensorData::new(tokens.iter().map(|&t| i64::from(t)).collect::<Vec<i64>>(), [tokens.len()])
}
