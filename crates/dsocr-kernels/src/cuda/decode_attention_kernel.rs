//! Decode attention as one CubeCL kernel: one cube per (head, sequence), one plane (warp) of 32
//! lanes per group of keys.
//!
//! Each lane holds `d / 32` query elements. A plane walks its share of the live keys one at a
//! time: the lanes' partial dot products are summed across the plane, and an online softmax
//! (running maximum, running sum, rescaled accumulator) folds the key's value row into the lanes'
//! accumulators. The planes' partial results are then merged through shared memory. All
//! arithmetic is in f32 whatever the storage type; `filled` is a run-time scalar, so one compiled
//! kernel serves every step of a request.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// Planes per cube: each takes every `PLANES`-th key.
const PLANES: u32 = 4;
/// Lanes per plane the kernel is written for (NVIDIA warps).
const PLANE: u32 = 32;

#[cube(launch)]
fn decode_attention_kernel<F: Float, I: Numeric>(
    q: &Tensor<F>,
    keys: &Tensor<F>,
    values: &Tensor<F>,
    pads: &Tensor<I>,
    output: &mut Tensor<F>,
    filled: u32,
    scale: f32,
    #[comptime] per_lane: u32,
    #[comptime] planes: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let h = CUBE_POS_X as usize;
    let b = CUBE_POS_Y as usize;
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let n_lane = per_lane as usize;
    let n_plane = planes as usize;
    let d = n_lane * 32;
    let pad = u32::cast_from(pads[b * pads.stride(0)]) as usize;
    let len = filled as usize;

    let q_base = b * q.stride(0) + h * q.stride(1);
    let k_base = b * keys.stride(0) + h * keys.stride(1);
    let v_base = b * values.stride(0) + h * values.stride(1);
    let (k_slot, k_elem) = (keys.stride(2), keys.stride(3));
    let (v_slot, v_elem) = (values.stride(2), values.stride(3));

    let mut qv = Array::<f32>::new(n_lane);
    let mut acc = Array::<f32>::new(n_lane);
    #[unroll]
    for i in 0..n_lane {
        qv[i] = f32::cast_from(q[q_base + (lane + 32 * i) * q.stride(3)]) * scale;
        acc[i] = f32::new(0.0);
    }
    let mut run_max = f32::new(-1.0e30);
    let mut run_sum = f32::new(0.0);

    let mut j = pad + plane;
    while j < len {
        let mut partial = f32::new(0.0);
        #[unroll]
        for i in 0..n_lane {
            partial += qv[i] * f32::cast_from(keys[k_base + j * k_slot + (lane + 32 * i) * k_elem]);
        }
        let score = plane_sum(partial);
        let new_max = f32::max(run_max, score);
        let rescale = f32::exp(run_max - new_max);
        let weight = f32::exp(score - new_max);
        run_sum = run_sum * rescale + weight;
        #[unroll]
        for i in 0..n_lane {
            acc[i] = acc[i] * rescale + weight * f32::cast_from(values[v_base + j * v_slot + (lane + 32 * i) * v_elem]);
        }
        run_max = new_max;
        j += n_plane;
    }

    // Merge the planes: [max, sum] per plane, then the accumulators.
    let mut stats = Shared::<[f32]>::new_slice(2 * n_plane);
    let mut partials = Shared::<[f32]>::new_slice(n_plane * d);
    if lane == 0 {
        stats[plane] = run_max;
        stats[n_plane + plane] = run_sum;
    }
    #[unroll]
    for i in 0..n_lane {
        partials[plane * d + lane + 32 * i] = acc[i];
    }
    sync_cube();
    if plane == 0 {
        let mut top = f32::new(-1.0e30);
        for p in 0..n_plane {
            top = f32::max(top, stats[p]);
        }
        let mut total = f32::new(0.0);
        for p in 0..n_plane {
            total += stats[n_plane + p] * f32::exp(stats[p] - top);
        }
        let out_base = b * output.stride(0) + h * output.stride(1);
        let out_elem = output.stride(3);
        #[unroll]
        for i in 0..n_lane {
            let e = lane + 32 * i;
            let mut sum = f32::new(0.0);
            for p in 0..n_plane {
                sum += partials[p * d + e] * f32::exp(stats[p] - top);
            }
            output[out_base + e * out_elem] = F::cast_from(sum / total);
        }
    }
}

/// Launch on the tensors of one decode step; see [`crate::decode_attention`] for the layout.
pub(super) fn launch(q: CubeTensor, keys: CubeTensor, values: CubeTensor, pads: CubeTensor, filled: usize) -> CubeTensor {
    let shape = q.meta.shape().clone();
    let (b, h, d) = (shape[0], shape[1], shape[3]);
    assert!(d % 32 == 0 && d <= 256, "decode attention kernel: head size {d} is not a multiple of 32 up to 256");
    assert!(keys.meta.shape()[2] >= filled && values.meta.shape()[2] >= filled, "decode attention kernel: fewer slots than {filled}");
    let plane_size = q.client.properties().hardware.plane_size_max;
    assert_eq!(plane_size, PLANE, "decode attention kernel expects {PLANE}-lane planes, the device has {plane_size}");
    let (float, int) = (q.dtype, pads.dtype);
    let output = empty_device_dtype(q.client.clone(), q.device.clone(), Shape::new([b, h, 1, d]), float);
    let scale = 1.0 / (d as f32).sqrt();
    let client = q.client.clone();
    decode_attention_kernel::launch(
        &client,
        CubeCount::Static(h as u32, b as u32, 1),
        CubeDim::new_2d(PLANE, PLANES),
        q.into_tensor_arg(),
        keys.into_tensor_arg(),
        values.into_tensor_arg(),
        pads.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        filled as u32,
        scale,
        (d / 32) as u32,
        PLANES,
        [dtype_to_storage_type(float), dtype_to_storage_type(int)],
    );
    output
}
