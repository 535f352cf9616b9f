//! The KV pool in host memory, for the CPU backend (docs/model.md §6.4).
//!
//! On burn-ndarray every decode step cut each sequence's live keys and values out of the pool
//! tensor and copied them into a contiguous tensor for the attention (≈ 120 MB a step at a
//! 1,000-token context: most of what a long context added to a step). Here the pool is plain
//! `f32` memory laid out as the device pool (`[blocks, heads, L, d]` per layer, a sequence's slots
//! in the blocks of its table): a decode step rotates its query and key on the host, writes the
//! key and value into their slot and attends over the live slots where they lie, block by block,
//! one (sequence, head) pair per task. A prefill writes its keys and values the same way and runs
//! its attention on Burn's (threaded) kernels.

use std::sync::{Arc, OnceLock};

use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// Keys and values of one layer, `[blocks, heads, L, d]` each (post-RoPE keys).
#[derive(Debug)]
struct Layer {
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// The RoPE tables `cos`, `sin` `[P, d]`.
type Tables = (Vec<f32>, Vec<f32>);

/// The pool's layers in host memory, and the RoPE tables read once from the device.
#[derive(Debug)]
pub(crate) struct HostKv {
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    /// Slots per block (`L`).
    block_len: usize,
    /// `cos`, `sin` `[P, d]` on the host.
    tables: OnceLock<Arc<Tables>>,
}

impl HostKv {
    /// Zeroed layers (the pages are committed as slots are written).
    pub(crate) fn new(layers: usize, blocks: usize, heads: usize, head_dim: usize, block_len: usize) -> Self {
        let n = blocks * heads * block_len * head_dim;
        let layers = (0..layers).map(|_| Layer { keys: vec![0.0; n], values: vec![0.0; n] }).collect();
        HostKv { layers, heads, head_dim, block_len, tables: OnceLock::new() }
    }

    fn tables(&self, cos: &Tensor<2>, sin: &Tensor<2>) -> Arc<Tables> {
        self.tables.get_or_init(|| Arc::new((host_f32(cos.clone()), host_f32(sin.clone())))).clone()
    }

    /// Offset of sequence slot `slot` of head `head` for a sequence with blocks `blocks`.
    fn at(&self, blocks: &[usize], head: usize, slot: usize) -> usize {
        let block = blocks[slot / self.block_len];
        ((block * self.heads + head) * self.block_len + slot % self.block_len) * self.head_dim
    }

    /// Rotate `q` and `k` of `qkv` row `[3·heads·d]` at `position` (docs/model.md §6.2:
    /// `x·cos + rotate_half(x)·sin`), and write k and v into slot `position` of the sequence with
    /// blocks `blocks`, in `layer`. The rotated query `[heads·d]` goes to `q`.
    fn rotate_and_store(&mut self, layer: usize, qkv: &[f32], blocks: &[usize], position: usize, tables: &Tables, q: &mut [f32]) {
        let (heads, d) = (self.heads, self.head_dim);
        let hidden = heads * d;
        let (cos, sin) = (&tables.0[position * d..(position + 1) * d], &tables.1[position * d..(position + 1) * d]);
        let rotate = |x: &[f32], out: &mut [f32]| {
            let half = d / 2;
            for j in 0..d {
                let partner = if j < half { -x[j + half] } else { x[j - half] };
                out[j] = x[j] * cos[j] + partner * sin[j];
            }
        };
        for head in 0..heads {
            let span = head * d..(head + 1) * d;
            rotate(&qkv[span.clone()], &mut q[span.clone()]);
            let at = self.at(blocks, head, position);
            let l = &mut self.layers[layer];
            rotate(&qkv[hidden + span.start..hidden + span.end], &mut l.keys[at..at + d]);
            l.values[at..at + d].copy_from_slice(&qkv[2 * hidden + span.start..2 * hidden + span.end]);
        }
    }

