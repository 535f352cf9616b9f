//! Residual add + RMSNorm as one CubeCL kernel: one cube per row, 32 planes of 32 lanes (a
//! decode step has one row per sequence: the more units, the fewer dependent loads each waits on).
//!
//! Each unit walks its share of the row computing `h = x + delta` in the storage type (as the
//! reference adds), writes `h`, and sums `h²` in f32; the sums meet through a plane reduction and
//! shared memory. A second walk writes `round(h · rsqrt(mean + eps)) · weight`, rounding where
//! the reference does (to the storage type before the weight is applied).
//!
//! `delta` may arrive as parts (see [`crate::PartialSums`]): the f32 partial products of a
//! linear layer split over `K`, or the experts' per-slot products with their routing weights.
//! The kernel sums them as the separate summing kernels would (f32, in order, rounded to the
//! storage type), which saves their launch.

use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::lanes::lanes_sum;

use super::parts_kernel::{PartsArgs, part_sum};

/// Planes per cube on NVIDIA GPUs. On CubeCL's CPU runtime (one-lane planes) a cube is one unit: its cube barrier spins
/// one thread per unit, far slower than the work once units outnumber cores.
const PLANES: u32 = 32;
/// Lanes per plane of NVIDIA GPUs (warps). The kernel takes the device's lane count (`lanes`: 32
/// there, 1 on CubeCL's CPU runtime, where it is tested without a GPU).
const PLANE: u32 = 32;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn add_rms_norm_kernel<F: Float, P: Float, C: Float>(
    x: &Tensor<F>,
    parts: &Tensor<P>,
    coef: &Tensor<C>,
    weight: &Tensor<F>,
    sum: &mut Tensor<F>,
    out: &mut Tensor<F>,
    eps: f32,
    #[comptime] count: u32,
    #[comptime] weighted: bool,
    #[comptime] lanes: u32,
    #[comptime] planes: u32,
    #[define(F, P, C)] _dtypes: [ElemType; 3],
) {
    let row = CUBE_POS_X as usize;
    let units = (lanes * planes) as usize;
    let unit = UNIT_POS_Y as usize * lanes as usize + UNIT_POS_X as usize;
    let width = x.shape(1);
    let xr = row * x.stride(0);
    let (sr, or) = (row * sum.stride(0), row * out.stride(0));
    let (s_elem, o_elem) = (sum.stride(1), out.stride(1));

    let mut squares = f32::new(0.0);
    let mut i = unit;
    while i < width {
        let delta = F::cast_from(part_sum::<P, C>(parts, coef, row, i, x.shape(0), count, weighted));
        let h = x[xr + i * x.stride(1)] + delta;
        sum[sr + i * s_elem] = h;
        let hf = f32::cast_from(h);
        squares += hf * hf;
        i += units;
    }
    let mut partial = Shared::<[f32]>::new_slice(planes as usize);
    let plane_total = lanes_sum::<f32>(squares, lanes);
    if UNIT_POS_X == 0 {
        partial[UNIT_POS_Y as usize] = plane_total;
    }
    sync_cube();
    let mut total = f32::new(0.0);
    #[unroll]
    for p in 0..planes as usize {
        total += partial[p];
    }
    let scale = f32::recip(f32::sqrt(total / f32::cast_from(width as u32) + eps));

    // Each unit reads back the sums it wrote itself.
    let mut j = unit;
    while j < width {
        let h = f32::cast_from(sum[sr + j * s_elem]);
        let normed = f32::cast_from(F::cast_from(h * scale));
        out[or + j * o_elem] = F::cast_from(normed * f32::cast_from(weight[j * weight.stride(0)]));
        j += units;
    }
}

/// `(x + delta, RMSNorm(x + delta) · weight)` for `[M, H]` rows, `delta` given as parts.
pub(super) fn add_rms_norm(x: CubeTensor, delta: PartsArgs, weight: CubeTensor, eps: f32) -> (CubeTensor, CubeTensor) {
    let shape = x.meta.shape().clone();
    let rows = shape[0];
    let lanes = x.client.properties().hardware.plane_size_max;
    assert!(lanes == PLANE || lanes == 1, "RMSNorm kernel expects {PLANE}-lane (or one-lane) planes, the device has {lanes}");
    let planes = if lanes == PLANE { PLANES } else { 1 };
    delta.check(rows, shape[1], "RMSNorm kernel");
    let sum = empty_device_dtype(x.client.clone(), x.device.clone(), shape.clone(), x.dtype);
    let out = empty_device_dtype(x.client.clone(), x.device.clone(), shape, x.dtype);
    let (client, dtype) = (x.client.clone(), x.dtype);
    let types = [dtype_to_storage_type(dtype), dtype_to_storage_type(delta.parts.dtype), dtype_to_storage_type(delta.coef.dtype)];
    add_rms_norm_kernel::launch(
        &client,
        CubeCount::Static(rows as u32, 1, 1),
        CubeDim::new_2d(lanes, planes),
        x.into_tensor_arg(),
        delta.parts.into_tensor_arg(),
        delta.coef.into_tensor_arg(),
        weight.into_tensor_arg(),
        sum.clone().into_tensor_arg(),
        out.clone().into_tensor_arg(),
        eps,
        delta.count as u32,
        delta.weighted,
        lanes,
        planes,
        types,
    );
    (sum, out)
}
