//! Launching the skinny kernels ([`super::skinny_kernels`]) on Burn's CubeCL tensors: cube
//! shapes, output allocation, and the layout the kernels need of weights (unit-stride rows whose
//! pitch is a whole number of 16-byte vectors).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::zspace::metadata::Metadata;

use super::skinny_kernels::{combine_slots_kernel, expert_down_kernel, skinny_linear_kernel, sum_splits_kernel, swiglu_kernel};

/// Units per cube.
const UNITS: usize = 256;
/// Activation rows one cube of the linear kernel serves (registers hold this many sums).
const ROWS_PER_CUBE: usize = 8;
/// Cubes that keep every SM of a large GPU busy (≈ 2 per SM on an H100).
const TARGET_CUBES: usize = 264;
/// Most `K` splits of one linear launch.
const MAX_SPLITS: usize = 8;

/// Columns per 16-byte load for `dtype`.
pub(super) fn vector_width(dtype: DType) -> usize {
    16 / dtype.size()
}

/// How a cube splits its 256 units between output-column vectors and `K` lanes: as many column
/// vectors per cube as still leave [`TARGET_CUBES`] cubes (at least 4, so a row read is ≥ 64 bytes).
fn cube_shape(n_vecs: usize, other_cubes: usize) -> (u32, u32) {
    let mut cols = 32;
    while cols > 4 && n_vecs.div_ceil(cols) * other_cubes < TARGET_CUBES {
        cols /= 2;
    }
    (cols as u32, (UNITS / cols) as u32)
}

fn launch_dims(n: usize, vec: usize, z: usize) -> (CubeCount, CubeDim, u32, u32) {
    let n_vecs = n / vec;
    let (cols, ks) = cube_shape(n_vecs, z);
    (CubeCount::Static(n_vecs.div_ceil(cols as usize) as u32, 1, z as u32), CubeDim::new_2d(cols, ks), cols, ks)
}

/// `w` as the kernels read weights: unit-stride rows and the other strides whole vectors of
/// `vec` elements. CubeCL pads the rows of some allocations to an aligned pitch (a row of 6,848
/// bf16 values, the dense MLP's width, gets 6,912), which the kernels read as they lie; copying
/// such a weight to a packed layout cost two 17.5 MB copies per decode step. Anything else (a
/// transposed view, a tiled layout) is made contiguous.
fn readable(w: CubeTensor, vec: usize) -> CubeTensor {
    let strides = w.meta.strides();
    let rank = strides.len();
    let rows_fit = !w.meta.is_tiled() && strides[rank - 1] == 1 && strides[..rank - 1].iter().all(|s| s % vec == 0);
    if rows_fit { w } else { into_contiguous(w) }
}

/// A `[K, N]` weight as a bank of one expert, `[1, K, N]`: a view with the same rows (Burn's
/// reshape would copy a weight whose rows are padded).
fn as_bank(mut w: CubeTensor) -> CubeTensor {
    if w.meta.shape().len() == 2 {
        let (shape, strides) = (w.meta.shape().clone(), w.meta.strides().clone());
        let (k, n, row) = (shape[0], shape[1], strides[0]);
        *w.meta = Metadata::new([1, k, n], [k * row, row, strides[1]]);
    }
    w
}

