//! Launching the argmax kernel ([`super::argmax_kernel`]) on Burn's CubeCL tensors.

use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::argmax_kernel::{PLANE, PLANES, argmax_rows_kernel};

/// `(tokens, next)`: each row's argmax of `logits` `[B, V]` written into `tokens` `[B]` (in place
/// when nothing else holds it, as the decode loop's input buffer must be) and into a new `next`.
pub(super) fn argmax_into(logits: CubeTensor, tokens: CubeTensor) -> (CubeTensor, CubeTensor) {
    let [b, v] = [logits.meta.shape()[0], logits.meta.shape()[1]];
    assert_eq!(tokens.meta.shape()[0], b, "argmax kernel: {} token slots for {b} rows", tokens.meta.shape()[0]);
    assert!(v >= 1 && v < u32::MAX as usize, "argmax kernel: rows of {v} logits");
    let lanes = logits.client.properties().hardware.plane_size_max;
    assert!(lanes == PLANE || lanes == 1, "argmax kernel expects {PLANE}-lane (or one-lane) planes, the device has {lanes}");
    let planes = if lanes == PLANE { PLANES } else { 1 };
    let tokens = if tokens.can_mut() && tokens.is_nonoverlapping() { tokens } else { tokens.copy() };
    let next = empty_device_dtype(tokens.client.clone(), tokens.device.clone(), tokens.meta.shape().clone(), tokens.dtype);
    let (client, types) = (logits.client.clone(), [dtype_to_storage_type(logits.dtype), dtype_to_storage_type(tokens.dtype)]);
    argmax_rows_kernel::launch(
        &client,
        CubeCount::Static(b as u32, 1, 1),
        CubeDim::new_2d(lanes, planes),
        logits.into_tensor_arg(),
        tokens.clone().into_tensor_arg(),
        next.clone().into_tensor_arg(),
        lanes,
        planes,
        types,
    );
    (tokens, next)
}
