//! Self-check of the RoPE, router and integer-update kernels ([`crate::rope`], [`crate::router`],
//! [`crate::ints`]) against the same computations written out on the host from the same (already
//! rounded) inputs.

use burn::prelude::*;
use burn::tensor::{DType, Distribution};

use crate::check::{KernelCheck, host};
use crate::check_projection::{compare, exact_matmul};
use crate::ints::{increment_ints, overwrite_ints};
use crate::projection::linear_parts;
use crate::rope::rope_qkv_cached;
use crate::router::{RouterConfig, route};

/// One RoPE case: positions per sequence, heads, head size, block length, each sequence's first
/// slot.
type RopeCase = (usize, usize, usize, usize, &'static [i64]);

/// Every RoPE and router case on `device` in `dtype`, accepting `relative` error (of the largest
/// result magnitude, at least 1).
pub(crate) fn check_layer_kernels(device: &Device, dtype: DType, relative: f32) -> Vec<KernelCheck> {
    let mut out = Vec::new();
    // (tokens, heads, head size, block length, starts): a release-size decode step, a prefill
    // chunk across a block edge, three sequences in short blocks, a chunk after 60 earlier slots.
    let rope_cases: [RopeCase; 4] = [(1, 10, 128, 64, &[2]), (5, 4, 16, 4, &[1]), (1, 10, 128, 4, &[6, 0, 3]), (70, 4, 16, 64, &[60])];
    for (t, heads, d, block_len, starts) in rope_cases {
        out.push(check_rope(device, dtype, relative, (t, heads, d, block_len), starts, None));
    }
    // The release-size step again, its QKV given as the projection's parts (split over K on a
    // GPU): the kernel sums them.
    out.push(check_rope(device, dtype, relative, (1, 10, 128, 64), &[2], Some(1280)));
    // A decode step of 32 sequences, their QKV as the tile kernel's split parts (bf16/f16; in f32
    // the projection is Burn's matmul, not dsocr's kernel).
    if dtype != DType::F32 {
        let starts: Vec<i64> = (0..32).map(|i| (i * 37) % 150).collect();
        out.push(check_rope(device, dtype, relative, (1, 10, 128, 64), &starts, Some(1280)));
    }
    // (tokens, hidden, experts, top-k, shared, renormalise, scaling): the release router, the
    // parity model's, and an expert count that is not a multiple of 32.
    for (m, h, e, top_k, shared, renormalise, scaling) in
        [(1, 1280, 64, 6, 2, false, 1.0), (5, 64, 8, 3, 2, true, 2.5), (12, 1280, 72, 6, 0, false, 1.0), (2, 96, 64, 6, 1, true, 1.0)]
    {
        out.push(check_router(device, dtype, (m, h, e), RouterConfig { top_k, shared, renormalise, scaling }));
    }
    if dtype == DType::F32 {
        out.extend(check_ints(device));
    }
    out
}

/// The in-place integer updates: overwrite a batch of ids, then add to a counter twice.
fn check_ints(device: &Device) -> Vec<KernelCheck> {
    let ints = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device);
    let read = |t: Tensor<1, Int>| t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
    let verdict = |kernel, case: &str, ok: bool| KernelCheck {
        kernel,
        case: case.to_string(),
        max_abs_err: if ok { 0.0 } else { f32::INFINITY },
        tolerance: 0.0,
    };
    let src = vec![7, 129_279, 0, 42, 3];
    let ids = overwrite_ints(ints(vec![1, 2, 3, 4, 5]), ints(src.clone()));
    let counter = increment_ints(increment_ints(ints(vec![913]), 1), 5);
    vec![
        verdict("overwrite_ints", "5 token ids", read(ids) == src),
        verdict("increment_ints", "counter 913 + 1 + 5", read(counter) == vec![919]),
    ]
}

