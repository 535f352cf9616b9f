//! The key/value pool: one preallocated row of `capacity` slots per sequence in flight, written in
//! place (docs/engine.md, "KV pool").
//!
//! Every sequence owns a row and its own length: the token in slot `s` has position `s`, so
//! sequences of any lengths decode together without padding, and a row is reused as soon as its
//! sequence retires. Which row a sequence has and how long it is are the caller's business (the
//! engine's scheduler); a step gets them as [`StepSlots`].

use burn::prelude::*;
use burn::tensor::DType;
use dsocr_kernels::PartialSums;

use crate::host_kv::HostKv;

/// Per-layer keys and values `[rows, heads, capacity, head_dim]` (post-RoPE keys): device
/// tensors on a GPU, host memory on the CPU (see [`KvPool::new_host`]).
#[derive(Debug)]
pub struct KvPool {
    store: Store,
    rows: usize,
    capacity: usize,
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

/// Where the sequences of one decode step live: each one's pool row and the slot its new token
/// goes to (= its length so far = the new token's position), `[B]` each, on the device. A decode
/// step advances `starts` in place, so a captured step replays at the right positions.
#[derive(Debug, Clone)]
pub struct StepSlots {
    /// Pool row of each sequence.
    pub rows: Tensor<1, Int>,
    /// Slot (position) of each sequence's new token.
    pub starts: Tensor<1, Int>,
}

impl StepSlots {
    /// Upload `rows` and `starts` (one of each per sequence).
    pub fn new(rows: &[usize], starts: &[usize], device: &Device) -> Self {
        assert_eq!(rows.len(), starts.len(), "one start per row");
        StepSlots { rows: ints(rows, device), starts: ints(starts, device) }
    }

    /// Sequences in the step.
    pub fn len(&self) -> usize {
        self.rows.dims()[0]
    }

    /// Whether the step has no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Overwrite both in their own buffers (a captured step keeps reading them).
    pub fn overwrite(&mut self, rows: &[usize], starts: &[usize]) {
        let device = self.rows.device();
        let old = std::mem::replace(&mut self.rows, self.starts.clone());
        self.rows = dsocr_kernels::overwrite_ints(old, ints(rows, &device));
        let old = std::mem::replace(&mut self.starts, self.rows.clone());
        self.starts = dsocr_kernels::overwrite_ints(old, ints(starts, &device));
    }
}

/// Integers `[N]` on `device`.
pub(crate) fn ints(values: &[usize], device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(TensorData::new(values.iter().map(|&v| v as i64).collect::<Vec<i64>>(), [values.len()]), device)
}

impl KvPool {
    /// Allocate `rows` rows of `capacity` slots for `layers` layers.
    ///
    /// The tensors are allocated in the device's persistent mode (exact-fit, never recycled):
    /// a pool tensor is far larger than anything else the model allocates, and an adaptive
    /// allocator that sized its pages from it would serve every later activation from new
    /// pages of the pool's size (docs/perf.md, session 8: an out-of-memory at 567 rows).
    pub fn new(layers: usize, rows: usize, heads: usize, head_dim: usize, capacity: usize, device: &Device, dtype: DType) -> Self {
        let shape = [rows, heads, capacity, head_dim];
        let (keys, values) = device.memory_persistent_allocations((device.clone(), shape, dtype), move |(device, shape, dtype)| {
            let alloc = || (0..layers).map(|_| Some(Tensor::<4>::zeros(shape, (&device, dtype)))).collect::<Vec<_>>();
            (alloc(), alloc())
        });
        KvPool { store: Store::Device { keys, values }, rows, capacity }
    }

    /// A pool in host memory (`f32`), for the CPU backend: decode steps attend over it in place.
    pub fn new_host(layers: usize, rows: usize, heads: usize, head_dim: usize, capacity: usize) -> Self {
        KvPool { store: Store::Host(HostKv::new(layers, rows, heads, head_dim, capacity)), rows, capacity }
    }

    /// The host pool, when this is one.
    pub(crate) fn host_mut(&mut self) -> Option<&mut HostKv> {
        match &mut self.store {
            Store::Host(host) => Some(host),
            Store::Device { .. } => None,
        }
    }

    /// Bytes one row takes over all layers (keys and values).
    pub fn row_bytes(layers: usize, heads: usize, head_dim: usize, capacity: usize, dtype: DType) -> u64 {
        (2 * layers * heads * head_dim * capacity * dtype.size()) as u64
    }

    /// Rows (sequences that can be in flight at once).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Slots per row (the longest sequence: prompt + output).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rotate `layer`'s fused projection `qkv` `[B·T, 3H]` by the RoPE tables `cos`/`sin` `[P, d]`
    /// at each token's position and write k and v into each sequence's row at slots
    /// `starts[b]..starts[b] + T` (in place: [`dsocr_kernels::rope_qkv_cached`]). Returns q
    /// `[B, heads, T, d]` and the layer's whole keys and values `[rows, heads, capacity, d]`.
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
        let (q, keys, values) = dsocr_kernels::rope_qkv_cached(qkv, cos, sin, &slots.rows, &slots.starts, heads, keys, values);
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
    fn overwrite_keeps_one_entry_per_sequence() {
        let device = DeviceSpec::Cpu.device().unwrap();
        let mut slots = StepSlots::new(&[0, 1], &[5, 7], &device);
        slots.overwrite(&[3, 2], &[9, 1]);
        let host = |t: &Tensor<1, Int>| t.clone().into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        assert_eq!((host(&slots.rows), host(&slots.starts)), (vec![3, 2], vec![9, 1]));
        assert_eq!(KvPool::row_bytes(12, 10, 128, 1937, DType::BF16), 119_009_280);
    }
}
