//! The MoE router (MODEL_SPEC §3.7, `topk_method = "greedy"`, softmax scoring): f32 logits of
//! each token against the router weight, softmax over the experts, the top k, optionally
//! renormalised to sum to one, times the routed scaling factor. Everything stays on the device.

use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::softmax;

/// How a router picks and weighs experts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterConfig {
    /// Experts per token.
    pub top_k: usize,
    /// Divide the chosen probabilities by their sum (`norm_topk_prob`).
    pub renormalise: bool,
    /// Multiplies the weights (`routed_scaling_factor`).
    pub scaling: f64,
}

/// Expert ids `[M, k]` (best first) and their weights `[M, k]` (f32) for tokens `x` `[M, H]`
/// and the router weight `gate` `[E, H]` (f32, the released layout). One kernel on a CubeCL
/// device; the Burn definition elsewhere.
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
    (ids, weights * config.scaling)
}
