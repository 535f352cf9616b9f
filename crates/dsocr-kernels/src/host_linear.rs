//! Matrix products against weights in host memory ([`HostMatrix`], PyTorch layout `[out, in]`,
//! bf16 or f32), for the CPU path (docs/perf.md, "CPU").
//!
//! A general GEMM packs its right-hand matrix before multiplying: for the handful of rows of a
//! decode step that packing copies the whole weight on every call (half of a decode step's time
//! on burn-ndarray, measured), while the product itself only needs to stream the weight once. So
//! up to [`SKINNY_ROWS`] rows each output's weight row is read once and dotted with every input
//! row, in parallel over outputs; past it the weight is widened to f32 once and multiplied on the
//! backend's threaded GEMM, where packing is amortised.

use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use dsocr_core::HostMatrix;
use rayon::prelude::*;

/// Up to this many rows, weights are streamed row by row: the decode case, bound by memory, and an
/// expert's share of a short prompt, where widening the weight for a GEMM costs about as much as
/// the products.
pub const SKINNY_ROWS: usize = 16;

/// Outputs per parallel task of the row-by-row products.
const OUTPUTS_PER_TASK: usize = 32;

/// `x` `[M, in]` · `wᵀ` → `[M, out]`, in `x`'s float type. Reads `x` back to the host: for tensors
/// in host memory (the CPU backend).
pub fn host_linear(x: Tensor<2>, w: &HostMatrix) -> Tensor<2> {
    let [m, k] = x.dims();
    assert_eq!(k, w.cols, "rows of the weight's input width");
    let (device, dtype) = (x.device(), x.dtype());
    let xs = x.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 rows");
    let y = host_matmul(&xs, m, w, &device);
    Tensor::<2>::from_data(TensorData::new(y, [m, w.rows]), (&device, DType::F32)).cast(dtype)
}

/// Host rows `xs` `[m, in]` (row-major) · `wᵀ` → `[m, out]` row-major. `device` is where the
/// GEMM of many rows runs (the CPU device). Decode rows are read where they lie; the GEMM copies
/// them into a tensor.
pub fn host_matmul(xs: &[f32], m: usize, w: &HostMatrix, device: &Device) -> Vec<f32> {
    if m <= SKINNY_ROWS { skinny(xs, m, w) } else { gemm(xs.to_vec(), m, w, device) }
}

fn skinny(xs: &[f32], m: usize, w: &HostMatrix) -> Vec<f32> {
    let k = w.cols;
    // Transposed, [out, m]: each task's outputs are contiguous.
    let mut y_t = vec![0.0f32; w.rows * m];
    y_t.par_chunks_mut(m * OUTPUTS_PER_TASK).enumerate().for_each(|(task, chunk)| {
        for (o, y) in chunk.chunks_exact_mut(m).enumerate() {
            let j = task * OUTPUTS_PER_TASK + o;
            for (r, y) in y.iter_mut().enumerate() {
                *y = w.dot_row(j, &xs[r * k..(r + 1) * k]);
            }
        }
    });
    transpose(&y_t, w.rows, m)
}

fn gemm(xs: Vec<f32>, m: usize, w: &HostMatrix, device: &Device) -> Vec<f32> {
    let weight = Tensor::<2>::from_data(TensorData::new(w.to_f32(), [w.rows, w.cols]), (device, DType::F32)).transpose();
    let x = Tensor::<2>::from_data(TensorData::new(xs, [m, w.cols]), (device, DType::F32));
    x.matmul(weight).into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 rows")
}

/// `[rows, cols]` → `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    if cols == 1 {
        return v.to_vec();
    }
    let mut out = vec![0.0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsocr_core::HostElems;

    #[test]
    fn skinny_and_gemm_equal_burns_matmul() {
        let device = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        let (k, n) = (37, 70);
        let v: Vec<f32> = (0..k * n).map(|i| half::bf16::from_f32(((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.3).to_f32()).collect();
        for bf16 in [false, true] {
            let elems =
                if bf16 { HostElems::Bf16(v.iter().map(|&x| half::bf16::from_f32(x)).collect()) } else { HostElems::F32(v.clone()) };
            let w = HostMatrix { rows: n, cols: k, elems };
            let reference = Tensor::<2>::from_data(TensorData::new(v.clone(), [n, k]), &device).transpose();
            for m in [1, 3, SKINNY_ROWS, SKINNY_ROWS + 1, 20] {
                let x = Tensor::<2>::from_data(
                    TensorData::new((0..m * k).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect::<Vec<f32>>(), [m, k]),
                    &device,
                );
                let want = x.clone().matmul(reference.clone()).into_data().try_to_vec::<f32>().unwrap();
                let got = host_linear(x, &w).into_data().try_to_vec::<f32>().unwrap();
                assert_eq!(got.len(), m * n);
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst < 1e-5, "{m} rows ({}): differ by {worst}", if bf16 { "bf16" } else { "f32" });
            }
        }
    }
}
