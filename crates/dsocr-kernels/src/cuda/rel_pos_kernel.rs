//! SAM's decomposed relative-position terms ([`crate::rel_pos_terms`]): one unit per term, a dot
//! product over the head in f32. A warp's units share a query (its row read once into L1 and
//! broadcast) and write consecutive terms. This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

/// `out[row, c]` (`row` = (b·heads + head)·h·w + qy·w + qx, `c < h + w`) = `q[row]·rh[qy, c]`
/// for `c < h`, else `q[row]·rw[qx, c − h]`, with `q` `[B·heads·h·w, d]`.
#[cube(launch)]
pub(super) fn rel_pos_kernel<F: Float>(q: &Tensor<F>, rh: &Tensor<F>, rw: &Tensor<F>, out: &mut Tensor<F>, #[define(F)] _dtype: ElemType) {
    let idx = ABSOLUTE_POS;
    let cols = out.shape(1);
    if idx < out.shape(0) * cols {
        let (h, w) = (rh.shape(0), rw.shape(0));
        let c = idx % cols;
        let row = idx / cols;
        let qx = row % w;
        let qy = (row / w) % h;
        let d = q.shape(1);
        let q_at = row * q.stride(0);
        let mut acc = f32::new(0.0);
        if c < h {
            let t_at = qy * rh.stride(0) + c * rh.stride(1);
            for e in 0..d {
                acc += f32::cast_from(q[q_at + e * q.stride(1)]) * f32::cast_from(rh[t_at + e * rh.stride(2)]);
            }
        } else {
            let t_at = qx * rw.stride(0) + (c - h) * rw.stride(1);
            for e in 0..d {
                acc += f32::cast_from(q[q_at + e * q.stride(1)]) * f32::cast_from(rw[t_at + e * rw.stride(2)]);
            }
        }
        let at = row * out.stride(0) + c * out.stride(1);
        out[at] = F::cast_from(acc);
    }
}
