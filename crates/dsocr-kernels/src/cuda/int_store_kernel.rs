//! Two tiny kernels that update small integer tensors where they lie: the decode loop's state
//! (the next input tokens, the cache's slot counter) has to stay in the same device buffers from
//! step to step so that a captured CUDA graph, which replays against fixed addresses, sees each
//! new value. This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

/// `dst[i] = src[i]` (converted), one unit per element.
#[cube(launch)]
pub(super) fn overwrite_ints_kernel<I: Numeric, J: Numeric>(dst: &mut Tensor<I>, src: &Tensor<J>, #[define(I, J)] _dtypes: [ElemType; 2]) {
    let i = ABSOLUTE_POS;
    if i < dst.shape(0) {
        let at = i * dst.stride(0);
        dst[at] = I::cast_from(src[i * src.stride(0)]);
    }
}

/// `dst[i] += by`, one unit per element.
#[cube(launch)]
pub(super) fn increment_ints_kernel<I: Numeric>(dst: &mut Tensor<I>, by: i32, #[define(I)] _dtype: ElemType) {
    let i = ABSOLUTE_POS;
    if i < dst.shape(0) {
        let at = i * dst.stride(0);
        dst[at] += I::cast_from(by);
    }
}
