//! SAM ViT-B, the first stage of the DeepEncoder (docs/model.md §4.1): patch embedding, absolute
//! positions, windowed and global attention blocks with decomposed relative-position bias, the
//! neck and the two stride-2 convolutions that compress a 1024² view to 16×16 tokens.

use burn::prelude::*;
use burn::tensor::module::{attention, conv2d};
use burn::tensor::ops::PadMode;
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};

use dsocr_core::layers::{LayerNorm, Linear};
use dsocr_core::{CoreError, StreamCopy, Weights};
use dsocr_kernels::{RelPosBias, encoder_attention, gelu, layer_norm, linear_layer, rel_pos_terms};

use crate::config::SamConfig;
use crate::interp::{PerSize, resize_grid_bicubic_aa, resize_rows_linear};

/// How SAM's attention applies its decomposed relative-position bias (docs/model.md §4.1).
///
/// Both give the reference's result; they differ in what the backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelPosAttention {
    /// As the reference: the bias added to the scores ([`dsocr_kernels::encoder_attention`]).
    /// On a CUDA device in bf16/f16 that is dsocr's fused attention kernel, which adds the two
    /// terms inside (nothing `n × n` in memory); elsewhere the `[B, heads, n, n]` bias is
    /// materialised and attention runs on Burn's unfused kernels (0.4 GB of scores per
    /// 1024-pixel view and global block in bf16). Cheapest on the CPU.
    #[default]
    Materialized,
    /// The bias folded into the dot product: each query is extended by its relative-position
    /// terms `q·Rh[qy, ·]` and `q·Rw[qx, ·]`, each key by one-hot indicators of its row and
    /// column, so `q'·k' = q·k/√d + bias` and attention runs without a bias, on the backend's
    /// flash kernel where it has one (nothing `n × n` in memory). Costs a wider score product
    /// (head dim 256 instead of 64). Not the default: on the H200 with Burn 0.22's attention
    /// kernels it measured slower (SAM 0.118 s against 0.080 s a Gundam page, docs/perf.md,
    /// session 10); kept, tested against the recordings, for a faster flash kernel.
    Folded,
}

/// Multi-head attention over a `[B, h, w, C]` map with decomposed relative-position bias.
#[derive(Debug, Clone)]
struct SamAttention {
    qkv: Linear,
    proj: Linear,
    /// `[2·size − 1, head_dim]` tables for the vertical and horizontal offsets.
    rel_pos_h: Tensor<2>,
    rel_pos_w: Tensor<2>,
    /// [`SamAttention::rel_pos`] of each table, per grid size.
    rel_h_tables: PerSize<3>,
    rel_w_tables: PerSize<3>,
    heads: usize,
}

impl SamAttention {
    fn load(w: &Weights, cfg: &SamConfig, rel_len: usize) -> Result<Self, CoreError> {
        let (c, hd) = (cfg.width, cfg.width / cfg.heads);
        Ok(SamAttention {
            qkv: Linear::load(&w.pp("qkv"), c, 3 * c, true)?,
            proj: Linear::load(&w.pp("proj"), c, c, true)?,
            rel_pos_h: w.tensor("rel_pos_h", [rel_len, hd])?,
            rel_pos_w: w.tensor("rel_pos_w", [rel_len, hd])?,
            rel_h_tables: PerSize::default(),
            rel_w_tables: PerSize::default(),
            heads: cfg.heads,
        })
    }

    /// `get_rel_pos`: the `[size, size, head_dim]` table of embeddings for every (query, key)
    /// offset, after resizing the learned table to `2·size − 1` rows when needed.
    fn rel_pos(table: &Tensor<2>, size: usize) -> Tensor<3> {
        let [_, hd] = table.dims();
        let table = resize_rows_linear(table.clone(), 2 * size - 1);
        let idx: Vec<i64> = (0..size).flat_map(|q| (0..size).map(move |k| (q + size - 1 - k) as i64)).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [size * size]), &table.device());
        table.select(0, idx).reshape([size, size, hd])
    }

    fn forward(&self, x: Tensor<4>, mode: RelPosAttention) -> Tensor<4> {
        let [b, h, w, c] = x.dims();
        let (heads, hd) = (self.heads, c / self.heads);
        let n = h * w;
        // q, k, v as `[B, heads, n, hd]` views of the fused projection (no copies).
        let qkv = linear_layer(&self.qkv, x).reshape([b, n, 3 * heads, hd]);
        let split = |part: usize| qkv.clone().narrow(2, part * heads, heads).swap_dims(1, 2);
        let (q, k, v) = (split(0), split(1), split(2));

        // Decomposed relative position bias, from the unscaled queries:
        // bias[(qy,qx),(ky,kx)] = q·Rh[qy,ky] + q·Rw[qx,kx].
        let rh = self.rel_h_tables.get(h, || Self::rel_pos(&self.rel_pos_h, h)); // [h(qy), h(ky), hd]
        let rw = self.rel_w_tables.get(w, || Self::rel_pos(&self.rel_pos_w, w)); // [w(qx), w(kx), hd]
        let RelPosBias { rel_h, rel_w } = rel_pos_terms(q.clone(), &rh, &rw); // [bh, qy, qx, ky], [bh, qy, qx, kx]

        let out = match mode {
            // Scale 1/√hd, the bias added to the scores; the result is `[B, n, heads, hd]`.
            RelPosAttention::Materialized => encoder_attention(q, k, v, Some(RelPosBias { rel_h, rel_w }), None),
            RelPosAttention::Folded => {
                let rel_h = rel_h.reshape([b, heads, n, h]);
                let rel_w = rel_w.reshape([b, heads, n, w]);
                folded_attention(q, k, v, rel_h, rel_w, (h, w)).swap_dims(1, 2)
            }
        };
        let out = out.reshape([b, h, w, c]);
        linear_layer(&self.proj, out)
    }
}

