//! Attention of one new query per sequence over the KV pool (a decode step).
//!
//! Sequence `b` lives in pool row `rows[b]` and has keys in slots `0..=newest[b]`, where
//! `newest[b]` is the slot the step's own key was just written to; later slots are ignored. The
//! pool may span more slots (its whole preallocated capacity): the kernel reads only the live
//! ones, so its shape never changes, and rows and lengths are device tensors, so every step is
//! the same launch (a captured CUDA graph replays it).

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::ints::host_ints;

/// `softmax(q·Kᵀ/√d)·V` for one query per sequence and head.
///
/// `q` `[B, H, 1, d]`, `keys`/`values` `[R, H, S, d]`, `rows` `[B]` (each sequence's pool row),
/// `newest` `[B]` (each sequence's last live slot; the caller keeps it below `S`).
/// Returns `[B, H, 1, d]` in `q`'s float type.
pub fn decode_attention(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, rows: Tensor<1, Int>, newest: Tensor<1, Int>) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if crate::runs_cube_kernels(&q.device()) && crate::cuda::decode_attention_supported(&q) && rows.dtype() == newest.dtype() {
        return crate::cuda::decode_attention(q, keys, values, rows, newest);
    }
    decode_attention_reference(q, keys, values, rows, newest)
}

/// The plain Burn definition of [`decode_attention`]: per sequence, attention over slots
/// `0..=newest[b]` of its row. It reads `rows` and `newest` back to the host (to cut the pool), so
/// it waits for the device.
pub fn decode_attention_reference(
    q: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    rows: Tensor<1, Int>,
    newest: Tensor<1, Int>,
) -> Tensor<4> {
    let rows = host_ints(&rows);
    let newest = host_ints(&newest);
    let [_, h, _, d] = q.dims();
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
    let outputs = rows
        .iter()
        .zip(&newest)
        .enumerate()
        .map(|(b, (&row, &last))| {
            let (row, filled) = (row as usize, last as usize + 1);
            let cut = |c: &Tensor<4>| c.clone().slice([row..row + 1, 0..h, 0..filled, 0..d]);
            attention(q.clone().narrow(0, b, 1), cut(&keys), cut(&values), None, None, options)
        })
        .collect();
    Tensor::cat(outputs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Distribution};

    fn device() -> Device {
        dsocr_core::DeviceSpec::Cpu.device().unwrap()
    }

    /// The reference agrees with attention written out by hand (the check's exact host version):
    /// softmax over each sequence's live slots of its own row only, with stale data past them.
    #[test]
    fn reference_reads_each_sequences_row_and_live_slots() {
        let dev = device();
        let (b, r, h, s, d) = (2, 3, 3, 9, 4);
        let q = Tensor::<4>::random([b, h, 1, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let k = Tensor::<4>::random([r, h, s, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let v = Tensor::<4>::random([r, h, s, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let (rows, newest) = (vec![2i64, 0], vec![5i64, 2]);
        let ints = |v: &Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [b]), &dev);
        let got: Vec<f32> = decode_attention(q.clone(), k.clone(), v.clone(), ints(&rows), ints(&newest)).into_data().try_to_vec().unwrap();
        let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        let expected = crate::check::exact_decode_attention(&host(q), &host(k), &host(v), &rows, &newest, (h, s, d));
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!((g - e).abs() < 1e-5, "element {i}: {g} vs {e}");
        }
    }
}
