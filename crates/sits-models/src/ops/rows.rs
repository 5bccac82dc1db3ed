//! Row kernels for the softmax ops: maximum, shifted exponential and its sum, dot
//! products, written in independent lanes so that the compiler vectorises
//! them (32 lanes: four AVX2 registers, so that additions do not wait on each
//! other). `exp` is a polynomial (range reduction to `[-ln 2 / 2, ln 2 / 2]` and the
//! degree-6 minimax polynomial of the Cephes library's `expf`), within 2 ulp of the
//! exact value on the normal range and branch-free, where the C library's `expf`
//! is one scalar call per value. On x86-64 each kernel is compiled twice and picks
//! the AVX2 copy at run time when the processor has it.
//!
//! Sums run in `f32` lanes flushed into an `f64` total every 512 values, so a
//! row of 65,536 values adds no more rounding than a row of 512.

/// Independent `f32` accumulators (four AVX2 registers).
const LANES: usize = 32;
/// Values summed in `f32` lanes before they are added to the `f64` total.
const BLOCK: usize = 512;

/// `e^x` in `f32`: within 2 ulp for `x` in `[-87.3, 88.37]`, 0 below, `inf` above
/// (the exact value between 88.37 and 88.72 is still finite, at least 0.7 of
/// `f32::MAX`; softmax rows never get there, their shifted values are at most 0), NaN
/// for NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n · LN2_HI is exact for |n| < 2^9
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer held in the low mantissa bits
    const MAGIC: f32 = 12_582_912.0;
    const LO: f32 = -87.336_54; // ln of the smallest normal f32
    const HI: f32 = 88.376_26; // ln 2^127.5: n stays at most 127
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from the integer in t's mantissa bits; n is in [-126, 127]
    let n_int = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let e = y * f32::from_bits(((n_int + 127) as u32) << 23);
    if x < LO {
        0.0
    } else if x > HI {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        e
    }
}

