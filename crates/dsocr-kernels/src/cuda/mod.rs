//! The CubeCL side: a Burn backend extension whose operations launch dsocr's kernels on a CubeCL
//! device (with the fusion layer in front, as Burn's CUDA backend has it).

mod decode_attention_kernel;
mod decode_attention_launch;
mod int_store_kernel;
mod int_store_launch;
mod norm_kernel;
mod rope_kernel;
mod rope_launch;
mod router_kernel;
mod router_launch;
mod skinny_kernels;
mod skinny_launch;

use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, Shape};
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
        newest: IntTensor<Self>,
    ) -> FloatTensor<Self>;

    /// See [`crate::linear`].
    #[fusion(dtype = x, shape = Shape::new([x[0], weight[1]]))]
    fn skinny_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::swiglu`]; `gate`/`up` `[K, N]`.
    #[fusion(dtype = x, shape = Shape::new([x[0], gate[1]]))]
    fn swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::expert_swiglu`].
    #[fusion(dtype = x, shape = Shape::new([ids[0] * ids[1], gate[2]]))]
    fn expert_swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::add_rms_norm`].
    #[fusion(meta = |x, _delta, _weight, _eps| (x.clone(), x.clone()))]
    fn add_rms_norm(
        x: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// See [`crate::expert_down`].
    #[fusion(dtype = act, shape = Shape::new([ids[0], down[2]]))]
    fn expert_down(act: FloatTensor<Self>, down: FloatTensor<Self>, ids: IntTensor<Self>, weights: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::rope_qkv_cached`].
    #[fusion(meta = |qkv, cos, _sin, pads, _start, heads, keys, values| {
        let (b, d) = (pads.shape[0], cos.shape[1]);
        let q = TensorSpec::new(Shape::new([b, *heads, qkv.shape[0] / b, d]), qkv.dtype);
        (q, keys.clone(), values.clone())
    })]
    #[allow(clippy::too_many_arguments)]
    fn rope_qkv_cached(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        pads: IntTensor<Self>,
        start: IntTensor<Self>,
        heads: usize,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// See [`crate::overwrite_ints`].
    #[fusion(dtype = dst, shape = dst)]
    fn overwrite_ints(dst: IntTensor<Self>, src: IntTensor<Self>) -> IntTensor<Self>;

    /// See [`crate::increment_ints`].
    #[fusion(dtype = dst, shape = dst)]
    fn increment_ints(dst: IntTensor<Self>, by: i32) -> IntTensor<Self>;

    /// See [`crate::route`].
    #[fusion(meta = |x, _gate, top_k, shared, _renormalise, _scaling| {
        let shape = Shape::new([x.shape[0], *top_k + *shared]);
        (TensorSpec::new(shape.clone(), DType::I32), TensorSpec::new(shape, DType::F32))
    })]
    fn route(
        x: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        top_k: usize,
        shared: usize,
        renormalise: bool,
        scaling: f32,
    ) -> (IntTensor<Self>, FloatTensor<Self>);
}

impl DsocrKernels for CubeBackend {
    fn decode_attention(
        q: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        pads: IntTensor<Self>,
        newest: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        decode_attention_launch::decode_attention(q, keys, values, pads, newest)
    }

    fn skinny_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        skinny_launch::skinny_linear(x, weight)
    }

    fn swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        skinny_launch::swiglu(x, gate, up, None)
    }

    fn expert_swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self> {
        skinny_launch::swiglu(x, gate, up, Some(ids))
    }

    fn add_rms_norm(
        x: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        norm_kernel::add_rms_norm(x, delta, weight, eps)
    }

    fn expert_down(act: FloatTensor<Self>, down: FloatTensor<Self>, ids: IntTensor<Self>, weights: FloatTensor<Self>) -> FloatTensor<Self> {
        skinny_launch::expert_down(act, down, ids, weights)
    }

    fn rope_qkv_cached(
        qkv: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        pads: IntTensor<Self>,
        start: IntTensor<Self>,
        heads: usize,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        rope_launch::rope_qkv_cached(qkv, cos, sin, pads, start, heads, keys, values)
    }

    fn overwrite_ints(dst: IntTensor<Self>, src: IntTensor<Self>) -> IntTensor<Self> {
        int_store_launch::overwrite_ints(dst, src)
    }

    fn increment_ints(dst: IntTensor<Self>, by: i32) -> IntTensor<Self> {
        int_store_launch::increment_ints(dst, by)
    }

    fn route(
        x: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        top_k: usize,
        shared: usize,
        renormalise: bool,
        scaling: f32,
    ) -> (IntTensor<Self>, FloatTensor<Self>) {
        router_launch::route(x, gate, top_k, shared, renormalise, scaling)
    }
}

