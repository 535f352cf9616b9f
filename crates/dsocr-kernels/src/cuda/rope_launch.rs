//! Launching the RoPE kernel ([`super::rope_kernel`]) on Burn's CubeCL tensors, writing the
//! keys and values into the KV cache in place.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::rope_kernel::rope_qkv_kernel;

/// Units per cube.
const UNITS: u32 = 256;

/// `(q, keys, values)`: `q` `[B, heads, T, d]` from `qkv` `[B·T, 3H]` (or its `splits` f32
/// parts `[splits·B·T, 3H]`, summed by the kernel into the tables' type) and the tables `cos`/`sin`
/// `[P, d]`; `keys`/`values` `[R, heads, S, d]` with slots `starts[b]..starts[b] + T` of row
/// `rows[b]` written for each sequence `b` (the caller keeps them within `S`: they are on the device). The caches are written where they
/// lie when nothing else holds them (the decode loop's case), and copied first otherwise, like
/// Burn's own slice assignment.
#[allow(clippy::too_many_arguments)]
pub(super) fn rope_qkv_cached(
    qkv: CubeTensor,
    splits: usize,
    cos: CubeTensor,
    sin: CubeTensor,
    tables: CubeTensor,
    starts: CubeTensor,
    heads: usize,
    keys: CubeTensor,
    values: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let d = cos.meta.shape()[1];
    let b = tables.meta.shape()[0];
    assert_eq!(starts.meta.shape()[0], b, "RoPE kernel: {} starts for {b} rows", starts.meta.shape()[0]);
    assert!(splits >= 1 && qkv.meta.shape()[0].is_multiple_of(splits), "RoPE kernel: QKV rows not in {splits} parts");
    let rows = qkv.meta.shape()[0] / splits;
    assert!(b > 0 && rows.is_multiple_of(b), "RoPE kernel: {rows} QKV rows for a batch of {b}");
    let t = rows / b;
    assert_eq!(qkv.meta.shape()[1], 3 * heads * d, "RoPE kernel: QKV width is not 3 × {heads} heads × {d}");
    assert_eq!(tables.dtype, starts.dtype, "RoPE kernel: block tables and starts differ in integer type");
    assert_eq!(tables.meta.shape().num_dims(), 2, "RoPE kernel: block tables are [B, blocks per sequence]");
    for cache in [&keys, &values] {
        let shape = cache.meta.shape();
        assert!(
            shape[1] == heads && shape[3] == d && t <= shape[2] * tables.meta.shape()[1],
            "RoPE kernel: cache blocks {shape:?} cannot take {t} slots for {heads} heads × {d}"
        );
    }
    let writable = |c: CubeTensor| if c.can_mut() && c.is_nonoverlapping() { c } else { c.copy() };
    let (keys, values) = (writable(keys), writable(values));
    let (client, device, dtype, int) = (qkv.client.clone(), qkv.device.clone(), cos.dtype, tables.dtype);
    let part_type = qkv.dtype;
    let q = empty_device_dtype(client.clone(), device, Shape::new([b, heads, t, d]), dtype);
    let units = rows * heads * (d / 2);
    rope_qkv_kernel::launch(
        &client,
        CubeCount::Static(units.div_ceil(UNITS as usize) as u32, 1, 1),
        CubeDim::new_1d(UNITS),
        qkv.into_tensor_arg(),
        cos.into_tensor_arg(),
        sin.into_tensor_arg(),
        tables.into_tensor_arg(),
        starts.into_tensor_arg(),
        q.clone().into_tensor_arg(),
        keys.clone().into_tensor_arg(),
        values.clone().into_tensor_arg(),
        splits as u32,
        [dtype_to_storage_type(dtype), dtype_to_storage_type(part_type), dtype_to_storage_type(int)],
    );
    (q, keys, values)
}
