//! `Weights`: a path-scoped view of a checkpoint that hands the model its tensors by their release
//! names, checks every shape against the configuration, converts to the compute type and records
//! what was asked for, so that missing, mis-shaped and unused tensors are all reported by name.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use safetensors::Dtype;

use crate::checkpoint::{Checkpoint, TensorEntry};
use crate::host_matrix::{HostElems, HostMatrix};
use crate::{CoreError, FloatType};

enum Backing {
    Checkpoint(Checkpoint),
    /// No file: every request is recorded and answered with a one-element placeholder.
    ShapeProbe,
    /// No file: every request is answered with seeded random values of the right shape.
    Random {
        seed: u64,
    },
}

struct Inner {
    backing: Backing,
    device: Device,
    float: FloatType,
    requested: Mutex<BTreeMap<String, Vec<usize>>>,
    /// Nanoseconds spent preparing tensors on the host (summed over threads) and uploading them.
    prepare_ns: AtomicU64,
    upload_ns: AtomicU64,
}

/// A checkpoint (or a shape probe) seen under a name prefix, e.g. `model.sam_model.blocks.3`.
///
/// Cloning is cheap; clones share the record of requested tensors.
#[derive(Clone)]
pub struct Weights {
    inner: Arc<Inner>,
    prefix: String,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Weights({:?})", self.prefix)
    }
}

impl Weights {
    /// Weights read from `checkpoint`, converted to `float` on `device`.
    pub fn new(checkpoint: Checkpoint, device: &Device, float: FloatType) -> Result<Self, CoreError> {
        float.check_supported(device)?;
        Ok(Self::with_backing(Backing::Checkpoint(checkpoint), device, float))
    }

    /// A stand-in with no file behind it: building a model from it records the name and shape of
    /// every tensor the model expects (see [`Weights::requested`]) without allocating them. The
    /// tensors it returns are one-element placeholders; a model built from it must not be run.
    pub fn shape_probe(device: &Device) -> Self {
        Self::with_backing(Backing::ShapeProbe, device, FloatType::F32)
    }

    /// Random weights of the requested shapes (for benchmarks at release sizes without the
    /// release file): LayerNorm/RMSNorm scales are 1, biases 0, learned tables and 1-D vectors
    /// N(0, 0.02²), matrices and kernels N(0, 1/fan_in), so activations stay finite in bf16.
    /// Each tensor's values depend only on `seed` and its name.
    pub fn random(device: &Device, float: FloatType, seed: u64) -> Result<Self, CoreError> {
        float.check_supported(device)?;
        Ok(Self::with_backing(Backing::Random { seed }, device, float))
    }

    fn with_backing(backing: Backing, device: &Device, float: FloatType) -> Self {
        let inner = Inner {
            backing,
            device: device.clone(),
            float,
            requested: Mutex::new(BTreeMap::new()),
            prepare_ns: AtomicU64::new(0),
            upload_ns: AtomicU64::new(0),
        };
        Weights { inner: Arc::new(inner), prefix: String::new() }
    }

    /// The same weights under `prefix.name`.
    pub fn pp(&self, name: impl Display) -> Weights {
        Weights { inner: self.inner.clone(), prefix: self.path(name) }
    }

