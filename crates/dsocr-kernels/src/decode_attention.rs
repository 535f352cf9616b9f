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
        let got: Vec<f32> = decode_attention(q.clone(), k.clone(), v.clone(), pads, filled).into_data().try_to_vec().unwrap();
        let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        let expected = crate::check::exact_decode_attention(&host(q), &host(k), &host(v), &[0, 2], (b, h, s, d), filled);
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!((g - e).abs() < 1e-5, "element {i}: {g} vs {e}");
        }
    }
}
