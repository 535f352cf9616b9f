//! SAM's decomposed relative-position terms (docs/model.md §4.1): for a query at grid cell
//! `(qy, qx)`, its dot products with the table rows `Rh[qy, ky]` for every key row and
//! `Rw[qx, kx]` for every key column, which [`crate::encoder_attention`] adds to the scores.
//!
//! Written as two batched matrix products (the reference below, as the official code's einsums),
//! each new number of views is a new shape for Burn's matmul to autotune: ≈ 11 s of a fresh GPU's
//! first page, and again whenever a batch of a new size comes along. `rel_pos_terms_kernel` (in
//! `cuda` builds) is one small kernel instead (a unit per term, a dot product over the head), on when
//! [`crate::KernelSettings::rel_pos_kernel`] says so (docs/perf.md, session 26).

use burn::prelude::*;

use crate::RelPosBias;

/// The terms of queries `q` `[B, heads, n, d]` on an `h × w` grid (`n = h·w`, row-major) with
/// the tables `rh` `[h, h, d]` (query row, key row) and `rw` `[w, w, d]` (query column, key
/// column), unscaled: `rel_h[b·heads + head, qy, qx, ky] = q·rh[qy, ky]`, `rel_w[…, kx] = q·rw[qx, kx]`.
pub fn rel_pos_terms(q: Tensor<4>, rh: &Tensor<3>, rw: &Tensor<3>) -> RelPosBias {
    #[cfg(feature = "cuda")]
    if crate::kernels_enabled(&q.device()) && crate::settings().rel_pos_kernel {
        return rel_pos_terms_kernel(q, rh, rw);
    }
    rel_pos_terms_reference(q, rh, rw)
}

/// [`rel_pos_terms`] on dsocr's kernel, whatever [`crate::KernelSettings::rel_pos_kernel`] says
/// (the checks call it directly); `q` must be on a CubeCL device.
#[cfg(feature = "cuda")]
pub fn rel_pos_terms_kernel(q: Tensor<4>, rh: &Tensor<3>, rw: &Tensor<3>) -> RelPosBias {
    let [b, heads, n, d] = q.dims();
    let ([h, h2, dh], [w, w2, dw]) = (rh.dims(), rw.dims());
    assert!(
        h * w == n && h == h2 && w == w2 && dh == d && dw == d,
        "relative terms: {n} queries of {d} on tables {:?} and {:?}",
        rh.dims(),
        rw.dims()
    );
    // The queries as rows (a copy of the projection's view: small beside the terms); both terms
    // of a query side by side, `[B·heads, h, w, h + w]` (rows padded on CUDA: the kernel writes
    // through the output's strides), whose two halves the attention kernel reads through theirs.
    let rows = q.reshape([b * heads * n, d]);
    let terms = crate::cuda::rel_pos_terms(rows, rh.clone(), rw.clone()).reshape([b * heads, h, w, h + w]);
    RelPosBias { rel_h: terms.clone().narrow(3, 0, h), rel_w: terms.narrow(3, h, w) }
}

/// The plain Burn definition of [`rel_pos_terms`]: a batched product over query rows, another
/// over query columns.
pub fn rel_pos_terms_reference(q: Tensor<4>, rh: &Tensor<3>, rw: &Tensor<3>) -> RelPosBias {
    let [b, heads, _, d] = q.dims();
    let ([h, ..], [w, ..]) = (rh.dims(), rw.dims());
    let bh = b * heads;
    let rq = q.reshape([bh, h, w, d]);
    // rel_h[b, qy, qx, ky]: batch over qy.
    let rel_h = rq.clone().permute([1, 0, 2, 3]).reshape([h, bh * w, d]).matmul(rh.clone().swap_dims(1, 2)); // [h, bh·w, h]
    let rel_h = rel_h.reshape([h, bh, w, h]).permute([1, 0, 2, 3]); // [bh, qy, qx, ky]
    // rel_w[b, qy, qx, kx]: batch over qx.
    let rel_w = rq.permute([2, 0, 1, 3]).reshape([w, bh * h, d]).matmul(rw.clone().swap_dims(1, 2)); // [w, bh·h, w]
    let rel_w = rel_w.reshape([w, bh, h, w]).permute([1, 2, 0, 3]); // [bh, qy, qx, kx]
    RelPosBias { rel_h, rel_w }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Distribution};

    fn host(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// The reference against the dot products written out, on a non-square grid with the queries
    /// a view of a fused projection (as SAM makes them).
    #[test]
    fn reference_is_the_dot_products_with_the_tables() {
        let dev = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        let (b, heads, h, w, d) = (2, 3, 4, 5, 8);
        let n = h * w;
        let normal =
            |shape: Vec<usize>| Tensor::<1>::random([shape.iter().product::<usize>()], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let qkv = normal(vec![b, n, 3 * heads, d]).reshape([b, n, 3 * heads, d]);
        let q = qkv.narrow(2, 0, heads).swap_dims(1, 2);
        let (rh, rw) = (normal(vec![h, h, d]).reshape([h, h, d]), normal(vec![w, w, d]).reshape([w, w, d]));
        let got = rel_pos_terms(q.clone(), &rh, &rw);
        let (gh, gw) = (host(got.rel_h), host(got.rel_w));
        let (qv, rhv, rwv) = (host(q), host(rh.unsqueeze()), host(rw.unsqueeze()));
        for bh in 0..b * heads {
            for (qy, qx) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
                let row = &qv[(bh * n + qy * w + qx) * d..][..d];
                let dot = |table: &[f32]| row.iter().zip(table).map(|(a, b)| a * b).sum::<f32>();
                for ky in 0..h {
                    let want = dot(&rhv[(qy * h + ky) * d..][..d]);
                    assert!((gh[((bh * h + qy) * w + qx) * h + ky] - want).abs() < 1e-5);
                }
                for kx in 0..w {
                    let want = dot(&rwv[(qx * w + kx) * d..][..d]);
                    assert!((gw[((bh * h + qy) * w + qx) * w + kx] - want).abs() < 1e-5);
                }
            }
        }
    }
}
