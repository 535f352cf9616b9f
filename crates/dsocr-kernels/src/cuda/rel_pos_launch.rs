//! Launching the relative-position terms ([`super::rel_pos_kernel`]) on Burn's CubeCL tensors.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::rel_pos_kernel::rel_pos_kernel;

/// Units per cube.
const UNITS: u32 = 256;

/// The terms of the query rows `q` `[B·heads·h·w, d]` with `rh` `[h, h, d]` and `rw`
/// `[w, w, d]`, as `[B·heads·h·w, h + w]`.
pub(super) fn rel_pos_terms(q: CubeTensor, rh: CubeTensor, rw: CubeTensor) -> CubeTensor {
    let (h, w) = (rh.meta.shape()[0], rw.meta.shape()[0]);
    let rows = q.meta.shape()[0];
    let (client, device, dtype) = (q.client.clone(), q.device.clone(), q.dtype);
    let out = empty_device_dtype(client.clone(), device, Shape::new([rows, h + w]), dtype);
    let units = rows * (h + w);
    let cubes = u32::try_from(units.div_ceil(UNITS as usize).max(1)).expect("relative terms: too many for one launch");
    rel_pos_kernel::launch(
        &client,
        CubeCount::Static(cubes, 1, 1),
        CubeDim::new_1d(UNITS),
        q.into_tensor_arg(),
        rh.into_tensor_arg(),
        rw.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        dtype_to_storage_type(dtype),
    );
    out
}
