//! In-place updates of small integer tensors: the decode loop's state (the next input tokens,
//! the KV cache's slot counter) lives in fixed device buffers so that a captured CUDA graph,
//! which replays against the addresses it recorded, reads each step's new values.

use burn::prelude::*;

/// `dst` `[N]` overwritten with `src` `[N]` (converted to `dst`'s integer type). On a CubeCL
/// device the write lands in `dst`'s own buffer when nothing else holds it; elsewhere (and if it
/// is shared) the result is a new tensor, which is equivalent for everything but graph replay.
pub fn overwrite_ints(dst: Tensor<1, Int>, src: Tensor<1, Int>) -> Tensor<1, Int> {
    assert_eq!(dst.dims(), src.dims(), "overwrite_ints: shapes differ");
    #[cfg(feature = "cuda")]
    if crate::runs_cube_kernels(&dst.device()) {
        return crate::cuda::overwrite_ints(dst, src);
    }
    overwrite_ints_reference(dst, src)
}

/// The Burn definition of [`overwrite_ints`].
pub fn overwrite_ints_reference(dst: Tensor<1, Int>, src: Tensor<1, Int>) -> Tensor<1, Int> {
    src.cast(dst.dtype())
}

/// `dst` `[N]` with `by` added to each element, in place as [`overwrite_ints`].
pub fn increment_ints(dst: Tensor<1, Int>, by: i32) -> Tensor<1, Int> {
    #[cfg(feature = "cuda")]
    if crate::runs_cube_kernels(&dst.device()) {
        return crate::cuda::increment_ints(dst, by);
    }
    increment_ints_reference(dst, by)
}

/// The Burn definition of [`increment_ints`].
pub fn increment_ints_reference(dst: Tensor<1, Int>, by: i32) -> Tensor<1, Int> {
    dst.add_scalar(by)
}

/// The values of an integer tensor on the host (waits for the device): for the Burn references,
/// which need the device-side slot numbers as host indices.
pub(crate) fn host_ints(t: &Tensor<1, Int>) -> Vec<i64> {
    t.clone().into_data().convert::<i64>().try_to_vec::<i64>().expect("an integer tensor converts to i64")
}

/// The rows of an integer table `[B, M]` read to the host.
pub(crate) fn host_table(t: &Tensor<2, Int>) -> Vec<Vec<i64>> {
    let [_, m] = t.dims();
    let flat = t.clone().into_data().convert::<i64>().try_to_vec::<i64>().expect("an integer tensor converts to i64");
    flat.chunks(m.max(1)).map(<[i64]>::to_vec).collect()
}
