//! Projections: activation rows times the weights of a linear layer, of a SwiGLU MLP, or of the
//! experts a router chose — a decode step's few rows, a batch's or a prefill's hundreds, and the
//! vision encoders' thousands ([`linear_layer`]).
//!
//! Weights are `[K, N]` (dsocr's `[d_in, d_out]`) or banks `[E, K, N]`. On a CubeCL device and
//! for at most [`MAX_KERNEL_ROWS`] rows ([`MAX_EXPERT_PAIRS`] (token, expert) pairs) the skinny
//! kernels run (one weight read per launch, f32 sums); past them, up to [`crate::KernelSettings::tile_rows`] rows (from
//! [`crate::KernelSettings::tile_experts_from`] tokens for the experts) the tensor-core tile
//! kernel; otherwise the plain Burn definitions below, which are also what the kernels must match.

use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::silu;

use dsocr_core::layers::Linear;

use crate::parts::PartialSums;
#[cfg(feature = "cuda")]
use crate::parts::PartsLayout;

/// Most activation rows the skinny kernels take ([`linear`], [`swiglu`]): one pass over the
/// weight. More rows (a batch of pages, a prefill) go to the tensor-core tile kernel (bf16/f16, up
/// to [`crate::KernelSettings::tile_rows`]) or Burn's matmul, which read each weight once per
/// 64-row block on tensor cores: measured on an H100 at 32 pages, the skinny kernels re-reading the
/// weights once per 8 rows (the 331 MB output head: 1.3 ms per step) or per row (the dense SwiGLU:
/// 118 µs) made the step slower (docs/perf.md, sessions 6 and 15).
pub const MAX_KERNEL_ROWS: usize = 8;

/// Most (token, expert) pairs the expert kernels take: each pair is its own group of cubes, so
/// the limit is about re-reading experts, not registers (64 tokens' worth at 6 + 2 experts).
pub const MAX_EXPERT_PAIRS: usize = 512;

/// Whether the kernel path applies to `rows` activation rows (at most `limit`) against weights
/// of `dtype` with `columns` outputs on `device`.
#[cfg(feature = "cuda")]
fn use_kernel(device: &Device, rows: usize, limit: usize, dtype: DType, columns: usize) -> bool {
    rows <= limit && crate::kernels_enabled(device) && crate::cuda::skinny_supported(dtype, columns)
}

/// Whether the tile kernel takes `x` against `weight` (past the skinny kernels' rows).
#[cfg(feature = "cuda")]
fn use_tile_kernel(x: &Tensor<2>, weight: &Tensor<2>) -> bool {
    let ([m, k], n) = (x.dims(), weight.dims()[1]);
    x.dtype() == weight.dtype() && crate::kernels_enabled(&x.device()) && crate::cuda::tile_takes_linear(m, weight.dtype(), k, n)
}

/// Whether the experts of `tokens` tokens (`slots` pairs each) against banks of `dtype`,
/// `[E, k, n]`, run on dsocr's kernels: the per-pair or grouped kernels up to
/// [`MAX_EXPERT_PAIRS`] pairs, the tile kernel from its token count on.
#[cfg(feature = "cuda")]
fn use_expert_kernels(device: &Device, tokens: usize, slots: usize, dtype: DType, k: usize, n: usize) -> bool {
    use_kernel(device, tokens * slots, MAX_EXPERT_PAIRS, dtype, n)
        || (crate::kernels_enabled(device) && crate::cuda::tile_takes_experts(tokens, dtype, k, n))
}

/// Whether the linear kernel takes `x` against `weight`.
#[cfg(feature = "cuda")]
fn use_linear_kernel(x: &Tensor<2>, weight: &Tensor<2>) -> bool {
    x.dtype() == weight.dtype() && use_kernel(&x.device(), x.dims()[0], MAX_KERNEL_ROWS, weight.dtype(), weight.dims()[1])
}

