//! Self-check of the encoders' kernels (attention, [`crate::encoder_attention`]; LayerNorm,
//! [`crate::layer_norm`]) and of the decoder's prefill attention on the same kernel
//! ([`crate::prefill_attention`]) against their Burn references run in f32 on the same (already
//! rounded) inputs, at the real shapes.

use burn::prelude::*;
use burn::tensor::{DType, Distribution};

use crate::check::{KernelCheck, host, max_abs_diff};
use crate::encoder_attention::{RelPosBias, encoder_attention, encoder_attention_reference};
use crate::norm::{layer_norm, layer_norm_reference};
use crate::prefill_attention::{prefill_attention, prefill_attention_reference};

/// One case: name, views, heads, key/value heads, tokens (a `Gh × Gw` grid when the bias is on),
/// relative-position bias, `causal_from`.
struct Case {
    name: &'static str,
    batch: usize,
    heads: usize,
    kv_heads: usize,
    grid: (usize, usize),
    bias: bool,
    causal_from: Option<usize>,
}

/// Every case in `dtype` (the kernel takes bf16 and f16; in f32 both sides are the reference).
pub(crate) fn check_encoder_attention(device: &Device, dtype: DType, tolerance: f32) -> Vec<KernelCheck> {
    let case = |name, batch, heads, kv_heads, grid, bias, causal_from| Case { name, batch, heads, kv_heads, grid, bias, causal_from };
    let cases = [
        // SAM's global blocks: a 1024-pixel view (64×64 tokens) and two 640-pixel tiles (40×40).
        case("sam global 1024", 1, 12, 12, (64, 64), true, None),
        case("sam global 640 tiles", 2, 12, 12, (40, 40), true, None),
        // SAM's windowed blocks: 14×14 windows (196 tokens: a partial last block of keys and queries).
        case("sam windows", 9, 12, 12, (14, 14), true, None),
        // CLIP-L: 257 tokens (class token and a 16×16 grid), 16 heads, no bias.
        case("clip", 2, 16, 16, (1, 257), false, None),
        // DeepSeek-OCR 2's Qwen2 encoder: 144 image tokens then 144 queries, 14 query heads on 2
        // key/value heads, causal over the queries.
        case("qwen2 768 view", 2, 14, 2, (1, 288), false, Some(144)),
        case("qwen2 1024 view", 1, 14, 2, (1, 512), false, Some(256)),
    ];
    cases.iter().map(|c| check_case(device, dtype, tolerance, c)).collect()
}

fn check_case(device: &Device, dtype: DType, tolerance: f32, c: &Case) -> KernelCheck {
    let d = 64;
    let (gh, gw) = c.grid;
    let n = gh * gw;
    let rnd = |shape: [usize; 4], std: f64| Tensor::<4>::random(shape, Distribution::Normal(0.0, std), (device, dtype));
    // Queries, keys and values as views of one fused projection [B, n, (heads + 2·kv)·d], as the
    // encoders produce them (strided reads, no copies).
    let fused = rnd([c.batch, n, c.heads + 2 * c.kv_heads, d], 1.0);
    let split = |start: usize, count: usize| fused.clone().narrow(2, start, count).swap_dims(1, 2);
    let (q, k, v) = (split(0, c.heads), split(c.heads, c.kv_heads), split(c.heads + c.kv_heads, c.kv_heads));
    // The bias tables as SAM makes them: permuted views of the products over key rows and key
    // columns (`rel_h` strides `[Gw·Gh, B·heads·Gw·Gh, Gh, 1]`, `rel_w` `[Gh·Gw, Gw, B·heads·Gh·Gw, 1]`).
    let bh = c.batch * c.heads;
    let bias = c.bias.then(|| RelPosBias {
        rel_h: rnd([gh, bh, gw, gh], 0.5).permute([1, 0, 2, 3]),
        rel_w: rnd([gw, bh, gh, gw], 0.5).permute([1, 2, 0, 3]),
    });
    let got = host(encoder_attention(q.clone(), k.clone(), v.clone(), bias.clone(), c.causal_from));
    let f32s = |t: Tensor<4>| t.cast(DType::F32);
    let bias32 = bias.map(|rel| RelPosBias { rel_h: f32s(rel.rel_h), rel_w: f32s(rel.rel_w) });
    let expected = host(encoder_attention_reference(f32s(q), f32s(k), f32s(v), bias32, c.causal_from));
    let err = max_abs_diff(&got, &expected);
    KernelCheck {
        kernel: "encoder_attention",
        case: format!(
            "{dtype:?} {}: B={} heads={}/{} n={n}{}{}",
            c.name,
            c.batch,
            c.heads,
            c.kv_heads,
            if c.bias { format!(" bias {gh}x{gw}") } else { String::new() },
            c.causal_from.map_or(String::new(), |f| format!(" causal from {f}"))
        ),
        max_abs_err: err,
        tolerance,
    }
}

