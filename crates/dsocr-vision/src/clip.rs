//! CLIP-L, the second stage of the DeepEncoder (docs/model.md §4.2). It consumes SAM's features as
//! its patch tokens (its own patch convolution is never applied), adds a class token and the
//! resized position table, and runs 24 pre-norm layers with quick-GELU.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use dsocr_core::layers::{LayerNorm, Linear};
use dsocr_core::{CoreError, StreamCopy, Weights};
use dsocr_kernels::{encoder_attention, layer_norm, linear_layer};

use crate::config::ClipConfig;
use crate::interp::{PerSize, resize_grid_bicubic_aa};

/// `z · σ(1.702 z)`.
fn quick_gelu<const D: usize>(z: Tensor<D>) -> Tensor<D> {
    z.clone() * sigmoid(z * 1.702)
}

#[derive(Debug, Clone)]
struct ClipLayer {
    layer_norm1: LayerNorm,
    qkv_proj: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl ClipLayer {
    fn load(w: &Weights, cfg: &ClipConfig) -> Result<Self, CoreError> {
        let c = cfg.width;
        Ok(ClipLayer {
            layer_norm1: LayerNorm::load(&w.pp("layer_norm1"), c, cfg.eps)?,
            qkv_proj: Linear::load(&w.pp("self_attn.qkv_proj"), c, 3 * c, true)?,
            out_proj: Linear::load(&w.pp("self_attn.out_proj"), c, c, true)?,
            layer_norm2: LayerNorm::load(&w.pp("layer_norm2"), c, cfg.eps)?,
            fc1: Linear::load(&w.pp("mlp.fc1"), c, cfg.ffn_hidden_size, true)?,
            fc2: Linear::load(&w.pp("mlp.fc2"), cfg.ffn_hidden_size, c, true)?,
            heads: cfg.heads,
        })
    }

    fn self_attention(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, c] = x.dims();
        let (heads, hd) = (self.heads, c / self.heads);
        // q, k, v as `[B, heads, T, hd]` views of the fused projection (no copies).
        let qkv = linear_layer(&self.qkv_proj, x).reshape([b, t, 3 * heads, hd]);
        let split = |part: usize| qkv.clone().narrow(2, part * heads, heads).swap_dims(1, 2);
        let out = encoder_attention(split(0), split(1), split(2), None, None); // [B, T, heads, hd]
        linear_layer(&self.out_proj, out.reshape([b, t, c]))
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = x.clone() + self.self_attention(layer_norm(x, &self.layer_norm1));
        let y = linear_layer(&self.fc2, quick_gelu(linear_layer(&self.fc1, layer_norm(h.clone(), &self.layer_norm2))));
        h + y
    }
}

/// CLIP-L over SAM features.
#[derive(Debug, Clone)]
pub struct ClipEncoder {
    class_embedding: Tensor<1>,
    /// `[1 + g0², C]`: the class position, then the g0×g0 grid row-major.
    position_embedding: Tensor<2>,
    pre_layrnorm: LayerNorm,
    layers: Vec<ClipLayer>,
    position_grid: usize,
    /// [`ClipEncoder::positions`] per grid size.
    position_tables: PerSize<2>,
}

impl ClipEncoder {
    /// Load from `model.vision_model.*`.
    pub fn load(w: &Weights, cfg: &ClipConfig) -> Result<Self, CoreError> {
        let (c, g0, p) = (cfg.width, cfg.position_grid(), cfg.patch_size);
        // Part of the release checkpoint but never applied on this path (SAM features replace it):
        // checked and recorded, not loaded.
        w.expect_unused("embeddings.patch_embedding.weight", &[c, 3, p, p])?;
        let layers =
            (0..cfg.layers).map(|i| ClipLayer::load(&w.pp(format!("transformer.layers.{i}")), cfg)).collect::<Result<Vec<_>, _>>()?;
        Ok(ClipEncoder {
            class_embedding: w.tensor("embeddings.class_embedding", [c])?,
            position_embedding: w.tensor("embeddings.position_embedding.weight", [g0 * g0 + 1, c])?,
            pre_layrnorm: LayerNorm::load(&w.pp("pre_layrnorm"), c, cfg.eps)?,
            layers,
            position_grid: g0,
            position_tables: PerSize::default(),
        })
    }

    /// The position table for a `g × g` token grid: class row, then the grid resized with
    /// anti-aliased bicubic interpolation when `g` differs from the trained grid.
    fn positions(&self, g: usize) -> Tensor<2> {
        let [rows, c] = self.position_embedding.dims();
        let g0 = self.position_grid;
        let class = self.position_embedding.clone().narrow(0, 0, 1);
        let grid = self.position_embedding.clone().narrow(0, 1, rows - 1).reshape([g0, g0, c]);
        let grid = resize_grid_bicubic_aa(grid, g).reshape([g * g, c]);
        Tensor::cat(vec![class, grid], 0)
    }

    /// SAM features `[B, C, g, g]` → `[B, 1 + g², C]` (class token first).
    pub fn forward(&self, sam_features: Tensor<4>) -> Tensor<3> {
        let [b, c, g, _] = sam_features.dims();
        let patches = sam_features.reshape([b, c, g * g]).swap_dims(1, 2); // [B, g², C]
        let class = self.class_embedding.clone().reshape([1, 1, c]).expand([b, 1, c]);
        let positions = self.position_tables.get(g, || self.positions(g));
        let x = Tensor::cat(vec![class, patches], 1) + positions.unsqueeze::<3>();
        let mut x = layer_norm(x, &self.pre_layrnorm);
        for layer in &self.layers {
            x = layer.forward(x);
        }
        x
    }
}

impl StreamCopy for ClipLayer {
    fn stream_copy(&self) -> Self {
        ClipLayer {
            layer_norm1: self.layer_norm1.stream_copy(),
            qkv_proj: self.qkv_proj.stream_copy(),
            out_proj: self.out_proj.stream_copy(),
            layer_norm2: self.layer_norm2.stream_copy(),
            fc1: self.fc1.stream_copy(),
            fc2: self.fc2.stream_copy(),
            heads: self.heads,
        }
    }
}

impl StreamCopy for ClipEncoder {
    fn stream_copy(&self) -> Self {
        ClipEncoder {
            class_embedding: self.class_embedding.stream_copy(),
            position_embedding: self.position_embedding.stream_copy(),
            pre_layrnorm: self.pre_layrnorm.stream_copy(),
            layers: self.layers.stream_copy(),
            position_grid: self.position_grid,
            position_tables: PerSize::default(),
        }
    }
}
