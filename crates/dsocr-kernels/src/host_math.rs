//! `exp`, softmax and the exact GELU over host slices, written so the compiler vectorises them
//! (docs/perf.md, session 20).
//!
//! libm's `expf` and `erf` are scalar calls: in the CPU's vision pass the softmax of the encoder
//! attention (`expf`, ≈ 7 % of the samples) and SAM's GELU (`erf` in f64, ≈ 8 %) ran one element
//! at a time while everything around them runs on SIMD lanes. Here both are branch-free
//! arithmetic on `f32` (a select, min/max, integer bit tricks), inlined into loops compiled for
//! AVX-512 or AVX2 + FMA when the CPU has them (chosen at run time, as the decode dot products in
//! `dsocr_core::host_matrix`), so each runs 8 or 16 elements per instruction.
//!
//! Accuracy: `exp` within 2 ulp over its range (Cody–Waite reduction, a degree-7 Taylor
//! polynomial on |r| ≤ ln 2 / 2, whose truncation error is 5e-9 relative); the GELU's `erf` is
//! Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), so GELU values are within 1e-6 of the
//! f64 `erf` that Burn's GELU uses (tests below). Both far below the f32 parity tolerances.

/// `e^x` for `f32`, branch-free: `-inf` and anything below `e^-87` give 0, NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    // x = n·ln 2 + r with n an integer and |r| ≤ ln 2 / 2; ln 2 split in two (Cody–Waite) so
    // that n·LN2_HI (355/512) is exact for the n that occur (|n| ≤ 127).
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer (|v| < 2^22), without a
    // rounding instruction that plain SSE2 lacks.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 88.0);
    let biased = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = biased - ROUND;
    // The integer n sits in the low mantissa bits of `biased` (its exponent is ROUND's): read it
    // there instead of converting n to an integer, which Rust's saturating float-to-int cast
    // compiles to scalar code per lane (NaN and range checks).
    let n_int = (biased.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = clamped - n * LN2_HI - n * LN2_LO;
    // e^r, Taylor to degree 7 in Horner form.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n from the exponent bits (n in [-126, 127]: a normal number).
    // (NaN gives a meaningless n_int, wrapping instead of overflowing; the select returns NaN.)
    let scale = f32::from_bits((n_int.wrapping_add(127) << 23) as u32);
    let y = p * scale;
    if x.is_nan() {
        x
    } else if x < -87.0 {
        0.0
    } else {
        y
    }
}

/// The exact GELU `x · (1 + erf(x/√2)) / 2`, with `erf` by Abramowitz & Stegun 7.1.26 (taking
/// `1 − erf(|z|)` directly for negative `x`, where `1 + erf` would cancel).
#[inline(always)]
fn gelu_f32(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    // a1..a5 of 7.1.26 rounded to f32 (0.254829592, −0.284496736, 1.421413741, −1.453152027, 1.061405429).
    const A: [f32; 5] = [0.254_829_6, -0.284_496_72, 1.421_413_8, -1.453_152_1, 1.061_405_4];
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    // 1 − erf(z) for z ≥ 0.
    let erfc = poly * exp_f32(-z * z);
    let one_plus_erf = if x >= 0.0 { 2.0 - erfc } else { erfc };
    x * one_plus_erf * 0.5
}

/// Lanes of the max and sum reductions: independent accumulators the compiler keeps in one
/// vector register (a single accumulator would chain every addition).
const LANES: usize = 16;

#[inline(always)]
fn softmax_body(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(x);
        }
    }
    let top = chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    for x in row.iter_mut() {
        *x = exp_f32(*x - top);
    }
    let mut sums = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (sum, &x) in sums.iter_mut().zip(chunk) {
            *sum += x;
        }
    }
    let total: f32 = chunks.remainder().iter().sum::<f32>() + sums.iter().sum::<f32>();
    let inv = 1.0 / total;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

#[inline(always)]
fn gelu_body(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = gelu_f32(*v);
    }
}

/// Runs `$body(args)` compiled for AVX-512 or AVX2 + FMA when the CPU has them, else as built.
macro_rules! dispatch {
    ($name:ident, $body:ident, $arg:ident: $ty:ty) => {
        pub(crate) fn $name($arg: $ty) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($arg: $ty) {
                    $body($arg)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($arg: $ty) {
                    $body($arg)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the function is compiled for.
                    return unsafe { avx512($arg) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($arg) };
                }
            }
            $body($arg)
        }
    };
}

dispatch!(softmax_in_place, softmax_body, row: &mut [f32]);
dispatch!(gelu_in_place, gelu_body, values: &mut [f32]);

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm_and_saturates() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp() as f32;
            worst = worst.max(ulps(exp_f32(x), want));
            x += 0.000_37;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_is_within_1e6_of_the_f64_erf() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let xd = f64::from(x);
            let want = xd * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2)) / 2.0;
            worst = worst.max((f64::from(gelu_f32(x)) - want).abs() / want.abs().max(1.0));
            x += 0.000_71;
        }
        assert!(worst <= 1e-6, "largest relative difference {worst:e}");
        assert_eq!(gelu_f32(0.0), 0.0);
        assert_eq!(gelu_f32(-30.0), 0.0);
        assert_eq!(gelu_f32(30.0), 30.0);
    }

    #[test]
    fn softmax_matches_the_plain_formula_and_zeroes_masked_entries() {
        // Lengths with and without a remainder after the 16-lane chunks.
        for n in [1usize, 7, 16, 196, 257, 1601] {
            let mut row: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3).collect();
            if n > 2 {
                row[1] = f32::NEG_INFINITY;
            }
            let top = row.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
            let total: f64 = row.iter().map(|&x| (f64::from(x) - f64::from(top)).exp()).sum();
            let want: Vec<f64> = row.iter().map(|&x| (f64::from(x) - f64::from(top)).exp() / total).collect();
            let mut got = row.clone();
            softmax_in_place(&mut got);
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!((f64::from(g) - w).abs() <= 1e-6 * w.max(1e-3), "n {n}, entry {i}: {g} against {w}");
            }
            if n > 2 {
                assert_eq!(got[1], 0.0);
            }
        }
    }

    #[test]
    fn a_row_masked_but_for_one_entry_is_one_hot() {
        for n in [5usize, 16, 40] {
            let mut row = vec![f32::NEG_INFINITY; n];
            row[n / 2] = -3.5;
            softmax_in_place(&mut row);
            assert!(row.iter().enumerate().all(|(i, &p)| p == if i == n / 2 { 1.0 } else { 0.0 }), "{row:?}");
        }
    }
}
