//! Rotary position embedding, Llama/NeoX "rotate-half" style over the full head dimension
//! (docs/model.md §6.2; the MLA-only even/odd permutation is not used): the cos/sin tables. The
//! rotation, which picks each token's rows from its cache slot and its sequence's padding, is
//! [`dsocr_kernels::rope_qkv_cached`].

use burn::prelude::*;
use burn::tensor::DType;

/// Precomputed `cos`/`sin` tables `[max_positions, head_dim]` (each half duplicated).
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor<2>,
    sin: Tensor<2>,
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
        Rope { cos: table(cos), sin: table(sin) }
    }

    /// The tables `(cos, sin)`, `[max_positions, head_dim]`.
    pub fn tables(&self) -> (&Tensor<2>, &Tensor<2>) {
        (&self.cos, &self.sin)
    }
}