    /// One decode step of `layer`: `qkv` `[B, 3H]` (sequence `b` at slot `starts[b]` of its
    /// blocks `tables[b]`) → attention output `[B, 1, heads, d]` (tokens first).
    pub(crate) fn decode(
        &mut self,
        layer: usize,
        qkv: Tensor<2>,
        (cos, sin): (&Tensor<2>, &Tensor<2>),
        tables: &[Vec<usize>],
        starts: &[usize],
    ) -> Tensor<4> {
        let [b, width] = qkv.dims();
        let (device, dtype) = (qkv.device(), qkv.dtype());
        let qkv = host_f32(qkv);
        let rope = self.tables(cos, sin);
        let (heads, d, block_len) = (self.heads, self.head_dim, self.block_len);
        let mut queries = vec![0.0f32; b * heads * d];
        for (i, q) in queries.chunks_exact_mut(heads * d).enumerate() {
            self.rotate_and_store(layer, &qkv[i * width..(i + 1) * width], &tables[i], starts[i], &rope, q);
        }
        let l = &self.layers[layer];
        let scale = 1.0 / (d as f32).sqrt();
        let mut out = vec![0.0f32; b * heads * d];
        out.par_chunks_mut(d).enumerate().for_each(|(task, out)| {
            let (i, head) = (task / heads, task % heads);
            let q = &queries[task * d..(task + 1) * d];
            // The live slots, as runs of whole blocks (the last one partly filled).
            let live = starts[i] + 1;
            let runs = (0..live.div_ceil(block_len)).map(|k| {
                let base = self.at(&tables[i], head, k * block_len);
                let n = (live - k * block_len).min(block_len) * d;
                (&l.keys[base..base + n], &l.values[base..base + n])
            });
            attend(q, runs, d, scale, out);
        });
        Tensor::<4>::from_data(TensorData::new(out, [b, 1, heads, d]), (&device, DType::F32)).cast(dtype)
    }

    /// A prefill of `layer`: `qkv` `[T, 3H]`, the tokens at slots `start..start + T` of the
    /// sequence with blocks `blocks` → attention output `[1, T, heads, d]` (tokens first; each
    /// token sees every earlier slot and itself).
    pub(crate) fn prefill(
        &mut self,
        layer: usize,
        qkv: Tensor<2>,
        (cos, sin): (&Tensor<2>, &Tensor<2>),
        blocks: &[usize],
        start: usize,
    ) -> Tensor<4> {
        let [t, width] = qkv.dims();
        let (device, dtype) = (qkv.device(), qkv.dtype());
        let qkv = host_f32(qkv);
        let tables = self.tables(cos, sin);
        let (heads, d) = (self.heads, self.head_dim);
        // Queries `[heads, T, d]`, as the attention takes them.
        let mut q = vec![0.0f32; heads * t * d];
        let mut rotated = vec![0.0f32; heads * d];
        for s in 0..t {
            self.rotate_and_store(layer, &qkv[s * width..(s + 1) * width], blocks, start + s, &tables, &mut rotated);
            for head in 0..heads {
                q[(head * t + s) * d..(head * t + s + 1) * d].copy_from_slice(&rotated[head * d..(head + 1) * d]);
            }
        }
        let live = start + t;
        let l = &self.layers[layer];
        let block_len = self.block_len;
        let cut = |pool: &[f32]| -> Tensor<4> {
            let mut v = Vec::with_capacity(heads * live * d);
            for head in 0..heads {
                for k in 0..live.div_ceil(block_len) {
                    let base = self.at(blocks, head, k * block_len);
                    v.extend_from_slice(&pool[base..base + (live - k * block_len).min(block_len) * d]);
                }
            }
            Tensor::from_data(TensorData::new(v, [1, heads, live, d]), (&device, DType::F32))
        };
        let q = Tensor::<4>::from_data(TensorData::new(q, [1, heads, t, d]), (&device, DType::F32));
        dsocr_kernels::prefill_attention(q, cut(&l.keys), cut(&l.values), start).cast(dtype)
    }
}

/// `softmax(q·Kᵀ·scale)·V` for one query over the slots of `runs` (pairs of keys and values
/// `[n, d]`, in slot order), into `out` `[d]`.
fn attend<'a>(q: &[f32], runs: impl Iterator<Item = (&'a [f32], &'a [f32])> + Clone, d: usize, scale: f32, out: &mut [f32]) {
    thread_local! {
        /// The scores of the current task (reused: no allocation per step once grown).
        static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCORES.with_borrow_mut(|scores| {
        scores.clear();
        for (keys, _) in runs.clone() {
            scores.extend(keys.chunks_exact(d).map(|k| dot(q, k) * scale));
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            total += *s;
        }
        out.fill(0.0);
        for (w, v) in scores.iter().zip(runs.flat_map(|(_, values)| values.chunks_exact(d))) {
            let w = w / total;
            for (o, x) in out.iter_mut().zip(v) {
                *o += w * x;
            }
        }
    });
}

/// A dot product in eight independent lanes (the compiler vectorises it).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A tensor's values as host `f32`.
fn host_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.cast(DType::F32).into_data().try_into_vec::<f32>().expect("f32 data")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn device() -> Device {
        dsocr_core::DeviceSpec::Cpu.device().unwrap()
    }

