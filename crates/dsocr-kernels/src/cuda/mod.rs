//! The CubeCL side: a Burn backend extension whose operations launch dsocr's kernels on a CubeCL
//! device (with the fusion layer in front, as Burn's CUDA backend has it).

mod argmax_kernel;
mod argmax_launch;
mod decode_attention_kernel;
mod decode_attention_launch;
mod encoder_attention_kernel;
mod encoder_attention_launch;
mod grouped_kernels;
mod grouped_launch;
mod int_store_kernel;
mod int_store_launch;
mod lanes;
mod layer_norm_kernel;
mod norm_kernel;
mod parts_kernel;
mod rel_pos_kernel;
mod rel_pos_launch;
mod rope_kernel;
mod rope_launch;
mod router_kernel;
mod router_launch;
mod skinny_kernels;
mod skinny_launch;
mod tile_kernel;
mod tile_launch;

use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::{DType, Shape};
use burn_cubecl::CubeBackend;

use crate::parts::{PartialSums, PartsLayout};

/// dsocr's kernels as backend operations.
#[backend_extension(Cube, Fusion)]
pub trait DsocrKernels: Backend {
    /// See [`crate::decode_attention`].
    #[fusion(dtype = q, shape = q)]
    fn decode_attention(
        q: FloatTensor<Self>,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
        tables: IntTensor<Self>,
        newest: IntTensor<Self>,
    ) -> FloatTensor<Self>;

