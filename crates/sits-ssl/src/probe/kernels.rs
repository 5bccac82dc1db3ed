//! The one product the Newton probe spends its time in: `A Bᵀ` for a tall `A`
//! (`m × k`, the rows or their transpose) and a short `B` (`p × k`, one row per
//! class), both row-major, in `f64`.
//!
//! A general matrix product repacks both operands on every call; here `A` is the same
//! matrix for hundreds of calls and `B` has a handful of rows, so repacking was as
//! costly as the arithmetic. Both operands are read in place instead, as dot products
//! of contiguous rows, a tile of rows of `A` against a tile of rows of `B` at a time,
//! each dot product in its own vector register, the tile sized so that the
//! accumulators stay in registers: AVX-512 (4 × 3 tile, 8 lanes) or AVX2 with FMA
//! (3 × 3, 4 lanes), the widest the processor has, chosen at run time; elsewhere plain
//! dot products in four lanes.

use rayon::prelude::*;

/// Rows of `A` (rows of the output) per parallel task.
const TASK_ROWS: usize = 64;
/// Products of fewer multiply-adds than this run on the calling thread.
const PARALLEL_WORK: usize = 1 << 20;

/// `out = A Bᵀ` (`m × p`, row-major), with `A` squared elementwise first when
/// `square_a`; `k` is the shared row length. Tasks of 64 rows run in parallel when
/// the product is large enough.
pub(super) fn a_bt(a: &[f64], b: &[f64], k: usize, square_a: bool, out: &mut [f64]) {
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let p = b.len() / k;
    if p == 0 {
        return;
    }
    let run = |a: &[f64], out: &mut [f64]| {
        if square_a {
            a_bt_dispatch::<true>(a, b, k, p, out);
        } else {
            a_bt_dispatch::<false>(a, b, k, p, out);
        }
    };
    if a.len() * p < PARALLEL_WORK {
        run(a, out);
    } else {
        a.par_chunks(TASK_ROWS * k)
            .zip(out.par_chunks_mut(TASK_ROWS * p))
            .for_each(|(a, out)| run(a, out));
    }
}

fn a_bt_dispatch<const SQ: bool>(a: &[f64], b: &[f64], k: usize, p: usize, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F (checked just above)
            return unsafe { x86::a_bt_avx512::<SQ>(a, b, k, p, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the processor has AVX2 and FMA (checked just above)
            return unsafe { x86::a_bt_avx2::<SQ>(a, b, k, p, out) };
        }
    }
    let m = a.len() / k;
    for i in 0..m {
        for c in 0..p {
            out[i * p + c] = dot::<SQ>(&a[i * k..(i + 1) * k], &b[c * k..(c + 1) * k]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Generates a tiled kernel: `$ra` rows of `A` against `$rb` rows of `B`, each
    /// dot product in its own `$lanes`-lane register, rows past the edge of either
    /// operand computed on a repeat of the last row and not stored.
    macro_rules! tiled {
        ($name:ident, $feat:literal, $ra:literal, $rb:literal, $lanes:literal, $vec:ty,
         $zero:ident, $load:ident, $mul:ident, $fma:ident, $sum:path) => {
            /// `out = A Bᵀ` (see [`super::a_bt`]).
            ///
            /// # Safety
            /// The processor must have the features this copy is compiled for;
            /// `a.len() / k` rows of `A` and `p` rows of `B`, both `k` long, and
            /// `out` at least `(a.len() / k) · p` long.
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<const SQ: bool>(
                a: &[f64],
                b: &[f64],
                k: usize,
                p: usize,
                out: &mut [f64],
            ) {
                let m = a.len() / k;
                assert!(b.len() >= p * k && out.len() >= m * p);
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
                                let v = unsafe { $load(ap[r].add(q)) };
                                av[r] = if SQ { $mul(v, v) } else { v };
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
                                    let x = if SQ { x * x } else { x };
                                    sum = x.mul_add(y, sum);
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

    #[target_feature(enable = "avx2")]
    fn sum4(v: __m256d) -> f64 {
        let mut lanes = [0f64; 4];
        // SAFETY: four f64 lanes into a four-value array
        unsafe { _mm256_storeu_pd(lanes.as_mut_ptr(), v) };
        (lanes[0] + lanes[2]) + (lanes[1] + lanes[3])
    }

    // 32 registers of 8 lanes: twelve accumulators, four rows of A, one of B
    tiled!(
        a_bt_avx512,
        "avx512f,fma",
        4,
        3,
        8,
        __m512d,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_mul_pd,
        _mm512_fmadd_pd,
        _mm512_reduce_add_pd
    );
    // 16 registers of 4 lanes: nine accumulators, three rows of A, one of B
    tiled!(
        a_bt_avx2,
        "avx2,fma",
        3,
        3,
        4,
        __m256d,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_mul_pd,
        _mm256_fmadd_pd,
        sum4
    );
}

/// One dot product, in four independent lanes (processors without AVX2 and FMA).
fn dot<const SQ: bool>(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..4 {
            let xv = if SQ { x[l] * x[l] } else { x[l] };
            acc[l] += xv * y[l];
        }
    }
    let mut sum = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for (x, y) in ar.iter().zip(br) {
        let xv = if SQ { x * x } else { *x };
        sum += xv * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_equals_the_naive_sums_on_every_edge() {
        // sizes that leave partial tiles in both operands and a tail in k
        for (m, p, k) in [(1, 1, 1), (7, 5, 13), (9, 3, 8), (130, 9, 67), (4, 11, 3)] {
            let a: Vec<f64> = (0..m * k)
                .map(|v| ((v * 37 % 101) as f64 - 50.0) / 7.0)
                .collect();
            let b: Vec<f64> = (0..p * k)
                .map(|v| ((v * 53 % 97) as f64 - 48.0) / 5.0)
                .collect();
            for square in [false, true] {
                let mut out = vec![f64::NAN; m * p];
                a_bt(&a, &b, k, square, &mut out);
                for i in 0..m {
                    for c in 0..p {
                        let want: f64 = (0..k)
                            .map(|j| {
                                let x = a[i * k + j];
                                (if square { x * x } else { x }) * b[c * k + j]
                            })
                            .sum();
                        let got = out[i * p + c];
                        assert!(
                            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                            "({m}, {p}, {k}) square {square}: [{i}, {c}] {got} against {want}"
                        );
                    }
                }
            }
        }
        // large enough to run in parallel tasks
        let (m, p, k) = (3000, 4, 400);
        let a: Vec<f64> = (0..m * k).map(|v| (v % 7) as f64).collect();
        let b = vec![1.0; p * k];
        let mut out = vec![0.0; m * p];
        a_bt(&a, &b, k, false, &mut out);
        for i in 0..m {
            let want: f64 = a[i * k..(i + 1) * k].iter().sum();
            assert!(
                out[i * p..(i + 1) * p].iter().all(|&v| v == want),
                "row {i}"
            );
        }
    }
}
