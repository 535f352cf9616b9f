//! Reading a result held as parts ([`crate::PartialSums`]) inside the kernel that consumes it,
//! and the launch arguments that describe the parts.

use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// Element `col` of row `m` of a result of `rows` rows held as `count` parts per row (a
/// compile-time constant: one kernel variant per count), summed in f32 in part order (the caller
/// rounds to its type):
/// - `weighted`: slot layout, `Σ_s coef[m, s] · parts[m·count + s, col]`;
/// - otherwise: split layout, `Σ_s parts[s·rows + m, col]` (a whole result: `count = 1`; nothing,
///   zero: `count = 0`).
#[cube]
pub(super) fn part_sum<P: Float, C: Float>(
    parts: &Tensor<P>,
    coef: &Tensor<C>,
    m: usize,
    col: usize,
    rows: usize,
    #[comptime] count: u32,
    #[comptime] weighted: bool,
) -> f32 {
    let at_col = col * parts.stride(1);
    let count = count as usize;
    let mut acc = f32::new(0.0);
    // Unrolled (the count is a launch constant) so all the parts' loads are in flight together.
    #[unroll]
    for s in 0..count {
        if weighted {
            let w = f32::cast_from(coef[m * coef.stride(0) + s * coef.stride(1)]);
            acc += f32::cast_from(parts[(m * count + s) * parts.stride(0) + at_col]) * w;
        } else {
            acc += f32::cast_from(parts[(s * rows + m) * parts.stride(0) + at_col]);
        }
    }
    acc
}

/// A result held as parts, as the consuming kernels take it.
pub(crate) struct PartsArgs {
    /// The parts (see [`crate::PartialSums`] for the layouts).
    pub(crate) parts: CubeTensor,
    /// The slots' weights `[M, S]`; when not `weighted`, any tensor (unread).
    pub(crate) coef: CubeTensor,
    /// Parts per row.
    pub(crate) count: usize,
    /// Slot layout with weights (else split layout).
    pub(crate) weighted: bool,
}

impl PartsArgs {
    /// Panics (naming `kernel`) unless the parts make an `[rows, width]` result (or there are
    /// none: `count = 0`, the parts unread).
    pub(crate) fn check(&self, rows: usize, width: usize, kernel: &str) {
        if self.count == 0 {
            return;
        }
        let shape = self.parts.meta.shape();
        assert!(
            shape[0] == rows * self.count && shape[1] == width,
            "{kernel}: parts {shape:?} do not make {rows} × {width} in {} parts",
            self.count
        );
        if self.weighted {
            let w = self.coef.meta.shape();
            assert!(w[0] == rows && w[1] == self.count, "{kernel}: weights {w:?} for {rows} rows of {} slots", self.count);
        }
    }
}
