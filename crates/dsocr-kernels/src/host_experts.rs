//! The mixture of experts where the tensors live in host memory (the CPU backend): only the
//! chosen experts run, each once on all of its tokens, from bf16 weights (docs/model.md §6.3,
//! docs/perf.md "CPU").
//!
//! On a GPU the routing stays on the device and dsocr's kernels read the chosen experts in place.
//! On the CPU reading the router's choice is free (the tensors are host memory already), so the
//! (token, expert) pairs are grouped by expert there: each expert used by the batch multiplies
//! the rows that chose it at once ([`crate::host_matmul`]: streamed for a few rows, the threaded
//! GEMM for many), and its weighted output is added back into those rows. That costs exactly the routed FLOPs, where the generic paths either
//! gather a copy of every chosen expert's weights per token (decode) or run all experts on every
//! token (prefill, `E / k` times the work).

use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use dsocr_core::HostMatrix;

use crate::host_linear::host_matmul;

/// The experts of one MoE layer in host memory: per expert its gate and up projections
/// `[I, H]` and down projection `[H, I]` (PyTorch layout, rows are outputs), routed experts first
/// and then the shared ones, numbered as the router numbers them.
#[derive(Debug, Clone)]
pub struct HostExperts {
    gate: Vec<HostMatrix>,
    up: Vec<HostMatrix>,
    down: Vec<HostMatrix>,
    hidden: usize,
    inner: usize,
}

impl HostExperts {
    /// Experts from their projections; every gate and up is `[inner, hidden]` and every down
    /// `[hidden, inner]` (checked: a mismatch is a loader bug).
    pub fn new(gate: Vec<HostMatrix>, up: Vec<HostMatrix>, down: Vec<HostMatrix>, hidden: usize, inner: usize) -> Self {
        assert!(gate.len() == up.len() && up.len() == down.len(), "one gate, up and down per expert");
        assert!(
            gate.iter().chain(&up).all(|m| (m.rows, m.cols) == (inner, hidden)) && down.iter().all(|m| (m.rows, m.cols) == (hidden, inner)),
            "expert projections of [{inner}, {hidden}] and [{hidden}, {inner}]"
        );
        HostExperts { gate, up, down, hidden, inner }
    }

    /// Experts held (routed and shared).
    pub fn len(&self) -> usize {
        self.gate.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.gate.is_empty()
    }

    /// `Σ_s weights[m, s] · down_e(SiLU(gate_e(x_m)) ⊙ up_e(x_m))` with `e = ids[m, s]`, each
    /// chosen expert run once on the rows that chose it. `x` `[M, H]`, `ids` and `weights`
    /// `[M, S]` → `[M, H]` in `x`'s float type, summed in f32 as the reference does. Reads every
    /// input back to the host: for tensors in host memory (the CPU backend).
    pub fn forward(&self, x: Tensor<2>, ids: Tensor<2, Int>, weights: Tensor<2>) -> Tensor<2> {
        let [m, h] = x.dims();
        assert_eq!(h, self.hidden, "rows of the model's width");
        let (device, dtype) = (x.device(), x.dtype());
        let host = x.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 rows");
        let ids = ids.into_data().convert::<i64>().try_into_vec::<i64>().expect("router ids convert to i64");
        let weights = weights.into_data().convert::<f32>().try_into_vec::<f32>().expect("router weights convert to f32");
        let slots = ids.len() / m.max(1);
        let mut out = vec![0.0f32; m * h];
        for (expert, (rows, row_weights)) in group_by_expert(&ids, &weights, slots, self.len()).into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let xs: Vec<f32> = rows.iter().flat_map(|&r| host[r * h..(r + 1) * h].iter().copied()).collect();
            let y = self.expert(expert, &xs, rows.len(), &device);
            for ((&r, &w), yr) in rows.iter().zip(&row_weights).zip(y.chunks_exact(h)) {
                out[r * h..(r + 1) * h].iter_mut().zip(yr).for_each(|(o, v)| *o += w * v);
            }
        }
        Tensor::<2>::from_data(TensorData::new(out, [m, h]), (&device, DType::F32)).cast(dtype)
    }

    /// One expert on `n` host rows `xs` `[n, H]` → `[n, H]`.
    fn expert(&self, e: usize, xs: &[f32], n: usize, device: &Device) -> Vec<f32> {
        let g = host_matmul(xs, n, &self.gate[e], device);
        let u = host_matmul(xs, n, &self.up[e], device);
        let act: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
        debug_assert_eq!(act.len(), n * self.inner);
        host_matmul(&act, n, &self.down[e], device)
    }
}

