//! Self-check of the projection kernels ([`crate::projection`]) against the products written out
//! in f64 on the host from the same (already rounded) inputs.

use burn::prelude::*;
use burn::tensor::{DType, Distribution};

use crate::check::{KernelCheck, host};
use dsocr_core::layers::Linear;

use crate::projection::{expert_down, expert_swiglu, linear, linear_layer, swiglu};

/// `x` `[M, K]` · `w` (rows `K`, `N` columns, starting at `offset`) in f64.
pub(crate) fn exact_matmul(x: &[f32], w: &[f32], offset: usize, (m, k, n): (usize, usize, usize)) -> Vec<f64> {
    let mut out = vec![0.0f64; m * n];
    for r in 0..m {
        for kk in 0..k {
            let xv = f64::from(x[r * k + kk]);
            for (c, o) in out[r * n..(r + 1) * n].iter_mut().enumerate() {
                *o += xv * f64::from(w[offset + kk * n + c]);
            }
        }
    }
    out
}

pub(crate) fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

/// The outcome for `got` against `expected`, with the tolerance scaled to the result's size.
pub(crate) fn compare(kernel: &'static str, case: String, got: Vec<f32>, expected: &[f64], relative: f32) -> KernelCheck {
    let scale = expected.iter().fold(1.0f64, |a, e| a.max(e.abs())) as f32;
    let max_abs_err = if got.len() == expected.len() {
        got.iter().zip(expected).map(|(g, e)| (f64::from(*g) - e).abs() as f32).fold(0.0f32, f32::max)
    } else {
        f32::NAN
    };
    KernelCheck { kernel, case, max_abs_err, tolerance: relative * scale }
}

/// Expert ids `[M, S]`: distinct per row, as a router's top-k.
pub(crate) fn expert_ids(m: usize, s: usize, e: usize) -> Vec<i64> {
    (0..m).flat_map(|r| (0..s).map(move |j| ((r * 7 + j * 3) % e) as i64)).collect()
}

