//! Matrices kept in host memory in the checkpoint's own float type, for the CPU path.
//!
//! burn-ndarray computes in f32 only, so a model loaded through Burn tensors holds the release's
//! bf16 weights at twice their size (13 GB for DeepSeek-OCR). The MoE experts are three quarters
//! of the parameters and each token uses 8 of 66 per layer: kept as bf16 here and widened row by
//! row as they are multiplied, they cost half the memory and half the memory traffic of f32
//! (docs/perf.md, "CPU"). Widening bf16 to f32 is exact, so results equal f32 weights'.

use half::bf16;

/// The elements of a [`HostMatrix`].
#[derive(Debug, Clone)]
pub enum HostElems {
    /// bfloat16, as the release stores them.
    Bf16(Vec<bf16>),
    /// 32-bit floats (checkpoints saved in f32, such as the parity fixtures).
    F32(Vec<f32>),
}

/// A row-major `[rows, cols]` matrix in host memory. Linear weights keep PyTorch's layout
/// `[d_out, d_in]`: row `j` holds the weights of output `j`, contiguous for a dot product.
#[derive(Debug, Clone)]
pub struct HostMatrix {
    /// Rows (outputs of a linear weight).
    pub rows: usize,
    /// Columns (inputs of a linear weight).
    pub cols: usize,
    /// `rows × cols` elements, row-major (empty for a shape probe's placeholder).
    pub elems: HostElems,
}

impl HostMatrix {
    /// Matrices of equal width one above the other (linear layers side by side along their
    /// outputs, e.g. q, k and v).
    pub fn stack_rows(parts: Vec<HostMatrix>) -> HostMatrix {
        let cols = parts.first().map_or(0, |p| p.cols);
        assert!(parts.iter().all(|p| p.cols == cols), "stacked matrices share their width");
        let rows = parts.iter().map(|p| p.rows).sum();
        let elems = if parts.iter().all(|p| matches!(p.elems, HostElems::Bf16(_))) {
            HostElems::Bf16(
                parts
                    .into_iter()
                    .flat_map(|p| match p.elems {
                        HostElems::Bf16(v) => v,
                        HostElems::F32(_) => unreachable!("all bf16"),
                    })
                    .collect(),
            )
        } else {
            HostElems::F32(parts.iter().flat_map(HostMatrix::to_f32).collect())
        };
        HostMatrix { rows, cols, elems }
    }

    /// Rows `start..start + n` as a matrix of their own.
    pub fn row_block(&self, start: usize, n: usize) -> HostMatrix {
        let range = start * self.cols..(start + n) * self.cols;
        let elems = match &self.elems {
            HostElems::Bf16(v) => HostElems::Bf16(v[range].to_vec()),
            HostElems::F32(v) => HostElems::F32(v[range].to_vec()),
        };
        HostMatrix { rows: n, cols: self.cols, elems }
    }

    /// Columns `start..start + n` of every row, as a matrix of their own.
    pub fn col_block(&self, start: usize, n: usize) -> HostMatrix {
        fn pick<T: Copy>(v: &[T], cols: usize, start: usize, n: usize) -> Vec<T> {
            v.chunks_exact(cols).flat_map(|row| row[start..start + n].iter().copied()).collect()
        }
        let elems = match &self.elems {
            HostElems::Bf16(v) => HostElems::Bf16(pick(v, self.cols, start, n)),
            HostElems::F32(v) => HostElems::F32(pick(v, self.cols, start, n)),
        };
        HostMatrix { rows: self.rows, cols: n, elems }
    }

    /// Row `j` widened to f32 into `out` (`cols` long).
    pub fn row_into(&self, j: usize, out: &mut [f32]) {
        let range = j * self.cols..(j + 1) * self.cols;
        match &self.elems {
            HostElems::Bf16(v) => out.iter_mut().zip(&v[range]).for_each(|(o, &x)| *o = widen_bf16(x)),
            HostElems::F32(v) => out.copy_from_slice(&v[range]),
        }
    }

    /// Row `j` · `x` (`cols` long), widening on the fly; eight running sums so the loop
    /// vectorises.
    pub fn dot_row(&self, j: usize, x: &[f32]) -> f32 {
        let range = j * self.cols..(j + 1) * self.cols;
        match &self.elems {
            HostElems::Bf16(v) => dot(&v[range], x, widen_bf16),
            HostElems::F32(v) => dot(&v[range], x, |w| w),
        }
    }

