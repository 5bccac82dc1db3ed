//! The probe's objective solved to its optimum: truncated Newton (preconditioned
//! conjugate gradients on Hessian-vector products, Armijo backtracking) in `f64`.
//!
//! The objective is `Σᵢ sᵢ CEᵢ + λ/2 ‖W‖²` over weights `W` `(d, C)` and unpenalised
//! biases `b`, with row shares `sᵢ` summing to one (`1/N`, or balanced class weights).
//! It is smooth and convex, strictly so in `W`; the biases are free up to the softmax's
//! common shift, which changes nothing. Each Newton step costs a few products of the
//! `(N, d + 1)` rows with `(d + 1, C)` matrices, never a `(dC)²` Hessian, so it scales
//! to pooled embeddings of a thousand values; a diagonal (Jacobi) preconditioner absorbs
//! the differences of scale between classes and between weights and biases.
//!
//! A class with no training row has no finite optimum (its bias would fall forever):
//! it is left out of the fit and gets zero weights and a bias of [`ABSENT_BIAS`], so it
//! is never predicted.

use ndarray::{s, Array1, Array2, ArrayView2, Zip};

use crate::kernels::Rows;

/// The bias of a class with no training row.
pub(super) const ABSENT_BIAS: f64 = -1e30;

/// Stop once the Newton decrement (half of `−gᵀΔ`, an estimate of the distance to
/// the optimum's objective) is below this fraction of the objective.
const DECREMENT_TOL: f64 = 1e-9;
/// Newton iterations at most (a well-posed fit takes 5 to 30).
const MAX_NEWTON: usize = 200;
/// Conjugate-gradient iterations per Newton step at most.
const MAX_CG: usize = 500;

/// The rows and labels of one fit, in the layout the solver works in. Parameters
/// are held transposed, `(C', d + 1)` (one row per present class, its bias last), so
/// that the scores are [`Rows::times_bt`] and the gradient [`Rows::back`].
pub(super) struct Problem {
    /// Standardised rows with a trailing 1, `(N, d + 1)`.
    rows: Rows,
    n: usize,
    d: usize,
    /// Each row's label among the present classes.
    y: Vec<usize>,
    /// Each row's share of the loss (sums to one).
    share: Array1<f64>,
    /// The present classes (with a training row), in order.
    present: Vec<usize>,
    /// All classes.
    classes: usize,
}

impl Problem {
    /// `xs` `(N, d)` standardised rows (row-major), labels in `0..classes`, row shares
    /// summing to one.
    pub(super) fn new(
        xs: &[f32],
        d: usize,
        labels: &[usize],
        classes: usize,
        share: Vec<f64>,
    ) -> Self {
        let n = labels.len();
        let mut xa = Vec::with_capacity(n * (d + 1));
        for row in xs.chunks_exact(d.max(1)).take(n) {
            xa.extend_from_slice(&row[..d]);
            xa.push(1.0);
        }
        if d == 0 {
            xa = vec![1.0; n];
        }
        let mut seen = vec![false; classes];
        for &c in labels {
            seen[c] = true;
        }
        let present: Vec<usize> = (0..classes).filter(|&c| seen[c]).collect();
        let mut slot = vec![usize::MAX; classes];
        for (k, &c) in present.iter().enumerate() {
            slot[c] = k;
        }
        Self {
            rows: Rows::new(xa, d + 1),
            n,
            d,
            y: labels.iter().map(|&c| slot[c]).collect(),
            share: Array1::from_vec(share),
            present,
            classes,
        }
    }

    /// `Xa θ`: scores `(N, C')` of parameters `(C', d + 1)`.
    fn scores(&self, theta_t: &Array2<f64>) -> Array2<f64> {
        let theta_t = theta_t.as_standard_layout();
        let cp = theta_t.nrows();
        let z = self.rows.times_bt(theta_t.as_slice().unwrap_or(&[]), cp);
        Array2::from_shape_vec((self.n, cp), z).unwrap_or_else(|_| Array2::zeros((self.n, cp)))
    }