/// A [`Linear`] layer, its bias added, over the last dimension of `x`: on dsocr's kernels where
/// [`linear`] takes the rows, else the layer's own Burn definition ([`Linear::forward`]). The
/// encoders' linears come here so that on a GPU they run on the tile kernel, whose launch shape
/// follows from the problem by rule: Burn's matmul autotunes every new shape, compiling a dozen
/// candidates of 0.1-1.5 s each, which made most of a first run's time (docs/perf.md, session 25).
pub fn linear_layer<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    // One product over all leading dimensions, as `Linear::forward` does too.
    let mut dims = x.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let x = x.reshape([rows, dims[D - 1]]);
    #[cfg(feature = "cuda")]
    let on_kernels = use_linear_kernel(&x, &layer.weight) || use_tile_kernel(&x, &layer.weight);
    #[cfg(not(feature = "cuda"))]
    let on_kernels = false;
    let y = match (on_kernels, &layer.bias) {
        (true, Some(bias)) => linear(x, &layer.weight) + bias.clone().unsqueeze::<2>(),
        (true, None) => linear(x, &layer.weight),
        (false, _) => layer.forward(x),
    };
    dims[D - 1] = layer.weight.dims()[1];
    y.reshape(dims)
}

/// `x` `[M, K]` · `weight` `[K, N]` → `[M, N]`.
pub fn linear(x: Tensor<2>, weight: &Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "cuda")]
    if use_linear_kernel(&x, weight) {
        return crate::cuda::skinny_linear(x, weight.clone());
    }
    #[cfg(feature = "cuda")]
    if use_tile_kernel(&x, weight) {
        return crate::cuda::tile_linear(x, weight.clone());
    }
    linear_reference(x, weight)
}

/// [`linear`] left as the parts its kernel produced (see [`PartialSums`]): for a consumer that
/// sums them itself ([`crate::add_rms_norm`], [`crate::rope_qkv_cached`]), saving a launch.
pub fn linear_parts(x: Tensor<2>, weight: &Tensor<2>) -> PartialSums {
    #[cfg(feature = "cuda")]
    if use_linear_kernel(&x, weight) {
        let dtype = x.dtype();
        let (parts, count) = crate::cuda::skinny_linear_parts(x, weight.clone());
        let layout = if count == 1 { PartsLayout::Whole } else { PartsLayout::Splits { count, dtype } };
        return PartialSums { parts, layout };
    }
    #[cfg(feature = "cuda")]
    if use_tile_kernel(&x, weight) {
        let dtype = x.dtype();
        let (parts, count) = crate::cuda::tile_linear_parts(x, weight.clone());
        let layout = if count == 1 { PartsLayout::Whole } else { PartsLayout::Splits { count, dtype } };
        return PartialSums { parts, layout };
    }
    linear_reference(x, weight).into()
}

/// The Burn definition of [`linear`].
pub fn linear_reference(x: Tensor<2>, weight: &Tensor<2>) -> Tensor<2> {
    x.matmul(weight.clone())
}

/// SwiGLU's first half, `SiLU(x·G) ⊙ (x·U)`: `x` `[M, K]`, `gate`/`up` `[K, N]` → `[M, N]`.
pub fn swiglu(x: Tensor<2>, gate: &Tensor<2>, up: &Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "cuda")]
    if use_kernel(&x.device(), x.dims()[0], MAX_KERNEL_ROWS, gate.dtype(), gate.dims()[1]) && x.dtype() == gate.dtype() {
        return crate::cuda::swiglu(x, gate.clone(), up.clone());
    }
    #[cfg(feature = "cuda")]
    if use_tile_kernel(&x, gate) && up.dims() == gate.dims() {
        return crate::cuda::tile_swiglu(x, gate.clone(), up.clone());
    }
    swiglu_reference(x, gate, up)
}

/// The Burn definition of [`swiglu`].
pub fn swiglu_reference(x: Tensor<2>, gate: &Tensor<2>, up: &Tensor<2>) -> Tensor<2> {
    silu(x.clone().matmul(gate.clone())) * x.matmul(up.clone())
}

/// [`swiglu`] with each token's chosen experts: row `m·S + s` of the result `[M·S, N]` uses
/// expert `ids[m, s]` of the banks `gate`/`up` `[E, K, N]`; `x` `[M, K]`, `ids` `[M, S]`.
pub fn expert_swiglu(x: Tensor<2>, gate: &Tensor<3>, up: &Tensor<3>, ids: Tensor<2, Int>) -> Tensor<2> {
    #[cfg(feature = "cuda")]
    if use_expert_kernels(&x.device(), ids.dims()[0], ids.dims()[1], gate.dtype(), gate.dims()[1], gate.dims()[2])
        && x.dtype() == gate.dtype()
    {
        return crate::cuda::expert_swiglu(x, gate.clone(), up.clone(), ids);
    }
    expert_swiglu_reference(x, gate, up, ids)
}

