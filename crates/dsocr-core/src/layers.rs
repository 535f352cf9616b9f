//! Layers shared by the vision encoder and the language model, loaded by release names.

use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::module::{layer_norm, linear};

use crate::{CoreError, Weights};

/// A linear layer `y = x · W + b` with `W` held as `[d_in, d_out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[d_in, d_out]` (transposed from PyTorch's `[d_out, d_in]` at load time).
    pub weight: Tensor<2>,
    /// `[d_out]`, when the layer has a bias.
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    /// Load `weight` (and `bias` when `with_bias`) under `w`.
    pub fn load(w: &Weights, d_in: usize, d_out: usize, with_bias: bool) -> Result<Self, CoreError> {
        let weight = w.linear_weight("weight", d_in, d_out)?;
        let bias = if with_bias { Some(w.tensor("bias", [d_out])?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// Apply to the last dimension of `x`, as one `[rows, d_in] · [d_in, d_out]` product over
    /// all leading dimensions: Burn keeps a batched product with the weight broadcast when the
    /// second-to-last dimension is a multiple of 32, which for SAM's `[B, 64, 64, 768]` maps is 64
    /// products of 64 rows each: ≈ 45 TFLOP/s on an H200, where one product of all the rows runs
    /// at 150-170 (docs/perf.md, session 14).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if D <= 2 {
            return linear(x, self.weight.clone(), self.bias.clone());
        }
        let mut dims = x.dims();
        let d_in = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = linear(x.reshape([rows, d_in]), self.weight.clone(), self.bias.clone());
        dims[D - 1] = self.weight.dims()[1];
        y.reshape(dims)
    }
}

/// LayerNorm over the last dimension (`weight`/`bias` in the release names).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale.
    pub weight: Tensor<1>,
    /// Shift.
    pub bias: Tensor<1>,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// Load `weight` and `bias` of width `dim` under `w`.
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self, CoreError> {
        Ok(LayerNorm { weight: w.tensor("weight", [dim])?, bias: w.tensor("bias", [dim])?, eps })
    }

    /// Normalise the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm(x, self.weight.clone(), Some(self.bias.clone()), self.eps)
    }
}

/// RMSNorm as the reference: in f32, `x · rsqrt(mean(x²) + eps)`, cast back to the input type,
/// then scaled by `weight`.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// Scale.
    pub weight: Tensor<1>,
    /// Added to the mean square.
    pub eps: f64,
}

impl RmsNorm {
    /// Load `weight` of width `dim` under `w`.
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self, CoreError> {
        Ok(RmsNorm { weight: w.tensor("weight", [dim])?, eps })
    }

    /// Normalise the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dtype = x.dtype();
        let xf = if dtype == DType::F32 { x } else { x.cast(DType::F32) };
        let ms = xf.clone().square().mean_dim(D - 1);
        let normed = xf * (ms + self.eps).sqrt().recip();
        let normed = if dtype == DType::F32 { normed } else { normed.cast(dtype) };
        normed * self.weight.clone().unsqueeze::<D>()
    }
}

/// Rotary position tables `(cos, sin)`, `[positions, head_dim]`, for the rotate-half (Llama/NeoX)
/// style over the whole head: computed in f32 as the reference (`inv_freq = 1 / θ^(2i/d)`,
/// `angle = position · inv_freq`, the angles concatenated with themselves `[a, a]`), stored in
/// `dtype`. Used by the decoder (θ = 10 000) and DeepSeek-OCR 2's Qwen2 encoder (θ = 10⁶).
pub fn rope_tables(head_dim: usize, theta: f64, positions: usize, device: &Device, dtype: DType) -> (Tensor<2>, Tensor<2>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
    let mut cos = Vec::with_capacity(positions * head_dim);
    let mut sin = Vec::with_capacity(positions * head_dim);
    for p in 0..positions {
        for _half in 0..2 {
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    let table = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [positions, head_dim]), (device, DType::F32)).cast(dtype);
    (table(cos), table(sin))
}

/// Rotate `[B, heads, T, d]` by the tables `[T, d]`: `x·cos + rotate_half(x)·sin` with
/// `rotate_half([x1, x2]) = [−x2, x1]`.
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    let d = x.dims()[3];
    let half = d / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone().unsqueeze::<4>() + rotated * sin.clone().unsqueeze::<4>()
}