/// RoPE with the cache write: q, and the whole pool (the written slots and the untouched ones
/// around them and in other blocks, which an in-place write must leave alone); each sequence's
/// blocks are taken from the top of the pool down (see [`crate::check::scattered_tables`]). With
/// `projected_from = Some(K)` the QKV input is [`linear_parts`] of a `[B·T, K]` activation
/// (compared with the exact product).
fn check_rope(
    device: &Device,
    dtype: DType,
    relative: f32,
    (t, heads, d, block_len): (usize, usize, usize, usize),
    starts: &[i64],
    projected_from: Option<usize>,
) -> KernelCheck {
    let b = starts.len();
    let hidden = heads * d;
    let ends: Vec<i64> = starts.iter().map(|&s| s + t as i64 - 1).collect();
    let width = ends.iter().map(|&e| (e as usize + 1).div_ceil(block_len)).max().unwrap_or(1) + 1;
    let pool: usize = ends.iter().map(|&e| (e as usize + 1).div_ceil(block_len)).sum::<usize>() + 2;
    let tables = crate::check::scattered_tables(pool, width, &ends, block_len);
    let positions = width * block_len + 4;
    let (qkv, x): (crate::PartialSums, Vec<f32>) = match projected_from {
        None => {
            let qkv = Tensor::<2>::random([b * t, 3 * hidden], Distribution::Normal(0.0, 1.0), (device, dtype));
            (qkv.clone().into(), host(qkv))
        }
        Some(k) => {
            let a = Tensor::<2>::random([b * t, k], Distribution::Normal(0.0, 1.0), (device, dtype));
            let w = Tensor::<2>::random([k, 3 * hidden], Distribution::Normal(0.0, 1.0 / (k as f64).sqrt()), (device, dtype));
            let exact = exact_matmul(&host(a.clone()), &host(w.clone()), 0, (b * t, k, 3 * hidden));
            (linear_parts(a, &w), exact.iter().map(|&v| v as f32).collect())
        }
    };
    let angles = Tensor::<2>::random([positions, d], Distribution::Uniform(-3.0, 3.0), (device, DType::F32));
    let (cos, sin) = (angles.clone().cos().cast(dtype), angles.sin().cast(dtype));
    let cache = || Tensor::<4>::random([pool, heads, block_len, d], Distribution::Normal(0.0, 1.0), (device, dtype));
    let (keys, values) = (cache(), cache());
    let (keys_before, values_before) = (host(keys.clone()), host(values.clone()));
    let ints = |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
    let table = ints(&tables).reshape([b, width]);
    let (q, keys, values) = rope_qkv_cached(qkv.clone(), &cos, &sin, &table, &ints(starts), heads, keys, values);
    let (c, s) = (host(cos), host(sin));
    let half = d / 2;
    // Part 0/1/2 (q/k/v) of row (bi, ti), head `head`, element e, rotated for q and k.
    let value = |part: usize, bi: usize, ti: usize, head: usize, e: usize| {
        let row = (bi * t + ti) * 3 * hidden + part * hidden + head * d;
        let xe = f64::from(x[row + e]);
        if part == 2 {
            return xe;
        }
        let tab = (starts[bi] as usize + ti) * d;
        let rotated = if e < half { -f64::from(x[row + e + half]) } else { f64::from(x[row + e - half]) };
        xe * f64::from(c[tab + e]) + rotated * f64::from(s[tab + e])
    };
    let mut expected = Vec::with_capacity(b * heads * t * d + 2 * pool * heads * block_len * d);
    for bi in 0..b {
        for head in 0..heads {
            for ti in 0..t {
                expected.extend((0..d).map(|e| value(0, bi, ti, head, e)));
            }
        }
    }
    // Which (sequence, token) wrote slot `slot` of block `block`, if any.
    let writer = |block: usize, slot: usize| {
        (0..b).find_map(|bi| {
            let used = (ends[bi] as usize + 1).div_ceil(block_len);
            let i = (0..used).find(|&i| tables[bi * width + i] as usize == block)?;
            let position = i * block_len + slot;
            (starts[bi] as usize..=ends[bi] as usize).contains(&position).then(|| (bi, position - starts[bi] as usize))
        })
    };
    for (part, before) in [(1, &keys_before), (2, &values_before)] {
        for block in 0..pool {
            for head in 0..heads {
                for slot in 0..block_len {
                    let at = ((block * heads + head) * block_len + slot) * d;
                    expected.extend((0..d).map(|e| match writer(block, slot) {
                        Some((bi, ti)) => value(part, bi, ti, head, e),
                        None => f64::from(before[at + e]),
                    }));
                }
            }
        }
    }
    let got = [host(q), host(keys), host(values)].concat();
    let source = projected_from.map_or(String::new(), |k| format!(" from a K={k} projection's parts"));
    let case =
        format!("{dtype:?} T={t} heads={heads} d={d} pool {pool} blocks of {block_len}, tables {tables:?} from slots {starts:?}{source}");
    compare("rope_qkv_cached", case, got, &expected, relative)
}