macro_rules! dispatch {
    ($(#[$doc:meta])* fn $name:ident / $avx:ident / $body:ident ($($arg:ident : $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor has AVX2 (checked just above)
                return unsafe { $avx($($arg),*) };
            }
            $body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx($($arg: $ty),*) -> $ret {
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;

dispatch! {
    /// Largest value of a row, NaN values skipped (they reach the softmax output
    /// through `exp`, which returns NaN for them); `-inf` for an empty row.
    fn row_max / row_max_avx2 / row_max_body(x: &[f32]) -> f32
}

#[inline(always)]
pub(crate) fn row_max_body(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..LANES {
            acc[j] = if c[j] > acc[j] { c[j] } else { acc[j] };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

dispatch! {
    /// `out[k] = e^(scale · x[k] − shift)`; returns the sum of `out`.
    fn exp_into / exp_into_avx2 / exp_into_body(x: &[f32], scale: f32, shift: f32, out: &mut [f32]) -> f64
}

/// Sum of the lanes, in f64.
#[inline(always)]
fn flush(acc: &[f32; LANES]) -> f64 {
    acc.iter().map(|&a| a as f64).sum()
}

#[inline(always)]
fn exp_into_body(x: &[f32], scale: f32, shift: f32, out: &mut [f32]) -> f64 {
    let mut total = 0f64;
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    for (xb, ob) in x.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let mut acc = [0f32; LANES];
        let xc = xb.chunks_exact(LANES);
        let rest = xc.remainder();
        let mut oc = ob.chunks_exact_mut(LANES);
        for (c, o) in xc.zip(&mut oc) {
            for j in 0..LANES {
                let e = exp(c[j] * scale - shift);
                o[j] = e;
                acc[j] += e;
            }
        }
        total += flush(&acc);
        for (v, o) in rest.iter().zip(oc.into_remainder()) {
            *o = exp(v * scale - shift);
            total += *o as f64;
        }
    }
    total
}

dispatch! {
    /// `x[k] = e^(scale · x[k] − shift)`; returns the sum of the new values.
    fn exp_in_place / exp_in_place_avx2 / exp_in_place_body(x: &mut [f32], scale: f32, shift: f32) -> f64
}

#[inline(always)]
pub(crate) fn exp_in_place_body(x: &mut [f32], scale: f32, shift: f32) -> f64 {
    let mut total = 0f64;
    for xb in x.chunks_mut(BLOCK) {
        let mut acc = [0f32; LANES];
        let mut xc = xb.chunks_exact_mut(LANES);
        for c in &mut xc {
            for j in 0..LANES {
                let e = exp(c[j] * scale - shift);
                c[j] = e;
                acc[j] += e;
            }
        }
        total += flush(&acc);
        for v in xc.into_remainder() {
            *v = exp(*v * scale - shift);
            total += *v as f64;
        }
    }
    total
}

dispatch! {
    /// Sum of `e^(scale · x[k] − shift)`.
    fn exp_sum / exp_sum_avx2 / exp_sum_body(x: &[f32], scale: f32, shift: f32) -> f64
}

#[inline(always)]
fn exp_sum_body(x: &[f32], scale: f32, shift: f32) -> f64 {
    let mut total = 0f64;
    for xb in x.chunks(BLOCK) {
        let mut acc = [0f32; LANES];
        let xc = xb.chunks_exact(LANES);
        let rest = xc.remainder();
        for c in xc {
            for j in 0..LANES {
                acc[j] += exp(c[j] * scale - shift);
            }
        }
        total += flush(&acc);
        total += rest
            .iter()
            .map(|&v| exp(v * scale - shift) as f64)
            .sum::<f64>();
    }
    total
}

dispatch! {
    /// `Σ a[k] · b[k]`.
    fn dot / dot_avx2 / dot_body(a: &[f32], b: &[f32]) -> f64
}

#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f64 {
    let mut total = 0f64;
    let n = a.len().min(b.len());
    for (ab, bb) in a[..n].chunks(BLOCK).zip(b[..n].chunks(BLOCK)) {
        let mut acc = [0f32; LANES];
        let ac = ab.chunks_exact(LANES);
        let rest = ac.remainder();
        let mut bc = bb.chunks_exact(LANES);
        for (ca, cb) in ac.zip(&mut bc) {
            for j in 0..LANES {
                acc[j] += ca[j] * cb[j];
            }
        }
        total += flush(&acc);
        total += rest
            .iter()
            .zip(bc.remainder())
            .map(|(&x, &y)| (x * y) as f64)
            .sum::<f64>();
    }
    total
}

dispatch! {
    /// `Σ x[k]`.
    fn sum / sum_avx2 / sum_body(x: &[f32]) -> f64
}

#[inline(always)]
fn sum_body(x: &[f32]) -> f64 {
    let mut total = 0f64;
    for xb in x.chunks(BLOCK) {
        let mut acc = [0f32; LANES];
        let xc = xb.chunks_exact(LANES);
        let rest = xc.remainder();
        for c in xc {
            for j in 0..LANES {
                acc[j] += c[j];
            }
        }
        total += flush(&acc);
        total += rest.iter().map(|&v| v as f64).sum::<f64>();
    }
    total
}

dispatch! {
    /// `out[k] = e^(scale · x[k] − shift) · a − b[k] · c` (the gradient of a soft
    /// cross-entropy: softmax times the target mass, minus the target).
    fn softmax_minus_into / softmax_minus_avx2 / softmax_minus_body(x: &[f32], scale: f32, shift: f32, a: f32, b: &[f32], c: f32, out: &mut [f32]) -> ()
}

#[inline(always)]
fn softmax_minus_body(
    x: &[f32],
    scale: f32,
    shift: f32,
    a: f32,
    b: &[f32],
    c: f32,
    out: &mut [f32],
) {
    for ((o, &v), &t) in out.iter_mut().zip(x).zip(b) {
        *o = exp(v * scale - shift) * a - t * c;
    }
}

dispatch! {
    /// `out[k] −= b[k] · c`.
    fn sub_scaled / sub_scaled_avx2 / sub_scaled_body(out: &mut [f32], b: &[f32], c: f32) -> ()
}

#[inline(always)]
fn sub_scaled_body(out: &mut [f32], b: &[f32], c: f32) {
    for (o, &t) in out.iter_mut().zip(b) {
        *o -= t * c;
    }
}

dispatch! {
    /// `out[k] = e^(y[k]) · a` (softmax from a log-softmax row, scaled).
    fn exp_scaled_into / exp_scaled_avx2 / exp_scaled_body(y: &[f32], a: f32, out: &mut [f32]) -> ()
}

#[inline(always)]
fn exp_scaled_body(y: &[f32], a: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(y) {
        *o = exp(v) * a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_on_the_normal_range() {
        let mut worst = 0f64;
        let mut x = -87.3f32;
        while x < 88.37 {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            let ulp = (want as f32).to_bits();
            let ulp = (f32::from_bits(ulp + 1) - f32::from_bits(ulp)) as f64;
            worst = worst.max((got - want).abs() / ulp);
            x += 0.000_731;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn kernels_match_plain_loops() {
        let x: Vec<f32> = (0..1037)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let y: Vec<f32> = (0..1037).map(|i| ((i * 13 % 29) as f32) / 29.0).collect();
        assert_eq!(row_max(&x), x.iter().cloned().fold(f32::MIN, f32::max));
        let mut with_nan = x.clone();
        with_nan[1000] = f32::NAN;
        assert_eq!(row_max(&with_nan), row_max(&x));
        assert!(exp_sum(&with_nan, 1.0, 0.0).is_nan());
        let (scale, shift) = (0.7f32, 1.3f32);
        let want: f64 = x.iter().map(|&v| ((v * scale - shift) as f64).exp()).sum();
        let want_exp = want;
        let got = exp_sum(&x, scale, shift);
        assert!((got - want).abs() <= 1e-6 * want, "{got} {want}");
        let mut out = vec![0f32; x.len()];
        let got = exp_into(&x, scale, shift, &mut out);
        assert!((got - want).abs() <= 1e-6 * want);
        assert!((out[5] as f64 - ((x[5] * scale - shift) as f64).exp()).abs() < 1e-6);
        let want: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
        assert!((dot(&x, &y) - want).abs() < 1e-5 * want.abs().max(1.0));
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum(&x) - want).abs() < 1e-6 * want.abs().max(1.0));
        softmax_minus_into(&x, scale, shift, 2.0, &y, 3.0, &mut out);
        let w = ((x[9] * scale - shift) as f64).exp() * 2.0 - y[9] as f64 * 3.0;
        assert!((out[9] as f64 - w).abs() < 1e-5 * w.abs().max(1.0));
        let mut inplace = x.clone();
        let got = exp_in_place(&mut inplace, scale, shift);
        assert!((got - want_exp).abs() <= 1e-6 * want_exp);
        assert_eq!(inplace[5], exp(x[5] * scale - shift));
        let before = out[9];
        sub_scaled(&mut out, &y, 2.0);
        assert_eq!(out[9], before - y[9] * 2.0);
        exp_scaled_into(&y, 0.5, &mut out);
        assert!((out[9] as f64 - (y[9] as f64).exp() * 0.5).abs() < 1e-6);
    }
}
