//! Multi-head self-attention of the decoder (Llama-style MHA with rotate-half RoPE, applied by
//! [`dsocr_kernels::rope_qkv_cached`]; docs/model.md §6.2), reading and extending the KV pool.

use burn::prelude::*;

use dsocr_core::{CoreError, Weights};
use dsocr_kernels::PartialSums;

use crate::config::LmConfig;
use crate::kv_pool::{KvPool, StepSlots};
use crate::projection::Projection;

/// q/k/v/o projections without bias; q, k and v side by side in one `[H, 3H]` weight so a
/// decode step reads them in one launch.
#[derive(Debug, Clone)]
pub struct Attention {
    qkv_proj: Projection,
    o_proj: Projection,
    heads: usize,
}

/// What the attention of one forward pass needs besides its input.
pub struct AttentionContext<'a> {
    /// RoPE table `[P, d]` (cosines).
    pub cos: &'a Tensor<2>,
    /// RoPE table `[P, d]` (sines).
    pub sin: &'a Tensor<2>,
    /// Each sequence's block table and first slot.
    pub slots: &'a StepSlots,
    /// `Some((blocks, start))` for a prefill (one sequence, `T` tokens from slot `start` of its
    /// blocks `blocks`, known on the host); `None` for a decode step (one token per sequence).
    pub prefill: Option<(&'a [usize], usize)>,
    /// A decode step over a host pool: `slots`' tables and starts read once for all layers.
    pub host_slots: Option<(Vec<Vec<usize>>, Vec<usize>)>,
}

impl Attention {
    /// Load `q_proj`, `k_proj`, `v_proj`, `o_proj` under `w`.
    pub fn load(w: &Weights, cfg: &LmConfig) -> Result<Self, CoreError> {
        let h = cfg.hidden_size;
        Ok(Attention {
            qkv_proj: Projection::load(w, &["q_proj.weight", "k_proj.weight", "v_proj.weight"], h, h)?,
            o_proj: Projection::load(w, &["o_proj.weight"], h, h)?,
            heads: cfg.num_attention_heads,
        })
    }

    /// `x` `[B, T, H]` → rows `[B·T, H]` (left as the output projection's parts, for the residual
    /// add + norm to sum), writing this layer's keys/values into `pool`.
    pub fn forward(&self, x: Tensor<3>, layer: usize, pool: &mut KvPool, ctx: &AttentionContext<'_>) -> PartialSums {
        let [b, t, hidden] = x.dims();
        let heads = self.heads;
        // RoPE sums the projection's split-K parts itself.
        let qkv = self.qkv_proj.parts(x.reshape([b * t, hidden]));
        if let Some(host) = pool.host_mut() {
            let tables = (ctx.cos, ctx.sin);
            let out = match (ctx.prefill, &ctx.host_slots) {
                (Some((blocks, start)), _) => host.prefill(layer, qkv.sum(), tables, blocks, start),
                (None, Some((block_tables, starts))) => host.decode(layer, qkv.sum(), tables, block_tables, starts),
                (None, None) => unreachable!("a decode step over a host pool has its slots on the host"),
            };
            return self.project_out(out, [b, t, hidden]);
        }
        // Columns [q | k | v] → heads, q and k rotated; k and v go into the pool.
        let (q, keys, values) = pool.write(layer, qkv, (ctx.cos, ctx.sin), heads, ctx.slots);
        let out = match ctx.prefill {
            // The step's keys are in slot `starts[b]` of each sequence; one token: heads first and
            // tokens first are the same layout.
            None => dsocr_kernels::decode_attention(q, keys, values, ctx.slots.tables(), ctx.slots.starts.clone()).swap_dims(1, 2),
            Some((blocks, start)) => {
                // The sequence's live slots gathered from its blocks (a copy of `start + T` slots).
                let blocks: Vec<i64> = blocks.iter().map(|&b| b as i64).collect();
                let live = |c: &Tensor<4>| dsocr_kernels::gather_blocks(c, &blocks, start + t);
                dsocr_kernels::prefill_attention(q, live(&keys), live(&values), start)
            }
        };
        self.project_out(out, [b, t, hidden])
    }

    /// Tokens first `[B, T, heads, d]` → rows `[B·T, H]` through `o_proj`.
    fn project_out(&self, tokens: Tensor<4>, [b, t, hidden]: [usize; 3]) -> PartialSums {
        self.o_proj.parts(tokens.reshape([b * t, hidden]))
    }
}