/// Every projection case on `device` in `dtype`, accepting `relative` error (of the largest
/// result magnitude, at least 1).
pub(crate) fn check_projections(device: &Device, dtype: DType, relative: f32) -> Vec<KernelCheck> {
    let rnd = |shape: Vec<usize>, std: f64| {
        Tensor::<1>::random([shape.iter().product::<usize>()], Distribution::Normal(0.0, std), (device, dtype))
    };
    let mut out = Vec::new();

    // (rows, K, N): a release-size projection (K split over the grid), an odd width, the most rows
    // one launch takes (K split in two), the dense MLP's down projection (K = 6,848 in
    // splits of unequal length). Past 8 rows, the tensor-core tile kernel (bf16/f16): a decode
    // batch's q/k/v (K split over the grid), o_proj at 100 rows (two row blocks, a partial one),
    // the most rows it takes, a `K` that is not a whole number of staging steps and a partial
    // column block, the dense down projection.
    for (m, k, n) in [
        (1, 1280, 1280),
        (5, 256, 1000),
        (8, 640, 64),
        (2, 6848, 1280),
        (9, 1280, 1280),
        (32, 1280, 3840),
        (100, 1280, 1280),
        (256, 1280, 1280),
        (40, 1000, 520),
        (48, 6848, 1280),
    ] {
        // Past 8 rows only the tile kernel is dsocr's (16-bit types); f32 would check Burn's matmul.
        if m > crate::MAX_KERNEL_ROWS && dtype == DType::F32 {
            continue;
        }
        let (x, w) = (rnd(vec![m, k], 1.0), rnd(vec![k, n], 1.0 / (k as f64).sqrt()));
        let got = linear(x.clone().reshape([m, k]), &w.clone().reshape([k, n]));
        let expected = exact_matmul(&host(x), &host(w), 0, (m, k, n));
        out.push(compare("linear", format!("{dtype:?} M={m} K={k} N={n}"), host(got), &expected, relative));
    }

    // A linear layer over leading dimensions, its bias added ([`linear_layer`]), at the encoders'
    // row counts (hundreds to thousands, partial row blocks): CLIP's three views of 257 tokens
    // against its 1,024-wide projections, and SAM's neck (a 1×1 convolution's weight, read through
    // the transposed view the encoder keeps) over 2 × 30 × 17 positions.
    for (lead, k, n, transposed) in [([3, 257, 1], 1024, 1024, false), ([2, 30, 17], 768, 256, true)] {
        if dtype == DType::F32 {
            continue;
        }
        let m = lead.iter().product::<usize>();
        let std = 1.0 / (k as f64).sqrt();
        let (x, bias) = (rnd(vec![m, k], 1.0), rnd(vec![n], 1.0));
        let weight = match transposed {
            true => Tensor::<2>::random([n, k], Distribution::Normal(0.0, std), (device, dtype)).transpose(),
            false => Tensor::<2>::random([k, n], Distribution::Normal(0.0, std), (device, dtype)),
        };
        let layer = Linear { weight: weight.clone(), bias: Some(bias.clone()) };
        let got = linear_layer(&layer, x.clone().reshape([lead[0], lead[1], lead[2], k]));
        let mut expected = exact_matmul(&host(x), &host(weight), 0, (m, k, n));
        let bias = host(bias);
        for (i, e) in expected.iter_mut().enumerate() {
            *e += f64::from(bias[i % n]);
        }
        out.push(compare(
            "linear_layer",
            format!("{dtype:?} {lead:?}×{k} → {n}, bias{}", if transposed { ", weight transposed" } else { "" }),
            host(got),
            &expected,
            relative,
        ));
    }

    // The weights are allocated as matrices, as loaded ones are: the dense MLP's width (6,848
    // bf16 values) gets rows padded to an aligned pitch on the GPU, which the kernel reads as is.
    // Past 8 rows the tile kernel's SwiGLU (both products in one cube, `K` whole).
    for (m, k, n) in [(1, 1280, 1792), (3, 256, 96), (1, 1280, 6848), (24, 1280, 6848), (70, 256, 96)] {
        if m > crate::MAX_KERNEL_ROWS && dtype == DType::F32 {
            continue;
        }
        let std = 1.0 / (k as f64).sqrt();
        let matrix = || Tensor::<2>::random([k, n], Distribution::Normal(0.0, std), (device, dtype));
        let (x, g, u) = (rnd(vec![m, k], 1.0), matrix(), matrix());
        let got = swiglu(x.clone().reshape([m, k]), &g, &u);
        let (xv, gv, uv) = (host(x), host(g), host(u));
        let (ge, ue) = (exact_matmul(&xv, &gv, 0, (m, k, n)), exact_matmul(&xv, &uv, 0, (m, k, n)));
        let expected: Vec<f64> = ge.iter().zip(&ue).map(|(g, u)| silu(*g) * u).collect();
        out.push(compare("swiglu", format!("{dtype:?} M={m} K={k} N={n}"), host(got), &expected, relative));
    }

    // (tokens, slots, experts, K, N): one decode token at release size, a few tokens and a
    // dozen (one pair per cube), and a batch grouped by expert (from 32 tokens on a GPU), with
    // experts chosen by many tokens (several chunks of pairs) and by few; from 32 tokens in
    // bf16/f16 the tile kernel: a release-size batch, and a prefill-like one whose experts get
    // more pairs than one 64-row block.
    for (m, s, e, k, n) in [
        (1, 6, 16, 1280, 896),
        (3, 6, 10, 256, 128),
        (12, 8, 20, 256, 256),
        (32, 6, 10, 256, 128),
        (64, 8, 66, 1280, 896),
        (200, 8, 20, 256, 128),
    ] {
        // Past the per-pair and grouped kernels' pairs, f32 would check Burn's gathered products.
        if m * s > crate::MAX_EXPERT_PAIRS && dtype == DType::F32 {
            continue;
        }
        let std = 1.0 / (k as f64).sqrt();
        let (x, g, u) = (rnd(vec![m, k], 1.0), rnd(vec![e, k, n], std), rnd(vec![e, k, n], std));
        let ids = expert_ids(m, s, e);
        let ids_t = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [m, s]), device);
        let got = expert_swiglu(x.clone().reshape([m, k]), &g.clone().reshape([e, k, n]), &u.clone().reshape([e, k, n]), ids_t);
        let (xv, gv, uv) = (host(x), host(g), host(u));
        let mut expected = Vec::with_capacity(m * s * n);
        for r in 0..m {
            let row = &xv[r * k..(r + 1) * k];
            for j in 0..s {
                let off = ids[r * s + j] as usize * k * n;
                let (ge, ue) = (exact_matmul(row, &gv, off, (1, k, n)), exact_matmul(row, &uv, off, (1, k, n)));
                expected.extend(ge.iter().zip(&ue).map(|(g, u)| silu(*g) * u));
            }
        }
        out.push(compare("expert_swiglu", format!("{dtype:?} M={m} S={s} E={e} K={k} N={n}"), host(got), &expected, relative));

        // The down projection over the same routing: act [M·S, N] → [M, K].
        let (act, d) = (rnd(vec![m * s, n], 1.0), rnd(vec![e, n, k], 1.0 / (n as f64).sqrt()));
        let weights = Tensor::<2>::random([m, s], Distribution::Uniform(0.0, 1.0), (device, DType::F32));
        let ids_t = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [m, s]), device);
        let got = expert_down(act.clone().reshape([m * s, n]), &d.clone().reshape([e, n, k]), ids_t, weights.clone());
        let (av, dv, wv) = (host(act), host(d), host(weights));
        let mut expected = vec![0.0f64; m * k];
        for r in 0..m {
            for j in 0..s {
                let off = ids[r * s + j] as usize * n * k;
                let y = exact_matmul(&av[(r * s + j) * n..(r * s + j + 1) * n], &dv, off, (1, n, k));
                for (o, v) in expected[r * k..(r + 1) * k].iter_mut().zip(y) {
                    *o += f64::from(wv[r * s + j]) * v;
                }
            }
        }
        out.push(compare("expert_down", format!("{dtype:?} M={m} S={s} E={e} K={n} N={k}"), host(got), &expected, relative));
    }
    out
}