/// The Burn definition of [`expert_swiglu`]: gather the chosen experts' weights, batched matvecs.
pub fn expert_swiglu_reference(x: Tensor<2>, gate: &Tensor<3>, up: &Tensor<3>, ids: Tensor<2, Int>) -> Tensor<2> {
    let ([m, k], [_, s]) = (x.dims(), ids.dims());
    let n = gate.dims()[2];
    let flat = ids.reshape([m * s]);
    let xs = x.unsqueeze_dim::<3>(1).expand([m, s, k]).reshape([m * s, 1, k]);
    let g = xs.clone().matmul(gate.clone().select(0, flat.clone()));
    let u = xs.matmul(up.clone().select(0, flat));
    (silu(g) * u).reshape([m * s, n])
}

/// The chosen experts' down projections summed with the routing weights:
/// `out[m] = Σ_s weights[m, s] · (act[m·S + s] · D[ids[m, s]])`. `act` `[M·S, K]`, `down`
/// `[E, K, N]`, `ids` `[M, S]`, `weights` `[M, S]` (f32) → `[M, N]` in `act`'s float type.
pub fn expert_down(act: Tensor<2>, down: &Tensor<3>, ids: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "cuda")]
    if use_expert_kernels(&act.device(), ids.dims()[0], ids.dims()[1], down.dtype(), down.dims()[1], down.dims()[2])
        && act.dtype() == down.dtype()
    {
        return crate::cuda::expert_down(act, down.clone(), ids, weights.cast(DType::F32));
    }
    expert_down_reference(act, down, ids, weights)
}

/// [`expert_down`] left as each (token, slot) pair's product and the routing weights (see
/// [`PartialSums`]), for a consumer that sums them itself ([`crate::add_rms_norm`]).
pub fn expert_down_parts(act: Tensor<2>, down: &Tensor<3>, ids: Tensor<2, Int>, weights: Tensor<2>) -> PartialSums {
    #[cfg(feature = "cuda")]
    if use_expert_kernels(&act.device(), ids.dims()[0], ids.dims()[1], down.dtype(), down.dims()[1], down.dims()[2])
        && act.dtype() == down.dtype()
    {
        let parts = crate::cuda::expert_down_pairs(act, down.clone(), ids);
        return PartialSums { parts, layout: PartsLayout::Slots { weights: weights.cast(DType::F32) } };
    }
    expert_down_reference(act, down, ids, weights).into()
}

/// The Burn definition of [`expert_down`] (products rounded to the float type, then summed in
/// f32, as the reference model does).
pub fn expert_down_reference(act: Tensor<2>, down: &Tensor<3>, ids: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<2> {
    let [m, s] = ids.dims();
    let (k, n) = (act.dims()[1], down.dims()[2]);
    let dtype = act.dtype();
    let y = act.reshape([m * s, 1, k]).matmul(down.clone().select(0, ids.reshape([m * s])));
    let y = y.reshape([m, s, n]).cast(DType::F32) * weights.cast(DType::F32).unsqueeze_dim::<3>(2);
    y.sum_dim(1).reshape([m, n]).cast(dtype)
}

/// Whether [`expert_swiglu`] and [`expert_down_parts`] run dsocr's kernels for `tokens` tokens
/// of `slots` (token, expert) pairs each, against the gate/up banks of `dtype`, `[E, k, n]`, on
/// `device`: then the chosen experts are read where they lie (grouped by expert past a few
/// tokens), with no gathered copies, so the gathered path suits batches and prefills too.
pub fn expert_kernels_take(device: &Device, tokens: usize, slots: usize, dtype: DType, k: usize, n: usize) -> bool {
    #[cfg(feature = "cuda")]
    {
        use_expert_kernels(device, tokens, slots, dtype, k, n)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (device, tokens, slots, dtype, k, n);
        false
    }
}