    /// `(Xaᵀ r)ᵀ` `(C', d + 1)` for `r` `(N, C')`, with `Xa` squared elementwise when
    /// `square`.
    fn back_product(&self, r: &Array2<f64>, square: bool) -> Array2<f64> {
        let r = r.as_standard_layout();
        let cp = r.ncols();
        let flat = r.as_slice().unwrap_or(&[]);
        let g = self.rows.back(cp, square, |rows, out| {
            out.copy_from_slice(&flat[rows.start * cp..rows.end * cp]);
        });
        self.shaped(g, cp)
    }

    fn shaped(&self, g: Vec<f64>, cp: usize) -> Array2<f64> {
        let k = self.d + 1;
        Array2::from_shape_vec((cp, k), g).unwrap_or_else(|_| Array2::zeros((cp, k)))
    }

    /// Objective and softmax probabilities `(N, C')` at `theta_t`.
    fn eval(&self, theta_t: &Array2<f64>, l2: f64) -> (f64, Array2<f64>) {
        let mut p = self.scores(theta_t);
        let mut ce = 0.0;
        for ((mut row, &y), &s) in p.rows_mut().into_iter().zip(&self.y).zip(&self.share) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let zy = row[y];
            let mut sum = 0.0;
            row.mapv_inplace(|z| {
                let e = (z - max).exp();
                sum += e;
                e
            });
            row /= sum;
            ce += s * (sum.ln() + max - zy);
        }
        let w = theta_t.slice(s![.., ..self.d]);
        (ce + 0.5 * l2 * w.iter().map(|v| v * v).sum::<f64>(), p)
    }

    /// `(Xaᵀ r)ᵀ + λ v` with the penalty on the weights of `v` (not the biases).
    fn back(&self, r: &Array2<f64>, v: ArrayView2<f64>, l2: f64) -> Array2<f64> {
        let mut g = self.back_product(r, false);
        let d = self.d;
        g.slice_mut(s![.., ..d])
            .scaled_add(l2, &v.slice(s![.., ..d]));
        g
    }

    /// The gradient at `theta_t` given its probabilities `p`.
    fn gradient(&self, theta_t: &Array2<f64>, p: &Array2<f64>, l2: f64) -> Array2<f64> {
        let mut r = p.clone();
        for ((mut row, &y), &s) in r.rows_mut().into_iter().zip(&self.y).zip(&self.share) {
            row[y] -= 1.0;
            row *= s;
        }
        self.back(&r, theta_t.view(), l2)
    }

    /// The Hessian at probabilities `p` times `v` `(C', d + 1)`, scoring and
    /// back-multiplying each block of rows while it is in cache.
    fn hess_times(&self, p: &Array2<f64>, v: &Array2<f64>, l2: f64) -> Array2<f64> {
        let vt = v.as_standard_layout();
        let vflat = vt.as_slice().unwrap_or(&[]);
        let cp = v.nrows();
        let g = self.rows.back(cp, false, |rows, out| {
            self.rows.times_bt_block(rows, vflat, cp, out);
            for (q, i) in out.chunks_exact_mut(cp).zip(rows.clone()) {
                let pi = p.row(i);
                let pq: f64 = pi.iter().zip(q.iter()).map(|(a, b)| a * b).sum();
                let s = self.share[i];
                for (q, &pc) in q.iter_mut().zip(pi.iter()) {
                    *q = s * pc * (*q - pq);
                }
            }
        });
        let mut g = self.shaped(g, cp);
        let d = self.d;
        g.slice_mut(s![.., ..d])
            .scaled_add(l2, &v.slice(s![.., ..d]));
        g
    }

    /// The Hessian's diagonal at probabilities `p` (never below a tiny floor).
    fn hess_diagonal(&self, p: &Array2<f64>, l2: f64) -> Array2<f64> {
        let mut curv = p.mapv(|p| p * (1.0 - p));
        Zip::from(curv.rows_mut())
            .and(&self.share)
            .for_each(|mut c, &s| c *= s);
        let mut diag = self.back_product(&curv, true);
        let d = self.d;
        diag.slice_mut(s![.., ..d]).mapv_inplace(|v| v + l2);
        diag.mapv_inplace(|v| v.max(1e-12));
        diag
    }

    /// Minimises the objective for `l2`, from `start` (over all classes) or zero:
    /// the solution `(d + 1, C)`, biases as the last row, over all classes.
    pub(super) fn solve(&self, l2: f64, start: Option<&Array2<f64>>) -> Array2<f64> {
        let cp = self.present.len();
        let mut theta = Array2::<f64>::zeros((cp, self.d + 1));
        if let Some(s0) = start {
            for (k, &c) in self.present.iter().enumerate() {
                theta.row_mut(k).assign(&s0.column(c));
            }
        }
        let (mut f, mut p) = self.eval(&theta, l2);
        let mut steps = 0;
        while steps < MAX_NEWTON && cp > 1 {
            let g = self.gradient(&theta, &p, l2);
            let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            if gnorm == 0.0 || !gnorm.is_finite() {
                break;
            }
            let dir = self.newton_direction(&p, &g, gnorm, l2);
            let slope: f64 = (&g * &dir).sum();
            if slope >= 0.0 {
                break;
            }
            // Armijo backtracking from the full Newton step
            let mut t = 1.0;
            let mut accepted = None;
            for _ in 0..60 {
                let trial = &theta + &(&dir * t);
                let (ft, pt) = self.eval(&trial, l2);
                if ft <= f + 1e-4 * t * slope {
                    accepted = Some((trial, ft, pt));
                    break;
                }
                t *= 0.5;
            }
            let Some((trial, ft, pt)) = accepted else {
                break;
            };
            steps += 1;
            let decrement = -0.5 * slope;
            let gain = f - ft;
            (theta, f, p) = (trial, ft, pt);
            if decrement <= DECREMENT_TOL * f.abs().max(1e-300) || gain <= 0.0 {
                break;
            }
        }
        let mut full = Array2::<f64>::zeros((self.d + 1, self.classes));
        for c in 0..self.classes {
            full[[self.d, c]] = ABSENT_BIAS;
        }
        for (k, &c) in self.present.iter().enumerate() {
            full.column_mut(c).assign(&theta.row(k));
        }
        full
    }

    /// An approximate solution of `H Δ = −g` by preconditioned conjugate gradients,
    /// to a relative residual of `min(0.5, √‖g‖)` (superlinear convergence).
    fn newton_direction(
        &self,
        p: &Array2<f64>,
        g: &Array2<f64>,
        gnorm: f64,
        l2: f64,
    ) -> Array2<f64> {
        let diag = self.hess_diagonal(p, l2);
        let tol = gnorm * gnorm.sqrt().min(0.5);
        let mut x = Array2::<f64>::zeros(g.raw_dim());
        let mut r = -g;
        let mut z = &r / &diag;
        let mut dir = z.clone();
        let mut rz: f64 = (&r * &z).sum();
        for _ in 0..MAX_CG {
            let hd = self.hess_times(p, &dir, l2);
            let curv: f64 = (&dir * &hd).sum();
            if curv <= 0.0 || !curv.is_finite() {
                break;
            }
            let alpha = rz / curv;
            x.scaled_add(alpha, &dir);
            r.scaled_add(-alpha, &hd);
            if r.iter().map(|v| v * v).sum::<f64>().sqrt() <= tol {
                break;
            }
            z = &r / &diag;
            let rz_next: f64 = (&r * &z).sum();
            let beta = rz_next / rz;
            rz = rz_next;
            dir = &z + &(&dir * beta);
        }
        if x.iter().all(|v| *v == 0.0) {
            // no curvature along the gradient: fall back to the preconditioned descent
            return -g / &diag;
        }
        x
    }
}

/// The mean of solutions (a warm start for the fit on all rows).
pub(super) fn mean_solution(sols: &[&Array2<f64>]) -> Option<Array2<f64>> {
    let first = sols.first()?;
    let mut sum = Array2::<f64>::zeros(first.raw_dim());
    for s in sols {
        // an absent class's bias stays out of the mean
        Zip::from(&mut sum).and(*s).for_each(|a, &b| {
            if b != ABSENT_BIAS {
                *a += b;
            }
        });
    }
    sum /= sols.len() as f64;
    Some(sum)
}
