//! LayerNorm over rows as one CubeCL kernel: one plane (warp) per row, [`PLANES`] rows per cube.
//!
//! Burn's LayerNorm (mean, centre, variance, divide, scale, shift) reaches the CUDA backend as a
//! fused reduction launched on 16 cubes whatever the row count: 210 µs for SAM's 4096 × 768 rows,
//! twice per block, ≈10 ms of a Gundam page's vision pass (docs/perf.md). Here each lane holds
//! `width / 32` of its row in f32 registers, the mean and the (biased) variance of the centred
//! values meet through plane sums, and the output `(x − mean) · rsqrt(var + eps) · weight + bias`
//! is rounded once to the storage type.

use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// Rows (planes) per cube.
const PLANES: u32 = 8;
/// Lanes per plane (NVIDIA warps).
const PLANE: u32 = 32;
/// The widest row the kernel takes (its registers hold the row).
pub(super) const MAX_WIDTH: usize = 2048;

#[cube(launch)]
fn layer_norm_kernel<F: Float>(
    x: &Tensor<F>,
    weight: &Tensor<F>,
    bias: &Tensor<F>,
    out: &mut Tensor<F>,
    eps: f32,
    #[comptime] per_lane: u32,
    #[define(F)] _dtype: ElemType,
) {
    let row = CUBE_POS_X as usize * PLANES as usize + UNIT_POS_Y as usize;
    let lane = UNIT_POS_X as usize;
    // The whole plane shares `row`, so the plane sums below run in uniform control flow.
    if row < x.shape(0) {
        let width = f32::cast_from(per_lane * PLANE);
        let (xr, x_elem) = (row * x.stride(0), x.stride(1));
        let mut values = Array::<f32>::new(per_lane as usize);
        let mut sum = f32::new(0.0);
        #[unroll]
        for e in 0..per_lane as usize {
            let v = f32::cast_from(x[xr + (lane + e * PLANE as usize) * x_elem]);
            values[e] = v;
            sum += v;
        }
        let mean = plane_sum(sum) / width;
        let mut squares = f32::new(0.0);
        #[unroll]
        for e in 0..per_lane as usize {
            let centred = values[e] - mean;
            values[e] = centred;
            squares += centred * centred;
        }
        let inv = f32::recip(f32::sqrt(plane_sum(squares) / width + eps));
        let (or, o_elem) = (row * out.stride(0), out.stride(1));
        #[unroll]
        for e in 0..per_lane as usize {
            let c = lane + e * PLANE as usize;
            let scaled = values[e] * inv * f32::cast_from(weight[c * weight.stride(0)]);
            out[or + c * o_elem] = F::cast_from(scaled + f32::cast_from(bias[c * bias.stride(0)]));
        }
    }
}

/// LayerNorm of `x` `[rows, width]` (`width` a multiple of 32, at most [`MAX_WIDTH`]) with
/// `weight`/`bias` `[width]`.
pub(super) fn layer_norm(x: CubeTensor, weight: CubeTensor, bias: CubeTensor, eps: f32) -> CubeTensor {
    let shape = x.meta.shape().clone();
    let (rows, width) = (shape[0], shape[1]);
    assert!(width.is_multiple_of(PLANE as usize) && width <= MAX_WIDTH, "LayerNorm kernel: width {width}");
    let plane_size = x.client.properties().hardware.plane_size_max;
    assert_eq!(plane_size, PLANE, "LayerNorm kernel expects {PLANE}-lane planes, the device has {plane_size}");
    let (client, dtype) = (x.client.clone(), x.dtype);
    let out = empty_device_dtype(client.clone(), x.device.clone(), shape, dtype);
    layer_norm_kernel::launch(
        &client,
        CubeCount::Static(rows.div_ceil(PLANES as usize) as u32, 1, 1),
        CubeDim::new_2d(PLANE, PLANES),
        x.into_tensor_arg(),
        weight.into_tensor_arg(),
        bias.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        eps,
        (width / PLANE as usize) as u32,
        dtype_to_storage_type(dtype),
    );
    out
}
