//! Feed-forward blocks: the dense SwiGLU MLP and the mixture of experts (docs/model.md §6.3).
//!
//! On a GPU routing never leaves the device: the router ([`dsocr_kernels::route`]) runs there, and the
//! chosen experts are applied either by gathering their weights with the device-side expert ids
//! (few tokens: decoding) or by running every expert on every token and combining with a dense,
//! mostly-zero weight matrix scattered from the top-k (many tokens: prefill). Both are exact. On the
//! CPU the choice is read on the host and each chosen expert runs once on its rows
//! ([`dsocr_kernels::HostExperts`]).

use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::{DType, IndexingUpdateOp};
use rayon::prelude::*;

use dsocr_core::{CoreError, HostMatrix, PreparedTensor, Weights};
use dsocr_kernels::{HostExperts, PartialSums, RouterConfig};

use crate::config::LmConfig;
use crate::projection::Projection;

/// `down(SiLU(gate(x)) ⊙ up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    gate_proj: Projection,
    up_proj: Projection,
    down_proj: Projection,
}

impl Mlp {
    /// Load `gate_proj`, `up_proj`, `down_proj` (no bias) of width `inner` under `w`.
    pub fn load(w: &Weights, hidden: usize, inner: usize) -> Result<Self, CoreError> {
        Ok(Mlp {
            gate_proj: Projection::load(w, &["gate_proj.weight"], hidden, inner)?,
            up_proj: Projection::load(w, &["up_proj.weight"], hidden, inner)?,
            down_proj: Projection::load(w, &["down_proj.weight"], inner, hidden)?,
        })
    }

    /// Rows `[N, H]` → `[N, H]`, left as the down projection's parts (see [`PartialSums`]).
    pub fn forward(&self, rows: Tensor<2>) -> PartialSums {
        let act = match (&self.gate_proj, &self.up_proj) {
            (Projection::Device(gate), Projection::Device(up)) => dsocr_kernels::swiglu(rows, gate, up),
            (gate, up) => silu(gate.forward(rows.clone())) * up.forward(rows),
        };
        self.down_proj.parts(act)
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
    experts: Experts,
    router: RouterConfig,
}

/// Where the experts' weights live.
#[derive(Debug, Clone)]
enum Experts {
    /// Device tensors, stacked: gate, up `[E + S, H, I]` and down `[E + S, I, H]` (a GPU).
    Device(Box<[Tensor<3>; 3]>),
    /// Host memory in the checkpoint's float type (the CPU: bf16 at half the size of f32).
    Host(HostExperts),
}

/// A layer's experts read and laid out on the host, not yet on the device ([`Moe::prepare_experts`]):
/// the next layer's are prepared on other threads while this thread uploads a layer.
pub struct PreparedExperts {
    routed: Vec<[PreparedTensor<2>; 3]>,
    shared: Option<[PreparedTensor<2>; 3]>,
}

impl Moe {
    /// Whether the experts go to the device (and [`Moe::prepare_experts`] applies): on a GPU, or
    /// CubeCL's CPU runtime; on burn-ndarray they stay in host memory.
    pub fn experts_on_device(w: &Weights) -> bool {
        dsocr_kernels::runs_cube_kernels(w.device())
    }

    /// Read and lay out the experts under `w` on the host (the routed ones in parallel), for
    /// [`Moe::load`] on a device. Any thread.
    pub fn prepare_experts(w: &Weights, cfg: &LmConfig) -> Result<PreparedExperts, CoreError> {
        let (routed, shared) = Self::read_experts(w, cfg, |w, name, d_in, d_out| w.prepare_linear_weight(name, d_in, d_out))?;
        Ok(PreparedExperts { routed, shared })
    }

