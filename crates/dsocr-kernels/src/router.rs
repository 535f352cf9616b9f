//! The MoE router (docs/model.md §6.3, `topk_method = "greedy"`, softmax scoring): f32 logits of
//! each token against the router weight, softmax over the experts, the top k, optionally
//! renormalised to sum to one, times the routed scaling factor. The shared experts ride along as
//! always-on experts numbered after the routed ones, so one expert kernel runs both. Everything
//! stays on the device.

use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::softmax;

/// How a router picks and weighs experts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterConfig {
    /// Routed experts per token.
    pub top_k: usize,
    /// Always-on experts appended to every token's choice with weight 1: ids `E..E + shared` for
    /// a router over `E` experts (the shared experts, split into expert-sized pieces).
    pub shared: usize,
    /// Divide the chosen probabilities by their sum (`norm_topk_prob`).
    pub renormalise: bool,
    /// Multiplies the weights (`routed_scaling_factor`).
    pub scaling: f64,
}

/// Expert ids `[M, k + shared]` (the routed ones best first, then the always-on ones) and their
/// weights (f32) for tokens `x` `[M, H]` and the router weight `gate` `[E, H]` (f32, the released
/// layout). One kernel on a CubeCL device; the Burn definition elsewhere.
pub fn route(x: Tensor<2>, gate: &Tensor<2>, config: RouterConfig) -> (Tensor<2, Int>, Tensor<2>) {
    #[cfg(feature = "cuda")]
    if crate::kernels_enabled(&x.device()) && gate.dtype() == DType::F32 && x.dims()[0] > 0 {
        return crate::cuda::route(x, gate.clone(), config);
    }
    route_reference(x, gate, config)
}

/// The Burn definition of [`route`].
pub fn route_reference(x: Tensor<2>, gate: &Tensor<2>, config: RouterConfig) -> (Tensor<2, Int>, Tensor<2>) {
    let logits = x.cast(DType::F32).matmul(gate.clone().transpose());
    let scores = softmax(logits, 1);
    let (mut weights, ids) = scores.topk_with_indices(config.top_k, 1);
    if config.renormalise {
        weights = weights.clone() / (weights.sum_dim(1) + 1e-20);
    }
    let weights = weights * config.scaling;
    if config.shared == 0 {
        return (ids, weights);
    }
    let [m, e] = [ids.dims()[0], gate.dims()[0]];
    let device = gate.device();
    let shared_ids = Tensor::<1, Int>::arange(e as i64..(e + config.shared) as i64, &device).reshape([1, config.shared]);
    let shared_ids = shared_ids.expand([m, config.shared]).cast(ids.dtype());
    let ones = Tensor::<2>::ones([m, config.shared], (&device, DType::F32));
    (Tensor::cat(vec![ids, shared_ids], 1), Tensor::cat(vec![weights, ones], 1))
}
