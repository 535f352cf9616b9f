//! Launching the decode-attention kernels ([`super::decode_attention_kernel`]) on Burn's CubeCL
//! tensors: the chunk grid, the f32 scratch for the chunks' partial results, the merge.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::decode_attention_kernel::{CHUNK, PLANE, PLANES, decode_attention_merge_kernel, decode_attention_split_kernel};

/// Attention of `q` `[B, H, 1, d]` over slots `0..=newest[b]` of row `rows[b]` of `keys`/`values`
/// `[R, H, S, d]` (the caller keeps `newest` below `S`: it is on the device).
pub(super) fn decode_attention(q: CubeTensor, keys: CubeTensor, values: CubeTensor, rows: CubeTensor, newest: CubeTensor) -> CubeTensor {
    let shape = q.meta.shape().clone();
    let (b, h, d) = (shape[0], shape[1], shape[3]);
    let slots = keys.meta.shape()[2];
    assert!(d <= 256, "decode attention kernel: head size {d} is over 256");
    assert_eq!(values.meta.shape()[2], slots, "decode attention kernel: keys and values differ in slots");
    assert_eq!(rows.dtype, newest.dtype, "decode attention kernel: rows and newest differ in integer type");
    assert!(
        rows.meta.shape()[0] == b && newest.meta.shape()[0] == b,
        "decode attention kernel: rows and newest need one entry per sequence"
    );
    let plane_size = q.client.properties().hardware.plane_size_max;
    assert_eq!(plane_size, PLANE, "decode attention kernel expects {PLANE}-lane planes, the device has {plane_size}");
    let (float, int) = (q.dtype, rows.dtype);
    let (client, device) = (q.client.clone(), q.device.clone());
    // The grid covers the whole cache (not just the filled slots) so it is the same every step.
    let chunks = slots.div_ceil(CHUNK as usize);
    let partial = empty_device_dtype(client.clone(), device.clone(), Shape::new([b, h, chunks, d]), DType::F32);
    let stats = empty_device_dtype(client.clone(), device.clone(), Shape::new([b, h, chunks, 2]), DType::F32);
    let output = empty_device_dtype(client.clone(), device, Shape::new([b, h, 1, d]), float);
    decode_attention_split_kernel::launch(
        &client,
        CubeCount::Static(h as u32, b as u32, chunks as u32),
        CubeDim::new_2d(PLANE, PLANES),
        q.into_tensor_arg(),
        keys.into_tensor_arg(),
        values.into_tensor_arg(),
        rows.into_tensor_arg(),
        newest.clone().into_tensor_arg(),
        partial.clone().into_tensor_arg(),
        stats.clone().into_tensor_arg(),
        1.0 / (d as f32).sqrt(),
        d as u32,
        [dtype_to_storage_type(float), dtype_to_storage_type(int)],
    );
    decode_attention_merge_kernel::launch(
        &client,
        CubeCount::Static(h as u32, b as u32, 1),
        CubeDim::new_1d(d as u32),
        partial.into_tensor_arg(),
        stats.into_tensor_arg(),
        newest.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        [dtype_to_storage_type(float), dtype_to_storage_type(int)],
    );
    output
}
