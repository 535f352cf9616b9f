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

    /// Apply to the last dimension of `x`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.weight.clone(), self.bias.clone())
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
