//! The CubeCL side: a Burn backend extension whose operations launch dsocr's kernels on a CubeCL
//! device (with the fusion layer in front, as Burn's CUDA backend has it).

mod decode_attention_kernel;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn_cubecl::CubeBackend;

/// dsocr's kernels as backend operations.
#[backend_extension(Cube, Fusion)]
pub trait DsocrKernels: Backend {
    /// See [`crate::decode_attention`].
    #[fusion(dtype = q, shape = q)]
    fn decode_attention(
        q: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        pads: IntTensor<Self>,
        filled: usize,
    ) -> FloatTensor<Self>;
}

impl DsocrKernels for CubeBackend {
    fn decode_attention(
        q: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        pads: IntTensor<Self>,
        filled: usize,
    ) -> FloatTensor<Self> {
        decode_attention_kernel::launch(q, keys, values, pads, filled)
    }
}

/// Whether the kernel handles `q`'s head size (a multiple of 32 up to 256).
pub(crate) fn decode_attention_supported(q: &Tensor<4>) -> bool {
    let d = q.dims()[3];
    d % 32 == 0 && d <= 256
}

/// [`crate::decode_attention`] through the kernel.
pub(crate) fn decode_attention(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, pads: Tensor<1, Int>, filled: usize) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::decode_attention(
        q.into_dispatch(),
        keys.into_dispatch(),
        values.into_dispatch(),
        pads.into_dispatch(),
        filled,
    ))
}