/// Attention with the decomposed bias folded into the dot product ([`RelPosAttention::Folded`]).
///
/// With `d` the extended width (the smallest `hd · 4^k` that holds `hd + h + w`, so that the
/// scale factors below are powers of two and exact in any float type) and attention's default
/// scale `1/√d`:
/// `q' = [q·√(d/hd), rel_h·√d, rel_w·√d, 0…]`, `k' = [k, onehot(ky), onehot(kx), 0…]`, hence
/// `q'·k'/√d = q·k/√hd + rel_h[q, ky] + rel_w[q, kx]`, the reference's biased scores.
fn folded_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, rel_h: Tensor<4>, rel_w: Tensor<4>, (h, w): (usize, usize)) -> Tensor<4> {
    let [b, heads, n, hd] = q.dims();
    let mut d = hd;
    while d < hd + h + w {
        d *= 4;
    }
    let (q_scale, rel_scale) = (((d / hd) as f64).sqrt(), (d as f64).sqrt());
    let device = q.device();
    let dtype = q.dtype();
    // One-hot rows and columns of every key position (row-major, as the tokens).
    let position = Tensor::<1, Int>::arange(0..n as i64, &device);
    let one_hot = |index: Tensor<1, Int>, count: usize| {
        let classes = Tensor::<1, Int>::arange(0..count as i64, &device).reshape([1, count]).expand([n, count]);
        index.reshape([n, 1]).expand([n, count]).equal(classes)
    };
    let rows = one_hot(position.clone().div_scalar(w as i64), h);
    let cols = one_hot(position.remainder_scalar(w as i64), w);
    let rows = rows.float().cast(dtype).reshape([1, 1, n, h]).expand([b, heads, n, h]);
    let cols = cols.float().cast(dtype).reshape([1, 1, n, w]).expand([b, heads, n, w]);
    let mut q_parts = vec![q.mul_scalar(q_scale), rel_h.mul_scalar(rel_scale), rel_w.mul_scalar(rel_scale)];
    let mut k_parts = vec![k, rows, cols];
    let pad = d - (hd + h + w);
    if pad > 0 {
        let zeros = Tensor::<4>::zeros([b, heads, n, pad], (&device, dtype));
        q_parts.push(zeros.clone());
        k_parts.push(zeros);
    }
    attention(Tensor::cat(q_parts, 3), Tensor::cat(k_parts, 3), v, None, None, AttentionModuleOptions::default())
}

/// One pre-norm transformer block, windowed or global.
#[derive(Debug, Clone)]
struct SamBlock {
    norm1: LayerNorm,
    attn: SamAttention,
    norm2: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    /// Window side, or `None` for global attention.
    window: Option<usize>,
}

impl SamBlock {
    fn load(w: &Weights, cfg: &SamConfig, global: bool, pos_grid: usize) -> Result<Self, CoreError> {
        let window = (!global).then_some(cfg.window_size);
        let rel_len = 2 * window.unwrap_or(pos_grid) - 1;
        Ok(SamBlock {
            norm1: LayerNorm::load(&w.pp("norm1"), cfg.width, cfg.eps)?,
            attn: SamAttention::load(&w.pp("attn"), cfg, rel_len)?,
            norm2: LayerNorm::load(&w.pp("norm2"), cfg.width, cfg.eps)?,
            lin1: Linear::load(&w.pp("mlp.lin1"), cfg.width, cfg.mlp_dim, true)?,
            lin2: Linear::load(&w.pp("mlp.lin2"), cfg.mlp_dim, cfg.width, true)?,
            window,
        })
    }