/// Ids must name the exact top-k (a swap of two experts whose exact probabilities differ by
/// less than 1e-6 is a tie, not an error), then the always-on ids `E..` with weight 1; weights
/// are compared with 1e-5 (they are f32 sums of the same f32 products whatever `dtype` the
/// tokens have).
fn check_router(device: &Device, dtype: DType, (m, h, e): (usize, usize, usize), config: RouterConfig) -> KernelCheck {
    let x = Tensor::<2>::random([m, h], Distribution::Normal(0.0, 1.0), (device, dtype));
    let gate = Tensor::<2>::random([e, h], Distribution::Normal(0.0, 0.5 / (h as f64).sqrt()), (device, DType::F32));
    let (ids, weights) = route(x.clone(), &gate, config);
    let got_ids: Vec<i64> = ids.into_data().convert::<i64>().try_to_vec::<i64>().unwrap_or_default();
    let got_w = host(weights);
    let (xv, gv) = (host(x), host(gate));
    let (k, width) = (config.top_k, config.top_k + config.shared);
    let mut max_abs_err = 0.0f32;
    if got_ids.len() != m * width || got_w.len() != m * width {
        max_abs_err = f32::NAN;
    }
    for r in 0..m {
        if max_abs_err.is_nan() {
            break;
        }
        let logits: Vec<f64> = (0..e).map(|j| (0..h).map(|i| f64::from(xv[r * h + i]) * f64::from(gv[j * h + i])).sum::<f64>()).collect();
        let top = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = logits.iter().map(|l| (l - top).exp()).sum();
        let probs: Vec<f64> = logits.iter().map(|l| (l - top).exp() / total).collect();
        let mut order: Vec<usize> = (0..e).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let chosen = &order[..k];
        let norm = if config.renormalise { chosen.iter().map(|&j| probs[j]).sum::<f64>() + 1e-20 } else { 1.0 };
        for (slot, &want) in chosen.iter().enumerate() {
            let got = got_ids[r * width + slot];
            let tie = usize::try_from(got).is_ok_and(|g| g < e && (probs[g] - probs[want]).abs() < 1e-6);
            if got != want as i64 && !tie {
                max_abs_err = f32::INFINITY;
            }
            let weight = probs[want] / norm * config.scaling;
            max_abs_err = max_abs_err.max((f64::from(got_w[r * width + slot]) - weight).abs() as f32);
        }
        for j in 0..config.shared {
            if got_ids[r * width + k + j] != (e + j) as i64 {
                max_abs_err = f32::INFINITY;
            }
            max_abs_err = max_abs_err.max((got_w[r * width + k + j] - 1.0).abs());
        }
    }
    let case = format!(
        "{dtype:?} M={m} H={h} E={e} top-{k} + {} shared{}{}",
        config.shared,
        if config.renormalise { " renormalised" } else { "" },
        if config.scaling != 1.0 { format!(" ×{}", config.scaling) } else { String::new() }
    );
    KernelCheck { kernel: "route", case, max_abs_err, tolerance: 1e-5 }
}
