//! Launching the router kernel ([`super::router_kernel`]) on Burn's CubeCL tensors.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{DType, Shape};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::router_kernel::{PLANE, PLANES, router_logits_kernel, router_topk_kernel};

/// Expert ids `[M, top_k + shared]` (i32) and routing weights (f32) for `x` `[M, H]` and the
/// router weight `gate` `[E, H]` (f32); see [`crate::route`].
pub(super) fn route(
    x: CubeTensor,
    gate: CubeTensor,
    top_k: usize,
    shared: usize,
    renormalise: bool,
    scaling: f32,
) -> (CubeTensor, CubeTensor) {
    let [m, h] = [x.meta.shape()[0], x.meta.shape()[1]];
    let [e, gh] = [gate.meta.shape()[0], gate.meta.shape()[1]];
    assert_eq!(h, gh, "router kernel: tokens of width {h}, router weight of width {gh}");
    assert!(top_k >= 1 && top_k <= e, "router kernel: top-{top_k} of {e} experts");
    assert_eq!(gate.dtype, DType::F32, "router kernel: the router weight must be f32");
    let lanes = x.client.properties().hardware.plane_size_max;
    assert!(lanes == PLANE || lanes == 1, "router kernel expects {PLANE}-lane (or one-lane) planes, the device has {lanes}");
    let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
    let logits = empty_device_dtype(client.clone(), device.clone(), Shape::new([m, e]), DType::F32);
    let ids = empty_device_dtype(client.clone(), device.clone(), Shape::new([m, top_k + shared]), DType::I32);
    let weights = empty_device_dtype(client.clone(), device, Shape::new([m, top_k + shared]), DType::F32);
    router_logits_kernel::launch(
        &client,
        CubeCount::Static(e.div_ceil(PLANES as usize) as u32, m as u32, 1),
        CubeDim::new_2d(lanes, PLANES),
        x.into_tensor_arg(),
        gate.into_tensor_arg(),
        logits.clone().into_tensor_arg(),
        h as u32,
        lanes,
        dtype_to_storage_type(dtype),
    );
    router_topk_kernel::launch(
        &client,
        CubeCount::Static(m as u32, 1, 1),
        CubeDim::new_1d(lanes),
        logits.into_tensor_arg(),
        ids.clone().into_tensor_arg(),
        weights.clone().into_tensor_arg(),
        scaling,
        e as u32,
        top_k as u32,
        shared as u32,
        renormalise,
        lanes,
        dtype_to_storage_type(DType::I32),
    );
    (ids, weights)
}
