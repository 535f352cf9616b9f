//! Launching the attention kernel ([`super::encoder_attention_kernel`]) on Burn's CubeCL tensors:
//! the output `[B, n, heads, d]` and the grid of query blocks.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::encoder_attention_kernel::{BLOCK_Q, HEAD_DIMS, PLANE, PLANES, encoder_attention_kernel};

/// Attention of `q` `[B, heads, n, d]` (queries at positions `query_offset + i`) over `k`/`v`
/// `[B, kv_heads, n_k, d]`, with the decomposed bias `rel_h`/`rel_w` when `with_bias` (else
/// unread) and keys `j > query_offset + i` at or past `causal_from` hidden. Returns
/// `[B, n, heads, d]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn encoder_attention(
    q: CubeTensor,
    k: CubeTensor,
    v: CubeTensor,
    rel_h: CubeTensor,
    rel_w: CubeTensor,
    causal_from: usize,
    query_offset: usize,
    with_bias: bool,
) -> CubeTensor {
    let shape = q.meta.shape().clone();
    let (b, heads, n, d) = (shape[0], shape[1], shape[2], shape[3]);
    assert!(HEAD_DIMS.contains(&d), "attention kernel: head size {d}, the kernel is written for {HEAD_DIMS:?}");
    let plane_size = q.client.properties().hardware.plane_size_max;
    assert_eq!(plane_size, PLANE, "encoder attention kernel expects {PLANE}-lane planes, the device has {plane_size}");
    let (client, device, dtype) = (q.client.clone(), q.device.clone(), q.dtype);
    let out = empty_device_dtype(client.clone(), device, Shape::new([b, n, heads, d]), dtype);
    encoder_attention_kernel::launch(
        &client,
        CubeCount::Static(n.div_ceil(BLOCK_Q as usize) as u32, heads as u32, b as u32),
        CubeDim::new_2d(PLANE, PLANES),
        q.into_tensor_arg(),
        k.into_tensor_arg(),
        v.into_tensor_arg(),
        rel_h.into_tensor_arg(),
        rel_w.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        1.0 / (d as f32).sqrt(),
        causal_from.min(u32::MAX as usize) as u32,
        u32::try_from(query_offset).expect("a query offset within u32"),
        d as u32,
        with_bias,
        dtype_to_storage_type(dtype),
    );
    out
}
