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
        let (cos, sin) = dsocr_core::layers::rope_tables(head_dim, theta, max_positions, device, dtype);
        Rope { cos, sin }
    }

    /// The tables `(cos, sin)`, `[max_positions, head_dim]`.
    pub fn tables(&self) -> (&Tensor<2>, &Tensor<2>) {
        (&self.cos, &self.sin)
    }
}