    /// Load `gate`, `experts.{0..E}.{gate,up,down}_proj` and `shared_experts` under `w`, the
    /// experts prepared already when `prepared` is given (a device only).
    pub fn load(w: &Weights, cfg: &LmConfig, prepared: Option<PreparedExperts>) -> Result<Self, CoreError> {
        let (h, e) = (cfg.hidden_size, cfg.n_routed_experts);
        let experts = if Self::experts_on_device(w) {
            let prepared = match prepared {
                Some(p) => p,
                None => Self::prepare_experts(w, cfg)?,
            };
            Self::upload_experts(w, cfg, prepared)
        } else {
            Self::load_host(w, cfg)?
        };
        Ok(Moe {
            gate: w.pp("gate").tensor_f32("weight", [e, h])?,
            experts,
            router: RouterConfig {
                top_k: cfg.num_experts_per_tok,
                shared: cfg.n_shared_experts,
                renormalise: cfg.norm_topk_prob,
                scaling: cfg.routed_scaling_factor,
            },
        })
    }

    /// Every routed expert's `[gate, up, down]` projections and the shared experts' fused ones, as
    /// `read(weights, name, d_in, d_out)` makes each. The routed experts are read in parallel:
    /// reading and laying out their ≈ 5 GB (the release's) is most of loading, one core's work per
    /// expert (docs/perf.md, "CPU"; "Cold start").
    #[allow(clippy::type_complexity)]
    fn read_experts<T: Send>(
        w: &Weights,
        cfg: &LmConfig,
        read: impl Fn(&Weights, &str, usize, usize) -> Result<T, CoreError> + Sync,
    ) -> Result<(Vec<[T; 3]>, Option<[T; 3]>), CoreError> {
        let (h, i, e, s) = (cfg.hidden_size, cfg.moe_intermediate_size, cfg.n_routed_experts, cfg.n_shared_experts);
        let projections = |w: &Weights, i: usize| -> Result<[T; 3], CoreError> {
            Ok([read(w, "gate_proj.weight", h, i)?, read(w, "up_proj.weight", h, i)?, read(w, "down_proj.weight", i, h)?])
        };
        let routed = (0..e).into_par_iter().map(|n| projections(&w.pp(format!("experts.{n}")), i)).collect::<Result<Vec<_>, _>>()?;
        let shared = if s > 0 { Some(projections(&w.pp("shared_experts"), i * s)?) } else { None };
        Ok((routed, shared))
    }

    /// Put prepared experts on the device, stacked into banks (on the loading thread: its stream).
    fn upload_experts(w: &Weights, cfg: &LmConfig, prepared: PreparedExperts) -> Experts {
        let (i, s) = (cfg.moe_intermediate_size, cfg.n_shared_experts);
        let PreparedExperts { routed, shared } = prepared;
        let mut banks: [Vec<Tensor<2>>; 3] = Default::default();
        for expert in routed {
            for (bank, t) in banks.iter_mut().zip(expert) {
                bank.push(w.upload(t));
            }
        }
        if let Some(fused) = shared {
            // Burn layout `[in, out]`: the pieces are column blocks of gate and up, row blocks of
            // down. A shape probe answers with one-element placeholders: nothing to split.
            let fused = fused.map(|t| w.upload(t));
            for n in 0..s {
                for (k, (bank, t)) in banks.iter_mut().zip(&fused).enumerate() {
                    let dim = if k == 2 { 0 } else { 1 };
                    bank.push(if w.is_shape_probe() { t.clone() } else { t.clone().narrow(dim, n * i, i) });
                }
            }
        }
        Experts::Device(Box::new(banks.map(|bank| Tensor::stack(bank, 0))))
    }

