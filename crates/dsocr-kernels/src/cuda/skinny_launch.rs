//! Launching the skinny kernels ([`super::skinny_kernels`]) on Burn's CubeCL tensors: cube
//! shapes, output allocation, and the contiguity the kernels assume of weights.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::skinny_kernels::{expert_down_kernel, skinny_linear_kernel, swiglu_kernel};

/// Units per cube.
const UNITS: usize = 256;
/// Activation rows one cube of the linear kernel serves (registers hold this many sums).
const ROWS_PER_CUBE: usize = 8;
/// Cubes that keep every SM of a large GPU busy (≈ 2 per SM on an H100).
const TARGET_CUBES: usize = 264;

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

/// `x` `[M, K]` · `w` `[K, N]` → `[M, N]`.
pub(super) fn skinny_linear(x: CubeTensor, w: CubeTensor) -> CubeTensor {
    let w = into_contiguous(w);
    let (m, n) = (x.meta.shape()[0], w.meta.shape()[1]);
    let vec = vector_width(w.dtype);
    let rows = m.min(ROWS_PER_CUBE);
    let (count, dim, cols, ks) = launch_dims(n, vec, m.div_ceil(rows));
    let out = empty_device_dtype(x.client.clone(), x.device.clone(), Shape::new([m, n]), x.dtype);
    let (client, dtype) = (x.client.clone(), x.dtype);
    skinny_linear_kernel::launch(
        &client,
        count,
        dim,
        vec,
        x.into_tensor_arg(),
        w.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        rows as u32,
        cols,
        ks,
        dtype_to_storage_type(dtype),
    );
    out
}

/// SwiGLU first half; `ids` `None`: `gate`/`up` are `[K, N]` (one expert, one slot per row).
pub(super) fn swiglu(x: CubeTensor, gate: CubeTensor, up: CubeTensor, ids: Option<CubeTensor>) -> CubeTensor {
    let (gate, up) = (into_contiguous(gate), into_contiguous(up));
    let m = x.meta.shape()[0];
    let n = *gate.meta.shape().last().expect("rank ≥ 2");
    let vec = vector_width(gate.dtype);
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

/// The combined down projection of the chosen experts.
pub(super) fn expert_down(act: CubeTensor, down: CubeTensor, ids: CubeTensor, weights: CubeTensor) -> CubeTensor {
    let down = into_contiguous(down);
    let m = ids.meta.shape()[0];
    let n = down.meta.shape()[2];
    let vec = vector_width(down.dtype);
    let (count, dim, cols, ks) = launch_dims(n, vec, m);
    let out = empty_device_dtype(act.client.clone(), act.device.clone(), Shape::new([m, n]), act.dtype);
    let (client, dtype, id_type) = (act.client.clone(), act.dtype, ids.dtype);
    expert_down_kernel::launch(
        &client,
        count,
        dim,
        vec,
        act.into_tensor_arg(),
        down.into_tensor_arg(),
        ids.into_tensor_arg(),
        weights.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        cols,
        ks,
        [dtype_to_storage_type(dtype), dtype_to_storage_type(id_type)],
    );
    out
}
