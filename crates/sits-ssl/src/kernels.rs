//! The two products the Newton probe and k-means spend their time in, on fixed rows
//! `X` `(N, k)`: scores `X Bᵀ` for a short `B` (`p × k`, one row per class or
//! centroid) and the back-product `Rᵀ X` for per-row weights `R` `(N, p)`.
//!
//! `X` is stored once, row-major, in `f32`: the standardised features are `f32`, so
//! nothing is lost, and every product reads half the bytes; the arithmetic is `f64`
//! (each value widened as it is loaded). A general matrix product would repack `X` on
//! every one of hundreds of calls; here it is read in place: scores as tiles of dot
//! products (rows of `X` against rows of `B`, each in its own vector register), the
//! back-product as multiply-adds of each row into per-class accumulators that stay in
//! registers. A Hessian-vector product runs both on one block of 64 rows while the
//! block is in cache ([`Rows::back`] with a closure that scores the block first), so
//! `X` streams through memory once per product.
//!
//! AVX-512 or AVX2 with FMA, the widest the processor has, is chosen at run time;
//! elsewhere plain loops. Sums run in a fixed order whatever the number of threads
//! (fixed row tasks, their partial sums added in order), so a fit is the same on
//! every run.

use rayon::prelude::*;
use std::ops::Range;

/// Rows per block: the unit of the fused products (64 rows of 1,473 `f32` is 377 kB).
const BLOCK: usize = 64;
/// At most this many parallel tasks (and partial sums) per back-product.
const MAX_TASKS: usize = 32;
/// Classes per group of the back-product's accumulators.
const GROUP: usize = 4;

/// The rows of one fit.
pub(crate) struct Rows {
    x: Vec<f32>,
    n: usize,
    k: usize,
}

impl Rows {
    /// `x` `(n, k)` row-major.
    pub(crate) fn new(x: Vec<f32>, k: usize) -> Self {
        let n = x.len().checked_div(k).unwrap_or(0);
        Self { x, n, k }
    }

    fn block(&self, rows: &Range<usize>) -> &[f32] {
        &self.x[rows.start * self.k..rows.end * self.k]
    }

    /// Scores `(n, p)` = `X Bᵀ` for `b` `(p, k)` row-major; blocks in parallel.
    pub(crate) fn times_bt(&self, b: &[f64], p: usize) -> Vec<f64> {
        let mut out = vec![0f64; self.n * p];
        if p == 0 || self.k == 0 {
            return out;
        }
        out.par_chunks_mut(BLOCK * p)
            .enumerate()
            .for_each(|(t, o)| {
                let rows = t * BLOCK..(t * BLOCK + o.len() / p);
                self.times_bt_block(&rows, b, p, o);
            });
        out
    }

    /// `X Bᵀ` on one block of rows, on the calling thread.
    pub(crate) fn times_bt_block(&self, rows: &Range<usize>, b: &[f64], p: usize, out: &mut [f64]) {
        x_bt(self.block(rows), self.k, b, p, out);
    }

    /// `Rᵀ X` `(p, k)` (`X` squared elementwise when `square`), where `r_of(rows, r)`
    /// fills the weights `r` `(rows.len(), p)` of each block of rows. Fixed tasks of
    /// whole blocks run in parallel; their partial sums are added in order.
    pub(crate) fn back<F>(&self, p: usize, square: bool, r_of: F) -> Vec<f64>
    where
        F: Fn(&Range<usize>, &mut [f64]) + Sync,
    {
        let (n, k) = (self.n, self.k);
        let pp = p.div_ceil(GROUP) * GROUP;
        let task_rows = n.div_ceil(MAX_TASKS).div_ceil(BLOCK).max(1) * BLOCK;
        let partials: Vec<Vec<f64>> = (0..n.div_ceil(task_rows))
            .into_par_iter()
            .map(|t| {
                let mut acc = vec![0f64; pp * k];
                let mut r = vec![0f64; BLOCK * p];
                let mut padded = vec![0f64; BLOCK * pp];
                let end = ((t + 1) * task_rows).min(n);
                let mut start = t * task_rows;
                while start < end {
                    let rows = start..(start + BLOCK).min(end);
                    let m = rows.len();
                    r[..m * p].fill(0.0);
                    r_of(&rows, &mut r[..m * p]);
                    for i in 0..m {
                        padded[i * pp..i * pp + p].copy_from_slice(&r[i * p..(i + 1) * p]);
                    }
                    rt_x(
                        self.block(&rows),
                        k,
                        &padded[..m * pp],
                        pp,
                        square,
                        &mut acc,
                    );
                    start = rows.end;
                }
                acc
            })
            .collect();
        let mut out = vec![0f64; p * k];
        for part in &partials {
            for (o, v) in out.iter_mut().zip(&part[..p * k]) {
                *o += v;
            }
        }
        out
    }
}