    /// The whole matrix widened to f32, row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.elems {
            HostElems::Bf16(v) => v.iter().map(|&x| widen_bf16(x)).collect(),
            HostElems::F32(v) => v.clone(),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match &self.elems {
            HostElems::Bf16(v) => v.len() * 2,
            HostElems::F32(v) => v.len() * 4,
        }
    }
}

/// bf16 → f32 is the bf16 bits in the top half of an f32 (exact; a NaN stays a NaN).
#[inline(always)]
fn widen_bf16(w: bf16) -> f32 {
    f32::from_bits(u32::from(w.to_bits()) << 16)
}

fn dot<T: Copy>(w: &[T], x: &[f32], widen: fn(T) -> f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { dot_avx2_fma(w, x, widen) };
    }
    dot_lanes::<T, false>(w, x, widen)
}

/// [`dot_lanes`] compiled for AVX2 + FMA (the default x86-64 target has neither; the release
/// binary stays portable and takes this path where the CPU has them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma<T: Copy>(w: &[T], x: &[f32], widen: fn(T) -> f32) -> f32 {
    dot_lanes::<T, true>(w, x, widen)
}

/// Eight running sums so the loop vectorises; `FMA`: fused multiply-adds (only where the CPU has
/// them: `mul_add` is a library call otherwise).
#[inline(always)]
fn dot_lanes<T: Copy, const FMA: bool>(w: &[T], x: &[f32], widen: fn(T) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let (wc, xc) = (w.chunks_exact(8), x.chunks_exact(8));
    let tail: f32 = wc.remainder().iter().zip(xc.remainder()).map(|(&a, &b)| widen(a) * b).sum();
    for (a, b) in wc.zip(xc) {
        for l in 0..8 {
            acc[l] = if FMA { widen(a[l]).mul_add(b[l], acc[l]) } else { acc[l] + widen(a[l]) * b[l] };
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> HostMatrix {
        // 2 × 3: [[0, 1, 2], [3, 4, 5]]
        HostMatrix { rows: 2, cols: 3, elems: HostElems::Bf16((0..6).map(|i| bf16::from_f32(i as f32)).collect()) }
    }

    #[test]
    fn blocks_and_rows() {
        assert_eq!(m().row_block(1, 1).to_f32(), vec![3.0, 4.0, 5.0]);
        assert_eq!(m().col_block(1, 2).to_f32(), vec![1.0, 2.0, 4.0, 5.0]);
        let mut row = [0.0; 3];
        m().row_into(1, &mut row);
        assert_eq!(row, [3.0, 4.0, 5.0]);
        assert_eq!(m().bytes(), 12);
        let both = HostMatrix::stack_rows(vec![m(), m().row_block(0, 1)]);
        assert_eq!((both.rows, both.cols, both.to_f32()), (3, 3, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 1.0, 2.0]));
        let x: Vec<f32> = (0..11).map(|i| i as f32).collect();
        let long = HostMatrix { rows: 1, cols: 11, elems: HostElems::F32(x.clone()) };
        assert_eq!(long.dot_row(0, &x), (0..11).map(|i| (i * i) as f32).sum::<f32>());
        assert_eq!(m().dot_row(1, &[1.0, 2.0, 3.0]), 3.0 + 8.0 + 15.0);
        // Both element types and both code paths (lanes and tail) on a long row.
        let x: Vec<f32> = (0..37).map(|i| (i % 5) as f32 - 2.0).collect();
        let w: Vec<f32> = (0..37).map(|i| (i % 7) as f32 * 0.5).collect();
        let exact: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
        let bf = HostMatrix { rows: 1, cols: 37, elems: HostElems::Bf16(w.iter().map(|&v| bf16::from_f32(v)).collect()) };
        assert_eq!(bf.dot_row(0, &x), exact);
        assert_eq!(dot_lanes::<f32, false>(&w, &x, |v| v), exact);
        assert!(widen_bf16(bf16::NAN).is_nan() && widen_bf16(bf16::from_f32(-1.5)) == -1.5);
    }
}
