//! The key/value cache: preallocated for the request's longest sequence, written in place.
//!
//! Sequences of a batch are left-padded to a common prompt length, so every decode step writes
//! all sequences at the same cache slot; each sequence's padding is tracked here. The slot
//! counter exists twice: on the host (for bounds and masks) and on the device (read by the RoPE
//! and decode-attention kernels, so a decode step's launches never change and can be captured
//! as a CUDA graph; see [`crate::DeepseekLm::decode_step_on_device`]).

use burn::prelude::*;
use dsocr_kernels::PartialSums;

/// Per-layer keys and values `[B, heads, capacity, head_dim]` (post-RoPE keys), plus the batch
/// layout.
#[derive(Debug)]
pub struct KvCache {
    /// Per layer; `None` only while a write holds the tensor (so the write may happen in place).
    keys: Vec<Option<Tensor<4>>>,
    /// As `keys`.
    values: Vec<Option<Tensor<4>>>,
    /// Slots filled so far (shared by all sequences).
    len: usize,
    /// Left padding of each sequence, in slots.
    pads: Vec<usize>,
    capacity: usize,
    /// Slot numbers `0..capacity` on the device, for building decode masks without a host upload.
    slots: Tensor<1, Int>,
    /// `true` at each sequence's padding slots, `[B, 1, 1, capacity]`; `None` without padding.
    pad_mask: Option<Tensor<4, Bool>>,
    /// The pads on the device, `[B]` (read by the RoPE and decode-attention kernels).
    pad_tensor: Tensor<1, Int>,
    /// `len` on the device, `[1]`, updated in place (its buffer never changes).
    len_tensor: Option<Tensor<1, Int>>,
}