    /// Full name of `name` under this prefix.
    pub fn path(&self, name: impl Display) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) }
    }

    /// The device tensors are put on.
    pub fn device(&self) -> &Device {
        &self.inner.device
    }

    /// The compute float type.
    pub fn float(&self) -> FloatType {
        self.inner.float
    }

    /// Whether this is a shape probe (no real data).
    pub fn is_shape_probe(&self) -> bool {
        matches!(self.inner.backing, Backing::ShapeProbe)
    }

    /// Tensor `name` with the given shape, in the compute type.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, CoreError> {
        self.load(name, shape, self.inner.float.dtype(), false)
    }

    /// Tensor `name` with the given shape, in f32 whatever the compute type (for parts the
    /// reference computes in f32, such as the MoE router).
    pub fn tensor_f32<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, CoreError> {
        self.load(name, shape, DType::F32, false)
    }

    /// A PyTorch linear weight stored `[d_out, d_in]`, returned as `[d_in, d_out]` (Burn's layout,
    /// `y = x · W`). The transposition happens here, once, on the host.
    pub fn linear_weight(&self, name: &str, d_in: usize, d_out: usize) -> Result<Tensor<2>, CoreError> {
        self.load(name, [d_out, d_in], self.inner.float.dtype(), true)
    }

    /// A PyTorch linear weight `[d_out, d_in]` kept in host memory in the checkpoint's float type
    /// (bf16 stays bf16; f16 is widened to f32), for the CPU path's experts ([`HostMatrix`]).
    /// Random weights are drawn as [`Weights::linear_weight`] draws them and held as bf16, as the
    /// release would be; a shape probe answers with an empty matrix.
    pub fn host_linear(&self, name: &str, d_in: usize, d_out: usize) -> Result<HostMatrix, CoreError> {
        let t0 = Instant::now();
        let matrix = self.host_linear_untimed(name, d_in, d_out);
        self.inner.prepare_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        matrix
    }

    fn host_linear_untimed(&self, name: &str, d_in: usize, d_out: usize) -> Result<HostMatrix, CoreError> {
        let full = self.path(name);
        let shape = [d_out, d_in];
        self.inner.requested.lock().unwrap().insert(full.clone(), shape.to_vec());
        let matrix = |elems| HostMatrix { rows: d_out, cols: d_in, elems };
        let ckpt = match &self.inner.backing {
            Backing::ShapeProbe => return Ok(matrix(HostElems::F32(Vec::new()))),
            Backing::Random { seed } => {
                let t = random_tensor(&full, random_init(&full, &shape), shape, *seed, &self.inner.device, DType::F32);
                let v = t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 data");
                return Ok(matrix(HostElems::Bf16(v.into_iter().map(half::bf16::from_f32).collect())));
            }
            Backing::Checkpoint(c) => c,
        };
        let entry = checked_entry(ckpt, &full, &shape)?;
        let raw = ckpt.bytes(entry);
        let pairs = || raw.chunks_exact(2).map(|b| [b[0], b[1]]);
        let elems = match entry.dtype {
            Dtype::BF16 => HostElems::Bf16(pairs().map(half::bf16::from_le_bytes).collect()),
            Dtype::F16 => HostElems::F32(pairs().map(|b| half::f16::from_le_bytes(b).to_f32()).collect()),
            Dtype::F32 => HostElems::F32(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
            other => return Err(CoreError::UnsupportedDtype { name: full, dtype: format!("{other:?}") }),
        };
        ckpt.release(entry);
        Ok(matrix(elems))
    }

    /// Record a tensor the release checkpoint holds but the model never applies (e.g. CLIP's
    /// patch convolution): its presence and shape are checked, its data is not read.
    pub fn expect_unused(&self, name: &str, shape: &[usize]) -> Result<(), CoreError> {
        let full = self.path(name);
        self.inner.requested.lock().unwrap().insert(full.clone(), shape.to_vec());
        if let Backing::Checkpoint(ckpt) = &self.inner.backing {
            checked_entry(ckpt, &full, shape)?;
        }
        Ok(())
    }

    /// A PyTorch linear weight as [`Weights::linear_weight`] returns it, read and laid out on the
    /// host but not yet on the device: this part (reading the file, transposing, converting) is
    /// most of loading and may run on any thread; [`Weights::upload`] finishes it on the
    /// loading thread.
    pub fn prepare_linear_weight(&self, name: &str, d_in: usize, d_out: usize) -> Result<PreparedTensor<2>, CoreError> {
        self.prepare(name, [d_out, d_in], self.inner.float.dtype(), true)
    }

    /// Put a prepared tensor on the device.
    pub fn upload<const D: usize>(&self, prepared: PreparedTensor<D>) -> Tensor<D> {
        let t0 = Instant::now();
        let device = &self.inner.device;
        let tensor = match prepared.0 {
            Prepared::Probe(dtype) => Tensor::zeros([1; D], (device, dtype)),
            Prepared::Random { name, init, shape, seed, dtype } => random_tensor(&name, init, shape, seed, device, dtype),
            Prepared::Data(data, dtype) => Tensor::from_data(data, (device, dtype)),
        };
        self.inner.upload_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        tensor
    }

    /// Seconds spent so far reading and laying out tensors on the host (summed over the threads
    /// that did it) and handing them to the device (submitting the copies; the device may still
    /// be copying when this returns).
    pub fn load_seconds(&self) -> (f64, f64) {
        let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 * 1e-9;
        (s(&self.inner.prepare_ns), s(&self.inner.upload_ns))
    }

    fn load<const D: usize>(&self, name: &str, shape: [usize; D], dtype: DType, transpose: bool) -> Result<Tensor<D>, CoreError> {
        Ok(self.upload(self.prepare(name, shape, dtype, transpose)?))
    }

    fn prepare<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        dtype: DType,
        transpose: bool,
    ) -> Result<PreparedTensor<D>, CoreError> {
        let t0 = Instant::now();
        let prepared = self.prepare_untimed(name, shape, dtype, transpose);
        self.inner.prepare_ns.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        prepared
    }

    fn prepare_untimed<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        dtype: DType,
        transpose: bool,
    ) -> Result<PreparedTensor<D>, CoreError> {
        let full = self.path(name);
        self.inner.requested.lock().unwrap().insert(full.clone(), shape.to_vec());
        let ckpt = match &self.inner.backing {
            Backing::ShapeProbe => return Ok(PreparedTensor(Prepared::Probe(dtype))),
            Backing::Random { seed } => {
                let mut out_shape = shape;
                if transpose {
                    out_shape.swap(0, 1);
                }
                let init = random_init(&full, &shape);
                return Ok(PreparedTensor(Prepared::Random { name: full, init, shape: out_shape, seed: *seed, dtype }));
            }
            Backing::Checkpoint(c) => c,
        };
        let entry = checked_entry(ckpt, &full, &shape)?;
        let (file_dtype, elem) = match entry.dtype {
            Dtype::BF16 => (DType::BF16, 2),
            Dtype::F16 => (DType::F16, 2),
            Dtype::F32 => (DType::F32, 4),
            other => return Err(CoreError::UnsupportedDtype { name: full, dtype: format!("{other:?}") }),
        };
        let raw = ckpt.bytes(entry);
        let (bytes, out_shape) = if transpose {
            let (rows, cols) = (shape[0], shape[1]);
            let mut out_shape = shape;
            out_shape.swap(0, 1);
            (transpose_bytes(raw, rows, cols, elem), out_shape)
        } else {
            (raw.to_vec(), shape)
        };
        ckpt.release(entry);
        let mut data = TensorData::from_bytes_vec(bytes, out_shape, file_dtype);
        if file_dtype != dtype {
            data = data.convert_dtype(dtype);
        }
        Ok(PreparedTensor(Prepared::Data(data, dtype)))
    }

    /// Every tensor requested so far (full name → shape), in name order.
    pub fn requested(&self) -> Vec<(String, Vec<usize>)> {
        self.inner.requested.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Check that the model used every tensor of the checkpoint whose name starts with one of
    /// `prefixes` (all tensors when `prefixes` is empty). Extra tensors mean the configuration
    /// describes a smaller model than the file holds.
    pub fn check_all_used(&self, prefixes: &[&str]) -> Result<(), CoreError> {
        let Backing::Checkpoint(ckpt) = &self.inner.backing else { return Ok(()) };
        let requested = self.inner.requested.lock().unwrap();
        let mut unused: Vec<String> = ckpt
            .names()
            .filter(|n| prefixes.is_empty() || prefixes.iter().any(|p| n.starts_with(p)))
            .filter(|n| !requested.contains_key(*n))
            .map(str::to_string)
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        unused.sort();
        Err(CoreError::UnexpectedTensors { count: unused.len(), examples: unused.into_iter().take(5).collect() })
    }
}

