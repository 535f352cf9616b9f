//! Launching the decode-attention kernels ([`super::decode_attention_kernel`]) on Burn's CubeCL
//! tensors: the chunk grid, the f32 scratch for the chunks' partial results, the merge.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::decode_attention_kernel::{
    CHUNK, PLANE, PLANES, decode_attention_merge_kernel, decode_attention_split_kernel, decode_attention_split_vec_kernel,
};

// A chunk of keys must lie in one block of the pool.
const _: () = assert!(crate::KV_BLOCK.is_multiple_of(CHUNK as usize));

/// Attention of `q` `[B, H, 1, d]` over slots `0..=newest[b]` of the blocks `tables[b, ..]` of `keys`/`values`
/// `[blocks, H, L, d]` (the caller keeps `newest` below the tables' `blocks × L` slots: it is on the device).
pub(super) fn decode_attention(q: CubeTensor, keys: CubeTensor, values: CubeTensor, tables: CubeTensor, newest: CubeTensor) -> CubeTensor {
    let shape = q.meta.shape().clone();
    let (b, h, d) = (shape[0], shape[1], shape[3]);
    let block_len = keys.meta.shape()[2];
    assert!(d <= 256, "decode attention kernel: head size {d} is over 256");
    assert_eq!(values.meta.shape()[2], block_len, "decode attention kernel: keys and values differ in block length");
    assert!(
        block_len.is_multiple_of(CHUNK as usize),
        "decode attention kernel: blocks of {block_len} slots are not whole chunks of {CHUNK}"
    );
    assert_eq!(tables.dtype, newest.dtype, "decode attention kernel: block tables and newest differ in integer type");
    assert!(
        tables.meta.shape().num_dims() == 2 && tables.meta.shape()[0] == b && newest.meta.shape()[0] == b,
        "decode attention kernel: block tables [B, blocks] and newest [B] need one entry per sequence"
    );
    // 32-lane planes on NVIDIA GPUs; one-lane planes on CubeCL's CPU runtime (where the scalar
    // kernel is tested without a GPU).
    let lanes = q.client.properties().hardware.plane_size_max;
    assert!(lanes == PLANE || lanes == 1, "decode attention kernel expects {PLANE}-lane (or one-lane) planes, the device has {lanes}");
    let (float, int) = (q.dtype, tables.dtype);
    let (client, device) = (q.client.clone(), q.device.clone());
    // The grid covers the whole cache (not just the filled slots) so it is the same every step.
    let chunks = tables.meta.shape()[1] * block_len / CHUNK as usize;
    let partial = empty_device_dtype(client.clone(), device.clone(), Shape::new([b, h, chunks, d]), DType::F32);
    let stats = empty_device_dtype(client.clone(), device.clone(), Shape::new([b, h, chunks, 2]), DType::F32);
    let output = empty_device_dtype(client.clone(), device, Shape::new([b, h, 1, d]), float);
    let count = CubeCount::Static(h as u32, b as u32, chunks as u32);
    let planes = if lanes == PLANE { PLANES } else { 1 };
    let dim = CubeDim::new_2d(lanes, planes);
    let dtypes = [dtype_to_storage_type(float), dtype_to_storage_type(int)];
    let scale = 1.0 / (d as f32).sqrt();
    match row_vector(&keys, &values, d).filter(|_| lanes == PLANE) {
        Some(vec) => decode_attention_split_vec_kernel::launch(
            &client,
            count,
            dim,
            vec,
            q.into_tensor_arg(),
            keys.into_tensor_arg(),
            values.into_tensor_arg(),
            tables.into_tensor_arg(),
            newest.clone().into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            stats.clone().into_tensor_arg(),
            scale,
            d as u32,
            dtypes,
        ),
        None => decode_attention_split_kernel::launch(
            &client,
            count,
            dim,
            q.into_tensor_arg(),
            keys.into_tensor_arg(),
            values.into_tensor_arg(),
            tables.into_tensor_arg(),
            newest.clone().into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            stats.clone().into_tensor_arg(),
            scale,
            d as u32,
            lanes,
            planes,
            dtypes,
        ),
    }
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

/// The vector size of the vectorised split kernel when the pool's rows suit it: `d` = 32 · N
/// elements (one vector per lane, N a load of at most 16 bytes), unit-stride head elements and the
/// other strides whole vectors; `None` for the scalar kernel.
fn row_vector(keys: &CubeTensor, values: &CubeTensor, d: usize) -> Option<usize> {
    let vec = d / PLANE as usize;
    let fits = |t: &CubeTensor| {
        let strides = t.meta.strides();
        !t.meta.is_tiled() && strides[3] == 1 && strides[..3].iter().all(|s| s % vec == 0)
    };
    let sizes_fit = d.is_multiple_of(PLANE as usize) && matches!(vec, 1 | 2 | 4 | 8) && vec * keys.dtype.size() <= 16;
    (sizes_fit && fits(keys) && fits(values)).then_some(vec)
}
