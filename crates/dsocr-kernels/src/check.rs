//! Kernel self-check: every kernel against its Burn reference on random inputs, on a given
//! device. Used by the GPU tests and by `dsocr kernels-check` (a user can run it on their GPU).

use burn::prelude::*;
use burn::tensor::{DType, Distribution};

use crate::decode_attention::{decode_attention, decode_attention_reference};

/// The outcome of one kernel case.
#[derive(Debug, Clone)]
pub struct KernelCheck {
    /// Kernel name.
    pub kernel: &'static str,
    /// Shapes and float type of the case.
    pub case: String,
    /// Largest absolute difference to the reference (computed in f32 from the same inputs).
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
    let cases: [AttentionCase; 3] = [(1, 10, 1200, 128, 914, &[0]), (3, 10, 1024, 128, 700, &[0, 5, 300]), (2, 4, 512, 64, 3, &[0, 1])];
    for (dtype, tolerance) in dtypes {
        for (b, h, s, d, filled, pads) in cases {
            let rnd = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), (device, dtype));
            let (q, k, v) = (rnd([b, h, 1, d]), rnd([b, h, s, d]), rnd([b, h, s, d]));
            let pads_t = Tensor::<1, Int>::from_data(TensorData::new(pads.to_vec(), [b]), device);
            let got = decode_attention(q.clone(), k.clone(), v.clone(), pads_t.clone(), filled).cast(DType::F32);
            let f = |t: Tensor<4>| t.cast(DType::F32);
            let expected = decode_attention_reference(f(q), f(k), f(v), pads_t, filled);
            let err = (got - expected).abs().max().into_data().convert::<f32>().try_to_vec::<f32>().map_or(f32::NAN, |v| v[0]);
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