/// A tensor read and laid out on the host, waiting for [`Weights::upload`].
pub struct PreparedTensor<const D: usize>(Prepared<D>);

enum Prepared<const D: usize> {
    Data(TensorData, DType),
    /// Random weights are drawn on the device when uploaded.
    Random {
        name: String,
        init: RandomInit,
        shape: [usize; D],
        seed: u64,
        dtype: DType,
    },
    Probe(DType),
}

impl<const D: usize> std::fmt::Debug for PreparedTensor<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Prepared::Data(data, dtype) => write!(f, "PreparedTensor({:?}, {dtype:?})", data.shape()),
            Prepared::Random { name, shape, .. } => write!(f, "PreparedTensor(random {name} {shape:?})"),
            Prepared::Probe(_) => f.write_str("PreparedTensor(shape probe)"),
        }
    }
}

/// Tensor `name` of `ckpt`, which must have `shape` (PyTorch layout).
fn checked_entry<'a>(ckpt: &'a Checkpoint, name: &str, shape: &[usize]) -> Result<&'a TensorEntry, CoreError> {
    let entry = ckpt.entry(name).ok_or_else(|| CoreError::MissingTensor { name: name.to_string() })?;
    if entry.shape != shape {
        return Err(CoreError::ShapeMismatch { name: name.to_string(), expected: shape.to_vec(), found: entry.shape.clone() });
    }
    Ok(entry)
}