    fn forward(&self, x: Tensor<4>, mode: RelPosAttention) -> Tensor<4> {
        let shortcut = x.clone();
        let x = layer_norm(x, &self.norm1);
        let x = match self.window {
            Some(ws) => {
                let [b, h, w, _] = x.dims();
                let (windows, hp, wp) = window_partition(x, ws);
                window_unpartition(self.attn.forward(windows, mode), ws, b, (hp, wp), (h, w))
            }
            None => self.attn.forward(x, mode),
        };
        let x = shortcut + x;
        let y = linear_layer(&self.lin2, gelu(linear_layer(&self.lin1, layer_norm(x.clone(), &self.norm2))));
        x + y
    }
}

/// Pad `[B, H, W, C]` with zeros on the bottom/right to multiples of `ws` and cut it into
/// row-major `[B·nW, ws, ws, C]` windows. Returns the windows and the padded size.
fn window_partition(x: Tensor<4>, ws: usize) -> (Tensor<4>, usize, usize) {
    let [b, h, w, c] = x.dims();
    let (hp, wp) = (h.div_ceil(ws) * ws, w.div_ceil(ws) * ws);
    let x = if hp != h || wp != w { x.pad([(0, hp - h), (0, wp - w), (0, 0)], PadMode::Constant(0.0)) } else { x };
    let x = x.reshape([b, hp / ws, ws, wp / ws, ws, c]).permute([0, 1, 3, 2, 4, 5]);
    (x.reshape([b * (hp / ws) * (wp / ws), ws, ws, c]), hp, wp)
}

/// Inverse of [`window_partition`], cropping the padding.
fn window_unpartition(windows: Tensor<4>, ws: usize, b: usize, (hp, wp): (usize, usize), (h, w): (usize, usize)) -> Tensor<4> {
    let c = windows.dims()[3];
    let x = windows.reshape([b, hp / ws, wp / ws, ws, ws, c]).permute([0, 1, 3, 2, 4, 5]).reshape([b, hp, wp, c]);
    if hp != h || wp != w { x.slice([0..b, 0..h, 0..w, 0..c]) } else { x }
}

/// A convolution weight `[out, in, kh, kw]` as a linear weight `[in·kh·kw, out]`, for a
/// convolution whose every output reads one patch of `in·kh·kw` values in that order. Laid out
/// anew (through the host, once, at load) rather than kept as a transposed view, which the tile
/// kernel would copy on every call.
fn conv_as_linear(weight: Tensor<4>) -> Tensor<2> {
    let [out, channels, kh, kw] = weight.dims();
    let (device, dtype) = (weight.device(), weight.dtype());
    Tensor::from_data(weight.reshape([out, channels * kh * kw]).transpose().into_data(), (&device, dtype))
}

/// LayerNorm over the channels of an NCHW map (SAM's `LayerNorm2d`).
fn layer_norm_2d(norm: &LayerNorm, x: Tensor<4>) -> Tensor<4> {
    layer_norm(x.permute([0, 2, 3, 1]), norm).permute([0, 3, 1, 2])
}

/// SAM ViT-B with its neck and compressor.
#[derive(Debug, Clone)]
pub struct SamEncoder {
    /// The patch embedding: a `p × p` convolution of stride `p`, applied as a linear over each
    /// patch's `3·p·p` values (channel, row, column: the convolution weight's own order).
    patch_embed: Linear,
    /// `[1, G0, G0, C]` learned absolute positions (G0 = 64 for the release).
    pos_embed: Tensor<4>,
    /// `pos_embed` resized to each grid size `[G, G, C]`.
    pos_tables: PerSize<3>,
    blocks: Vec<SamBlock>,
    /// The neck's 1×1 convolution, applied as a linear over the channels.
    neck_conv1: Linear,
    neck_norm1: LayerNorm,
    neck_conv2: Tensor<4>,
    neck_norm2: LayerNorm,
    net_2: Tensor<4>,
    net_3: Tensor<4>,
    patch_size: usize,
    /// How attention applies the relative-position bias.
    pub rel_pos_attention: RelPosAttention,
}

