//! Kernel self-check: every kernel against its Burn reference on random inputs, on a given
//! device. Used by the GPU tests and by `dsocr kernels-check` (a user can run it on their GPU).

use burn::prelude::*;
use burn::tensor::{DType, Distribution};

use crate::decode_attention::{KV_BLOCK, decode_attention};

/// The outcome of one kernel case.
#[derive(Debug, Clone)]
pub struct KernelCheck {
    /// Kernel name.
    pub kernel: &'static str,
    /// Shapes and float type of the case.
    pub case: String,
    /// Largest absolute difference to the exact result (computed on the host in f64 from the
    /// same inputs, so the GPU's own reduced-precision paths cannot hide or cause a mismatch).
    /// Projections' tolerances scale with their largest result (at least 1).
    pub max_abs_err: f32,
    /// The largest difference accepted.
    pub tolerance: f32,
}

impl KernelCheck {
    /// Whether the kernel agrees with the reference.
    pub fn passed(&self) -> bool {
        self.max_abs_err.is_finite() && self.max_abs_err <= self.tolerance
    }
}

/// One decode-attention case: pool blocks, heads, head size, block-table width, each sequence's
/// newest slot.
type AttentionCase = (usize, usize, usize, usize, &'static [i64]);

/// Compare each kernel with its reference on `device` in f32 and bf16 (where supported).
/// On a device without dsocr's kernels both sides are the reference and agree trivially; callers
/// check [`crate::runs_cube_kernels`] first.
pub fn check_kernels(device: &Device) -> Vec<KernelCheck> {
    let mut out = Vec::new();
    // The projection kernels (the tile kernel among them) also take f16.
    if device.supports_dtype(DType::F16) {
        out.extend(crate::check_projection::check_projections(device, DType::F16, 2e-2));
    }
    for (dtype, tolerance) in [(DType::F32, 1e-4), (DType::BF16, 2e-2)] {
        if device.supports_dtype(dtype) {
            out.extend(check_in(device, dtype, tolerance));
        }
    }
    out
}

/// Every kernel case in `dtype`.
fn check_in(device: &Device, dtype: DType, tolerance: f32) -> Vec<KernelCheck> {
    let mut out = crate::check_projection::check_projections(device, dtype, tolerance);
    out.extend(crate::check_fused::check_fused(device, dtype, tolerance));
    out.extend(crate::check_layer::check_layer_kernels(device, dtype, tolerance));
    // The encoder-attention and LayerNorm kernels take bf16/f16 only (in f32 both sides are
    // the reference). Their outputs reach |4|, where a bf16 rounding alone is up to 0.016.
    if dtype != DType::F32 {
        out.extend(crate::check_encoder::check_encoder_attention(device, dtype, 3e-2));
        out.extend(crate::check_encoder::check_prefill_attention(device, dtype, 3e-2));
        out.extend(crate::check_encoder::check_layer_norm(device, dtype, 3e-2));
    }
    out.extend(check_decode_attention(device, dtype, tolerance));
    // Dot products of 64 terms of |1|: up to ≈ |30|, where a bf16 rounding alone is up to 0.125;
    // in f32 the reference's batched products may run on TF32 tensor cores on a GPU (1.5e-2
    // measured on an H100).
    out.extend(crate::check_encoder::check_rel_pos(device, dtype, if dtype == DType::F32 { 5e-2 } else { 0.25 }));
    out
}

/// The decode-attention cases on `device` in `dtype`.
pub(crate) fn check_decode_attention(device: &Device, dtype: DType, tolerance: f32) -> Vec<KernelCheck> {
    // (pool blocks, heads, head size, table width, newest): a release-size decode step, three
    // sequences of different lengths over blocks out of order (some unused), short ones with most
    // slots stale, and a head size below 32 (the parity model's) that leaves lanes without elements.
    let cases: [AttentionCase; 4] =
        [(16, 10, 128, 15, &[913]), (40, 10, 128, 16, &[699, 63, 64]), (9, 4, 64, 3, &[2, 0]), (6, 4, 16, 2, &[76, 99])];
    let mut out = Vec::new();
    for (blocks, h, d, m, newest) in cases {
        let (b, l) = (newest.len(), KV_BLOCK);
        let tables = scattered_tables(blocks, m, newest, l);
        let rnd = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), (device, dtype));
        let (q, k, v) = (rnd([b, h, 1, d]), rnd([blocks, h, l, d]), rnd([blocks, h, l, d]));
        let ints = |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
        let got = decode_attention(q.clone(), k.clone(), v.clone(), ints(&tables).reshape([b, m]), ints(newest));
        let (got, qv, kv, vv) = (host(got), host(q), host(k), host(v));
        let expected = exact_decode_attention(&qv, &kv, &vv, &tables, newest, (h, l, d));
        let err = max_abs_diff(&got, &expected);
        out.push(KernelCheck {
            kernel: "decode_attention",
            case: format!("{dtype:?} pool {blocks} blocks × H={h} L={l} d={d} tables={tables:?} newest={newest:?}"),
            max_abs_err: err,
            tolerance,
        });
    }
    out
}

/// Every f32 case: in f32 no case reaches the tensor-core kernels or the 16-bit-only ones
/// (LayerNorm, encoder attention), and the others take the device's plane width, so these are
/// what CubeCL's CPU runtime (one-lane planes) runs: the kernels' indexing and arithmetic are
/// tested without a GPU (the `cube-cpu` feature's test below; docs/gpu.md).
#[cfg(all(test, feature = "cube-cpu"))]
fn check_f32_kernels(device: &Device) -> Vec<KernelCheck> {
    check_in(device, DType::F32, 1e-4)
}