/// How [`Weights::random`] initialises a tensor, from its release name and shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RandomInit {
    /// All ones (normalisation scales).
    Ones,
    /// All zeros (biases).
    Zeros,
    /// Normal with this standard deviation.
    Normal(f64),
}

/// The initialisation [`Weights::random`] uses for tensor `name` of `shape` (PyTorch layout).
pub fn random_init(name: &str, shape: &[usize]) -> RandomInit {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    let module = name.rsplit('.').nth(1).unwrap_or("");
    let is_norm = module.contains("norm") || module.contains("layrnorm") || name.contains("neck.1.") || name.contains("neck.3.");
    if leaf == "bias" {
        RandomInit::Zeros
    } else if leaf == "weight" && is_norm && shape.len() == 1 {
        RandomInit::Ones
    } else if shape.len() <= 1 || leaf.starts_with("rel_pos") || leaf == "pos_embed" || module == "position_embedding" {
        RandomInit::Normal(0.02)
    } else {
        let fan_in: usize = shape[1..].iter().product();
        RandomInit::Normal(1.0 / (fan_in.max(1) as f64).sqrt())
    }
}

fn random_tensor<const D: usize>(name: &str, init: RandomInit, shape: [usize; D], seed: u64, device: &Device, dtype: DType) -> Tensor<D> {
    use burn::tensor::Distribution;
    match init {
        RandomInit::Ones => Tensor::ones(shape, (device, dtype)),
        RandomInit::Zeros => Tensor::zeros(shape, (device, dtype)),
        RandomInit::Normal(std) => {
            // A per-tensor seed from the name, so the values do not depend on load order. The
            // device's generator is global: seeding and drawing hold one lock, so tensors loaded
            // on several threads (the CPU experts) still get their own seed's values.
            static DRAW: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let h = name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            let _draw = DRAW.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            device.seed(h);
            Tensor::<D>::random(shape, Distribution::Normal(0.0, std), (device, DType::F32)).cast(dtype)
        }
    }
}

