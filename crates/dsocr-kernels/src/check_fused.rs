//! Self-check of the residual add + RMSNorm ([`crate::add_rms_norm`]), with its delta whole or
//! as a projection's parts ([`crate::PartialSums`]), of the plain RMSNorm ([`crate::rms_norm`]),
//! and of the greedy argmax
//! ([`crate::argmax_into`]), against the same computations written out on the host.

use burn::prelude::*;
use burn::tensor::{DType, Distribution};

use crate::argmax::argmax_into;
use crate::check::{KernelCheck, host};
use crate::check_projection::{compare, exact_matmul, expert_ids};
use crate::norm::{add_rms_norm, rms_norm};
use crate::parts::PartialSums;
use crate::projection::{expert_down_parts, linear_parts};

/// The norm cases and the argmax cases on `device` in `dtype`, accepting `relative` error (of the
/// largest result magnitude, at least 1).
pub(crate) fn check_fused(device: &Device, dtype: DType, relative: f32) -> Vec<KernelCheck> {
    let rnd = |shape: [usize; 2], std: f64| Tensor::<2>::random(shape, Distribution::Normal(0.0, std), (device, dtype));
    let mut out = Vec::new();

    // A whole delta (rows, width).
    for (m, h) in [(1, 1280), (7, 1000)] {
        let delta = rnd([m, h], 1.0);
        let exact: Vec<f64> = host(delta.clone()).iter().map(|&v| f64::from(v)).collect();
        out.push(check_norm(device, dtype, relative, delta.into(), &exact, "whole delta"));
    }

    // Nothing to add: the first layer's input norm (rows, width).
    let (m, h) = (3, 1280);
    let (x, w) = (rnd([m, h], 1.0), Tensor::<1>::random([h], Distribution::Normal(0.0, 1.0), (device, dtype)));
    let got = rms_norm(x.clone(), &w, 1e-6);
    let (xv, wv) = (host(x), host(w.reshape([1, h])));
    let mut expected = Vec::with_capacity(m * h);
    for row in xv.chunks(h) {
        let scale = 1.0 / (row.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / h as f64 + 1e-6).sqrt();
        expected.extend(row.iter().zip(&wv).map(|(&v, &g)| f64::from(v) * scale * f64::from(g)));
    }
    out.push(compare("rms_norm", format!("{dtype:?} M={m} H={h}"), host(got), &expected, relative));

    // An output projection's split-K parts (o_proj at release size: split on a GPU).
    let (a, w) = (rnd([1, 1280], 1.0), rnd([1280, 1280], 1.0 / 1280f64.sqrt()));
    let exact = exact_matmul(&host(a.clone()), &host(w.clone()), 0, (1, 1280, 1280));
    out.push(check_norm(device, dtype, relative, linear_parts(a, &w), &exact, "delta as K=1280 split parts"));
    // The same at 32 rows (a decode batch): the tile kernel's split parts in bf16/f16 (in f32 the
    // product is Burn's matmul, not dsocr's kernel).
    if dtype != DType::F32 {
        let (a, w) = (rnd([32, 1280], 1.0), rnd([1280, 1280], 1.0 / 1280f64.sqrt()));
        let exact = exact_matmul(&host(a.clone()), &host(w.clone()), 0, (32, 1280, 1280));
        out.push(check_norm(device, dtype, relative, linear_parts(a, &w), &exact, "delta as 32 rows' K=1280 split parts"));
    }

    // The experts' per-slot products with their routing weights (tokens, slots, experts, K, N).
    let (m, s, e, k, n) = (5, 6, 10, 256, 128);
    let ids = expert_ids(m, s, e);
    let (act, down) =
        (rnd([m * s, k], 1.0), Tensor::<3>::random([e, k, n], Distribution::Normal(0.0, 1.0 / (k as f64).sqrt()), (device, dtype)));
    let weights = Tensor::<2>::random([m, s], Distribution::Uniform(0.0, 1.0), (device, DType::F32));
    let ids_t = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [m, s]), device);
    let parts = expert_down_parts(act.clone(), &down, ids_t, weights.clone());
    let (av, dv, wv) = (host(act), host(down), host(weights));
    let mut exact = vec![0.0f64; m * n];
    for r in 0..m {
        for j in 0..s {
            let y = exact_matmul(&av[(r * s + j) * k..(r * s + j + 1) * k], &dv, ids[r * s + j] as usize * k * n, (1, k, n));
            for (o, v) in exact[r * n..(r + 1) * n].iter_mut().zip(y) {
                *o += f64::from(wv[r * s + j]) * v;
            }
        }
    }
    out.push(check_norm(device, dtype, relative, parts, &exact, "delta as 6 experts' weighted parts"));

    out.extend(check_argmax(device, dtype));
    out
}

/// `add_rms_norm(x, delta)` for a random residual `x` against `exact_delta` (row-major); both
/// outputs compared.
fn check_norm(device: &Device, dtype: DType, relative: f32, delta: PartialSums, exact_delta: &[f64], what: &str) -> KernelCheck {
    let [m, h] = delta.dims();
    let x = Tensor::<2>::random([m, h], Distribution::Normal(0.0, 1.0), (device, dtype));
    let w = Tensor::<1>::random([h], Distribution::Normal(0.0, 1.0), (device, dtype));
    let (sum, normed) = add_rms_norm(x.clone(), delta, &w, 1e-6);
    let (xv, wv) = (host(x), host(w.reshape([1, h])));
    let sums: Vec<f64> = xv.iter().zip(exact_delta).map(|(a, d)| f64::from(*a) + d).collect();
    let mut expected = sums.clone();
    for r in 0..m {
        let row = &sums[r * h..(r + 1) * h];
        let scale = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / h as f64 + 1e-6).sqrt();
        expected.extend(row.iter().zip(&wv).map(|(v, g)| v * scale * f64::from(*g)));
    }
    let got = [host(sum), host(normed)].concat();
    compare("add_rms_norm", format!("{dtype:?} M={m} H={h} {what}"), got, &expected, relative)
}

/// Greedy argmax over a release-size vocabulary: random rows, a row whose maximum appears twice
/// (the first must win) and one whose maximum is the last logit. Logits are f32 (`dtype` only
/// names the case: the model's logits are f32 whatever its float type).
fn check_argmax(device: &Device, dtype: DType) -> Vec<KernelCheck> {
    if dtype != DType::F32 {
        return Vec::new();
    }
    let (b, v) = (3, 129_280);
    let mut logits = host(Tensor::<2>::random([b, v], Distribution::Normal(0.0, 3.0), (device, DType::F32)));
    logits[v + 5_000] = 100.0;
    logits[v + 70_000] = 100.0;
    logits[2 * v + v - 1] = 100.0;
    let expected: Vec<i64> = logits
        .chunks(v)
        .map(|row| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &x)| if x > best.1 { (i, x) } else { best }).0 as i64)
        .collect();
    let logits_t = Tensor::<2>::from_data(TensorData::new(logits, [b, v]), device);
    let tokens = Tensor::<1, Int>::from_data(TensorData::new(vec![9i64; b], [b]), device);
    let (tokens, next) = argmax_into(logits_t, tokens);
    let read = |t: Tensor<1, Int>| t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
    let ok = read(next) == expected && read(tokens) == expected;
    vec![KernelCheck {
        kernel: "argmax_into",
        case: format!("F32 B={b} V={v} (a tied maximum, a maximum in the last column)"),
        max_abs_err: if ok { 0.0 } else { f32::INFINITY },
        tolerance: 0.0,
    }]
}
