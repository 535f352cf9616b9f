//! Attention of one new query per sequence over the KV cache (a decode step).
//!
//! Sequences are left-padded: sequence `b` has keys in slots `pads[b]..filled`; slots before its
//! pad and from `filled` on are ignored. The keys and values may span more slots than `filled`
//! (the whole preallocated cache): the kernel reads only the live ones, so its shape never changes
//! during a request and `filled` is a run-time argument.

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

/// `softmax(q·Kᵀ/√d)·V` for one query per sequence and head.
///
/// `q` `[B, H, 1, d]`, `keys`/`values` `[B, H, S, d]` with `S ≥ filled`, `pads` `[B]` (slots
/// before each sequence's first token). Returns `[B, H, 1, d]` in `q`'s float type.
pub fn decode_attention(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, pads: Tensor<1, Int>, filled: usize) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if crate::runs_cube_kernels(&q.device()) && crate::cuda::decode_attention_supported(&q) {
        return crate::cuda::decode_attention(q, keys, values, pads, filled);
    }
    decode_attention_reference(q, keys, values, pads, filled)
}

/// The plain Burn definition of [`decode_attention`]: attention over slots `0..filled` with the
/// padding masked.
pub fn decode_attention_reference(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, pads: Tensor<1, Int>, filled: usize) -> Tensor<4> {
    let [b, h, _, d] = q.dims();
    let keys = keys.slice([0..b, 0..h, 0..filled, 0..d]);
    let values = values.slice([0..b, 0..h, 0..filled, 0..d]);
    let slots = Tensor::<1, Int>::arange(0..filled as i64, &q.device()).reshape([1, 1, 1, filled]).expand([b, 1, 1, filled]);
    let mask = slots.lower(pads.reshape([b, 1, 1, 1]).expand([b, 1, 1, filled])).expand([b, h, 1, filled]);
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
    attention(q, keys, values, Some(mask), None, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Distribution};

    fn device() -> Device {
        dsocr_core::DeviceSpec::Cpu.device().unwrap()
    }

    /// The reference agrees with attention written out by hand (softmax over each sequence's live
    /// slots only), including a padded sequence and stale data past `filled`.
    #[test]
    fn reference_ignores_padding_and_slots_past_filled() {
        let dev = device();
        let (b, h, s, d, filled) = (2, 3, 9, 4, 6);
        let q = Tensor::<4>::random([b, h, 1, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let k = Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let v = Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let pads = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [b]), &dev);
        let got: Vec<f32> = decode_attention(q.clone(), k.clone(), v.clone(), pads, filled).into_data().try_to_vec().unwrap();
        let (qv, kv, vv): (Vec<f32>, Vec<f32>, Vec<f32>) =
            (q.into_data().try_to_vec().unwrap(), k.into_data().try_to_vec().unwrap(), v.into_data().try_to_vec().unwrap());
        for bi in 0..b {
            let pad = [0, 2][bi];
            for hi in 0..h {
                let qrow = &qv[(bi * h + hi) * d..][..d];
                let key = |j: usize| &kv[((bi * h + hi) * s + j) * d..][..d];
                let val = |j: usize| &vv[((bi * h + hi) * s + j) * d..][..d];
                let scores: Vec<f32> =
                    (pad..filled).map(|j| qrow.iter().zip(key(j)).map(|(a, b)| a * b).sum::<f32>() / (d as f32).sqrt()).collect();
                let max = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let w: Vec<f32> = scores.iter().map(|x| (x - max).exp()).collect();
                let total: f32 = w.iter().sum();
                for e in 0..d {
                    let expected: f32 = (pad..filled).zip(&w).map(|(j, wj)| wj * val(j)[e]).sum::<f32>() / total;
                    let g = got[(bi * h + hi) * d + e];
                    assert!((g - expected).abs() < 1e-5, "b{bi} h{hi} e{e}: {g} vs {expected}");
                }
            }
        }
    }
}
