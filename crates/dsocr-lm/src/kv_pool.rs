//! The key/value pool: blocks of [`KV_BLOCK`] slots, preallocated once and written in place; each
//! sequence in flight owns the blocks its prompt and output need (docs/engine.md, "KV pool").
//!
//! A sequence's block table lists its blocks in slot order: the token in slot `s` (position `s`)
//! lies in slot `s % KV_BLOCK` of block `table[s / KV_BLOCK]`. Sequences of any lengths decode
//! together without padding, each holds memory for its own length rather than the longest one's,
//! and its blocks are reused as soon as it retires. Which blocks a sequence has and how long it is
//! are the caller's business (the engine's scheduler); a step gets them as [`StepSlots`].

use burn::prelude::*;
use burn::tensor::DType;
use dsocr_kernels::{KV_BLOCK, PartialSums};

use crate::host_kv::HostKv;

/// Per-layer keys and values `[blocks, heads, KV_BLOCK, head_dim]` (post-RoPE keys): device
/// tensors on a GPU, host memory on the CPU (see [`KvPool::new_host`]).
#[derive(Debug)]
pub struct KvPool {
    store: Store,
    blocks: usize,
}

#[derive(Debug)]
enum Store {
    Device {
        /// Per layer; `None` only while a write holds the tensor (so the write happens in place
        /// and the buffers never move: captured decode steps replay against them).
        keys: Vec<Option<Tensor<4>>>,
        /// As `keys`.
        values: Vec<Option<Tensor<4>>>,
    },
    Host(HostKv),
}

/// Where the sequences of one decode step live: each one's block table (all padded to one
/// width) and the slot its new token goes to (= its length so far = the new token's position),
/// on the device. A decode step advances `starts` in place, so a captured step replays at the
/// right positions.
#[derive(Debug, Clone)]
pub struct StepSlots {
    /// The block tables `[B·width]`, row-major (flat, so they can be overwritten in place).
    tables: Tensor<1, Int>,
    width: usize,
    /// Slot (position) of each sequence's new token `[B]`.
    pub starts: Tensor<1, Int>,
}

impl StepSlots {
    /// Upload `tables` (one per sequence, all of the same length: pad with any block, e.g. a
    /// scratch block no sequence owns) and `starts`.
    pub fn new(tables: &[Vec<usize>], starts: &[usize], device: &Device) -> Self {
        assert_eq!(tables.len(), starts.len(), "one start per block table");
        let width = tables.first().map_or(1, Vec::len);
        StepSlots { tables: ints(&flatten(tables, width), device), width, starts: ints(starts, device) }
    }

    /// Sequences in the step.
    pub fn len(&self) -> usize {
        self.starts.dims()[0]
    }

    /// Whether the step has no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks per table.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The block tables `[B, width]` (a view of the flat buffer).
    pub fn tables(&self) -> Tensor<2, Int> {
        self.tables.clone().reshape([self.len(), self.width])
    }

    /// A handle to a buffer no kernel writes (the tables), to stand in while a buffer is moved
    /// out for an in-place write.
    pub fn stand_in(&self) -> Tensor<1, Int> {
        self.tables.clone()
    }

    /// Overwrite both in their own buffers (a captured step keeps reading them); same batch size
    /// and table width.
    pub fn overwrite(&mut self, tables: &[Vec<usize>], starts: &[usize]) {
        let device = self.tables.device();
        let old = std::mem::replace(&mut self.tables, self.starts.clone());
        self.tables = dsocr_kernels::overwrite_ints(old, ints(&flatten(tables, self.width), &device));
        let old = std::mem::replace(&mut self.starts, self.tables.clone());
        self.starts = dsocr_kernels::overwrite_ints(old, ints(starts, &device));
    }
}

/// Tables of `width` blocks each, row after row.
fn flatten(tables: &[Vec<usize>], width: usize) -> Vec<usize> {
    assert!(tables.iter().all(|t| t.len() == width), "block tables of one step have one width ({width})");
    tables.concat()
}

/// Integers `[N]` on `device`.
fn ints(values: &[usize], device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(TensorData::new(values.iter().map(|&v| v as i64).collect::<Vec<i64>>(), [values.len()]), device)
}