    fn load_host(w: &Weights, cfg: &LmConfig) -> Result<Experts, CoreError> {
        let (h, i, s) = (cfg.hidden_size, cfg.moe_intermediate_size, cfg.n_shared_experts);
        let (routed, shared) = Self::read_experts(w, cfg, |w, name, d_in, d_out| w.host_linear(name, d_in, d_out))?;
        if w.is_shape_probe() {
            // Empty placeholders, nothing to split: the model is for its shapes only.
            return Ok(Experts::Host(HostExperts::new(Vec::new(), Vec::new(), Vec::new(), h, i)));
        }
        let mut banks: [Vec<HostMatrix>; 3] = Default::default();
        for expert in routed {
            for (bank, m) in banks.iter_mut().zip(expert) {
                bank.push(m);
            }
        }
        if let Some(fused) = shared {
            // PyTorch layout `[out, in]`: the pieces are row blocks of gate and up, column blocks
            // of down.
            for n in 0..s {
                for (k, (bank, m)) in banks.iter_mut().zip(&fused).enumerate() {
                    bank.push(if k == 2 { m.col_block(n * i, i) } else { m.row_block(n * i, i) });
                }
            }
        }
        let [gates, ups, downs] = banks;
        Ok(Experts::Host(HostExperts::new(gates, ups, downs, h, i)))
    }

    /// Tokens `[N, H]` → `[N, H]` (left as parts where the expert kernels produce them).
    pub fn forward(&self, x: Tensor<2>) -> PartialSums {
        let [n, _] = x.dims();
        let (ids, weights) = dsocr_kernels::route(x.clone(), &self.gate, self.router);
        let (gate, up, down) = match &self.experts {
            // Host memory: group the pairs by expert there and run only the chosen experts.
            Experts::Host(experts) => return experts.forward(x, ids, weights).into(),
            Experts::Device(banks) => {
                let [gate, up, down] = &**banks;
                (gate, up, down)
            }
        };
        let slots = self.router.top_k + self.router.shared;
        let kernels = dsocr_kernels::expert_kernels_take(&x.device(), n, slots, gate.dtype(), gate.dims()[1], gate.dims()[2]);
        // Without the kernels, gathering copies N·(k + S) experts: past N·k routed experts that
        // is more than the whole bank, and running every expert is the better plan. The kernels
        // read the chosen experts where they lie, grouped by expert for batches.
        if kernels || n * self.router.top_k <= self.gate.dims()[0] {
            Self::gathered(&x, (gate, up, down), ids, weights)
        } else {
            Self::dense(&x, (gate, up, down), ids, weights).into()
        }
    }

    /// Apply only the chosen experts, reading their weights where they lie (dsocr's kernels on a
    /// GPU; gathered copies and batched matvecs otherwise): the decode path.
    fn gathered(
        x: &Tensor<2>,
        (gate, up, down): (&Tensor<3>, &Tensor<3>, &Tensor<3>),
        ids: Tensor<2, Int>,
        weights: Tensor<2>,
    ) -> PartialSums {
        let act = dsocr_kernels::expert_swiglu(x.clone(), gate, up, ids.clone());
        dsocr_kernels::expert_down_parts(act, down, ids, weights)
    }

    /// Run every expert on every token and combine with the routing weights scattered into a
    /// dense `[N, E + S]` matrix (zero for unchosen experts, one for the shared ones). Exact, with
    /// no host round trip; costs `E / k` times the necessary expert FLOPs: what runs where
    /// dsocr's kernels do not (f32 on a GPU, `--no-kernels`); in bf16/f16 a prefill's experts run
    /// grouped by expert on the tensor-core tile kernel (docs/perf.md, session 15).
    fn dense(x: &Tensor<2>, (gate, up, down): (&Tensor<3>, &Tensor<3>, &Tensor<3>), ids: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<2> {
        let [n, h] = x.dims();
        let e = gate.dims()[0];
        let combine = Tensor::<2>::zeros([n, e], (&x.device(), DType::F32)).scatter(1, ids, weights, IndexingUpdateOp::Add);
        let xs = x.clone().unsqueeze::<3>().expand([e, n, h]);
        let g = xs.clone().matmul(gate.clone());
        let u = xs.matmul(up.clone());
        let y = (silu(g) * u).matmul(down.clone()); // [E, N, H]
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
