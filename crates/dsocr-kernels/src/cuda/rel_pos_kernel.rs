//! SAM's decomposed relative-position terms ([`crate::rel_pos_terms`]): one unit per term, a dot
//! product over the head in f32. A warp's units share a query (its row read once into L1 and
//! broadcast) and write consecutive terms. This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

/// `out[bh, qy, qx, c]` (contiguous, `c < h + w`) = `q[b, head, qy·w + qx]·rh[qy, c]` for
/// `c < h`, else `·rw[qx, c − h]`.
#[cube(launch)]
pub(super) fn rel_pos_kernel<F: Float>(q: &Tensor<F>, rh: &Tensor<F>, rw: &Tensor<F>, out: &mut Tensor<F>, #[define(F)] _dtype: ElemType) {
    let idx = ABSOLUTE_POS;
    if idx < out.len() {
        let (h, w) = (rh.shape(0), rw.shape(0));
        let cols = h + w;
        let c = idx % cols;
        let query = idx / cols;
        let qx = query % w;
        let qy = (query / w) % h;
        let bh = query / (w * h);
        let heads = q.shape(1);
        let d = q.shape(3);
        let q_at = (bh / heads) * q.stride(0) + (bh % heads) * q.stride(1) + (qy * w + qx) * q.stride(2);
        let mut acc = f32::new(0.0);
        if c < h {
            let t_at = qy * rh.stride(0) + c * rh.stride(1);
            for e in 0..d {
                acc += f32::cast_from(q[q_at + e * q.stride(3)]) * f32::cast_from(rh[t_at + e * rh.stride(2)]);
            }
        } else {
            let t_at = qx * rw.stride(0) + (c - h) * rw.stride(1);
            for e in 0..d {
                acc += f32::cast_from(q[q_at + e * q.stride(3)]) * f32::cast_from(rw[t_at + e * rw.stride(2)]);
            }
        }
        out[idx] = F::cast_from(acc);
    }
}