/// Transpose a row-major `[rows, cols]` matrix of `elem`-byte elements.
///
/// The linear weights are most of a checkpoint (6.7 GB at release size), so this is most of
/// loading: bands of output rows are written in parallel, each from a strip of input columns in
/// cache-sized tiles, moving whole 2- or 4-byte elements (docs/perf.md, "Cold start").
fn transpose_bytes(src: &[u8], rows: usize, cols: usize, elem: usize) -> Vec<u8> {
    use rayon::prelude::*;
    debug_assert_eq!(src.len(), rows * cols * elem, "a [{rows}, {cols}] matrix of {elem}-byte elements");
    /// Output rows per parallel band and the tile side within it.
    const BAND: usize = 64;
    const TILE: usize = 32;
    fn band<T: Copy + Send + Sync>(src: &[T], out: &mut [T], rows: usize, cols: usize, c0: usize) {
        let band_rows = out.len() / rows;
        for r0 in (0..rows).step_by(TILE) {
            for dc in 0..band_rows {
                let c = c0 + dc;
                let dst = &mut out[dc * rows + r0..dc * rows + (r0 + TILE).min(rows)];
                for (k, d) in dst.iter_mut().enumerate() {
                    *d = src[(r0 + k) * cols + c];
                }
            }
        }
    }
    /// Elements as `N`-byte arrays (no copy in, one flattening out).
    fn typed<const N: usize>(src: &[u8], rows: usize, cols: usize) -> Vec<u8> {
        let (src, _) = src.as_chunks::<N>();
        let mut out = vec![[0u8; N]; src.len()];
        out.par_chunks_mut(BAND * rows).enumerate().for_each(|(i, chunk)| band(src, chunk, rows, cols, i * BAND));
        out.into_flattened()
    }
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    match elem {
        2 => typed::<2>(src, rows, cols),
        4 => typed::<4>(src, rows, cols),
        _ => {
            let mut out = vec![0u8; src.len()];
            for r in 0..rows {
                for c in 0..cols {
                    let (s, d) = ((r * cols + c) * elem, (c * rows + r) * elem);
                    out[d..d + elem].copy_from_slice(&src[s..s + elem]);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_init_by_name() {
        assert_eq!(random_init("model.layers.0.input_layernorm.weight", &[1280]), RandomInit::Ones);
        assert_eq!(random_init("model.sam_model.neck.1.weight", &[256]), RandomInit::Ones);
        assert_eq!(random_init("model.vision_model.pre_layrnorm.weight", &[1024]), RandomInit::Ones);
        assert_eq!(random_init("model.projector.layers.bias", &[1280]), RandomInit::Zeros);
        assert_eq!(random_init("model.layers.3.mlp.experts.0.down_proj.weight", &[1280, 896]), RandomInit::Normal(1.0 / 896f64.sqrt()));
        assert_eq!(random_init("model.sam_model.net_2.weight", &[512, 256, 3, 3]), RandomInit::Normal(1.0 / 2304f64.sqrt()));
        assert_eq!(random_init("model.image_newline", &[1280]), RandomInit::Normal(0.02));
    }

    #[test]
    fn random_weights_depend_on_the_name_only_when_loaded_on_many_threads() {
        let device = crate::DeviceSpec::Cpu.device().unwrap();
        let w = Weights::random(&device, FloatType::F32, 7).unwrap();
        let names: Vec<String> = (0..8).map(|i| format!("model.layers.1.mlp.experts.{i}.up_proj.weight")).collect();
        let load = |n: &str| w.host_linear(n, 24, 16).unwrap().to_f32();
        let alone: Vec<Vec<f32>> = names.iter().map(|n| load(n)).collect();
        let together: Vec<Vec<f32>> = std::thread::scope(|s| {
            names.iter().map(|n| s.spawn(move || load(n))).collect::<Vec<_>>().into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(alone, together);
        assert_ne!(alone[0], alone[1], "each name has its own values");
    }

    #[test]
    fn transpose_is_exact() {
        let src: Vec<u8> = (0..2 * 3 * 2).map(|i| i as u8).collect(); // 2x3 of u16 pairs
        let t = transpose_bytes(&src, 2, 3, 2);
        // element (r,c) = bytes [2(3r+c), 2(3r+c)+1]; transposed (c,r) at index 2(2c+r)
        assert_eq!(t, vec![0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
        // Sizes that cross the tile and band edges, for 2-, 4- and 3-byte elements.
        for (rows, cols, elem) in [(37, 130, 2), (70, 33, 4), (5, 9, 3), (1, 1, 2), (64, 64, 2)] {
            let src: Vec<u8> = (0..rows * cols * elem).map(|i| (i * 7 % 251) as u8).collect();
            let t = transpose_bytes(&src, rows, cols, elem);
            for r in 0..rows {
                for c in 0..cols {
                    let (s, d) = ((r * cols + c) * elem, (c * rows + r) * elem);
                    assert_eq!(t[d..d + elem], src[s..s + elem], "({r}, {c}) of {rows}x{cols}x{elem}");
                }
            }
            assert_eq!(transpose_bytes(&t, cols, rows, elem), src);
        }
    }
}