impl SamEncoder {
    /// Load from `model.sam_model.*`.
    pub fn load(w: &Weights, cfg: &SamConfig) -> Result<Self, CoreError> {
        let (c, p) = (cfg.width, cfg.patch_size);
        let g0 = cfg.image_size / p;
        let blocks = (0..cfg.layers)
            .map(|i| SamBlock::load(&w.pp(format!("blocks.{i}")), cfg, cfg.global_attn_indexes.contains(&i), g0))
            .collect::<Result<Vec<_>, _>>()?;
        let (oc, [d2, d3]) = (cfg.out_chans, cfg.downsample_channels);
        Ok(SamEncoder {
            patch_embed: Linear {
                weight: conv_as_linear(w.tensor("patch_embed.proj.weight", [c, 3, p, p])?),
                bias: Some(w.tensor("patch_embed.proj.bias", [c])?),
            },
            pos_embed: w.tensor("pos_embed", [1, g0, g0, c])?,
            pos_tables: PerSize::default(),
            blocks,
            neck_conv1: Linear { weight: conv_as_linear(w.tensor("neck.0.weight", [oc, c, 1, 1])?), bias: None },
            neck_norm1: LayerNorm::load(&w.pp("neck.1"), oc, cfg.eps)?,
            neck_conv2: w.tensor("neck.2.weight", [oc, oc, 3, 3])?,
            neck_norm2: LayerNorm::load(&w.pp("neck.3"), oc, cfg.eps)?,
            net_2: w.tensor("net_2.weight", [d2, oc, 3, 3])?,
            net_3: w.tensor("net_3.weight", [d3, d2, 3, 3])?,
            patch_size: p,
            rel_pos_attention: RelPosAttention::default(),
        })
    }

    /// `[B, 3, S, S]` normalised pixels → `[B, C_out, S/64, S/64]` features.
    ///
    /// The patch embedding and the neck's 1×1 convolution run as linears (the same sums as the
    /// convolutions): on a GPU they then take dsocr's tile kernel, where Burn's convolution
    /// autotunes a dozen candidates for every new batch of views (docs/perf.md, session 25).
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<4> {
        let p = self.patch_size;
        let [b, channels, height, width] = pixels.dims();
        let (gh, gw) = (height / p, width / p);
        // As the stride-p convolution: rows and columns past the last whole patch are not read.
        let pixels = if (gh * p, gw * p) == (height, width) { pixels } else { pixels.slice([0..b, 0..channels, 0..gh * p, 0..gw * p]) };
        // Each patch's values in the weight's order (channel, row, column): [B, GH, GW, 3·p·p].
        let patches = pixels.reshape([b, channels, gh, p, gw, p]).permute([0, 2, 4, 1, 3, 5]).reshape([b, gh, gw, channels * p * p]);
        let x = linear_layer(&self.patch_embed, patches); // [B, G, G, C]
        // Views are square (docs/model.md §3), as the reference's position resize assumes.
        assert_eq!(gh, gw, "SAM takes square views, not {height}×{width}");
        let g = gh;
        let [_, g0, _, c] = self.pos_embed.dims();
        let pos = self.pos_tables.get(g, || resize_grid_bicubic_aa(self.pos_embed.clone().reshape([g0, g0, c]), g));
        let mut x = x + pos.unsqueeze::<4>();
        for block in &self.blocks {
            x = block.forward(x, self.rel_pos_attention);
        }
        let x = layer_norm(linear_layer(&self.neck_conv1, x), &self.neck_norm1);
        let x = x.permute([0, 3, 1, 2]); // [B, C_out, G, G]
        let same = |k: usize| ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1);
        let x = conv2d(x, self.neck_conv2.clone(), None, same(3));
        let x = layer_norm_2d(&self.neck_norm2, x);
        let down = ConvOptions::new([2, 2], [1, 1], [1, 1], 1);
        let x = conv2d(x, self.net_2.clone(), None, down.clone());
        conv2d(x, self.net_3.clone(), None, down)
    }
}

impl StreamCopy for SamAttention {
    fn stream_copy(&self) -> Self {
        SamAttention {
            qkv: self.qkv.stream_copy(),
            proj: self.proj.stream_copy(),
            rel_pos_h: self.rel_pos_h.stream_copy(),
            rel_pos_w: self.rel_pos_w.stream_copy(),
            rel_h_tables: PerSize::default(),
            rel_w_tables: PerSize::default(),
            heads: self.heads,
        }
    }
}

impl StreamCopy for SamBlock {
    fn stream_copy(&self) -> Self {
        SamBlock {
            norm1: self.norm1.stream_copy(),
            attn: self.attn.stream_copy(),
            norm2: self.norm2.stream_copy(),
            lin1: self.lin1.stream_copy(),
            lin2: self.lin2.stream_copy(),
            window: self.window,
        }
    }
}

impl StreamCopy for SamEncoder {
    fn stream_copy(&self) -> Self {
        SamEncoder {
            patch_embed: self.patch_embed.stream_copy(),
            pos_embed: self.pos_embed.stream_copy(),
            pos_tables: PerSize::default(),
            blocks: self.blocks.stream_copy(),
            neck_conv1: self.neck_conv1.stream_copy(),
            neck_norm1: self.neck_norm1.stream_copy(),
            neck_conv2: self.neck_conv2.stream_copy(),
            neck_norm2: self.neck_norm2.stream_copy(),
            net_2: self.net_2.stream_copy(),
            net_3: self.net_3.stream_copy(),
            patch_size: self.patch_size,
            rel_pos_attention: self.rel_pos_attention,
        }
    }
}
