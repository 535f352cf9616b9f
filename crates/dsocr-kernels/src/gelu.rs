//! SAM's MLP activation, the exact (erf) GELU, on the CPU on every core.
//!
//! Burn defines it as `x · (1 + erf(x / √2)) / 2` in five passes over the tensor, and
//! burn-ndarray computes the `erf` pass element by element on one thread (`mapv` over libm's
//! `erf` in f64): with the vision encoder's GEMMs on both cores, that pass left one core idle for
//! ≈ 3 % of a page's CPU vision time (docs/perf.md, session 18). Here it runs once per element, in
//! chunks on every core, with a vectorised `erf` (crate::host_math: within 1e-6 of Burn's f64
//! `erf`; libm's scalar `erf` was still ≈ 8 % of the vision pass's samples, session 20).

use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// Elements per task.
const CHUNK: usize = 1 << 14;

/// `x · (1 + erf(x / √2)) / 2` (Burn's `gelu`); on the CPU in f32 with dsocr's kernels on, in
/// parallel chunks (the module docs say why); otherwise Burn's.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if crate::host_kernels_enabled(&x.device(), x.dtype()) {
        return host_gelu(x);
    }
    burn::tensor::activation::gelu(x)
}

fn host_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let (dims, device) = (x.dims(), x.device());
    // The output of a linear: a buffer of its own, taken without a copy.
    let mut values = x.into_data().try_into_vec::<f32>().expect("f32 values");
    values.par_chunks_mut(CHUNK).for_each(crate::host_math::gelu_in_place);
    Tensor::from_data(TensorData::new(values, dims), (&device, DType::F32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn the_host_gelu_matches_burns() {
        let device = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        // Several chunks and a partial one; values from the far tails to zero.
        let x = Tensor::<3>::random([3, 37, 1000], Distribution::Normal(0.0, 4.0), (&device, DType::F32));
        let got = host_gelu(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let want = burn::tensor::activation::gelu(x).into_data().try_into_vec::<f32>().unwrap();
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "largest relative difference {worst}");
    }
}
