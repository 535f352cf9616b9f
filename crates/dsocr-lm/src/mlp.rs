//! Feed-forward blocks: the dense SwiGLU MLP and the mixture of experts (MODEL_SPEC §3.7).
//!
//! Routing never leaves the device: the router ([`dsocr_kernels::route`]) runs there, and the
//! chosen experts are applied either by gathering their weights with the device-side expert ids
//! (few tokens: decoding) or by running every expert on every token and combining with a dense,
//! mostly-zero weight matrix scattered from the top-k (many tokens: prefill). Both are exact.

use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::{DType, IndexingUpdateOp};

use dsocr_core::layers::Linear;
use dsocr_core::{CoreError, Weights};
use dsocr_kernels::RouterConfig;

use crate::config::LmConfig;

/// `down(SiLU(gate(x)) ⊙ up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    /// Load `gate_proj`, `up_proj`, `down_proj` (no bias) of width `inner` under `w`.
    pub fn load(w: &Weights, hidden: usize, inner: usize) -> Result<Self, CoreError> {
        Ok(Mlp {
            gate_proj: Linear::load(&w.pp("gate_proj"), hidden, inner, false)?,
            up_proj: Linear::load(&w.pp("up_proj"), hidden, inner, false)?,
            down_proj: Linear::load(&w.pp("down_proj"), inner, hidden, false)?,
        })
    }

    /// Apply to the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        let rows = x.reshape([-1, dims[D - 1] as i64]);
        let act = dsocr_kernels::swiglu(rows, &self.gate_proj.weight, &self.up_proj.weight);
        let y = dsocr_kernels::linear(act, &self.down_proj.weight);
        let mut out = dims;
        out[D - 1] = y.dims()[1];
        y.reshape(out)
    }
}

/// Routed experts (stacked per projection) plus always-on shared experts.
#[derive(Debug, Clone)]
pub struct Moe {
    /// Router weight `[E, H]`, f32 (the reference routes in f32).
    gate: Tensor<2>,
    /// `[E, H, I]`.
    experts_gate: Tensor<3>,
    /// `[E, H, I]`.
    experts_up: Tensor<3>,
    /// `[E, I, H]`.
    experts_down: Tensor<3>,
    shared: Option<Mlp>,
    router: RouterConfig,
}

impl Moe {
    /// Load `gate`, `experts.{0..E}.{gate,up,down}_proj` and `shared_experts` under `w`.
    pub fn load(w: &Weights, cfg: &LmConfig) -> Result<Self, CoreError> {
        let (h, i, e) = (cfg.hidden_size, cfg.moe_intermediate_size, cfg.n_routed_experts);
        let mut gates = Vec::with_capacity(e);
        let mut ups = Vec::with_capacity(e);
        let mut downs = Vec::with_capacity(e);
        for n in 0..e {
            let ew = w.pp(format!("experts.{n}"));
            gates.push(ew.linear_weight("gate_proj.weight", h, i)?);
            ups.push(ew.linear_weight("up_proj.weight", h, i)?);
            downs.push(ew.linear_weight("down_proj.weight", i, h)?);
        }
        let shared = if cfg.n_shared_experts > 0 { Some(Mlp::load(&w.pp("shared_experts"), h, i * cfg.n_shared_experts)?) } else { None };
        Ok(Moe {
            gate: w.pp("gate").tensor_f32("weight", [e, h])?,
            experts_gate: Tensor::stack(gates, 0),
            experts_up: Tensor::stack(ups, 0),
            experts_down: Tensor::stack(downs, 0),
            shared,
            router: RouterConfig {
                top_k: cfg.num_experts_per_tok,
                renormalise: cfg.norm_topk_prob,
                scaling: cfg.routed_scaling_factor,
            },
        })
    }

    fn experts(&self) -> usize {
        self.experts_gate.dims()[0]
    }


    /// Tokens `[N, H]` → `[N, H]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, _] = x.dims();
        let (ids, weights) = dsocr_kernels::route(x.clone(), &self.gate, self.router);
        let routed = if n * self.router.top_k <= self.experts() { self.gathered(&x, ids, weights) } else { self.dense(&x, ids, weights) };
        match &self.shared {
            Some(shared) => routed + shared.forward(x),
            None => routed,
        }
    }

    /// Apply only the chosen experts, reading their weights where they lie (dsocr's kernels on a
    /// GPU; gathered copies and batched matvecs otherwise). Reads `N·k` experts: the decode path.
    fn gathered(&self, x: &Tensor<2>, ids: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<2> {
        let act = dsocr_kernels::expert_swiglu(x.clone(), &self.experts_gate, &self.experts_up, ids.clone());
        dsocr_kernels::expert_down(act, &self.experts_down, ids, weights)
    }

    /// Run every expert on every token and combine with the routing weights scattered into a
    /// dense `[N, E]` matrix (zero for unchosen experts). Exact, with no host round trip; costs
    /// `E / k` times the necessary expert FLOPs: the prefill path until a grouped kernel replaces it.
    fn dense(&self, x: &Tensor<2>, ids: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<2> {
        let [n, h] = x.dims();
        let e = self.experts();
        let combine = Tensor::<2>::zeros([n, e], (&x.device(), DType::F32)).scatter(1, ids, weights, IndexingUpdateOp::Add);
        let xs = x.clone().unsqueeze::<3>().expand([e, n, h]);
        let g = xs.clone().matmul(self.experts_gate.clone());
        let u = xs.matmul(self.experts_up.clone());
        let y = (silu(g) * u).matmul(self.experts_down.clone()); // [E, N, H]
        let y = y.cast(DType::F32).permute([1, 0, 2]) * combine.unsqueeze_dim::<3>(2); // [N, E, H]
        y.sum_dim(1).reshape([n, h]).cast(x.dtype())
    }
}

/// The feed-forward block of one decoder layer.
#[derive(Debug, Clone)]
pub enum FeedForward {
    /// Dense SwiGLU (the first `first_k_dense_replace` layers).
    Dense(Box<Mlp>),
    /// Mixture of experts.
    Moe(Box<Moe>),
}

impl FeedForward {
    /// `[B, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            FeedForward::Dense(mlp) => mlp.forward(x),
            FeedForward::Moe(moe) => {
                let [b, t, h] = x.dims();
                moe.forward(x.reshape([b * t, h])).reshape([b, t, h])
            }
        }
    }
}
