//! Kernel self-check: every kernel against its Burn reference on random inputs, on a given
//! device. Used by the GPU tests and by `dsocr kernels-check` (a user can run it on their GPU).

use burn::prelude::*;
use burn::tensor::{DType, Distribution};

use crate::decode_attention::decode_attention;

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

/// One decode-attention case: batch, heads, slots, head size, filled slots, pads.
type AttentionCase = (usize, usize, usize, usize, usize, &'static [i64]);

/// Compare each kernel with its reference on `device` in f32 and bf16 (where supported).
/// On a device without dsocr's kernels both sides are the reference and agree trivially; callers
/// check [`crate::runs_cube_kernels`] first.
pub fn check_kernels(device: &Device) -> Vec<KernelCheck> {
    let mut out = Vec::new();
    let dtypes: Vec<(DType, f32)> =
        [(DType::F32, 1e-4), (DType::BF16, 2e-2)].into_iter().filter(|(d, _)| device.supports_dtype(*d)).collect();
    // (batch, heads, slots, head size, filled, pads): a release-size decode step, a batch of
    // left-padded sequences, and a short one with most slots stale.
    // A head size below 32 (the parity model's) leaves lanes without elements.
    let cases: [AttentionCase; 4] =
        [(1, 10, 1200, 128, 914, &[0]), (3, 10, 1024, 128, 700, &[0, 5, 300]), (2, 4, 512, 64, 3, &[0, 1]), (2, 4, 100, 16, 77, &[3, 0])];
    for (dtype, tolerance) in dtypes {
        out.extend(crate::check_projection::check_projections(device, dtype, tolerance));
        out.extend(crate::check_fused::check_fused(device, dtype, tolerance));
        out.extend(crate::check_layer::check_layer_kernels(device, dtype, tolerance));
        for (b, h, s, d, filled, pads) in cases {
            let rnd = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), (device, dtype));
            let (q, k, v) = (rnd([b, h, 1, d]), rnd([b, h, s, d]), rnd([b, h, s, d]));
            let pads_t = Tensor::<1, Int>::from_data(TensorData::new(pads.to_vec(), [b]), device);
            let newest = Tensor::<1, Int>::from_data(TensorData::new(vec![filled as i64 - 1], [1]), device);
            let got = decode_attention(q.clone(), k.clone(), v.clone(), pads_t, newest);
            let (got, qv, kv, vv) = (host(got), host(q), host(k), host(v));
            let expected = exact_decode_attention(&qv, &kv, &vv, pads, (b, h, s, d), filled);
            let err = if got.len() == expected.len() {
                got.iter().zip(&expected).map(|(g, e)| (g - e).abs()).fold(0.0f32, f32::max)
            } else {
                f32::NAN
            };
            out.push(KernelCheck {
                kernel: "decode_attention",
                case: format!("{dtype:?} B={b} H={h} S={s} d={d} filled={filled} pads={pads:?}"),
                max_abs_err: err,
                tolerance,
            });
        }
    }
    out
}

/// Host copy of a tensor as f32 (empty if it cannot be read back, which fails the comparison).
pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

/// Decode attention written out in f64 on host vectors (`[B, H, 1, d]` and `[B, H, S, d]`).
pub(crate) fn exact_decode_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    pads: &[i64],
    (b, h, s, d): (usize, usize, usize, usize),
    filled: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; b * h * d];
    for bi in 0..b {
        let pad = pads[bi] as usize;
        for hi in 0..h {
            let row = |t: &[f32], j: usize| t[((bi * h + hi) * s + j) * d..][..d].iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
            let qr: Vec<f64> = q[(bi * h + hi) * d..][..d].iter().map(|&x| f64::from(x)).collect();
            let scores: Vec<f64> =
                (pad..filled).map(|j| row(k, j).iter().zip(&qr).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt()).collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
            let total: f64 = w.iter().sum();
            let mut acc = vec![0.0f64; d];
            for (j, wj) in (pad..filled).zip(&w) {
                for (a, x) in acc.iter_mut().zip(row(v, j)) {
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
            4 + 5 + 15 + 4 + 4 + 2 + 1,
            "f32 only on the CPU: 4 attention, 5 norm, 15 projection, 4 RoPE, 4 router, 2 integer-update and 1 argmax cases"
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