/// The decoder's prefill attention (10 heads of 128) in `dtype`: a whole 913-token prompt (a
/// partial last block of queries and keys), a later chunk seeing 657 earlier slots, a short chunk
/// whose queries sit inside one block of keys, one token after a prompt.
pub(crate) fn check_prefill_attention(device: &Device, dtype: DType, tolerance: f32) -> Vec<KernelCheck> {
    let (heads, d) = (10, 128);
    [(0usize, 913usize), (657, 256), (5, 70), (913, 1)]
        .into_iter()
        .map(|(start, t)| {
            let rnd = |n: usize| Tensor::<4>::random([1, heads, n, d], Distribution::Normal(0.0, 1.0), (device, dtype));
            // The keys and values as the decoder has them: gathered from the pool, contiguous;
            // the queries a view of the rotated projection.
            let q = Tensor::<4>::random([1, t, heads, d], Distribution::Normal(0.0, 1.0), (device, dtype)).swap_dims(1, 2);
            let (k, v) = (rnd(start + t), rnd(start + t));
            let got = host(prefill_attention(q.clone(), k.clone(), v.clone(), start));
            let f32s = |t: Tensor<4>| t.cast(DType::F32);
            let expected = host(prefill_attention_reference(f32s(q), f32s(k), f32s(v), start));
            KernelCheck {
                kernel: "prefill_attention",
                case: format!("{dtype:?} heads={heads} d={d}: {t} queries from slot {start}"),
                max_abs_err: max_abs_diff(&got, &expected),
                tolerance,
            }
        })
        .collect()
}

/// SAM's relative-position terms in `dtype` on dsocr's kernel (called directly, whatever the
/// settings say): a global block of a 1024-pixel view (64×64 grid: rows of 128 terms), one
/// 640-pixel tile (40×40: rows of 80 terms, which CUDA pads) and the windowed blocks' 14×14
/// windows (rows of 28), the queries views of the fused projection. Nothing on a device without
/// CubeCL kernels (there the terms are the reference itself).
pub(crate) fn check_rel_pos(device: &Device, dtype: DType, tolerance: f32) -> Vec<KernelCheck> {
    #[cfg(feature = "cuda")]
    if crate::runs_cube_kernels(device) {
        let (heads, d) = (12, 64);
        return [("sam global 1024", 1usize, 64usize), ("sam global 640 tile", 1, 40), ("sam windows", 9, 14)]
            .into_iter()
            .map(|(name, batch, g)| {
                let rnd = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), (device, dtype));
                let q = rnd([batch, g * g, 3 * heads, d]).narrow(2, 0, heads).swap_dims(1, 2);
                let table = || -> Tensor<3> { rnd([1, g, g, d]).squeeze_dim(0) };
                let (rh, rw) = (table(), table());
                let got = crate::rel_pos::rel_pos_terms_kernel(q.clone(), &rh, &rw);
                let f32s = |t: Tensor<3>| t.cast(DType::F32);
                let want = crate::rel_pos::rel_pos_terms_reference(q.cast(DType::F32), &f32s(rh), &f32s(rw));
                let err = max_abs_diff(&host(got.rel_h), &host(want.rel_h)).max(max_abs_diff(&host(got.rel_w), &host(want.rel_w)));
                KernelCheck {
                    kernel: "rel_pos_terms",
                    case: format!("{dtype:?} {name}: B={batch} heads={heads} grid {g}x{g}"),
                    max_abs_err: err,
                    tolerance,
                }
            })
            .collect();
    }
    let _ = (device, dtype, tolerance);
    Vec::new()
}

/// LayerNorm at the encoders' widths and row counts, in `dtype` (the kernel takes bf16 and f16).
pub(crate) fn check_layer_norm(device: &Device, dtype: DType, tolerance: f32) -> Vec<KernelCheck> {
    // (name, rows, width, eps): SAM's blocks over two 64×64 views, CLIP-L over two 257-token
    // views, SAM's neck (256 channels).
    let cases = [("sam blocks", 8192, 768, 1e-6), ("clip", 514, 1024, 1e-5), ("sam neck", 4096, 256, 1e-6)];
    cases
        .iter()
        .map(|&(name, rows, width, eps)| {
            let rnd = |shape: [usize; 2], mean: f64, std: f64| Tensor::<2>::random(shape, Distribution::Normal(mean, std), (device, dtype));
            let x = rnd([rows, width], 0.3, 2.0);
            let weight: Tensor<1> = rnd([1, width], 1.0, 0.2).reshape([width]);
            let bias: Tensor<1> = rnd([1, width], 0.0, 0.1).reshape([width]);
            let norm = dsocr_core::layers::LayerNorm { weight: weight.clone(), bias: bias.clone(), eps };
            let got = host(layer_norm(x.clone(), &norm));
            let f32s = |t: Tensor<1>| t.cast(DType::F32);
            let norm32 = dsocr_core::layers::LayerNorm { weight: f32s(weight), bias: f32s(bias), eps };
            let expected = host(layer_norm_reference(x.cast(DType::F32), &norm32));
            let err = max_abs_diff(&got, &expected);
            KernelCheck { kernel: "layer_norm", case: format!("{dtype:?} {name}: {rows}x{width}"), max_abs_err: err, tolerance }
        })
        .collect()
}
