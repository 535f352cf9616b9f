//! Launching the tensor-core tile kernel ([`super::tile_kernel`]) on Burn's CubeCL tensors: the
//! split of `K` for dense products, the per-expert pair lists for grouped ones, output allocation.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::grouped_launch::group_pairs;
use super::skinny_launch::{MAX_SPLITS, TARGET_CUBES, as_bank, readable, sum_splits};
use super::tile_kernel::{PLANE, PLANES, TILE_COLS, TILE_K, TILE_ROWS, VEC, tile_matmul_kernel};

/// How a dense `[m, k] · [k, n]` splits `K`: `(splits, rows of K per split)`. Enough splits to
/// fill the GPU when the output has few blocks (`o_proj` at 32 rows: 20 blocks), each split at
/// least two staging steps deep, and the f32 parts no larger than the weight (at 256 rows the
/// parts of a split product would otherwise cost more traffic than they save). A function of the
/// shapes alone, so the fusion layer knows the parts' shape before the launch.
pub(super) fn tile_splits(m: usize, k: usize, n: usize) -> (usize, usize) {
    let (tile_rows, tile_cols, tile_k) = (TILE_ROWS as usize, TILE_COLS as usize, TILE_K as usize);
    // At least one row block (an empty product still gets a valid grid).
    let blocks = n.div_ceil(tile_cols) * m.div_ceil(tile_rows).max(1);
    let by_fill = TARGET_CUBES / blocks.max(1);
    let by_bytes = k / (2 * m.max(1));
    let by_depth = k / (2 * tile_k);
    let wanted = by_fill.min(by_bytes).min(by_depth).clamp(1, MAX_SPLITS);
    let chunk = k.div_ceil(wanted).div_ceil(tile_k).max(1) * tile_k;
    (k.div_ceil(chunk).max(1), chunk)
}

/// Whether the tile kernel takes `[·, k]` activations against weights of `dtype` with `n`
/// outputs: a 16-bit float (tensor cores) and rows of whole 16-byte vectors.
pub(super) fn tile_supported(dtype: DType, k: usize, n: usize) -> bool {
    matches!(dtype, DType::BF16 | DType::F16) && k > 0 && n > 0 && k.is_multiple_of(VEC as usize) && n.is_multiple_of(VEC as usize)
}

fn cube_dim(on: &CubeTensor) -> CubeDim {
    let plane_size = on.client.properties().hardware.plane_size_max;
    assert_eq!(plane_size, PLANE, "tile kernel expects {PLANE}-lane planes, the device has {plane_size}");
    CubeDim::new_2d(PLANE, PLANES)
}

/// An `i32` tensor standing in for the row lists of a dense launch (never read).
fn unread_ints(like: &CubeTensor) -> CubeTensor {
    empty_device_dtype(like.client.clone(), like.device.clone(), Shape::new([1]), DType::I32)
}

/// `x` `[M, K]` · `w` `[K, N]` as [`tile_splits`] parts: the product `[M, N]` itself when there is
/// one split, else f32 partial products `[splits·M, N]` (split-major) for the consumer to sum.
pub(super) fn tile_linear_parts(x: CubeTensor, w: CubeTensor) -> CubeTensor {
    let vec = VEC as usize;
    assert_eq!(x.dtype, w.dtype, "tile kernel: activations and weight differ in float type");
    let (x, w) = (readable(x, vec), as_bank(readable(w, vec)));
    let (m, k, n) = (x.meta.shape()[0], x.meta.shape()[1], w.meta.shape()[2]);
    let (splits, chunk) = tile_splits(m, k, n);
    let (client, dtype) = (x.client.clone(), x.dtype);
    let target_type = if splits == 1 { dtype } else { DType::F32 };
    let target = empty_device_dtype(client.clone(), x.device.clone(), Shape::new([splits * m, n]), target_type);
    let (unread, dim) = (unread_ints(&x), cube_dim(&x));
    tile_matmul_kernel::launch(
        &client,
        CubeCount::Static(n.div_ceil(TILE_COLS as usize) as u32, m.div_ceil(TILE_ROWS as usize) as u32, splits as u32),
        dim,
        vec,
        x.into_tensor_arg(),
        w.clone().into_tensor_arg(),
        w.into_tensor_arg(),
        unread.clone().into_tensor_arg(),
        unread.into_tensor_arg(),
        target.clone().into_tensor_arg(),
        m as u32,
        chunk as u32,
        1,
        false,
        false,
        [dtype_to_storage_type(dtype), dtype_to_storage_type(target_type)],
    );
    target
}

