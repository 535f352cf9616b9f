//! Rotary position embedding, Llama/NeoX "rotate-half" style over the full head dimension
//! (MODEL_SPEC §3.7; the MLA-only even/odd permutation is not used): the cos/sin tables and the
//! positions of a forward pass. The rotation itself is [`dsocr_kernels::rope_qkv`].

use burn::prelude::*;
use burn::tensor::DType;

/// Precomputed `cos`/`sin` tables `[max_positions, head_dim]` (each half duplicated).
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor<2>,
    sin: Tensor<2>,
    head_dim: usize,
}

impl Rope {
    /// Tables for positions `0..max_positions`, computed in f32 as the reference
    /// (`inv_freq = 1 / θ^(2i/d)`, `angle = position · inv_freq`) and stored in `dtype`.
    pub fn new(head_dim: usize, theta: f64, max_positions: usize, device: &Device, dtype: DType) -> Self {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos = Vec::with_capacity(max_positions * head_dim);
        let mut sin = Vec::with_capacity(max_positions * head_dim);
        for p in 0..max_positions {
            // The reference concatenates the angles with themselves: [a, a].
            for _half in 0..2 {
                for &f in &inv_freq {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let table = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [max_positions, head_dim]), (device, DType::F32)).cast(dtype);
        Rope { cos: table(cos), sin: table(sin), head_dim }
    }

    /// `cos`/`sin` rows `[B, 1, T, d]` for the given positions (row-major `[B, T]`).
    pub fn tables(&self, positions: &PositionIds) -> (Tensor<4>, Tensor<4>) {
        let d = self.head_dim;
        match positions {
            PositionIds::Range { start, len, batch } => {
                let take = |t: &Tensor<2>| t.clone().narrow(0, *start, *len).reshape([1, 1, *len, d]).expand([*batch, 1, *len, d]);
                (take(&self.cos), take(&self.sin))
            }
            PositionIds::PerToken { ids, batch, len } => {
                let idx = Tensor::<1, Int>::from_data(TensorData::new(ids.clone(), [batch * len]), &self.cos.device());
                let take = |t: &Tensor<2>| t.clone().select(0, idx.clone()).reshape([*batch, 1, *len, d]);
                (take(&self.cos), take(&self.sin))
            }
        }
    }
}

/// Positions of the tokens of one forward pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionIds {
    /// Every sequence of the batch at `start..start + len`.
    Range {
        /// First position.
        start: usize,
        /// Tokens per sequence.
        len: usize,
        /// Sequences.
        batch: usize,
    },
    /// One position per token, row-major `[batch, len]`.
    PerToken {
        /// The positions.
        ids: Vec<i64>,
        /// Sequences.
        batch: usize,
        /// Tokens per sequence.
        len: usize,
    },
}
