//! The two resizes the encoders apply to learned position tables when the input grid differs from
//! the trained one (docs/model.md §4.6), expressed as small interpolation matrices, and the cache
//! that makes each resized table once per grid size.
//!
//! The resizes run on the host, in f32 as the reference: a table is a few megabytes, read from the
//! device once per size, while as products on a GPU each new size was a new shape for Burn's
//! matmul to autotune (≈ 15 s of a fresh machine's first page: docs/perf.md, session 25).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use burn::prelude::*;
use dsocr_preprocess::keys_cubic;

/// `[n_out, n_in]` weights of PyTorch's `interpolate(mode="bicubic", antialias=True,
/// align_corners=False)` along one axis.
pub fn bicubic_aa_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let scale = n_in as f64 / n_out as f64;
    let (support, invscale) = if scale >= 1.0 { (2.0 * scale, 1.0 / scale) } else { (2.0, 1.0) };
    let mut m = vec![0f32; n_out * n_in];
    for i in 0..n_out {
        let center = scale * (i as f64 + 0.5);
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
        let w: Vec<f64> = (xmin..xmax).map(|j| keys_cubic((j as f64 - center + 0.5) * invscale)).collect();
        let total: f64 = w.iter().sum();
        for (j, wj) in (xmin..xmax).zip(w) {
            m[i * n_in + j] = if total != 0.0 { (wj / total) as f32 } else { wj as f32 };
        }
    }
    m
}

/// `[n_out, n_in]` weights of PyTorch's `interpolate(mode="linear", align_corners=False)`.
pub fn linear_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let scale = n_in as f64 / n_out as f64;
    let mut m = vec![0f32; n_out * n_in];
    for i in 0..n_out {
        let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src as usize).min(n_in - 1);
        let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f64;
        m[i * n_in + i0] += (1.0 - l1) as f32;
        m[i * n_in + i1] += l1 as f32;
    }
    m
}

/// A tensor's values as f32 on the host.
fn host_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 after convert")
}

/// `m` `[rows, n]` · `x` `[n, width]` on the host, summing in f32 in order of `n`.
fn host_product(m: &[f32], rows: usize, x: &[f32], n: usize, width: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * width];
    for (r, out_row) in out.chunks_exact_mut(width).enumerate() {
        for (i, &weight) in m[r * n..(r + 1) * n].iter().enumerate() {
            if weight != 0.0 {
                for (o, &v) in out_row.iter_mut().zip(&x[i * width..(i + 1) * width]) {
                    *o += weight * v;
                }
            }
        }
    }
    out
}

/// Resize a square grid of vectors `[g_in, g_in, c]` to `[g_out, g_out, c]` with anti-aliased
/// bicubic interpolation, in f32, returning the input's float type on its device.
pub fn resize_grid_bicubic_aa(grid: Tensor<3>, g_out: usize) -> Tensor<3> {
    let [g_in, _, c] = grid.dims();
    if g_in == g_out {
        return grid;
    }
    let (dtype, device) = (grid.dtype(), grid.device());
    let m = bicubic_aa_matrix(g_in, g_out);
    let x = host_values(grid);
    // Rows: [g_out, g_in] · [g_in, g_in·c] → [g_out, g_in, c].
    let rows = host_product(&m, g_out, &x, g_in, g_in * c);
    // Columns: per output row, [g_out, g_in] · [g_in, c].
    let out: Vec<f32> = rows.chunks_exact(g_in * c).flat_map(|row| host_product(&m, g_out, row, g_in, c)).collect();
    Tensor::from_data(TensorData::new(out, [g_out, g_out, c]), (&device, dtype))
}

/// Resize a table `[n_in, c]` along its length to `[n_out, c]` with linear interpolation, in f32,
/// returning the input's float type on its device.
pub fn resize_rows_linear(table: Tensor<2>, n_out: usize) -> Tensor<2> {
    let [n_in, c] = table.dims();
    if n_in == n_out {
        return table;
    }
    let (dtype, device) = (table.dtype(), table.device());
    let out = host_product(&linear_matrix(n_in, n_out), n_out, &host_values(table), n_in, c);
    Tensor::from_data(TensorData::new(out, [n_out, c]), (&device, dtype))
}

/// Tables derived from a learned one, made once for each grid size an input brings and kept (on
/// the table's device) for the module's lifetime. Clones share them; a module's stream copy
/// (`dsocr_core::StreamCopy`) starts its own, so that its tables live on its own stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct PerSize<const D: usize>(Arc<Mutex<HashMap<usize, Tensor<D>>>>);

impl<const D: usize> PerSize<D> {
    /// The table for `size`, made by `make` the first time.
    pub(crate) fn get(&self, size: usize, make: impl FnOnce() -> Tensor<D>) -> Tensor<D> {
        let mut tables = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tables.entry(size).or_insert_with(make).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_made_once_per_size_and_shared_by_clones() {
        let device = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        let tables = PerSize::<2>::default();
        let made = std::cell::Cell::new(0);
        let make = |n: usize| {
            made.set(made.get() + 1);
            Tensor::<2>::from_data(TensorData::new(vec![n as f32; n * 2], [n, 2]), &device)
        };
        let first = tables.get(3, || make(3));
        let again = tables.get(3, || make(3));
        let other = tables.get(5, || make(5));
        assert_eq!(made.get(), 2, "one table per size");
        assert_eq!(first.to_data(), again.to_data());
        assert_eq!((first.dims(), other.dims()), ([3, 2], [5, 2]));
        let clone = tables.clone();
        assert_eq!(clone.get(5, || panic!("a clone makes no table of its own")).to_data(), other.to_data());
        // A new cache (as a stream copy starts) makes its own.
        assert_eq!(PerSize::<2>::default().get(5, || make(5)).dims(), [5, 2]);
        assert_eq!(made.get(), 3);
    }

    #[test]
    fn rows_sum_to_one() {
        for (i, o) in [(64, 40), (64, 32), (64, 80), (16, 10), (16, 20), (127, 79)] {
            for m in [bicubic_aa_matrix(i, o), linear_matrix(i, o)] {
                for r in 0..o {
                    let s: f32 = m[r * i..(r + 1) * i].iter().sum();
                    assert!((s - 1.0).abs() < 1e-5, "{i}->{o} row {r}: {s}");
                }
            }
        }
    }

    #[test]
    fn linear_matches_pytorch_example() {
        // torch.nn.functional.interpolate(torch.tensor([[[0., 1., 2., 3.]]]), size=6, mode="linear")
        let m = linear_matrix(4, 6);
        let x = [0.0f32, 1.0, 2.0, 3.0];
        let y: Vec<f32> = (0..6).map(|r| (0..4).map(|c| m[r * 4 + c] * x[c]).sum()).collect();
        // src = (i + 0.5)·(4/6) − 0.5 = [-0.1667→0, 0.5, 1.1667, 1.8333, 2.5, 3.1667→clamped to 3]
        let expect = [0.0, 0.5, 1.1666666, 1.8333333, 2.5, 3.0];
        for (a, b) in y.iter().zip(expect) {
            assert!((a - b).abs() < 1e-5, "{y:?}");
        }
    }
}