/// `x` `[M, K]` · `w` `[K, N]` → `[M, N]`: [`tile_linear_parts`], the splits summed.
pub(super) fn tile_linear(x: CubeTensor, w: CubeTensor) -> CubeTensor {
    let (m, dtype) = (x.meta.shape()[0], x.dtype);
    sum_splits(tile_linear_parts(x, w), m, dtype)
}

/// `SiLU(x·G) ⊙ (x·U)`: `x` `[M, K]`, `gate`/`up` `[K, N]` → `[M, N]` (one launch, `K` whole).
pub(super) fn tile_swiglu(x: CubeTensor, gate: CubeTensor, up: CubeTensor) -> CubeTensor {
    let vec = VEC as usize;
    assert!(x.dtype == gate.dtype && x.dtype == up.dtype, "tile kernel: activations and weights differ in float type");
    let (x, gate, up) = (readable(x, vec), as_bank(readable(gate, vec)), as_bank(readable(up, vec)));
    let (m, k, n) = (x.meta.shape()[0], x.meta.shape()[1], gate.meta.shape()[2]);
    let (client, dtype) = (x.client.clone(), x.dtype);
    let out = empty_device_dtype(client.clone(), x.device.clone(), Shape::new([m, n]), dtype);
    let (unread, dim) = (unread_ints(&x), cube_dim(&x));
    tile_matmul_kernel::launch(
        &client,
        CubeCount::Static(n.div_ceil(TILE_COLS as usize) as u32, m.div_ceil(TILE_ROWS as usize) as u32, 1),
        dim,
        vec,
        x.into_tensor_arg(),
        gate.into_tensor_arg(),
        up.into_tensor_arg(),
        unread.clone().into_tensor_arg(),
        unread.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        m as u32,
        k as u32,
        1,
        false,
        true,
        [dtype_to_storage_type(dtype), dtype_to_storage_type(dtype)],
    );
    out
}

/// The (token, slot) pairs through their experts, grouped by expert: with `up`, SwiGLU's first
/// half of `x` `[M, K]` (tokens) by banks `w`/`up` `[E, K, N]`; without, `x` `[M·S, K]` (pairs)
/// by bank `w`. `ids` `[M, S]`; returns `[M·S, N]`, one row per pair.
fn tile_experts(x: CubeTensor, w: CubeTensor, up: Option<CubeTensor>, ids: CubeTensor) -> CubeTensor {
    let vec = VEC as usize;
    assert_eq!(x.dtype, w.dtype, "tile kernel: activations and weights differ in float type");
    let (x, w) = (readable(x, vec), readable(w, vec));
    let swiglu = up.is_some();
    let w2 = match up {
        Some(up) => readable(up, vec),
        None => w.clone(),
    };
    let (experts, k, n) = (w.meta.shape()[0], w.meta.shape()[1], w.meta.shape()[2]);
    let (m, slots) = (ids.meta.shape()[0], ids.meta.shape()[1]);
    let groups = group_pairs(&ids, experts);
    let (client, dtype) = (x.client.clone(), x.dtype);
    let out = empty_device_dtype(client.clone(), x.device.clone(), Shape::new([m * slots, n]), dtype);
    let dim = cube_dim(&x);
    // An expert is chosen at most once per token: at most M pairs each.
    tile_matmul_kernel::launch(
        &client,
        CubeCount::Static(n.div_ceil(TILE_COLS as usize) as u32, m.div_ceil(TILE_ROWS as usize) as u32, experts as u32),
        dim,
        vec,
        x.into_tensor_arg(),
        w.into_tensor_arg(),
        w2.into_tensor_arg(),
        groups.lists.into_tensor_arg(),
        groups.counts.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        0,
        k as u32,
        if swiglu { slots as u32 } else { 1 },
        true,
        swiglu,
        [dtype_to_storage_type(dtype), dtype_to_storage_type(dtype)],
    );
    out
}

/// SwiGLU's first half of every (token, slot) pair through its expert on tensor cores, `[M·S,
/// N]`: `x` `[M, K]`, banks `gate`/`up` `[E, K, N]`, `ids` `[M, S]`.
pub(super) fn tile_expert_swiglu(x: CubeTensor, gate: CubeTensor, up: CubeTensor, ids: CubeTensor) -> CubeTensor {
    tile_experts(x, gate, Some(up), ids)
}

/// Each (token, slot) pair's down projection through its expert on tensor cores, `[M·S, N]`:
/// `act` `[M·S, K]`, bank `down` `[E, K, N]`, `ids` `[M, S]`.
pub(super) fn tile_expert_down_pairs(act: CubeTensor, down: CubeTensor, ids: CubeTensor) -> CubeTensor {
    tile_experts(act, down, None, ids)
}
