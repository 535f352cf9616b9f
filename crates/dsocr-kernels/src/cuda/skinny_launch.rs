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
const ROWS_PER_CUBE: usize = crate::MAX_KERNEL_ROWS;
/// Cubes that keep every SM of a large GPU busy (≈ 2 per SM on an H100/H200).
pub(super) const TARGET_CUBES: usize = 264;
/// Most `K` splits of one linear launch.
pub(super) const MAX_SPLITS: usize = 8;

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

/// The grid and cube for `n` output columns in vectors of `vec`, `z` cubes deep: [`cube_shape`]'s
/// cubes, or one unit per cube on a device with one-lane planes (CubeCL's CPU runtime, where a
/// cube barrier spins one thread per unit: 256 of them on a few cores would take far longer than
/// the product).
pub(super) fn launch_dims(on: &CubeTensor, n: usize, vec: usize, z: usize) -> (CubeCount, CubeDim, u32, u32) {
    let n_vecs = n / vec;
    let (cols, ks) = if on.client.properties().hardware.plane_size_max == 1 { (1, 1) } else { cube_shape(n_vecs, z) };
    (CubeCount::Static(n_vecs.div_ceil(cols as usize) as u32, 1, z as u32), CubeDim::new_2d(cols, ks), cols, ks)
}

/// `w` as the kernels read weights: unit-stride rows and the other strides whole vectors of
/// `vec` elements. CubeCL pads the rows of some allocations to an aligned pitch (a row of 6,848
/// bf16 values, the dense MLP's width, gets 6,912), which the kernels read as they lie; copying
/// such a weight to a packed layout cost two 17.5 MB copies per decode step. Anything else (a
/// transposed view, a tiled layout) is made contiguous.
pub(super) fn readable(w: CubeTensor, vec: usize) -> CubeTensor {
    let strides = w.meta.strides();
    let rank = strides.len();
    let rows_fit = !w.meta.is_tiled() && strides[rank - 1] == 1 && strides[..rank - 1].iter().all(|s| s % vec == 0);
    if rows_fit { w } else { into_contiguous(w) }
}

/// A `[K, N]` weight as a bank of one expert, `[1, K, N]`: a view with the same rows (Burn's
/// reshape would copy a weight whose rows are padded).
pub(super) fn as_bank(mut w: CubeTensor) -> CubeTensor {
    if w.meta.shape().len() == 2 {
        let (shape, strides) = (w.meta.shape().clone(), w.meta.strides().clone());
        let (k, n, row) = (shape[0], shape[1], strides[0]);
        *w.meta = Metadata::new([1, k, n], [k * row, row, strides[1]]);
    }
    w
}

/// How many `K` splits [`skinny_linear_parts`] uses for `x` `[m, k]` · `w` `[k, n]` of `dtype`:
/// enough to fill the GPU when the output is narrow (`o_proj`: 40 column blocks at one row), each
/// split still giving every `K` lane a few rows. A function of the shapes alone, so the fusion
/// layer knows the parts' shape before the launch.
pub(super) fn split_count(m: usize, k: usize, n: usize, dtype: DType) -> usize {
    let vec = vector_width(dtype);
    let groups = m.div_ceil(m.clamp(1, ROWS_PER_CUBE));
    let (cols, ks) = cube_shape(n / vec, groups);
    let blocks = (n / vec).div_ceil(cols as usize);
    (TARGET_CUBES / (blocks * groups)).clamp(1, MAX_SPLITS).min(k / (4 * ks as usize)).max(1)
}

/// `x` `[M, K]` · `w` `[K, N]` as [`split_count`] parts: the product `[M, N]` itself when there
/// is one, else f32 partial products `[splits·M, N]` (split-major) for the consumer to sum.
pub(super) fn skinny_linear_parts(x: CubeTensor, w: CubeTensor) -> CubeTensor {
    let vec = vector_width(w.dtype);
    let w = readable(w, vec);
    let (m, k, n) = (x.meta.shape()[0], x.meta.shape()[1], w.meta.shape()[1]);
    let rows = m.min(ROWS_PER_CUBE);
    let groups = m.div_ceil(rows);
    let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
    let (blocks, dim, cols, ks) = {
        let (count, dim, cols, ks) = launch_dims(&x, n, vec, groups);
        let CubeCount::Static(blocks, _, _) = count else { unreachable!("launch_dims gives a static count") };
        (blocks, dim, cols, ks)
    };
    let splits = split_count(m, k, n, dtype);
    let count = CubeCount::Static(blocks, 1, (groups * splits) as u32);
    let target_type = if splits == 1 { dtype } else { DType::F32 };
    let target = empty_device_dtype(client.clone(), device, Shape::new([splits * m, n]), target_type);
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
    target
}

/// `x` `[M, K]` · `w` `[K, N]` → `[M, N]`: [`skinny_linear_parts`], then the split sums in a
/// second launch when there are several.
pub(super) fn skinny_linear(x: CubeTensor, w: CubeTensor) -> CubeTensor {
    let (m, dtype) = (x.meta.shape()[0], x.dtype);
    sum_splits(skinny_linear_parts(x, w), m, dtype)
}

/// The product `[M, N]` in `dtype` from `parts`: the parts themselves when they are one split in
/// `dtype`, else the sum of the f32 split parts `[splits·M, N]` in one launch.
pub(super) fn sum_splits(parts: CubeTensor, m: usize, dtype: DType) -> CubeTensor {
    if parts.dtype == dtype && parts.meta.shape()[0] == m {
        return parts;
    }
    let n = parts.meta.shape()[1];
    let vec = vector_width(dtype);
    let out = empty_device_dtype(parts.client.clone(), parts.device.clone(), Shape::new([m, n]), dtype);
    let client = parts.client.clone();
    let units = m * (n / vec);
    sum_splits_kernel::launch(
        &client,
        CubeCount::Static(units.div_ceil(UNITS) as u32, 1, 1),
        CubeDim::new_1d(UNITS as u32),
        vec,
        parts.into_tensor_arg(),
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
    let (count, dim, cols, ks) = launch_dims(&x, n, vec, m * slots);
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

/// Each (token, slot) pair's down projection through its expert, `[M·S, N]` in the float type
/// (the parts of [`crate::expert_down`]).
pub(super) fn expert_down_pairs(act: CubeTensor, down: CubeTensor, ids: CubeTensor) -> CubeTensor {
    let vec = vector_width(down.dtype);
    let down = readable(down, vec);
    let (m, slots) = (ids.meta.shape()[0], ids.meta.shape()[1]);
    let n = down.meta.shape()[2];
    let (client, device, dtype, id_type) = (act.client.clone(), act.device.clone(), act.dtype, ids.dtype);
    let (count, dim, cols, ks) = launch_dims(&act, n, vec, m * slots);
    let per_pair = empty_device_dtype(client.clone(), device, Shape::new([m * slots, n]), dtype);
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
    per_pair
}

/// The routing-weighted sum over each token's slots of the per-pair products `[M·S, N]`, with
/// `weights` `[M, S]` (f32): the second half of the experts' down projection.
pub(super) fn combine_slots(per_pair: CubeTensor, weights: CubeTensor) -> CubeTensor {
    let vec = vector_width(per_pair.dtype);
    let m = weights.meta.shape()[0];
    let (client, dtype, n) = (per_pair.client.clone(), per_pair.dtype, per_pair.meta.shape()[1]);
    let out = empty_device_dtype(client.clone(), per_pair.device.clone(), Shape::new([m, n]), dtype);
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
