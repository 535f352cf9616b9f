//! Attention of one new query per sequence over the KV pool (a decode step).
//!
//! The pool is blocks of `L` slots (`[blocks, H, L, d]`); sequence `b` owns the blocks listed in
//! row `b` of its block table (`tables` `[B, M]`: slot `s` is slot `s % L` of block
//! `tables[b, s / L]`) and has keys in slots `0..=newest[b]`, where `newest[b]` is the slot the
//! step's own key was just written to; later slots are ignored. The kernel reads only the live
//! ones, so its shape never changes, and tables and lengths are device tensors, so every step is
//! the same launch (a captured CUDA graph replays it).

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::ints::host_table;

/// Slots per block of the KV pool: the decode-attention kernel's chunk, so a chunk of keys lies
/// in one block (pools of other block lengths run on the reference).
pub const KV_BLOCK: usize = 64;

/// `softmax(q·Kᵀ/√d)·V` for one query per sequence and head.
///
/// `q` `[B, H, 1, d]`, `keys`/`values` `[blocks, H, L, d]`, `tables` `[B, M]` (each sequence's
/// blocks in slot order), `newest` `[B]` (each sequence's last live slot; the caller keeps it below
/// `M·L`). Returns `[B, H, 1, d]` in `q`'s float type.
pub fn decode_attention(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, tables: Tensor<2, Int>, newest: Tensor<1, Int>) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if crate::runs_cube_kernels(&q.device()) && crate::cuda::decode_attention_supported(&q, &keys) && tables.dtype() == newest.dtype() {
        return crate::cuda::decode_attention(q, keys, values, tables, newest);
    }
    decode_attention_reference(q, keys, values, tables, newest)
}

/// A sequence's live slots `[1, H, filled, d]` gathered from its blocks `blocks` of the pool
/// `[blocks, H, L, d]` (a copy, in slot order).
pub fn gather_blocks(pool: &Tensor<4>, blocks: &[i64], filled: usize) -> Tensor<4> {
    let [_, h, l, d] = pool.dims();
    let used = filled.div_ceil(l);
    assert!(used <= blocks.len(), "{filled} slots need {used} blocks of {l}, the table has {}", blocks.len());
    let ids = Tensor::<1, Int>::from_data(TensorData::new(blocks[..used].to_vec(), [used]), &pool.device());
    pool.clone().select(0, ids).swap_dims(0, 1).reshape([1, h, used * l, d]).narrow(2, 0, filled)
}

/// The plain Burn definition of [`decode_attention`]: per sequence, attention over slots
/// `0..=newest[b]` gathered from its blocks. It reads `tables` and `newest` back to the host (to
/// gather the blocks), so it waits for the device.
pub fn decode_attention_reference(
    q: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    tables: Tensor<2, Int>,
    newest: Tensor<1, Int>,
) -> Tensor<4> {
    let tables = host_table(&tables);
    let newest = crate::ints::host_ints(&newest);
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
    let outputs = tables
        .iter()
        .zip(&newest)
        .enumerate()
        .map(|(b, (blocks, &last))| {
            let filled = last as usize + 1;
            attention(
                q.clone().narrow(0, b, 1),
                gather_blocks(&keys, blocks, filled),
                gather_blocks(&values, blocks, filled),
                None,
                None,
                options,
            )
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
    /// softmax over each sequence's live slots of its own blocks only, in table order, with stale
    /// data past them and in other blocks.
    #[test]
    fn reference_reads_each_sequences_blocks_and_live_slots() {
        let dev = device();
        let (b, blocks, h, l, d) = (2, 5, 3, 4, 4);
        let q = Tensor::<4>::random([b, h, 1, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let k = Tensor::<4>::random([blocks, h, l, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let v = Tensor::<4>::random([blocks, h, l, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        // Sequence 0: blocks 3 then 1 (6 live slots: the second block half full); sequence 1:
        // block 4 (3 live slots), its second entry a padding block.
        let (tables, newest) = (vec![3i64, 1, 4, 0], vec![5i64, 2]);
        let table = Tensor::<1, Int>::from_data(TensorData::new(tables.clone(), [4]), &dev).reshape([b, 2]);
        let ints = |v: &Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [b]), &dev);
        let got: Vec<f32> = decode_attention(q.clone(), k.clone(), v.clone(), table, ints(&newest)).into_data().try_to_vec().unwrap();
        let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        let expected = crate::check::exact_decode_attention(&host(q), &host(k), &host(v), &tables, &newest, (h, l, d));
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!((g - e).abs() < 1e-5, "element {i}: {g} vs {e}");
        }
    }
}
