//! Ridge regression, for forecasting probes.

use crate::error::SslError;

/// Ridge regression (for forecasting probes): features are standardised with the
/// training mean and standard deviation, targets centred, and the weights solve
/// `(XᵀX + λ·n·I) W = Xᵀ Y` in f64 by Cholesky (`n` training rows, so `λ` does not
/// depend on the set size).
#[derive(Debug, Clone, PartialEq)]
pub struct Ridge {
    x_mean: Vec<f64>,
    x_std: Vec<f64>,
    y_mean: Vec<f64>,
    /// `d × k` weights on the standardised features.
    w: Vec<Vec<f64>>,
}

impl Ridge {
    /// Fits targets `y` (`n` rows of `k`) on features `x` (`n` rows of `d`).
    #[allow(clippy::needless_range_loop)] // matrix algebra reads best with explicit indices
    pub fn fit(x: &[Vec<f32>], y: &[Vec<f32>], lambda: f64) -> std::result::Result<Self, SslError> {
        let n = x.len();
        if n == 0 || n != y.len() {
            return Err(SslError::input(
                "ridge",
                format!("{n} feature rows and {} target rows", y.len()),
            ));
        }
        let (d, k) = (x[0].len(), y[0].len());
        if let Some(i) = x.iter().position(|r| r.len() != d) {
            return Err(SslError::input(
                "ridge",
                format!("feature row {i} has {} values, row 0 has {d}", x[i].len()),
            ));
        }
        if let Some(i) = y.iter().position(|r| r.len() != k) {
            return Err(SslError::input(
                "ridge",
                format!("target row {i} has {} values, row 0 has {k}", y[i].len()),
            ));
        }
        if x.iter().chain(y).flatten().any(|v| !v.is_finite()) {
            return Err(SslError::input("ridge", "non-finite feature or target"));
        }
        if lambda < 0.0 {
            return Err(SslError::input("ridge", format!("negative λ {lambda}")));
        }
        let nf = n as f64;
        let mean = |rows: &[Vec<f32>], m: usize| -> Vec<f64> {
            let mut s = vec![0f64; m];
            for r in rows {
                for (a, &v) in s.iter_mut().zip(r) {
                    *a += v as f64 / nf;
                }
            }
            s
        };
        let (x_mean, y_mean) = (mean(x, d), mean(y, k));
        let mut x_std = vec![0f64; d];
        for r in x {
            for j in 0..d {
                x_std[j] += (r[j] as f64 - x_mean[j]).powi(2) / nf;
            }
        }
        x_std.iter_mut().for_each(|s| *s = s.sqrt().max(1e-12));
        let z: Vec<Vec<f64>> = x
            .iter()
            .map(|r| {
                (0..d)
                    .map(|j| (r[j] as f64 - x_mean[j]) / x_std[j])
                    .collect()
            })
            .collect();
        // A = ZᵀZ + λ n I, B = Zᵀ (Y − ȳ)
        let mut a = vec![vec![0f64; d]; d];
        let mut b = vec![vec![0f64; k]; d];
        for (zr, yr) in z.iter().zip(y) {
            for i in 0..d {
                for j in i..d {
                    a[i][j] += zr[i] * zr[j];
                }
                for c in 0..k {
                    b[i][c] += zr[i] * (yr[c] as f64 - y_mean[c]);
                }
            }
        }
        for i in 0..d {
            for j in 0..i {
                a[i][j] = a[j][i];
            }
            a[i][i] += lambda * nf + 1e-10 * nf;
        }
        // Cholesky A = L Lᵀ
        let mut l = vec![vec![0f64; d]; d];
        for i in 0..d {
            for j in 0..=i {
                let s: f64 = (0..j).map(|m| l[i][m] * l[j][m]).sum();
                if i == j {
                    let v = a[i][i] - s;
                    if v <= 0.0 {
                        return Err(SslError::Numerical {
                            what: "ridge",
                            reason: "the system is not positive definite (use λ > 0)".into(),
                        });
                    }
                    l[i][i] = v.sqrt();
                } else {
                    l[i][j] = (a[i][j] - s) / l[j][j];
                }
            }
        }
        let mut w = vec![vec![0f64; k]; d];
        for c in 0..k {
            let mut u = vec![0f64; d];
            for i in 0..d {
                let s: f64 = (0..i).map(|m| l[i][m] * u[m]).sum();
                u[i] = (b[i][c] - s) / l[i][i];
            }
            for i in (0..d).rev() {
                let s: f64 = (i + 1..d).map(|m| l[m][i] * w[m][c]).sum();
                w[i][c] = (u[i] - s) / l[i][i];
            }
        }
        Ok(Self {
            x_mean,
            x_std,
            y_mean,
            w,
        })
    }

    /// Predictions for feature rows `x`.
    pub fn predict(&self, x: &[Vec<f32>]) -> Vec<Vec<f32>> {
        x.iter()
            .map(|r| {
                let mut out = self.y_mean.clone();
                for (j, (&v, wj)) in r.iter().zip(&self.w).enumerate() {
                    let z = (v as f64 - self.x_mean[j]) / self.x_std[j];
                    for (o, &wc) in out.iter_mut().zip(wj) {
                        *o += z * wc;
                    }
                }
                out.into_iter().map(|v| v as f32).collect()
            })
            .collect()
    }
}

/// Root mean squared error over all values of two equally shaped row sets.
pub fn rmse(pred: &[Vec<f32>], truth: &[Vec<f32>]) -> f64 {
    let (mut s, mut n) = (0f64, 0usize);
    for (p, t) in pred.iter().zip(truth) {
        for (a, b) in p.iter().zip(t) {
            s += ((a - b) as f64).powi(2);
            n += 1;
        }
    }
    (s / n.max(1) as f64).sqrt()
}

#[cfg(test)]
mod ridge_tests {
    use super::*;

    #[test]
    fn ridge_recovers_a_linear_map_and_shrinks_with_lambda() {
        // y0 = 2 x0 - x1 + 3, y1 = 0.5 x1; x2 is noise-free irrelevant
        let x: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                let t = i as f32;
                vec![
                    (t * 0.37).sin() * 3.0,
                    (t * 0.11).cos() + t * 0.05,
                    ((i * 7) % 5) as f32,
                ]
            })
            .collect();
        let y: Vec<Vec<f32>> = x
            .iter()
            .map(|r| vec![2.0 * r[0] - r[1] + 3.0, 0.5 * r[1]])
            .collect();
        let m = Ridge::fit(&x, &y, 0.0).unwrap();
        let p = m.predict(&x);
        assert!(rmse(&p, &y) < 1e-4, "{}", rmse(&p, &y));
        let q = Ridge::fit(&x, &y, 10.0).unwrap().predict(&x);
        let spread = |v: &[Vec<f32>]| {
            let m = v.iter().map(|r| r[0] as f64).sum::<f64>() / v.len() as f64;
            v.iter().map(|r| (r[0] as f64 - m).powi(2)).sum::<f64>()
        };
        assert!(
            spread(&q) < 0.2 * spread(&y),
            "strong λ shrinks predictions to the mean"
        );
        assert!(Ridge::fit(&x, &y[..3], 1.0).is_err());
        assert!(Ridge::fit(&x, &y, -1.0).is_err());
        assert_eq!(rmse(&[vec![1.0, 3.0]], &[vec![0.0, 0.0]]), 5f64.sqrt());
    }
}
