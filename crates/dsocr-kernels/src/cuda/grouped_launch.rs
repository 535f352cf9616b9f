//! Launching the grouped-by-expert kernels ([`super::grouped_kernels`]) on Burn's CubeCL
//! tensors: list each expert's pairs, then run the projection with one cube row per (expert,
//! chunk of pairs).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::grouped_kernels::{GROUP_ROWS, LIST_PLANES, PLANE, group_pairs_kernel, grouped_down_kernel, grouped_swiglu_kernel};
use super::skinny_launch::{launch_dims, readable, vector_width};

/// From this many tokens on, the expert projections run grouped by expert. Measured on an H100
/// (bf16, release sizes; docs/perf.md, session 6), the per-pair kernels are still faster below
/// it: aggregate decode 3,265 vs 2,183 tok/s at 8 pages, 5,240 vs 3,758 at 16, 5,907 vs 5,854
/// at 32 (the grouped cubes are too few and wait on their loads); grouping reads each expert once
/// per chunk instead of once per pair, which decides it for larger batches.
/// [`crate::KernelSettings::grouped_from`] moves the threshold (to measure the two).
pub(super) fn grouped_min_tokens() -> usize {
    crate::settings().grouped_from
}

/// Cube rows that will have work: at most one chunk per pair, and no more than the grid holds
/// (the grid's other rows exit at once, so they should not shape the cubes).
fn busy_rows(experts: usize, chunks: usize, pairs: usize) -> usize {
    (experts * chunks).min(pairs)
}

/// Each expert's pairs: `lists` `[E, M]`, `counts` `[E]` (i32), and the chunks of
/// [`GROUP_ROWS`] pairs the largest possible list needs.
pub(super) struct Groups {
    pub(super) lists: CubeTensor,
    pub(super) counts: CubeTensor,
    pub(super) chunks: usize,
}

pub(super) fn group_pairs(ids: &CubeTensor, experts: usize) -> Groups {
    let m = ids.meta.shape()[0];
    let lanes = ids.client.properties().hardware.plane_size_max;
    assert!(lanes == PLANE || lanes == 1, "expert grouping expects {PLANE}-lane (or one-lane) planes, the device has {lanes}");
    let (client, device) = (ids.client.clone(), ids.device.clone());
    let lists = empty_device_dtype(client.clone(), device.clone(), Shape::new([experts, m]), DType::I32);
    let counts = empty_device_dtype(client.clone(), device, Shape::new([experts]), DType::I32);
    group_pairs_kernel::launch(
        &client,
        CubeCount::Static(experts.div_ceil(LIST_PLANES as usize) as u32, 1, 1),
        CubeDim::new_2d(lanes, LIST_PLANES),
        ids.clone().into_tensor_arg(),
        lists.clone().into_tensor_arg(),
        counts.clone().into_tensor_arg(),
        lanes,
        dtype_to_storage_type(ids.dtype),
    );
    Groups { lists, counts, chunks: m.div_ceil(GROUP_ROWS as usize) }
}

/// The launch grid: cubes shaped for the busy rows, one cube row per (expert, chunk).
fn grid(on: &CubeTensor, n: usize, vec: usize, experts: usize, chunks: usize, pairs: usize) -> (CubeCount, CubeDim, u32, u32) {
    let (count, dim, cols, ks) = launch_dims(on, n, vec, busy_rows(experts, chunks, pairs));
    let CubeCount::Static(blocks, _, _) = count else { unreachable!("launch_dims gives a static count") };
    (CubeCount::Static(blocks, 1, (experts * chunks) as u32), dim, cols, ks)
}

/// SwiGLU's first half of every (token, slot) pair through its expert, `[M·S, N]`: `x` `[M, K]`,
/// banks `gate`/`up` `[E, K, N]`, `ids` `[M, S]`.
pub(super) fn grouped_swiglu(x: CubeTensor, gate: CubeTensor, up: CubeTensor, ids: CubeTensor) -> CubeTensor {
    let vec = vector_width(gate.dtype);
    let (gate, up) = (readable(gate, vec), readable(up, vec));
    let (experts, n) = (gate.meta.shape()[0], gate.meta.shape()[2]);
    let (m, slots) = (ids.meta.shape()[0], ids.meta.shape()[1]);
    let groups = group_pairs(&ids, experts);
    let (count, dim, cols, ks) = grid(&x, n, vec, experts, groups.chunks, m * slots);
    let (client, dtype) = (x.client.clone(), x.dtype);
    let out = empty_device_dtype(client.clone(), x.device.clone(), Shape::new([m * slots, n]), dtype);
    grouped_swiglu_kernel::launch(
        &client,
        count,
        dim,
        vec,
        x.into_tensor_arg(),
        gate.into_tensor_arg(),
        up.into_tensor_arg(),
        groups.lists.into_tensor_arg(),
        groups.counts.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        groups.chunks as u32,
        slots as u32,
        cols,
        ks,
        dtype_to_storage_type(dtype),
    );
    out
}

/// Each (token, slot) pair's down projection through its expert, `[M·S, N]`: `act` `[M·S, K]`,
/// bank `down` `[E, K, N]`, `ids` `[M, S]`.
pub(super) fn grouped_down_pairs(act: CubeTensor, down: CubeTensor, ids: CubeTensor) -> CubeTensor {
    let vec = vector_width(down.dtype);
    let down = readable(down, vec);
    let (experts, n) = (down.meta.shape()[0], down.meta.shape()[2]);
    let (m, slots) = (ids.meta.shape()[0], ids.meta.shape()[1]);
    let groups = group_pairs(&ids, experts);
    let (count, dim, cols, ks) = grid(&act, n, vec, experts, groups.chunks, m * slots);
    let (client, dtype) = (act.client.clone(), act.dtype);
    let out = empty_device_dtype(client.clone(), act.device.clone(), Shape::new([m * slots, n]), dtype);
    grouped_down_kernel::launch(
        &client,
        count,
        dim,
        vec,
        act.into_tensor_arg(),
        down.into_tensor_arg(),
        groups.lists.into_tensor_arg(),
        groups.counts.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        groups.chunks as u32,
        cols,
        ks,
        dtype_to_storage_type(dtype),
    );
    out
}