/// For each of `experts` experts, the rows that chose it and their routing weights, rows in
/// ascending order. `ids` and `weights` are `[M, slots]` row-major. An id outside the bank is a
/// router bug, not bad input: it panics with the id.
fn group_by_expert(ids: &[i64], weights: &[f32], slots: usize, experts: usize) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut groups = vec![(Vec::new(), Vec::new()); experts];
    for (pair, (&id, &w)) in ids.iter().zip(weights).enumerate() {
        let expert = usize::try_from(id).ok().filter(|&e| e < experts).unwrap_or_else(|| panic!("router chose expert {id} of {experts}"));
        let (rows, ws) = &mut groups[expert];
        rows.push(pair / slots.max(1));
        ws.push(w);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsocr_core::HostElems;

    #[test]
    fn pairs_are_grouped_by_expert_in_row_order() {
        // Two rows, three slots: row 0 → experts 2, 0, 3; row 1 → 0, 2, 3.
        let ids = [2, 0, 3, 0, 2, 3];
        let w = [0.5, 0.25, 1.0, 0.75, 0.125, 1.0];
        let g = group_by_expert(&ids, &w, 3, 4);
        assert_eq!(g[0], (vec![0, 1], vec![0.25, 0.75]));
        assert!(g[1].0.is_empty());
        assert_eq!(g[2], (vec![0, 1], vec![0.5, 0.125]));
        assert_eq!(g[3], (vec![0, 1], vec![1.0, 1.0]));
    }

    /// Seeded values in [-0.2, 0.2), rounded to bf16 so both element types hold them exactly.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        (0..n).map(|k| half::bf16::from_f32((((k as u64 * 2654435761 + seed * 97) % 1000) as f32 / 1000.0 - 0.5) * 0.4).to_f32()).collect()
    }

    fn case(bf16: bool) {
        let device = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        // 20 rows: experts 4 and 5 are chosen by all of them (the GEMM path), 0, 1 and 3 by at most
        // 7 (row by row), 2 by none.
        let (m, h, i, e, s) = (20, 40, 24, 6, 3);
        let host = |rows: usize, cols: usize, seed: u64| {
            let v = values(rows * cols, seed);
            let elems = if bf16 { HostElems::Bf16(v.iter().map(|&x| half::bf16::from_f32(x)).collect()) } else { HostElems::F32(v) };
            HostMatrix { rows, cols, elems }
        };
        let gate: Vec<_> = (0..e).map(|n| host(i, h, 10 + n as u64)).collect();
        let up: Vec<_> = (0..e).map(|n| host(i, h, 20 + n as u64)).collect();
        let down: Vec<_> = (0..e).map(|n| host(h, i, 30 + n as u64)).collect();
        // The reference's banks in Burn's layout, [E, in, out].
        let bank = |ms: &[HostMatrix]| {
            let t: Vec<Tensor<2>> =
                ms.iter().map(|m| Tensor::<2>::from_data(TensorData::new(m.to_f32(), [m.rows, m.cols]), &device).transpose()).collect();
            Tensor::stack::<3>(t, 0)
        };
        let (gb, ub, db) = (bank(&gate), bank(&up), bank(&down));
        let experts = HostExperts::new(gate, up, down, h, i);
        assert_eq!(experts.len(), e);
        let x = Tensor::<2>::from_data(TensorData::new(values(m * h, 4).iter().map(|v| v * 5.0).collect::<Vec<f32>>(), [m, h]), &device);
        let ids: Vec<i64> = (0..m).flat_map(|r| [5, [0, 1, 3][r % 3], 4]).collect();
        let w: Vec<f32> = (0..m * s).map(|k| 0.1 + 0.01 * k as f32).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [m, s]), &device);
        let w = Tensor::<2>::from_data(TensorData::new(w, [m, s]), &device);
        let got = experts.forward(x.clone(), ids.clone(), w.clone());
        let act = crate::expert_swiglu_reference(x, &gb, &ub, ids.clone());
        let want = crate::expert_down_reference(act, &db, ids, w);
        let (got, want) = (got.into_data().try_to_vec::<f32>().unwrap(), want.into_data().try_to_vec::<f32>().unwrap());
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!(scale > 1e-2, "the case exercises non-zero outputs ({scale})");
        assert!(
            worst <= 1e-5 * scale.max(1.0),
            "host experts ({}) and the gathered reference differ by {worst}",
            if bf16 { "bf16" } else { "f32" }
        );
    }

    #[test]
    fn host_experts_equal_the_gathered_reference_in_f32() {
        case(false);
    }

    #[test]
    fn host_experts_from_bf16_equal_the_reference_on_the_widened_weights() {
        case(true);
    }
}
