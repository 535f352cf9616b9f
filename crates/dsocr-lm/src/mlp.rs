//! Feed-forward blocks: the dense SwiGLU MLP and the mixture of experts (docs/model.md §6.3).
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
use dsocr_kernels::{PartialSums, RouterConfig};

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

    /// Rows `[N, H]` → `[N, H]`, left as the down projection's parts (see [`PartialSums`]).
    pub fn forward(&self, rows: Tensor<2>) -> PartialSums {
        let act = dsocr_kernels::swiglu(rows, &self.gate_proj.weight, &self.up_proj.weight);
        dsocr_kernels::linear_parts(act, &self.down_proj.weight)
    }
}

/// Routed experts plus always-on shared experts, all stacked per projection.
///
/// The shared experts (one MLP of width `n_shared_experts × moe_intermediate_size` in the
/// checkpoint) are split into `n_shared_experts` pieces of one expert's width and appended to the
/// banks after the routed experts; the router adds them to every token's choice with weight 1.
/// Splitting is exact (the intermediate columns are independent and the down projection sums
/// over them), and one expert launch then runs routed and shared experts together.
#[derive(Debug, Clone)]
pub struct Moe {
    /// Router weight `[E, H]`, f32 (the reference routes in f32).
    gate: Tensor<2>,
    /// `[E + S, H, I]`.
    experts_gate: Tensor<3>,
    /// `[E + S, H, I]`.
    experts_up: Tensor<3>,
    /// `[E + S, I, H]`.
    experts_down: Tensor<3>,
    router: RouterConfig,
}

impl Moe {
    /// Load `gate`, `experts.{0..E}.{gate,up,down}_proj` and `shared_experts` under `w`.
    pub fn load(w: &Weights, cfg: &LmConfig) -> Result<Self, CoreError> {
        let (h, i, e, s) = (cfg.hidden_size, cfg.moe_intermediate_size, cfg.n_routed_experts, cfg.n_shared_experts);
        let mut gates = Vec::with_capacity(e + s);
        let mut ups = Vec::with_capacity(e + s);
        let mut downs = Vec::with_capacity(e + s);
        for n in 0..e {
            let ew = w.pp(format!("experts.{n}"));
            gates.push(ew.linear_weight("gate_proj.weight", h, i)?);
            ups.push(ew.linear_weight("up_proj.weight", h, i)?);
            downs.push(ew.linear_weight("down_proj.weight", i, h)?);
        }
        if s > 0 {
            let shared = Mlp::load(&w.pp("shared_experts"), h, i * s)?;
            // A shape probe answers with one-element placeholders: nothing to split.
            let piece = |t: &Tensor<2>, dim: usize, n: usize| if w.is_shape_probe() { t.clone() } else { t.clone().narrow(dim, n * i, i) };
            for n in 0..s {
                gates.push(piece(&shared.gate_proj.weight, 1, n));
                ups.push(piece(&shared.up_proj.weight, 1, n));
                downs.push(piece(&shared.down_proj.weight, 0, n));
            }
        }
        Ok(Moe {
            gate: w.pp("gate").tensor_f32("weight", [e, h])?,
            experts_gate: Tensor::stack(gates, 0),
            experts_up: Tensor::stack(ups, 0),
            experts_down: Tensor::stack(downs, 0),
            router: RouterConfig {
                top_k: cfg.num_experts_per_tok,
                shared: s,
                renormalise: cfg.norm_topk_prob,
                scaling: cfg.routed_scaling_factor,
            },
        })
    }

    /// Routed plus shared experts in the banks.
    fn experts(&self) -> usize {
        self.experts_gate.dims()[0]
    }

    /// Tokens `[N, H]` → `[N, H]` (left as parts where the expert kernels produce them).
    pub fn forward(&self, x: Tensor<2>) -> PartialSums {
        let [n, _] = x.dims();
        let (ids, weights) = dsocr_kernels::route(x.clone(), &self.gate, self.router);
        let pairs = n * (self.router.top_k + self.router.shared);
        let kernels = dsocr_kernels::expert_kernels_take(&x.device(), pairs, self.experts_gate.dtype(), self.experts_gate.dims()[2]);
        // Without the kernels, gathering copies N·(k + S) experts: past N·k routed experts that
        // is more than the whole bank, and running every expert is the better plan. The kernels
        // read the chosen experts where they lie, grouped by expert for batches.
        if kernels || n * self.router.top_k <= self.gate.dims()[0] {
            self.gathered(&x, ids, weights)
        } else {
            self.dense(&x, ids, weights).into()
        }
    }

    /// Apply only the chosen experts, reading their weights where they lie (dsocr's kernels on a
    /// GPU; gathered copies and batched matvecs otherwise): the decode path.
    fn gathered(&self, x: &Tensor<2>, ids: Tensor<2, Int>, weights: Tensor<2>) -> PartialSums {
        let act = dsocr_kernels::expert_swiglu(x.clone(), &self.experts_gate, &self.experts_up, ids.clone());
        dsocr_kernels::expert_down_parts(act, &self.experts_down, ids, weights)
    }

    /// Run every expert on every token and combine with the routing weights scattered into a
    /// dense `[N, E + S]` matrix (zero for unchosen experts, one for the shared ones). Exact, with
    /// no host round trip; costs `E / k` times the necessary expert FLOPs: the prefill path until
    /// a grouped kernel replaces it.
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
    /// `[B, T, H]` → rows `[B·T, H]`, left as parts for the residual add + norm to sum.
    pub fn forward(&self, x: Tensor<3>) -> PartialSums {
        let [b, t, h] = x.dims();
        let rows = x.reshape([b * t, h]);
        match self {
            FeedForward::Dense(mlp) => mlp.forward(rows),
            FeedForward::Moe(moe) => moe.forward(rows),
        }
    }
}