/// Host copy of a tensor as f32 (empty if it cannot be read back, which fails the comparison).
pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

/// The largest `|got − expected|`; NaN (a failed check) when the lengths differ or nothing came
/// back.
pub(crate) fn max_abs_diff(got: &[f32], expected: &[f32]) -> f32 {
    if got.len() != expected.len() || got.is_empty() {
        return f32::NAN;
    }
    got.iter().zip(expected).map(|(g, e)| (g - e).abs()).fold(0.0f32, f32::max)
}

/// Block tables `[B, m]` (flat) for sequences whose last live slots are `newest`: each takes the
/// blocks it needs from the top of a pool of `blocks` downwards (so tables run against block
/// order), and its unused entries name block 0 (a stand-in, as the engine's scratch block).
pub(crate) fn scattered_tables(blocks: usize, m: usize, newest: &[i64], l: usize) -> Vec<i64> {
    let mut next = blocks;
    let mut tables = Vec::with_capacity(newest.len() * m);
    for &last in newest {
        let used = (last as usize + 1).div_ceil(l);
        assert!(used <= m && used < next, "case needs more blocks than the pool or table has");
        tables.extend((0..m).map(|i| if i < used { (next - 1 - i) as i64 } else { 0 }));
        next -= used;
    }
    tables
}

/// Decode attention written out in f64 on host vectors: `q` `[B, H, 1, d]`, the pool `k`/`v`
/// `[blocks, H, L, d]`, sequence `b` reading slots `0..=newest[b]` of its blocks `tables[b·M..]`
/// (`tables` `[B, M]` flat; slot `j` is slot `j % L` of block `tables[b·M + j / L]`).
pub(crate) fn exact_decode_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    tables: &[i64],
    newest: &[i64],
    (h, l, d): (usize, usize, usize),
) -> Vec<f32> {
    let b = newest.len();
    let m = tables.len() / b;
    let mut out = vec![0.0f32; b * h * d];
    for bi in 0..b {
        let filled = newest[bi] as usize + 1;
        for hi in 0..h {
            let slot = |t: &[f32], j: usize| {
                let block = tables[bi * m + j / l] as usize;
                t[((block * h + hi) * l + j % l) * d..][..d].iter().map(|&x| f64::from(x)).collect::<Vec<f64>>()
            };
            let qr: Vec<f64> = q[(bi * h + hi) * d..][..d].iter().map(|&x| f64::from(x)).collect();
            let scores: Vec<f64> =
                (0..filled).map(|j| slot(k, j).iter().zip(&qr).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt()).collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
            let total: f64 = w.iter().sum();
            let mut acc = vec![0.0f64; d];
            for (j, wj) in w.iter().enumerate() {
                for (a, x) in acc.iter_mut().zip(slot(v, j)) {
                    *a += wj * x;
                }
            }
            for (e, a) in acc.iter().enumerate() {
                out[(bi * h + hi) * d + e] = (a / total) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// On the CPU the dispatcher runs the Burn reference: it must agree with the exact host
    /// computation, which validates the check itself.
    #[test]
    fn the_check_passes_for_the_reference_on_the_cpu() {
        let device = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        let checks = super::check_kernels(&device);
        assert_eq!(
            checks.len(),
            4 + 5 + 17 + 5 + 4 + 2 + 1,
            "f32 only on the CPU: 4 attention, 5 norm, 17 projection, 5 RoPE, 4 router, 2 integer-update and 1 argmax cases"
        );
        for c in checks {
            assert!(c.passed(), "{} {}: {} > {}", c.kernel, c.case, c.max_abs_err, c.tolerance);
        }
    }
}

#[cfg(all(test, feature = "cuda"))]
mod gpu_tests {
    /// Every kernel matches its reference on the first CUDA GPU; skipped (with a message) where
    /// there is none.
    #[test]
    fn kernels_match_their_references_on_the_gpu() {
        let device = burn::tensor::Device::cuda(0);
        let has_gpu = std::panic::catch_unwind(|| device.sync().is_ok()).unwrap_or(false);
        if !has_gpu {
            eprintln!("SKIPPED kernels_match_their_references_on_the_gpu: no usable CUDA device");
            return;
        }
        for c in super::check_kernels(&device) {
            assert!(c.passed(), "{} {}: max |err| {} > {}", c.kernel, c.case, c.max_abs_err, c.tolerance);
        }
    }
}

#[cfg(all(test, feature = "cube-cpu"))]
mod cube_cpu_tests {
    /// The f32 kernels on CubeCL's CPU runtime (one-lane planes): the same kernel code that runs
    /// on the GPU, against the exact host computation. Needs LLVM at build time, as the CUDA
    /// feature does (`cargo test --release -p dsocr-kernels --features cube-cpu`; docs/gpu.md).
    #[test]
    fn f32_kernels_match_their_references_on_the_cubecl_cpu_runtime() {
        let device = burn::tensor::Device::cpu();
        assert!(crate::runs_cube_kernels(&device), "the CubeCL CPU device must take dsocr's kernels");
        let checks = super::check_f32_kernels(&device);
        assert_eq!(
            checks.len(),
            4 + 5 + 17 + 5 + 4 + 2 + 1,
            "4 attention, 5 norm, 17 projection, 5 RoPE, 4 router, 2 integer-update and 1 argmax cases"
        );
        for c in checks {
            eprintln!("{} {}: max |err| {:.2e} (tolerance {:.0e})", c.kernel, c.case, c.max_abs_err, c.tolerance);
            assert!(c.passed(), "{} {}: max |err| {} > {}", c.kernel, c.case, c.max_abs_err, c.tolerance);
        }
    }
}