/// Smallest number of keys a decode step attends over (see [`KvCache::decode_span`]).
const MIN_DECODE_SPAN: usize = 256;

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
        let alloc = || (0..layers).map(|_| Some(Tensor::<4>::zeros([batch, heads, capacity, head_dim], (device, dtype)))).collect();
        let slots = Tensor::<1, Int>::arange(0..capacity as i64, device);
        let pad_tensor = Tensor::<1, Int>::zeros([batch], device);
        let len_tensor = Some(Tensor::<1, Int>::zeros([1], device));
        KvCache { keys: alloc(), values: alloc(), len: 0, pads: vec![0; batch], capacity, slots, pad_mask: None, pad_tensor, len_tensor }
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
        let b = pads.len();
        self.pad_tensor = Tensor::<1, Int>::from_data(TensorData::new(pads.iter().map(|&p| p as i64).collect(), [b]), &self.slots.device());
        self.pad_mask = pads.iter().any(|&p| p > 0).then(|| {
            let pads = self.pad_tensor.clone();
            let slots = self.slots.clone().reshape([1, 1, 1, self.capacity]);
            slots.expand([b, 1, 1, self.capacity]).lower(pads.reshape([b, 1, 1, 1]).expand([b, 1, 1, self.capacity]))
        });
        self.pads = pads;
    }

    /// Whether any sequence is padded (masks are needed).
    pub fn has_padding(&self) -> bool {
        self.pads.iter().any(|&p| p > 0)
    }

    /// Keys a decode step attends over when `filled` slots hold keys: `filled` rounded up to a
    /// power of two (at least 256, at most the capacity). Attention kernels are compiled and
    /// autotuned per shape on the GPU; growing the key count by one each step would make every
    /// step a new shape, while these spans give a handful per request. The slots past `filled`
    /// are masked (the decode-step mask).
    pub fn decode_span(&self, filled: usize) -> usize {
        filled.max(MIN_DECODE_SPAN).next_power_of_two().min(self.capacity).max(filled)
    }

    /// The mask of a one-token decode step whose keys fill slots `0..filled`, over
    /// [`KvCache::decode_span`] keys: `true` (hidden) at empty slots and at padding, `[B, heads, 1,
    /// span]`. Built on the device from the slot numbers (no host data per step). `None` when
    /// nothing is hidden.
    pub(crate) fn decode_mask(&self, filled: usize, heads: usize) -> Option<Tensor<4, Bool>> {
        let span = self.decode_span(filled);
        let b = self.batch();
        let pads = self.pad_mask.as_ref().map(|m| m.clone().slice([0..b, 0..1, 0..1, 0..span]));
        let empty =
            (span > filled).then(|| self.slots.clone().narrow(0, 0, span).greater_equal_elem(filled as i64).reshape([1, 1, 1, span]));
        let mask = match (pads, empty) {
            (Some(p), Some(e)) => p.bool_or(e.expand([b, 1, 1, span])),
            (Some(p), None) => p,
            (None, Some(e)) => e.expand([b, 1, 1, span]),
            (None, None) => return None,
        };
        Some(mask.expand([b, heads, 1, span]))
    }

    /// Split `layer`'s fused projection `qkv` `[B·T, 3H]` into heads, rotate q and k by the RoPE
    /// tables `cos`/`sin` `[P, d]` at each token's position, and write k and v at slots
    /// `len..len + T` (in place: [`dsocr_kernels::rope_qkv_cached`]). Returns q `[B, heads, T, d]`
    /// and the keys and values of slots `0..span` (`span ≥ len + T`; slots past `len + T` are stale
    /// or zero and must be masked). The slot counter advances with [`KvCache::advance`].
    pub(crate) fn rope_append(
        &mut self,
        layer: usize,
        qkv: PartialSums,
        (cos, sin): (&Tensor<2>, &Tensor<2>),
        heads: usize,
        span: usize,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let t = qkv.dims()[0] / self.batch();
        let end = self.len + t;
        assert!(end <= cos.dims()[0], "position table too short: {end} > {}", cos.dims()[0]);
        assert!(end <= self.capacity, "KV cache overflow: {end} > {}", self.capacity);
        assert!(end <= span && span <= self.capacity, "attention span {span} outside {end}..={}", self.capacity);
        let keys = self.keys[layer].take().expect("cache layer present");
        let values = self.values[layer].take().expect("cache layer present");
        let (q, keys, values) = dsocr_kernels::rope_qkv_cached(qkv, cos, sin, &self.pad_tensor, self.len_tensor(), heads, keys, values);
        let capacity = self.capacity;
        let view = |c: &Tensor<4>| {
            let [b, h, _, d] = c.dims();
            if span == capacity { c.clone() } else { c.clone().slice([0..b, 0..h, 0..span, 0..d]) }
        };
        let out = (q, view(&keys), view(&values));
        self.keys[layer] = Some(keys);
        self.values[layer] = Some(values);
        out
    }

    /// The pads on the device, `[B]`.
    pub fn pad_tensor(&self) -> Tensor<1, Int> {
        self.pad_tensor.clone()
    }

    /// The filled slot count on the device, `[1]` (equal to [`KvCache::len`]).
    pub fn len_tensor(&self) -> &Tensor<1, Int> {
        self.len_tensor.as_ref().expect("length tensor present")
    }

    /// Mark `t` more slots as filled (after all layers wrote them), on the host and on the device.
    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
        let len = self.len_tensor.take().expect("length tensor present");
        self.len_tensor = Some(dsocr_kernels::increment_ints(len, t as i32));
    }

    /// Set the filled slot count to `len` on the host and on the device (in the device counter's
    /// own buffer): after a graph capture, whose warm-up runs advanced it.
    pub(crate) fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity, "KV cache length {len} over the capacity {}", self.capacity);
        self.len = len;
        let device = self.slots.device();
        let value = Tensor::<1, Int>::from_data(TensorData::new(vec![len as i64], [1]), &device);
        let counter = self.len_tensor.take().expect("length tensor present");
        self.len_tensor = Some(dsocr_kernels::overwrite_ints(counter, value));
    }

    /// Count `t` slots filled by a replayed graph (which advanced the device counter itself).
    pub(crate) fn note_replayed(&mut self, t: usize) {
        self.len += t;
        assert!(self.len <= self.capacity, "KV cache overflow: {} > {}", self.len, self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsocr_core::DeviceSpec;

    fn cache(batch: usize, capacity: usize) -> KvCache {
        let device = DeviceSpec::Cpu.device().unwrap();
        KvCache::new(1, batch, 2, 4, capacity, &device, burn::tensor::DType::F32)
    }

    #[test]
    fn decode_spans_are_few_and_cover_the_filled_slots() {
        let c = cache(1, 1200);
        assert_eq!(c.decode_span(1), 256);
        assert_eq!(c.decode_span(256), 256);
        assert_eq!(c.decode_span(257), 512);
        assert_eq!(c.decode_span(914), 1024);
        assert_eq!(c.decode_span(1025), 1200, "capped at the capacity");
        let distinct: std::collections::BTreeSet<usize> = (1..=1200).map(|f| c.decode_span(f)).collect();
        assert_eq!(distinct.len(), 4);
        let small = cache(1, 100);
        assert_eq!(small.decode_span(7), 100);
    }

    #[test]
    fn decode_mask_hides_padding_and_empty_slots() {
        let mut c = cache(2, 8);
        c.set_pads(vec![0, 3]);
        let mask = c.decode_mask(5, 2).expect("a mask");
        assert_eq!(mask.dims(), [2, 2, 1, 8]);
        let got: Vec<bool> = mask.into_data().try_to_vec::<bool>().unwrap();
        let row0 = [false, false, false, false, false, true, true, true];
        let row1 = [true, true, true, false, false, true, true, true];
        let expected: Vec<bool> = [row0, row0, row1, row1].concat();
        assert_eq!(got, expected);
        let mut full = cache(1, 8);
        full.set_pads(vec![0]);
        assert!(full.decode_mask(8, 2).is_none(), "nothing to hide");
    }
}
