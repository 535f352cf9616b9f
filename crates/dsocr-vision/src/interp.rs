//! The two resizes the encoders apply to learned position tables when the input grid differs from
//! the trained one (docs/model.md §4.6), expressed as small interpolation matrices built on the
//! host: resizing a table is then one or two matrix products on the device, in f32 as the
//! reference.

use burn::prelude::*;
use burn::tensor::DType;
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

fn matrix(data: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(data, [rows, cols]), (device, DType::F32))
}

/// Resize a square grid of vectors `[g_in, g_in, c]` to `[g_out, g_out, c]` with anti-aliased
/// bicubic interpolation, in f32, returning the input's float type.
pub fn resize_grid_bicubic_aa(grid: Tensor<3>, g_out: usize) -> Tensor<3> {
    let [g_in, _, c] = grid.dims();
    if g_in == g_out {
        return grid;
    }
    let dtype = grid.dtype();
    let device = grid.device();
    let m = matrix(bicubic_aa_matrix(g_in, g_out), g_out, g_in, &device);
    let x = grid.cast(DType::F32);
    // Rows: [g_out, g_in] · [g_in, g_in·c] → [g_out, g_in, c].
    let x = m.clone().matmul(x.reshape([g_in, g_in * c])).reshape([g_out, g_in, c]);
    // Columns: per output row, [g_out, g_in] · [g_in, c].
    let x = m.unsqueeze::<3>().expand([g_out, g_out, g_in]).matmul(x);
    x.cast(dtype)
}

/// Resize a table `[n_in, c]` along its length to `[n_out, c]` with linear interpolation, in f32.
pub fn resize_rows_linear(table: Tensor<2>, n_out: usize) -> Tensor<2> {
    let [n_in, _] = table.dims();
    if n_in == n_out {
        return table;
    }
    let dtype = table.dtype();
    let m = matrix(linear_matrix(n_in, n_out), n_out, n_in, &table.device());
    m.matmul(table.cast(DType::F32)).cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

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