/// Whether the kernel handles `q`'s head size (up to 256).
pub(crate) fn decode_attention_supported(q: &Tensor<4>) -> bool {
    q.dims()[3] <= 256
}

/// [`crate::decode_attention`] through the kernel.
pub(crate) fn decode_attention(
    q: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    pads: Tensor<1, Int>,
    newest: Tensor<1, Int>,
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::decode_attention(
        q.into_dispatch(),
        keys.into_dispatch(),
        values.into_dispatch(),
        pads.into_dispatch(),
        newest.into_dispatch(),
    ))
}

/// Whether the skinny kernels take weights of `dtype` whose rows hold `columns` outputs: a float
/// type and whole 16-byte vectors per row.
pub(crate) fn skinny_supported(dtype: DType, columns: usize) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16) && columns.is_multiple_of(skinny_launch::vector_width(dtype))
}

/// [`crate::linear`] through the kernel.
pub(crate) fn skinny_linear(x: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::skinny_linear(x.into_dispatch(), weight.into_dispatch()))
}

/// [`crate::swiglu`] through the kernel.
pub(crate) fn swiglu(x: Tensor<2>, gate: Tensor<2>, up: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::swiglu(x.into_dispatch(), gate.into_dispatch(), up.into_dispatch()))
}

/// [`crate::expert_swiglu`] through the kernel.
pub(crate) fn expert_swiglu(x: Tensor<2>, gate: Tensor<3>, up: Tensor<3>, ids: Tensor<2, Int>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::expert_swiglu(x.into_dispatch(), gate.into_dispatch(), up.into_dispatch(), ids.into_dispatch()))
}

/// [`crate::expert_down`] through the kernel.
pub(crate) fn expert_down(act: Tensor<2>, down: Tensor<3>, ids: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::expert_down(act.into_dispatch(), down.into_dispatch(), ids.into_dispatch(), weights.into_dispatch()))
}

/// [`crate::add_rms_norm`] through the kernel.
pub(crate) fn add_rms_norm(x: Tensor<2>, delta: Tensor<2>, weight: Tensor<1>, eps: f32) -> (Tensor<2>, Tensor<2>) {
    let (sum, out) = Dispatch::add_rms_norm(x.into_dispatch(), delta.into_dispatch(), weight.into_dispatch(), eps);
    (Tensor::from_dispatch(sum), Tensor::from_dispatch(out))
}

/// [`crate::rope_qkv_cached`] through the kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rope_qkv_cached(
    qkv: Tensor<2>,
    cos: Tensor<2>,
    sin: Tensor<2>,
    pads: Tensor<1, Int>,
    start: Tensor<1, Int>,
    heads: usize,
    keys: Tensor<4>,
    values: Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let (q, k, v) = Dispatch::rope_qkv_cached(
        qkv.into_dispatch(),
        cos.into_dispatch(),
        sin.into_dispatch(),
        pads.into_dispatch(),
        start.into_dispatch(),
        heads,
        keys.into_dispatch(),
        values.into_dispatch(),
    );
    (Tensor::from_dispatch(q), Tensor::from_dispatch(k), Tensor::from_dispatch(v))
}

/// [`crate::overwrite_ints`] through the kernel.
pub(crate) fn overwrite_ints(dst: Tensor<1, Int>, src: Tensor<1, Int>) -> Tensor<1, Int> {
    Tensor::from_dispatch(Dispatch::overwrite_ints(dst.into_dispatch(), src.into_dispatch()))
}

/// [`crate::increment_ints`] through the kernel.
pub(crate) fn increment_ints(dst: Tensor<1, Int>, by: i32) -> Tensor<1, Int> {
    Tensor::from_dispatch(Dispatch::increment_ints(dst.into_dispatch(), by))
}

/// [`crate::route`] through the kernel.
pub(crate) fn route(x: Tensor<2>, gate: Tensor<2>, config: crate::RouterConfig) -> (Tensor<2, Int>, Tensor<2>) {
    let (ids, weights) =
        Dispatch::route(x.into_dispatch(), gate.into_dispatch(), config.top_k, config.shared, config.renormalise, config.scaling as f32);
    (Tensor::from_dispatch(ids), Tensor::from_dispatch(weights))
}