/// `out` `(m, p)` = `A Bᵀ` for `a` `(m, k)` in `f32`, `b` `(p, k)`.
fn x_bt(a: &[f32], k: usize, b: &[f64], p: usize, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F (checked just above)
            return unsafe { x86::x_bt_avx512(a, k, b, p, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the processor has AVX2 and FMA (checked just above)
            return unsafe { x86::x_bt_avx2(a, k, b, p, out) };
        }
    }
    let m = a.len() / k;
    for i in 0..m {
        for c in 0..p {
            let (x, y) = (&a[i * k..(i + 1) * k], &b[c * k..(c + 1) * k]);
            out[i * p + c] = x.iter().zip(y).map(|(&x, &y)| f64::from(x) * y).sum();
        }
    }
}

/// `acc` `(pp, k)` += `Rᵀ A` for `a` `(m, k)` in `f32` (squared when `square`) and
/// `r` `(m, pp)`, `pp` a multiple of [`GROUP`].
fn rt_x(a: &[f32], k: usize, r: &[f64], pp: usize, square: bool, acc: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F (checked just above)
            return unsafe { x86::rt_x_avx512(a, k, r, pp, square, acc) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the processor has AVX2 and FMA (checked just above)
            return unsafe { x86::rt_x_avx2(a, k, r, pp, square, acc) };
        }
    }
    let m = r.len() / pp;
    for i in 0..m {
        for c in 0..pp {
            let w = r[i * pp + c];
            for (o, &x) in acc[c * k..(c + 1) * k]
                .iter_mut()
                .zip(&a[i * k..(i + 1) * k])
            {
                let x = f64::from(x);
                *o += w * if square { x * x } else { x };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Generates the scores kernel: `$ra` rows of `A` against `$rb` rows of `B`, each
    /// dot product in its own `$lanes`-lane register; rows past the edge of either
    /// operand are computed on a repeat of the last row and not stored.
    macro_rules! scores {
        ($name:ident, $feat:literal, $ra:literal, $rb:literal, $lanes:literal, $vec:ty,
         $zero:ident, $loada:expr, $load:ident, $fma:ident, $sum:path) => {
            /// `out = A Bᵀ` (see `x_bt`).
            ///
            /// # Safety
            /// The processor must have the features this copy is compiled for.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name(a: &[f32], k: usize, b: &[f64], p: usize, out: &mut [f64]) {
                let m = a.len() / k;
                assert!(b.len() >= p * k && out.len() >= m * p && a.len() == m * k);
                let whole = k / $lanes * $lanes;
                let mut i0 = 0;
                while i0 < m {
                    let ra = ($ra as usize).min(m - i0);
                    let mut ap = [a.as_ptr(); $ra];
                    for (r, ptr) in ap.iter_mut().enumerate() {
                        // SAFETY: row i0 + min(r, ra - 1) < m is inside `a`
                        *ptr = unsafe { a.as_ptr().add((i0 + r.min(ra - 1)) * k) };
                    }
                    let mut c0 = 0;
                    while c0 < p {
                        let rb = ($rb as usize).min(p - c0);
                        let mut bp = [b.as_ptr(); $rb];
                        for (s, ptr) in bp.iter_mut().enumerate() {
                            // SAFETY: row c0 + min(s, rb - 1) < p is inside `b`
                            *ptr = unsafe { b.as_ptr().add((c0 + s.min(rb - 1)) * k) };
                        }
                        let mut acc: [[$vec; $rb]; $ra] = [[$zero(); $rb]; $ra];
                        let mut q = 0;
                        while q < whole {
                            let mut av: [$vec; $ra] = [$zero(); $ra];
                            for r in 0..$ra {
                                // SAFETY: q + lanes <= whole <= k: inside the row
                                av[r] = unsafe { $loada(ap[r].add(q)) };
                            }
                            for s in 0..$rb {
                                // SAFETY: as above
                                let bv = unsafe { $load(bp[s].add(q)) };
                                for r in 0..$ra {
                                    acc[r][s] = $fma(av[r], bv, acc[r][s]);
                                }
                            }
                            q += $lanes;
                        }
                        for r in 0..ra {
                            for s in 0..rb {
                                let mut sum = $sum(acc[r][s]);
                                for j in whole..k {
                                    // SAFETY: j < k: inside the rows
                                    let (x, y) = unsafe { (*ap[r].add(j), *bp[s].add(j)) };
                                    sum = f64::from(x).mul_add(y, sum);
                                }
                                out[(i0 + r) * p + c0 + s] = sum;
                            }
                        }
                        c0 += rb;
                    }
                    i0 += ra;
                }
            }
        };
    }

    /// Generates the back-product kernel: for each pair of `$lanes`-wide column
    /// slices, four classes' accumulators in registers (eight independent chains)
    /// take every row's multiply-add.
    macro_rules! back {
        ($name:ident, $feat:literal, $lanes:literal, $vec:ty, $zero:ident, $loada:expr,
         $load:ident, $store:ident, $set1:ident, $mul:ident, $add:ident, $fma:ident) => {
            /// `acc += Rᵀ A` (see `rt_x`).
            ///
            /// # Safety
            /// The processor must have the features this copy is compiled for.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name(
                a: &[f32],
                k: usize,
                r: &[f64],
                pp: usize,
                square: bool,
                acc: &mut [f64],
            ) {
                const G: usize = super::GROUP;
                let m = r.len() / pp;
                assert!(a.len() >= m * k && acc.len() >= pp * k && pp % G == 0);
                // two column slices at a time: eight independent accumulators
                let whole = k / (2 * $lanes) * (2 * $lanes);
                for g in (0..pp).step_by(G) {
                    let mut q = 0;
                    while q < whole {
                        let mut lo: [$vec; G] = [$zero(); G];
                        let mut hi: [$vec; G] = [$zero(); G];
                        for i in 0..m {
                            // SAFETY: i < m rows of k values, q + 2 lanes <= k; the
                            // row's weights g..g + G are inside its pp
                            unsafe {
                                let xp = a.as_ptr().add(i * k + q);
                                let (x0, x1) = ($loada(xp), $loada(xp.add($lanes)));
                                let (x0, x1) = if square {
                                    ($mul(x0, x0), $mul(x1, x1))
                                } else {
                                    (x0, x1)
                                };
                                let wp = r.as_ptr().add(i * pp + g);
                                for c in 0..G {
                                    let w = $set1(*wp.add(c));
                                    lo[c] = $fma(w, x0, lo[c]);
                                    hi[c] = $fma(w, x1, hi[c]);
                                }
                            }
                        }
                        for c in 0..G {
                            // SAFETY: class g + c < pp, q + 2 lanes <= k
                            unsafe {
                                let o = acc.as_mut_ptr().add((g + c) * k + q);
                                $store(o, $add($load(o), lo[c]));
                                let o = o.add($lanes);
                                $store(o, $add($load(o), hi[c]));
                            }
                        }
                        q += 2 * $lanes;
                    }
                    for j in whole..k {
                        for c in 0..G {
                            let mut s = 0f64;
                            for i in 0..m {
                                let x = f64::from(a[i * k + j]);
                                let x = if square { x * x } else { x };
                                s = r[i * pp + g + c].mul_add(x, s);
                            }
                            acc[(g + c) * k + j] += s;
                        }
                    }
                }
            }
        };
    }

    #[target_feature(enable = "avx2")]
    fn sum4(v: __m256d) -> f64 {
        let mut lanes = [0f64; 4];
        // SAFETY: four f64 lanes into a four-value array
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), v) };
        (lanes[0] + lanes[2]) + (lanes[1] + lanes[3])
    }

    /// Eight `f32` widened to `f64`.
    #[target_feature(enable = "avx512f")]
    unsafe fn load8(p: *const f32) -> __m512d {
        // SAFETY: the caller gives eight readable values
        unsafe { _mm512_cvtps_pd(_mm256_loadu_ps(p)) }
    }

    /// Four `f32` widened to `f64`.
    #[target_feature(enable = "avx2")]
    unsafe fn load4(p: *const f32) -> __m256d {
        // SAFETY: the caller gives four readable values
        unsafe { _mm256_cvtps_pd(_mm_loadu_ps(p)) }
    }

    // 32 registers of 8 lanes: twelve accumulators, four rows of A, one of B
    scores!(
        x_bt_avx512,
        "avx512f,fma",
        4,
        3,
        8,
        __m512d,
        _mm512_setzero_pd,
        load8,
        _mm512_loadu_pd,
        _mm512_fmadd_pd,
        _mm512_reduce_add_pd
    );
    // 16 registers of 4 lanes: nine accumulators, three rows of A, one of B
    scores!(
        x_bt_avx2,
        "avx2,fma",
        3,
        3,
        4,
        __m256d,
        _mm256_setzero_pd,
        load4,
        _mm256_loadu_pd,
        _mm256_fmadd_pd,
        sum4
    );
    back!(
        rt_x_avx512,
        "avx512f,fma",
        8,
        __m512d,
        _mm512_setzero_pd,
        load8,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_set1_pd,
        _mm512_mul_pd,
        _mm512_add_pd,
        _mm512_fmadd_pd
    );
    back!(
        rt_x_avx2,
        "avx2,fma",
        4,
        __m256d,
        _mm256_setzero_pd,
        load4,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_set1_pd,
        _mm256_mul_pd,
        _mm256_add_pd,
        _mm256_fmadd_pd
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(m: usize, k: usize, p: usize) -> (Vec<f32>, Vec<f64>) {
        let a = (0..m * k)
            .map(|v| ((v * 37 % 101) as f32 - 50.0) / 8.0)
            .collect();
        let b = (0..p * k)
            .map(|v| ((v * 53 % 97) as f64 - 48.0) / 5.0)
            .collect();
        (a, b)
    }

    #[test]
    fn scores_equal_the_naive_sums_on_every_edge() {
        // sizes that leave partial tiles in both operands and a tail in k
        for (m, p, k) in [(1, 1, 1), (7, 5, 13), (9, 3, 8), (130, 9, 67), (4, 11, 3)] {
            let (a, b) = data(m, k, p);
            let out = Rows::new(a.clone(), k).times_bt(&b, p);
            for i in 0..m {
                for c in 0..p {
                    let want: f64 = (0..k).map(|j| f64::from(a[i * k + j]) * b[c * k + j]).sum();
                    let got = out[i * p + c];
                    assert!(
                        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                        "({m}, {p}, {k}): [{i}, {c}] {got} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn back_products_equal_the_naive_sums_and_do_not_depend_on_threads() {
        for (m, p, k) in [(1, 1, 1), (7, 5, 13), (200, 9, 67), (3000, 2, 9)] {
            let (a, _) = data(m, k, 1);
            let r: Vec<f64> = (0..m * p)
                .map(|v| ((v * 29 % 89) as f64 - 44.0) / 9.0)
                .collect();
            let rows = Rows::new(a.clone(), k);
            for square in [false, true] {
                let fill = |range: &Range<usize>, out: &mut [f64]| {
                    out.copy_from_slice(&r[range.start * p..range.end * p]);
                };
                let got = rows.back(p, square, fill);
                for c in 0..p {
                    for j in 0..k {
                        let want: f64 = (0..m)
                            .map(|i| {
                                let x = f64::from(a[i * k + j]);
                                r[i * p + c] * if square { x * x } else { x }
                            })
                            .sum();
                        let g = got[c * k + j];
                        assert!(
                            (g - want).abs() <= 1e-10 * want.abs().max(1.0),
                            "({m}, {p}, {k}) square {square}: [{c}, {j}] {g} against {want}"
                        );
                    }
                }
                let one = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .unwrap();
                let alone = one.install(|| rows.back(p, square, fill));
                assert_eq!(alone, got, "the same sums on one thread");
            }
        }
    }
}
