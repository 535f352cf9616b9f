//! Attention of one new query per sequence over the KV cache (a decode step).
//!
//! Sequences are left-padded: sequence `b` has keys in slots `pads[b]..=newest`, where `newest` is
//! the slot the step's own key was just written to; slots before its pad and after `newest` are
//! ignored. The keys and values may span more slots (the whole preallocated cache): the kernel
//! reads only the live ones, so its shape never changes during a request, and `newest` is a
//! device tensor, so every step is the same launch (a captured CUDA graph replays it).

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::ints::host_ints;

/// `softmax(q·Kᵀ/√d)·V` for one query per sequence and head.
///
/// `q` `[B, H, 1, d]`, `keys`/`values` `[B, H, S, d]`, `pads` `[B]` (slots before each
/// sequence's first token), `newest` `[1]` (the last live slot; the caller keeps it below `S`).
/// Returns `[B, H, 1, d]` in `q`'s float type.
pub fn decode_attention(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, pads: Tensor<1, Int>, newest: Tensor<1, Int>) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if crate::runs_cube_kernels(&q.device()) && crate::cuda::decode_attention_supported(&q) && pads.dtype() == newest.dtype() {
        return crate::cuda::decode_attention(q, keys, values, pads, newest);
    }
    decode_attention_reference(q, keys, values, pads, newest)
}

/// The plain Burn definition of [`decode_attention`]: attention over slots `0..=newest` with the
/// padding masked. It reads `newest` back to the host (to cut the cache), so it waits for the
/// device.
pub fn decode_attention_reference(
    q: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    pads: Tensor<1, Int>,
    newest: Tensor<1, Int>,
) -> Tensor<4> {
    let newest = host_ints(&newest)[0];
    let filled = newest as usize + 1;
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

    /// The reference agrees with attention written out by hand (the check's exact host version) (softmax over each sequence's live
    /// slots only), including a padded sequence and stale data past `filled`.
    #[test]
    fn reference_ignores_padding_and_slots_past_filled() {
        let dev = device();
        let (b, h, s, d, filled) = (2, 3, 9, 4, 6);
        let q = Tensor::<4>::random([b, h, 1, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let k = Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let v = Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let pads = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [b]), &dev);
        let newest = Tensor::<1, Int>::from_data(TensorData::new(vec![filled as i64 - 1], [1]), &dev);
        let got: Vec<f32> = decode_attention(q.clone(), k.clone(), v.clone(), pads, newest).into_data().try_to_vec().unwrap();
        let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        let expected = crate::check::exact_decode_attention(&host(q), &host(k), &host(v), &[0, 2], (b, h, s, d), filled);
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!((g - e).abs() < 1e-5, "element {i}: {g} vs {e}");
        }
    }
}