/// `x` `[M, K]` · `w` `[K, N]` → `[M, N]`. A narrow output (`o_proj`: 40 column blocks at one
/// row) also splits `K` over the grid so every SM reads part of the weight, then sums the f32
/// partials in a second launch.
pub(super) fn skinny_linear(x: CubeTensor, w: CubeTensor) -> CubeTensor {
    let vec = vector_width(w.dtype);
    let w = readable(w, vec);
    let (m, k, n) = (x.meta.shape()[0], x.meta.shape()[1], w.meta.shape()[1]);
    let rows = m.min(ROWS_PER_CUBE);
    let groups = m.div_ceil(rows);
    let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
    let (blocks, dim, cols, ks) = {
        let (count, dim, cols, ks) = launch_dims(n, vec, groups);
        let CubeCount::Static(blocks, _, _) = count else { unreachable!("launch_dims gives a static count") };
        (blocks as usize, dim, cols, ks)
    };
    // Enough splits to fill the GPU, each still giving every K lane a few rows.
    let splits = (TARGET_CUBES / (blocks * groups)).clamp(1, MAX_SPLITS).min(k / (4 * ks as usize)).max(1);
    let count = CubeCount::Static(blocks as u32, 1, (groups * splits) as u32);
    let out = empty_device_dtype(client.clone(), device.clone(), Shape::new([m, n]), dtype);
    // One split writes the product itself; more write f32 partials for the sum below.
    let (target, target_type) = if splits == 1 {
        (out.clone(), dtype)
    } else {
        (empty_device_dtype(client.clone(), device, Shape::new([splits * m, n]), DType::F32), DType::F32)
    };
    skinny_linear_kernel::launch(
        &client,
        count,
        dim,
        vec,
        x.into_tensor_arg(),
        w.into_tensor_arg(),
        target.clone().into_tensor_arg(),
        splits as u32,
        rows as u32,
        cols,
        ks,
        [dtype_to_storage_type(dtype), dtype_to_storage_type(target_type)],
    );
    if splits == 1 {
        return out;
    }
    let units = m * (n / vec);
    sum_splits_kernel::launch(
        &client,
        CubeCount::Static(units.div_ceil(UNITS) as u32, 1, 1),
        CubeDim::new_1d(UNITS as u32),
        vec,
        target.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        dtype_to_storage_type(dtype),
    );
    out
}

/// SwiGLU first half; `ids` `None`: `gate`/`up` are `[K, N]` (one expert, one slot per row),
/// else banks `[E, K, N]`.
pub(super) fn swiglu(x: CubeTensor, gate: CubeTensor, up: CubeTensor, ids: Option<CubeTensor>) -> CubeTensor {
    let vec = vector_width(gate.dtype);
    let (gate, up) = (as_bank(readable(gate, vec)), as_bank(readable(up, vec)));
    let m = x.meta.shape()[0];
    let n = *gate.meta.shape().last().expect("rank ≥ 2");
    let slots = ids.as_ref().map_or(1, |ids| ids.meta.shape()[1]);
    let (count, dim, cols, ks) = launch_dims(n, vec, m * slots);
    let out = empty_device_dtype(x.client.clone(), x.device.clone(), Shape::new([m * slots, n]), x.dtype);
    let (client, dtype) = (x.client.clone(), x.dtype);
    let indexed = ids.is_some();
    // Without ids the kernel never reads them; `x` stands in (typed as the float, unread).
    let (ids, id_type) = match ids {
        Some(ids) => {
            let t = ids.dtype;
            (ids, t)
        }
        None => (x.clone(), dtype),
    };
    swiglu_kernel::launch(
        &client,
        count,
        dim,
        vec,
        x.into_tensor_arg(),
        gate.into_tensor_arg(),
        up.into_tensor_arg(),
        ids.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        slots as u32,
        indexed,
        cols,
        ks,
        [dtype_to_storage_type(dtype), dtype_to_storage_type(id_type)],
    );
    out
}

/// The combined down projection of the chosen experts: each (token, slot) pair's projection
/// (rounded to the float type), then the routing-weighted sum over the slots.
pub(super) fn expert_down(act: CubeTensor, down: CubeTensor, ids: CubeTensor, weights: CubeTensor) -> CubeTensor {
    let vec = vector_width(down.dtype);
    let down = readable(down, vec);
    let (m, slots) = (ids.meta.shape()[0], ids.meta.shape()[1]);
    let n = down.meta.shape()[2];
    let (client, device, dtype, id_type) = (act.client.clone(), act.device.clone(), act.dtype, ids.dtype);
    let (count, dim, cols, ks) = launch_dims(n, vec, m * slots);
    let per_pair = empty_device_dtype(client.clone(), device.clone(), Shape::new([m * slots, n]), dtype);
    expert_down_kernel::launch(
        &client,
        count,
        dim,
        vec,
        act.into_tensor_arg(),
        down.into_tensor_arg(),
        ids.into_tensor_arg(),
        per_pair.clone().into_tensor_arg(),
        cols,
        ks,
        [dtype_to_storage_type(dtype), dtype_to_storage_type(id_type)],
    );
    let out = empty_device_dtype(client.clone(), device, Shape::new([m, n]), dtype);
    let units = m * (n / vec);
    combine_slots_kernel::launch(
        &client,
        CubeCount::Static(units.div_ceil(UNITS) as u32, 1, 1),
        CubeDim::new_1d(UNITS as u32),
        vec,
        per_pair.into_tensor_arg(),
        weights.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        dtype_to_storage_type(dtype),
    );
    out
}