impl KvPool {
    /// Allocate `blocks` blocks of [`KV_BLOCK`] slots for `layers` layers.
    ///
    /// The tensors are allocated in the device's persistent mode (exact-fit, never recycled):
    /// a pool tensor is far larger than anything else the model allocates, and an adaptive
    /// allocator that sized its pages from it would serve every later activation from new
    /// pages of the pool's size (docs/perf.md, session 8: an out-of-memory at 567 rows).
    pub fn new(layers: usize, blocks: usize, heads: usize, head_dim: usize, device: &Device, dtype: DType) -> Self {
        let shape = [blocks, heads, KV_BLOCK, head_dim];
        let (keys, values) = device.memory_persistent_allocations((device.clone(), shape, dtype), move |(device, shape, dtype)| {
            let alloc = || (0..layers).map(|_| Some(Tensor::<4>::zeros(shape, (&device, dtype)))).collect::<Vec<_>>();
            (alloc(), alloc())
        });
        KvPool { store: Store::Device { keys, values }, blocks }
    }

    /// A pool in host memory (`f32`), for the CPU backend: decode steps attend over it in place.
    pub fn new_host(layers: usize, blocks: usize, heads: usize, head_dim: usize) -> Self {
        KvPool { store: Store::Host(HostKv::new(layers, blocks, heads, head_dim, KV_BLOCK)), blocks }
    }

    /// The host pool, when this is one.
    pub(crate) fn host_mut(&mut self) -> Option<&mut HostKv> {
        match &mut self.store {
            Store::Host(host) => Some(host),
            Store::Device { .. } => None,
        }
    }

    /// Bytes one block takes over all layers (keys and values).
    pub fn block_bytes(layers: usize, heads: usize, head_dim: usize, dtype: DType) -> u64 {
        (2 * layers * heads * head_dim * KV_BLOCK * dtype.size()) as u64
    }

    /// Blocks a sequence of `slots` slots needs.
    pub fn blocks_for(slots: usize) -> usize {
        slots.div_ceil(KV_BLOCK)
    }

    /// Blocks in the pool.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Rotate `layer`'s fused projection `qkv` `[B·T, 3H]` by the RoPE tables `cos`/`sin` `[P, d]`
    /// at each token's position and write k and v into each sequence's blocks at slots
    /// `starts[b]..starts[b] + T` (in place: [`dsocr_kernels::rope_qkv_cached`]). Returns q
    /// `[B, heads, T, d]` and the layer's whole keys and values `[blocks, heads, KV_BLOCK, d]`.
    pub(crate) fn write(
        &mut self,
        layer: usize,
        qkv: PartialSums,
        (cos, sin): (&Tensor<2>, &Tensor<2>),
        heads: usize,
        slots: &StepSlots,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let Store::Device { keys: pool_keys, values: pool_values } = &mut self.store else {
            panic!("KvPool::write is the device pool's; a host pool is written by its attention");
        };
        let keys = pool_keys[layer].take().expect("pool layer present");
        let values = pool_values[layer].take().expect("pool layer present");
        let (q, keys, values) = dsocr_kernels::rope_qkv_cached(qkv, cos, sin, &slots.tables(), &slots.starts, heads, keys, values);
        pool_keys[layer] = Some(keys.clone());
        pool_values[layer] = Some(values.clone());
        (q, keys, values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsocr_core::DeviceSpec;

    #[test]
    fn overwrite_keeps_one_table_and_start_per_sequence() {
        let device = DeviceSpec::Cpu.device().unwrap();
        let mut slots = StepSlots::new(&[vec![0, 4], vec![1, 9]], &[5, 7], &device);
        slots.overwrite(&[vec![3, 2], vec![6, 9]], &[9, 1]);
        let host = |t: Tensor<1, Int>| t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        assert_eq!((host(slots.tables().reshape([4])), host(slots.starts.clone())), (vec![3, 2, 6, 9], vec![9, 1]));
        assert_eq!(slots.tables().dims(), [2, 2]);
        // 913 + 1,024 slots at the release size in bf16: 31 blocks of 3.9 MB (121.9 MB).
        assert_eq!(KvPool::blocks_for(1937), 31);
        assert_eq!(KvPool::block_bytes(12, 10, 128, DType::BF16) * 31, 121_896_960);
    }
}
