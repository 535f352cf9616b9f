//! The key/value cache: preallocated for the request's longest sequence, written in place.
//!
//! Sequences of a batch are left-padded to a common prompt length, so every decode step writes
//! all sequences at the same cache slot with one in-place slice assignment; each sequence's own
//! positions and its padding are tracked here.

use burn::prelude::*;

/// Per-layer keys and values `[B, heads, capacity, head_dim]` (post-RoPE keys), plus the batch
/// layout.
#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Tensor<4>>,
    values: Vec<Tensor<4>>,
    /// Slots filled so far (shared by all sequences).
    len: usize,
    /// Left padding of each sequence, in slots.
    pads: Vec<usize>,
    capacity: usize,
}

impl KvCache {
    /// Allocate for `batch` sequences of up to `capacity` tokens (prompt + output).
    pub fn new(
        layers: usize,
        batch: usize,
        heads: usize,
        head_dim: usize,
        capacity: usize,
        device: &Device,
        dtype: burn::tensor::DType,
    ) -> Self {
        let alloc = || (0..layers).map(|_| Tensor::<4>::zeros([batch, heads, capacity, head_dim], (device, dtype))).collect();
        KvCache { keys: alloc(), values: alloc(), len: 0, pads: vec![0; batch], capacity }
    }

    /// Sequences in the batch.
    pub fn batch(&self) -> usize {
        self.pads.len()
    }

    /// Slots filled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots available in total.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Left padding of each sequence.
    pub fn pads(&self) -> &[usize] {
        &self.pads
    }

    /// Set the left padding of each sequence (before the prefill).
    pub(crate) fn set_pads(&mut self, pads: Vec<usize>) {
        assert_eq!(pads.len(), self.batch(), "one pad per sequence");
        self.pads = pads;
    }

    /// Whether any sequence is padded (masks are needed).
    pub fn has_padding(&self) -> bool {
        self.pads.iter().any(|&p| p > 0)
    }

    /// Write `k`, `v` `[B, heads, T, d]` of `layer` at slots `len..len + T` and return the keys
    /// and values of slots `0..len + T`. The slot counter advances with [`KvCache::advance`].
    pub(crate) fn append(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [b, h, t, d] = k.dims();
        let (start, end) = (self.len, self.len + t);
        assert!(end <= self.capacity, "KV cache overflow: {end} > {}", self.capacity);
        self.keys[layer].inplace(|c| c.slice_assign([0..b, 0..h, start..end, 0..d], k));
        self.values[layer].inplace(|c| c.slice_assign([0..b, 0..h, start..end, 0..d], v));
        (self.keys[layer].clone().slice([0..b, 0..h, 0..end, 0..d]), self.values[layer].clone().slice([0..b, 0..h, 0..end, 0..d]))
    }

    /// Mark `t` more slots as filled (after all layers wrote them).
    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
    }
}
