//! Launching the RoPE kernel ([`super::rope_kernel`]) on Burn's CubeCL tensors.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::rope_kernel::rope_qkv_kernel;

/// Units per cube.
const UNITS: u32 = 256;

/// `(q, k, v)` `[B, heads, T, d]` from `qkv` `[B·T, 3H]` and the tables `cos`/`sin` `[B, 1, T, d]`.
pub(super) fn rope_qkv(qkv: CubeTensor, cos: CubeTensor, sin: CubeTensor, heads: usize) -> (CubeTensor, CubeTensor, CubeTensor) {
    let table = cos.meta.shape().clone();
    let (b, t, d) = (table[0], table[2], table[3]);
    let rows = qkv.meta.shape()[0];
    assert_eq!(rows, b * t, "RoPE kernel: {rows} QKV rows for a batch of {b} × {t} positions");
    assert_eq!(qkv.meta.shape()[1], 3 * heads * d, "RoPE kernel: QKV width is not 3 × {heads} heads × {d}");
    let (client, device, dtype) = (qkv.client.clone(), qkv.device.clone(), qkv.dtype);
    let out = || empty_device_dtype(client.clone(), device.clone(), Shape::new([b, heads, t, d]), dtype);
    let (q, k, v) = (out(), out(), out());
    let units = rows * heads * (d / 2);
    rope_qkv_kernel::launch(
        &client,
        CubeCount::Static(units.div_ceil(UNITS as usize) as u32, 1, 1),
        CubeDim::new_1d(UNITS),
        qkv.into_tensor_arg(),
        cos.into_tensor_arg(),
        sin.into_tensor_arg(),
        q.clone().into_tensor_arg(),
        k.clone().into_tensor_arg(),
        v.clone().into_tensor_arg(),
        dtype_to_storage_type(dtype),
    );
    (q, k, v)
}