    /// See [`crate::encoder_attention`] and [`crate::prefill_attention`]: `[B, n, heads, d]`
    /// from `q` `[B, heads, n, d]` at positions `query_offset..`; `rel_h`/`rel_w` are read only
    /// `with_bias`.
    #[fusion(dtype = q, shape = Shape::new([q[0], q[2], q[1], q[3]]))]
    #[allow(clippy::too_many_arguments)]
    fn encoder_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        rel_h: FloatTensor<Self>,
        rel_w: FloatTensor<Self>,
        causal_from: usize,
        query_offset: usize,
        with_bias: bool,
    ) -> FloatTensor<Self>;

    /// See [`crate::rel_pos_terms`]: `[B·heads·h·w, h + w]` from the query rows `q`
    /// `[B·heads·h·w, d]`.
    #[fusion(dtype = q, shape = Shape::new([q[0], rh[0] + rw[0]]))]
    fn rel_pos_terms(q: FloatTensor<Self>, rh: FloatTensor<Self>, rw: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::layer_norm`]: rows `[M, W]`.
    #[fusion(dtype = x, shape = x)]
    fn layer_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;

    /// See [`crate::linear`].
    #[fusion(dtype = x, shape = Shape::new([x[0], weight[1]]))]
    fn skinny_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::linear_parts`]: the product, or its f32 split-K parts `[splits·M, N]`.
    #[fusion(meta = |x, weight| {
        let (m, k, n) = (x.shape[0], x.shape[1], weight.shape[1]);
        let splits = skinny_launch::split_count(m, k, n, weight.dtype);
        TensorSpec::new(Shape::new([splits * m, n]), if splits == 1 { x.dtype } else { DType::F32 })
    })]
    fn skinny_linear_parts(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::linear`]: on tensor cores (tens to hundreds of rows).
    #[fusion(dtype = x, shape = Shape::new([x[0], weight[1]]))]
    fn tile_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::linear_parts`]: on tensor cores, the product or its f32 split-K parts
    /// `[splits·M, N]`.
    #[fusion(meta = |x, weight| {
        let (m, k, n) = (x.shape[0], x.shape[1], weight.shape[1]);
        let splits = tile_launch::tile_splits(m, k, n).0;
        TensorSpec::new(Shape::new([splits * m, n]), if splits == 1 { x.dtype } else { DType::F32 })
    })]
    fn tile_linear_parts(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::swiglu`]: on tensor cores.
    #[fusion(dtype = x, shape = Shape::new([x[0], gate[1]]))]
    fn tile_swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::swiglu`]; `gate`/`up` `[K, N]`.
    #[fusion(dtype = x, shape = Shape::new([x[0], gate[1]]))]
    fn swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::expert_swiglu`].
    #[fusion(dtype = x, shape = Shape::new([ids[0] * ids[1], gate[2]]))]
    fn expert_swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::add_rms_norm`]; the delta as `count` parts (`weighted`: slot layout with the
    /// weights `coef`, else split layout and `coef` unread).
    #[fusion(meta = |x, _parts, _coef, _weight, _eps, _count, _weighted| (x.clone(), x.clone()))]
    #[allow(clippy::too_many_arguments)]
    fn add_rms_norm(
        x: FloatTensor<Self>,
        parts: FloatTensor<Self>,
        coef: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
        count: usize,
        weighted: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// See [`crate::expert_down`].
    #[fusion(dtype = act, shape = Shape::new([ids[0], down[2]]))]
    fn expert_down(act: FloatTensor<Self>, down: FloatTensor<Self>, ids: IntTensor<Self>, weights: FloatTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::expert_down_parts`]: each pair's product `[M·S, N]`.
    #[fusion(dtype = act, shape = Shape::new([ids[0] * ids[1], down[2]]))]
    fn expert_down_pairs(act: FloatTensor<Self>, down: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self>;

    /// See [`crate::argmax_into`].
    #[fusion(meta = |_logits, tokens| (tokens.clone(), tokens.clone()))]
    fn argmax_into(logits: FloatTensor<Self>, tokens: IntTensor<Self>) -> (IntTensor<Self>, IntTensor<Self>);

    /// See [`crate::rope_qkv_cached`].
    /// `qkv` as `splits` f32 parts when `splits > 1`.
    #[fusion(meta = |qkv, splits, cos, _sin, tables, _starts, heads, keys, values| {
        let (b, d) = (tables.shape[0], cos.shape[1]);
        let q = TensorSpec::new(Shape::new([b, *heads, qkv.shape[0] / *splits / b, d]), cos.dtype);
        (q, keys.clone(), values.clone())
    })]
    #[allow(clippy::too_many_arguments)]
    fn rope_qkv_cached(
        qkv: FloatTensor<Self>,
        splits: usize,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        tables: IntTensor<Self>,
        starts: IntTensor<Self>,
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
        tables: IntTensor<Self>,
        newest: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        decode_attention_launch::decode_attention(q, keys, values, tables, newest)
    }

    fn encoder_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        rel_h: FloatTensor<Self>,
        rel_w: FloatTensor<Self>,
        causal_from: usize,
        query_offset: usize,
        with_bias: bool,
    ) -> FloatTensor<Self> {
        encoder_attention_launch::encoder_attention(q, k, v, rel_h, rel_w, causal_from, query_offset, with_bias)
    }

    fn rel_pos_terms(q: FloatTensor<Self>, rh: FloatTensor<Self>, rw: FloatTensor<Self>) -> FloatTensor<Self> {
        rel_pos_launch::rel_pos_terms(q, rh, rw)
    }

    fn layer_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        layer_norm_kernel::layer_norm(x, weight, bias, eps)
    }

    fn skinny_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        skinny_launch::skinny_linear(x, weight)
    }

    fn skinny_linear_parts(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        skinny_launch::skinny_linear_parts(x, weight)
    }

    fn swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        skinny_launch::swiglu(x, gate, up, None)
    }

    fn tile_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        tile_launch::tile_linear(x, weight)
    }

    fn tile_linear_parts(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        tile_launch::tile_linear_parts(x, weight)
    }

    fn tile_swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        tile_launch::tile_swiglu(x, gate, up)
    }

    fn expert_swiglu(x: FloatTensor<Self>, gate: FloatTensor<Self>, up: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self> {
        if tile_takes_experts(ids.meta.shape()[0], gate.dtype, gate.meta.shape()[1], gate.meta.shape()[2]) {
            tile_launch::tile_expert_swiglu(x, gate, up, ids)
        } else if ids.meta.shape()[0] >= grouped_launch::grouped_min_tokens() {
            grouped_launch::grouped_swiglu(x, gate, up, ids)
        } else {
            skinny_launch::swiglu(x, gate, up, Some(ids))
        }
    }

    fn add_rms_norm(
        x: FloatTensor<Self>,
        parts: FloatTensor<Self>,
        coef: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f32,
        count: usize,
        weighted: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        norm_kernel::add_rms_norm(x, parts_kernel::PartsArgs { parts, coef, count, weighted }, weight, eps)
    }

    fn expert_down(act: FloatTensor<Self>, down: FloatTensor<Self>, ids: IntTensor<Self>, weights: FloatTensor<Self>) -> FloatTensor<Self> {
        let pairs = Self::expert_down_pairs(act, down, ids.clone());
        skinny_launch::combine_slots(pairs, weights)
    }

    fn expert_down_pairs(act: FloatTensor<Self>, down: FloatTensor<Self>, ids: IntTensor<Self>) -> FloatTensor<Self> {
        if tile_takes_experts(ids.meta.shape()[0], down.dtype, down.meta.shape()[1], down.meta.shape()[2]) {
            tile_launch::tile_expert_down_pairs(act, down, ids)
        } else if ids.meta.shape()[0] >= grouped_launch::grouped_min_tokens() {
            grouped_launch::grouped_down_pairs(act, down, ids)
        } else {
            skinny_launch::expert_down_pairs(act, down, ids)
        }
    }

    fn argmax_into(logits: FloatTensor<Self>, tokens: IntTensor<Self>) -> (IntTensor<Self>, IntTensor<Self>) {
        argmax_launch::argmax_into(logits, tokens)
    }

    fn rope_qkv_cached(
        qkv: FloatTensor<Self>,
        splits: usize,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
        tables: IntTensor<Self>,
        starts: IntTensor<Self>,
        heads: usize,
        keys: FloatTensor<Self>,
        values: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        rope_launch::rope_qkv_cached(qkv, splits, cos, sin, tables, starts, heads, keys, values)
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

/// Whether the kernel handles `q`'s head size (up to 256) and the pool's blocks (whole chunks
/// of [`crate::KV_BLOCK`] slots).
pub(crate) fn decode_attention_supported(q: &Tensor<4>, keys: &Tensor<4>) -> bool {
    q.dims()[3] <= 256 && keys.dims()[2].is_multiple_of(crate::KV_BLOCK)
}

/// [`crate::decode_attention`] through the kernel.
pub(crate) fn decode_attention(
    q: Tensor<4>,
    keys: Tensor<4>,
    values: Tensor<4>,
    tables: Tensor<2, Int>,
    newest: Tensor<1, Int>,
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::decode_attention(
        q.into_dispatch(),
        keys.into_dispatch(),
        values.into_dispatch(),
        tables.into_dispatch(),
        newest.into_dispatch(),
    ))
}

/// Whether the attention kernel takes these tensors: bf16 or f16 (its products run on tensor
/// cores), head size 64 or 128, whole groups of query heads per key/value head, keys for every
/// query (as many as queries with a bias, whose tables must cover the sequence) and positions
/// that fit u32.
pub(crate) fn encoder_attention_supported(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, bias: Option<&crate::RelPosBias>) -> bool {
    let [b, heads, n, d] = q.dims();
    let [kb, kv_heads, kn, kd] = k.dims();
    let same = |t: &Tensor<4>| t.dtype() == q.dtype();
    let bias_fits = bias.is_none_or(|rel| {
        let [bh, gh, gw, g] = rel.rel_h.dims();
        // The kernel keeps each query's offsets into the tables as u32.
        let addressable = |t: &Tensor<4>| t.dims().iter().product::<usize>() <= u32::MAX as usize;
        same(&rel.rel_h)
            && same(&rel.rel_w)
            && bh == b * heads
            && gh * gw == n
            && kn == n
            && g == gh
            && rel.rel_w.dims() == [bh, gh, gw, gw]
            && addressable(&rel.rel_h)
            && addressable(&rel.rel_w)
    });
    matches!(q.dtype(), DType::BF16 | DType::F16)
        && same(k)
        && same(v)
        && matches!(d, 64 | 128)
        && (kb, kd) == (b, d)
        && v.dims() == k.dims()
        && kv_heads > 0
        && heads.is_multiple_of(kv_heads)
        && n > 0
        && kn > 0
        && kn <= u32::MAX as usize
        && bias_fits
}

/// [`crate::encoder_attention`] through the kernel.
pub(crate) fn encoder_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<crate::RelPosBias>,
    causal_from: usize,
    query_offset: usize,
) -> Tensor<4> {
    let with_bias = bias.is_some();
    // Without a bias the tables are unread: the query stands in.
    let (rel_h, rel_w) = match bias {
        Some(rel) => (rel.rel_h, rel.rel_w),
        None => (q.clone(), q.clone()),
    };
    Tensor::from_dispatch(Dispatch::encoder_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        rel_h.into_dispatch(),
        rel_w.into_dispatch(),
        causal_from,
        query_offset,
        with_bias,
    ))
}

/// [`crate::rel_pos_terms`] through the kernel: `[B·heads·h·w, h + w]` from the query rows
/// `[B·heads·h·w, d]`.
pub(crate) fn rel_pos_terms(q: Tensor<2>, rh: Tensor<3>, rw: Tensor<3>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::rel_pos_terms(q.into_dispatch(), rh.into_dispatch(), rw.into_dispatch()))
}

/// Whether the LayerNorm kernel takes `rows` rows of `width` in `dtype`: bf16 or f16 (f32 stays
/// on Burn's definition, which the GPU parity runs compare), whole planes, held in registers, and
/// at least one row (a grid of no cubes does not launch).
pub(crate) fn layer_norm_supported(dtype: DType, rows: usize, width: usize) -> bool {
    matches!(dtype, DType::BF16 | DType::F16) && rows > 0 && width > 0 && width.is_multiple_of(32) && width <= layer_norm_kernel::MAX_WIDTH
}

/// [`crate::layer_norm`] through the kernel, on rows `[M, W]`.
pub(crate) fn layer_norm(x: Tensor<2>, weight: Tensor<1>, bias: Tensor<1>, eps: f32) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::layer_norm(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch(), eps))
}

/// Whether the skinny kernels take weights of `dtype` whose rows hold `columns` outputs: a float
/// type and whole 16-byte vectors per row.
pub(crate) fn skinny_supported(dtype: DType, columns: usize) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16) && columns.is_multiple_of(skinny_launch::vector_width(dtype))
}

/// Whether the tile kernel takes `rows` activation rows of width `k` against weights of `dtype`
/// with `n` outputs ([`crate::KernelSettings::tile_rows`]).
pub(crate) fn tile_takes_linear(rows: usize, dtype: DType, k: usize, n: usize) -> bool {
    rows > 0
        && rows <= crate::settings().tile_rows.min(crate::TILE_MAX_ROWS)
        && rows.saturating_mul(k.max(n)) <= u32::MAX as usize
        && tile_launch::tile_supported(dtype, k, n)
}

/// Whether the experts of `tokens` tokens run on the tile kernel
/// ([`crate::KernelSettings::tile_experts_from`]); banks of `dtype`, `[E, k, n]`.
pub(crate) fn tile_takes_experts(tokens: usize, dtype: DType, k: usize, n: usize) -> bool {
    tokens > 0 && tokens >= crate::settings().tile_experts_from && tile_launch::tile_supported(dtype, k, n)
}

/// [`crate::linear`] through the tile kernel.
pub(crate) fn tile_linear(x: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::tile_linear(x.into_dispatch(), weight.into_dispatch()))
}

/// [`crate::linear_parts`] through the tile kernel: the parts and how many make a row.
pub(crate) fn tile_linear_parts(x: Tensor<2>, weight: Tensor<2>) -> (Tensor<2>, usize) {
    let (m, k, n) = (x.dims()[0], x.dims()[1], weight.dims()[1]);
    let splits = tile_launch::tile_splits(m, k, n).0;
    (Tensor::from_dispatch(Dispatch::tile_linear_parts(x.into_dispatch(), weight.into_dispatch())), splits)
}

/// [`crate::swiglu`] through the tile kernel.
pub(crate) fn tile_swiglu(x: Tensor<2>, gate: Tensor<2>, up: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::tile_swiglu(x.into_dispatch(), gate.into_dispatch(), up.into_dispatch()))
}

/// [`crate::linear`] through the kernel.
pub(crate) fn skinny_linear(x: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::skinny_linear(x.into_dispatch(), weight.into_dispatch()))
}

/// [`crate::linear_parts`] through the kernel: the parts and how many make a row.
pub(crate) fn skinny_linear_parts(x: Tensor<2>, weight: Tensor<2>) -> (Tensor<2>, usize) {
    let (m, k, n) = (x.dims()[0], x.dims()[1], weight.dims()[1]);
    let splits = skinny_launch::split_count(m, k, n, weight.dtype());
    (Tensor::from_dispatch(Dispatch::skinny_linear_parts(x.into_dispatch(), weight.into_dispatch())), splits)
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

/// [`crate::expert_down_parts`] through the kernel: each pair's product.
pub(crate) fn expert_down_pairs(act: Tensor<2>, down: Tensor<3>, ids: Tensor<2, Int>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::expert_down_pairs(act.into_dispatch(), down.into_dispatch(), ids.into_dispatch()))
}

/// [`crate::add_rms_norm`] through the kernel, summing `delta`'s parts.
pub(crate) fn add_rms_norm(x: Tensor<2>, delta: PartialSums, weight: Tensor<1>, eps: f32) -> (Tensor<2>, Tensor<2>) {
    let count = delta.count();
    let (coef, weighted) = match delta.layout {
        PartsLayout::Slots { weights } => (weights, true),
        // Unread: any tensor stands in.
        PartsLayout::Whole | PartsLayout::Splits { .. } => (delta.parts.clone(), false),
    };
    let (sum, out) = Dispatch::add_rms_norm(
        x.into_dispatch(),
        delta.parts.into_dispatch(),
        coef.into_dispatch(),
        weight.into_dispatch(),
        eps,
        count,
        weighted,
    );
    (Tensor::from_dispatch(sum), Tensor::from_dispatch(out))
}

/// [`crate::rms_norm`] through the add + RMSNorm kernel with no parts to add (`x` stands in for
/// them, unread).
pub(crate) fn rms_norm(x: Tensor<2>, weight: Tensor<1>, eps: f32) -> Tensor<2> {
    let (parts, coef) = (x.clone().into_dispatch(), x.clone().into_dispatch());
    let (_sum, out) = Dispatch::add_rms_norm(x.into_dispatch(), parts, coef, weight.into_dispatch(), eps, 0, false);
    Tensor::from_dispatch(out)
}

/// [`crate::argmax_into`] through the kernel.
pub(crate) fn argmax_into(logits: Tensor<2>, tokens: Tensor<1, Int>) -> (Tensor<1, Int>, Tensor<1, Int>) {
    let (tokens, next) = Dispatch::argmax_into(logits.into_dispatch(), tokens.into_dispatch());
    (Tensor::from_dispatch(tokens), Tensor::from_dispatch(next))
}

/// [`crate::rope_qkv_cached`] through the kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rope_qkv_cached(
    qkv: Tensor<2>,
    splits: usize,
    cos: Tensor<2>,
    sin: Tensor<2>,
    tables: Tensor<2, Int>,
    starts: Tensor<1, Int>,
    heads: usize,
    keys: Tensor<4>,
    values: Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let (q, k, v) = Dispatch::rope_qkv_cached(
        qkv.into_dispatch(),
        splits,
        cos.into_dispatch(),
        sin.into_dispatch(),
        tables.into_dispatch(),
        starts.into_dispatch(),
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