    /// The host pool's decode and chunked prefill agree with the device pool's Burn reference
    /// (RoPE + slot writes into each sequence's blocks, then attention over its live slots).
    #[test]
    fn host_pool_matches_the_burn_reference() {
        let dev = device();
        let (layers, blocks, heads, d, block_len, p) = (2, 6, 2, 8, 4, 16);
        let hidden = heads * d;
        let rand = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let (cos, sin) = (rand([p, d]), rand([p, d]));
        let mut host = HostKv::new(layers, blocks, heads, d, block_len);
        let mut keys = Tensor::<4>::zeros([blocks, heads, block_len, d], (&dev, DType::F32));
        let mut values = keys.clone();
        let ints =
            |v: &[usize]| Tensor::<1, Int>::from_data(TensorData::new(v.iter().map(|&x| x as i64).collect::<Vec<_>>(), [v.len()]), &dev);
        let table = |tables: &[&[usize]]| ints(&tables.concat()).reshape([tables.len(), tables[0].len()]);
        let close = |a: Tensor<4>, b: Tensor<4>, what: &str| {
            let (a, b) = (host_f32(a), host_f32(b));
            assert_eq!(a.len(), b.len(), "{what}");
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!((x - y).abs() < 1e-4, "{what} element {i}: {x} vs {y}");
            }
        };
        let live = |c: &Tensor<4>, blocks: &[usize], n: usize| {
            dsocr_kernels::gather_blocks(c, &blocks.iter().map(|&b| b as i64).collect::<Vec<_>>(), n)
        };
        // Sequence A owns blocks 5 then 2: a prefill of 5 tokens in two chunks (3, then 2 seeing
        // the first 3), across the edge of its first block.
        let a: &[usize] = &[5, 2];
        for (start, t) in [(0usize, 3usize), (3, 2)] {
            let qkv = rand([t, 3 * hidden]);
            let got = host.prefill(1, qkv.clone(), (&cos, &sin), a, start);
            let (q, k, v) = dsocr_kernels::rope_qkv_cached_reference(qkv, &cos, &sin, &table(&[a]), &ints(&[start]), heads, keys, values);
            (keys, values) = (k, v);
            close(
                got,
                dsocr_kernels::prefill_attention_reference(q, live(&keys, a, start + t), live(&values, a, start + t), start),
                "prefill",
            );
        }
        // Sequence B owns blocks 0 and 3 and has one token; decode A (slot 5) and B (slot 1)
        // together, twice.
        let b: &[usize] = &[0, 3];
        let qkv = rand([1, 3 * hidden]);
        host.prefill(1, qkv.clone(), (&cos, &sin), b, 0);
        (_, keys, values) = dsocr_kernels::rope_qkv_cached_reference(qkv, &cos, &sin, &table(&[b]), &ints(&[0]), heads, keys, values);
        for starts in [[5usize, 1usize], [6, 2]] {
            let qkv = rand([2, 3 * hidden]);
            let got = host.decode(1, qkv.clone(), (&cos, &sin), &[a.to_vec(), b.to_vec()], &starts);
            let (q, k, v) = dsocr_kernels::rope_qkv_cached_reference(qkv, &cos, &sin, &table(&[a, b]), &ints(&starts), heads, keys, values);
            (keys, values) = (k, v);
            let expected = dsocr_kernels::decode_attention_reference(q, keys.clone(), values.clone(), table(&[a, b]), ints(&starts));
            close(got, expected, "decode");
        }
        // The other layer and the blocks nobody owns were never written.
        assert!(host.layers[0].keys.iter().all(|&x| x == 0.0));
        let block_values = heads * block_len * d;
        for free in [1, 4] {
            assert!(host.layers[1].keys[free * block_values..(free + 1) * block_values].iter().all(|&x| x == 0.0), "block {free}");
        }
    }
}
