//! Launching the in-place integer updates ([`super::int_store_kernel`]) on Burn's CubeCL tensors.

use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::int_store_kernel::{increment_ints_kernel, overwrite_ints_kernel};

/// Units per cube (the tensors are a batch of token ids or one counter).
const UNITS: u32 = 64;

/// `dst` with `src` written into it; in place unless something else holds `dst` (then a copy is
/// written, as Burn's own operations do, and the caller's captured graph would not see it: the
/// decode loop keeps its state tensors to itself).
pub(super) fn overwrite_ints(dst: CubeTensor, src: CubeTensor) -> CubeTensor {
    let n = dst.meta.shape()[0];
    assert_eq!(src.meta.shape()[0], n, "overwrite_ints: {} values for {n} slots", src.meta.shape()[0]);
    let dst = writable(dst);
    let (client, types) = (dst.client.clone(), [dtype_to_storage_type(dst.dtype), dtype_to_storage_type(src.dtype)]);
    overwrite_ints_kernel::launch(
        &client,
        cube_count(n),
        CubeDim::new_1d(UNITS),
        dst.clone().into_tensor_arg(),
        src.into_tensor_arg(),
        types,
    );
    dst
}

/// `dst` with `by` added to every element, in place as [`overwrite_ints`].
pub(super) fn increment_ints(dst: CubeTensor, by: i32) -> CubeTensor {
    let n = dst.meta.shape()[0];
    let dst = writable(dst);
    let (client, dtype) = (dst.client.clone(), dtype_to_storage_type(dst.dtype));
    increment_ints_kernel::launch(&client, cube_count(n), CubeDim::new_1d(UNITS), dst.clone().into_tensor_arg(), by, dtype);
    dst
}

fn writable(t: CubeTensor) -> CubeTensor {
    if t.can_mut() && t.is_nonoverlapping() { t } else { t.copy() }
}

fn cube_count(n: usize) -> CubeCount {
    CubeCount::Static(n.div_ceil(UNITS as usize).max(1) as u32, 1, 1)
}
