//! Clustering of embeddings for unsupervised regional analysis (in the spirit of
//! Echegoyen et al.): seeded k-means with k-means++ initialisation, the adjusted
//! Rand index to compare clusterings with labels, and clustering of per-pixel
//! trajectories (a pixel's yearly embeddings concatenated in year order, so the
//! distance between two trajectories is the Euclidean distance summed over years).

use crate::error::SslError;
use crate::kernels::Rows;
use rand::{Rng, SeedableRng};

/// Result of [`kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Centroids, `k` rows of `d` values.
    pub centroids: Vec<Vec<f32>>,
    /// Cluster of each point.
    pub assignment: Vec<usize>,
    /// Sum of squared distances to the assigned centroids.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
}

fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}

/// The centroid nearest to `p` (squared Euclidean distance, summed in f64; the first
/// of equally near ones): the rule [`kmeans`] assigns by, for assigning new points
/// to centroids fitted elsewhere.
pub fn nearest(centroids: &[Vec<f32>], p: &[f32]) -> usize {
    (0..centroids.len())
        .min_by(|&a, &b| dist2(p, &centroids[a]).total_cmp(&dist2(p, &centroids[b])))
        .unwrap_or(0)
}

/// The points as one row-major matrix `(n, d)` with their squared norms (in f64), so
/// that the distances of every point to every centroid come from one product
/// ([`Rows::times_bt`]: the f32 points widened to f64 as they are read).
struct PointMatrix {
    x: Rows,
    d: usize,
    norms: Vec<f64>,
}

impl PointMatrix {
    fn new(points: &[Vec<f32>]) -> Self {
        let d = points.first().map_or(0, Vec::len);
        let norms = points
            .iter()
            .map(|p| p.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
            .collect();
        Self {
            x: Rows::new(points.concat(), d),
            d,
            norms,
        }
    }
}

/// Assigns every point to its nearest centroid by [`nearest`]'s rule; returns whether
/// any assignment changed. Squared distances are `‖x‖² − 2 x·c + ‖c‖²` with the
/// products `x·c` of all points and centroids in one f64 matrix product. That form
/// loses digits to cancellation (at most about `d · 2⁻⁵²` of `‖x‖² + ‖c‖²`), so
/// where the two nearest centroids are within `1e-9 (‖x‖² + max ‖c‖²)` of each
/// other, the point is assigned by [`nearest`] itself: the assignments are those of
/// the direct computation.
fn assign(
    m: &PointMatrix,
    points: &[Vec<f32>],
    centroids: &[Vec<f32>],
    assignment: &mut [usize],
) -> bool {
    let k = centroids.len();
    let c: Vec<f64> = centroids.iter().flatten().map(|&v| f64::from(v)).collect();
    let cn: Vec<f64> = centroids
        .iter()
        .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
        .collect();
    let max_cn = cn.iter().copied().fold(0.0, f64::max);
    let cross = m.x.times_bt(&c, k);
    let mut changed = false;
    for (i, row) in cross.chunks_exact(k.max(1)).enumerate() {
        let (mut best, mut bd, mut sd) = (0, f64::INFINITY, f64::INFINITY);
        for (j, (&xc, &cj)) in row.iter().zip(&cn).enumerate() {
            let dist = m.norms[i] - 2.0 * xc + cj;
            if dist < bd {
                (sd, bd, best) = (bd, dist, j);
            } else if dist < sd {
                sd = dist;
            }
        }
        let c = if sd - bd > 1e-9 * (m.norms[i] + max_cn) {
            best
        } else {
            nearest(centroids, &points[i])
        };
        if assignment[i] != c {
            assignment[i] = c;
            changed = true;
        }
    }
    changed
}

/// Checks that `points` are `n ≥ k ≥ 1` finite rows of one length.
fn check_points(points: &[Vec<f32>], k: usize) -> Result<(), SslError> {
    let n = points.len();
    if k == 0 || k > n {
        return Err(SslError::input(
            "k-means",
            format!("k = {k} must be in 1..={n} (the number of points)"),
        ));
    }
    let d = points[0].len();
    if let Some(i) = points
        .iter()
        .position(|p| p.len() != d || p.iter().any(|v| !v.is_finite()))
    {
        return Err(SslError::input(
            "k-means",
            format!("point {i} has another length than {d} or a non-finite value"),
        ));
    }
    Ok(())
}

/// k-means on `points` (rows of equal length): k-means++ seeding from `seed`, then
/// Lloyd iterations until no assignment changes or `max_iter`. An empty cluster is
/// re-seeded with the point farthest from its centroid.
pub fn kmeans(
    points: &[Vec<f32>],
    k: usize,
    max_iter: usize,
    seed: u64,
) -> Result<KMeans, SslError> {
    check_points(points, k)?;
    Ok(kmeans_on(
        &PointMatrix::new(points),
        points,
        k,
        max_iter,
        seed,
    ))
}

/// [`kmeans`] on checked points and their matrix.
fn kmeans_on(m: &PointMatrix, points: &[Vec<f32>], k: usize, max_iter: usize, seed: u64) -> KMeans {
    let n = points.len();
    let d = m.d;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // k-means++: first centre uniform, then proportional to squared distance.
    let mut centroids = vec![points[rng.random_range(0..n)].clone()];
    let mut best: Vec<f64> = points.iter().map(|p| dist2(p, &centroids[0])).collect();
    while centroids.len() < k {
        let total: f64 = best.iter().sum();
        let next = if total <= 0.0 {
            rng.random_range(0..n)
        } else {
            let mut r = rng.random::<f64>() * total;
            let mut idx = n - 1;
            for (i, &w) in best.iter().enumerate() {
                if r < w {
                    idx = i;
                    break;
                }
                r -= w;
            }
            idx
        };
        centroids.push(points[next].clone());
        for (b, p) in best.iter_mut().zip(points) {
            *b = b.min(dist2(p, &centroids[centroids.len() - 1]));
        }
    }
    let mut assignment = vec![usize::MAX; n];
    let mut iterations = 0;
    loop {
        let mut changed = assign(m, points, &centroids, &mut assignment);
        iterations += 1;
        let mut sums = vec![vec![0f64; d]; k];
        let mut counts = vec![0usize; k];
        for (p, &c) in points.iter().zip(&assignment) {
            counts[c] += 1;
            for (s, v) in sums[c].iter_mut().zip(p) {
                *s += *v as f64;
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                let far = (0..n)
                    .max_by(|&a, &b| {
                        dist2(&points[a], &centroids[assignment[a]])
                            .total_cmp(&dist2(&points[b], &centroids[assignment[b]]))
                    })
                    .unwrap_or(0);
                centroids[c] = points[far].clone();
                changed = true;
            } else {
                centroids[c] = sums[c]
                    .iter()
                    .map(|s| (s / counts[c] as f64) as f32)
                    .collect();
            }
        }
        if !changed || iterations >= max_iter {
            break;
        }
    }
    let inertia = points
        .iter()
        .zip(&assignment)
        .map(|(p, &c)| dist2(p, &centroids[c]))
        .sum();
    KMeans {
        centroids,
        assignment,
        inertia,
        iterations,
    }
}

/// The run of lowest inertia among `restarts` runs of [`kmeans`] seeded `seed`,
/// `seed + 1`, ... (the first of equally low ones). One k-means++ seeding can settle
/// in a poor local minimum; the inertia picks the best without reading any label
/// (scikit-learn's `n_init`). `restarts = 1` is [`kmeans`] itself.
pub fn kmeans_restarts(
    points: &[Vec<f32>],
    k: usize,
    max_iter: usize,
    seed: u64,
    restarts: usize,
) -> Result<KMeans, SslError> {
    if restarts == 0 {
        return Err(SslError::input(
            "k-means",
            "restarts = 0: at least one run is needed",
        ));
    }
    use rayon::prelude::*;
    check_points(points, k)?;
    let m = PointMatrix::new(points);
    // the runs in parallel, compared in seed order: the same result on any number
    // of threads
    let runs: Vec<KMeans> = (0..restarts as u64)
        .into_par_iter()
        .map(|r| kmeans_on(&m, points, k, max_iter, seed.wrapping_add(r)))
        .collect();
    let mut best = None::<KMeans>;
    for km in runs {
        if best.as_ref().is_none_or(|b| km.inertia < b.inertia) {
            best = Some(km);
        }
    }
    best.ok_or_else(|| SslError::input("k-means", "no run"))
}

/// Trajectories of pixels over years: `years[y][p]` is pixel `p`'s embedding in year
/// `y`; the result has one row per pixel, the years concatenated in order.
pub fn trajectories(years: &[Vec<Vec<f32>>]) -> Result<Vec<Vec<f32>>, SslError> {
    let n = years.first().map_or(0, Vec::len);
    if let Some(y) = years.iter().position(|v| v.len() != n) {
        return Err(SslError::input(
            "trajectories",
            format!("year {y} has {} pixels, year 0 has {n}", years[y].len()),
        ));
    }
    Ok((0..n)
        .map(|p| years.iter().flat_map(|y| y[p].iter().copied()).collect())
        .collect())
}

/// The mean of `rows` and their first `k` principal axes (unit vectors), without
/// projecting the rows: power iteration on the centred rows, each axis kept
/// orthogonal to the ones before, at most `iters` iterations per axis, the fixed
/// start vectors of [`pca`] (deterministic). For fitting axes on a sample and
/// projecting other rows on them.
pub fn principal_axes(rows: &[Vec<f32>], k: usize, iters: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = rows.len().max(1) as f64;
    let d = rows.first().map_or(0, Vec::len);
    let mut mean = vec![0f64; d];
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64 / n;
        }
    }
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut axes: Vec<Vec<f64>> = Vec::with_capacity(k);
    for c in 0..k.min(d) {
        let mut v: Vec<f64> = (0..d)
            .map(|j| 1.0 + ((j * 7919 + c * 104_729) % 997) as f64 / 997.0)
            .collect();
        for _ in 0..iters {
            let mut w = vec![0f64; d];
            for r in &x {
                let a = dot(r, &v);
                w.iter_mut().zip(r).for_each(|(wj, rj)| *wj += a * rj);
            }
            // deflation: stay orthogonal to the axes found before
            for u in &axes {
                let a = dot(&w, u);
                w.iter_mut().zip(u).for_each(|(wj, uj)| *wj -= a * uj);
            }
            let norm = dot(&w, &w).sqrt();
            if norm == 0.0 {
                break;
            }
            w.iter_mut().for_each(|wj| *wj /= norm);
            let delta: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            if delta < 1e-8 {
                break;
            }
        }
        axes.push(v);
    }
    (mean, axes)
}

/// Principal component analysis by power iteration: the projections of the centred
/// rows of `points` on their first `components` principal axes, and the fraction of
/// the total variance each axis explains. Deterministic (the start vectors are fixed);
/// each axis is found on the data with the previous axes projected out.
pub fn pca(points: &[Vec<f32>], components: usize) -> Result<(Vec<Vec<f64>>, Vec<f64>), SslError> {
    let n = points.len();
    let d = points.first().map_or(0, Vec::len);
    if n < 2 || d == 0 {
        return Err(SslError::input(
            "PCA",
            format!("needs at least 2 non-empty rows, got {n} rows of {d}"),
        ));
    }
    if let Some(i) = points.iter().position(|p| p.len() != d) {
        return Err(SslError::input(
            "PCA",
            format!("row {i} has {} values, row 0 has {d}", points[i].len()),
        ));
    }
    if let Some(i) = points.iter().position(|p| p.iter().any(|v| !v.is_finite())) {
        return Err(SslError::input(
            "PCA",
            format!("row {i} has a non-finite value"),
        ));
    }
    let mut mean = vec![0f64; d];
    for p in points {
        for (m, &v) in mean.iter_mut().zip(p) {
            *m += v as f64 / n as f64;
        }
    }
    let mut x: Vec<Vec<f64>> = points
        .iter()
        .map(|p| p.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect();
    let total: f64 = x.iter().flatten().map(|v| v * v).sum();
    let mut proj = vec![Vec::with_capacity(components); n];
    let mut explained = Vec::with_capacity(components);
    for c in 0..components.min(d) {
        // fixed, generic start vector
        let mut v: Vec<f64> = (0..d)
            .map(|j| 1.0 + ((j * 7919 + c * 104_729) % 997) as f64 / 997.0)
            .collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let xv: Vec<f64> = x.iter().map(|r| dot(r, &v)).collect();
            let mut w = vec![0f64; d];
            for (r, a) in x.iter().zip(&xv) {
                for (wj, rj) in w.iter_mut().zip(r) {
                    *wj += a * rj;
                }
            }
            let norm = dot(&w, &w).sqrt();
            if norm == 0.0 {
                break;
            }
            w.iter_mut().for_each(|wj| *wj /= norm);
            let delta: f64 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            lambda = norm;
            if delta < 1e-10 {
                break;
            }
        }
        // a fixed sign: the largest-magnitude loading is positive
        let big = v
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map_or(0, |(j, _)| j);
        if v[big] < 0.0 {
            v.iter_mut().for_each(|e| *e = -*e);
        }
        for (r, out) in x.iter_mut().zip(proj.iter_mut()) {
            let a = dot(r, &v);
            out.push(a);
            for (rj, vj) in r.iter_mut().zip(&v) {
                *rj -= a * vj;
            }
        }
        explained.push(if total > 0.0 { lambda / total } else { 0.0 });
    }
    Ok((proj, explained))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Adjusted Rand index between two labelings of the same items (1 = identical
/// partitions, about 0 = chance).
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> Result<f64, SslError> {
    if a.len() != b.len() {
        return Err(SslError::input(
            "adjusted Rand index",
            format!("{} and {} labels", a.len(), b.len()),
        ));
    }
    let n = a.len() as f64;
    let ka = a.iter().max().map_or(0, |m| m + 1);
    let kb = b.iter().max().map_or(0, |m| m + 1);
    let mut table = vec![vec![0f64; kb]; ka];
    for (&x, &y) in a.iter().zip(b) {
        table[x][y] += 1.0;
    }
    let c2 = |x: f64| x * (x - 1.0) / 2.0;
    let index: f64 = table.iter().flatten().map(|&v| c2(v)).sum();
    let rows: f64 = table.iter().map(|r| c2(r.iter().sum())).sum();
    let cols: f64 = (0..kb).map(|j| c2(table.iter().map(|r| r[j]).sum())).sum();
    let expected = rows * cols / c2(n);
    let max = (rows + cols) / 2.0;
    if max == expected {
        return Ok(1.0);
    }
    Ok((index - expected) / (max - expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_recovers_the_axes_of_a_stretched_cloud() {
        // a centred, uncorrelated grid (a, b) rotated by 45 degrees and shifted:
        // the principal axes are (1,1)/sqrt2 with the a-values, (1,-1)/sqrt2 with b
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let mut pts = Vec::new();
        let mut ab = Vec::new();
        for i in -10..=10 {
            for j in -2..=2 {
                let (a, b) = (0.5 * i as f64, 0.2 * j as f64);
                pts.push(vec![
                    (5.0 + s * (a + b)) as f32,
                    (-2.0 + s * (a - b)) as f32,
                    1.0,
                ]);
                ab.push((a, b));
            }
        }
        let (proj, explained) = pca(&pts, 2).expect("pca");
        for (p, (a, b)) in proj.iter().zip(&ab) {
            assert!((p[0].abs() - a.abs()).abs() < 1e-5, "{p:?} vs {a}");
            assert!((p[1].abs() - b.abs()).abs() < 1e-5, "{p:?} vs {b}");
        }
        let n = ab.len() as f64;
        let va: f64 = ab.iter().map(|x| x.0 * x.0).sum::<f64>() / n;
        let vb: f64 = ab.iter().map(|x| x.1 * x.1).sum::<f64>() / n;
        assert!(
            (explained[0] - va / (va + vb)).abs() < 1e-6,
            "{explained:?}"
        );
        assert!(
            (explained[1] - vb / (va + vb)).abs() < 1e-6,
            "{explained:?}"
        );
        assert!(pca(&[vec![1.0]], 1).is_err());
        assert!(pca(&[vec![1.0], vec![f32::NAN]], 1).is_err());
    }

    fn blobs() -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut pts = Vec::new();
        let mut lab = Vec::new();
        for c in 0..3usize {
            for i in 0..20 {
                let j = (i as f32 * 0.37).sin() * 0.3;
                pts.push(vec![c as f32 * 5.0 + j, -(c as f32) * 3.0 - j]);
                lab.push(c);
            }
        }
        (pts, lab)
    }

    /// The implementation before distances came from a matrix product: every
    /// distance summed directly.
    fn direct_kmeans(
        points: &[Vec<f32>],
        k: usize,
        max_iter: usize,
        seed: u64,
    ) -> Result<KMeans, SslError> {
        let n = points.len();
        if k == 0 || k > n {
            return Err(SslError::input(
                "k-means",
                format!("k = {k} must be in 1..={n} (the number of points)"),
            ));
        }
        let d = points[0].len();
        if let Some(i) = points
            .iter()
            .position(|p| p.len() != d || p.iter().any(|v| !v.is_finite()))
        {
            return Err(SslError::input(
                "k-means",
                format!("point {i} has another length than {d} or a non-finite value"),
            ));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // k-means++: first centre uniform, then proportional to squared distance.
        let mut centroids = vec![points[rng.random_range(0..n)].clone()];
        let mut best: Vec<f64> = points.iter().map(|p| dist2(p, &centroids[0])).collect();
        while centroids.len() < k {
            let total: f64 = best.iter().sum();
            let next = if total <= 0.0 {
                rng.random_range(0..n)
            } else {
                let mut r = rng.random::<f64>() * total;
                let mut idx = n - 1;
                for (i, &w) in best.iter().enumerate() {
                    if r < w {
                        idx = i;
                        break;
                    }
                    r -= w;
                }
                idx
            };
            centroids.push(points[next].clone());
            for (b, p) in best.iter_mut().zip(points) {
                *b = b.min(dist2(p, &centroids[centroids.len() - 1]));
            }
        }
        let mut assignment = vec![usize::MAX; n];
        let mut iterations = 0;
        loop {
            let mut changed = false;
            for (i, p) in points.iter().enumerate() {
                let c = nearest(&centroids, p);
                if assignment[i] != c {
                    assignment[i] = c;
                    changed = true;
                }
            }
            iterations += 1;
            let mut sums = vec![vec![0f64; d]; k];
            let mut counts = vec![0usize; k];
            for (p, &c) in points.iter().zip(&assignment) {
                counts[c] += 1;
                for (s, v) in sums[c].iter_mut().zip(p) {
                    *s += *v as f64;
                }
            }
            for c in 0..k {
                if counts[c] == 0 {
                    let far = (0..n)
                        .max_by(|&a, &b| {
                            dist2(&points[a], &centroids[assignment[a]])
                                .total_cmp(&dist2(&points[b], &centroids[assignment[b]]))
                        })
                        .unwrap_or(0);
                    centroids[c] = points[far].clone();
                    changed = true;
                } else {
                    centroids[c] = sums[c]
                        .iter()
                        .map(|s| (s / counts[c] as f64) as f32)
                        .collect();
                }
            }
            if !changed || iterations >= max_iter {
                break;
            }
        }
        let inertia = points
            .iter()
            .zip(&assignment)
            .map(|(p, &c)| dist2(p, &centroids[c]))
            .sum();
        Ok(KMeans {
            centroids,
            assignment,
            inertia,
            iterations,
        })
    }

    /// Points exactly as far from two centroids, far from the origin: each point
    /// `x` has the centroids `x − a` and `x − π(a)` (`π` a permutation, `a` small
    /// dyadic), so the direct distances are exact and tie (the rule picks the
    /// first), while the product form rounds its large terms differently for the
    /// two and would pick either.
    #[test]
    fn near_ties_are_decided_by_the_direct_distances() {
        let d = 1024;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut points = Vec::new();
        let mut centroids = Vec::new();
        for p in 0..40 {
            let x: Vec<f32> = (0..d)
                .map(|_| 1e6 + 5e4 * p as f32 + (rng.random::<f32>() * 1e4).round())
                .collect();
            let a: Vec<f32> = (0..d)
                .map(|_| rng.random_range(-4i32..=4) as f32 * 0.25)
                .collect();
            let shift = rng.random_range(1..d);
            centroids.push(x.iter().zip(&a).map(|(x, a)| x - a).collect::<Vec<f32>>());
            centroids.push(
                x.iter()
                    .enumerate()
                    .map(|(j, x)| x - a[(j + shift) % d])
                    .collect::<Vec<f32>>(),
            );
            points.push(x);
        }
        let m = PointMatrix::new(&points);
        let mut got = vec![usize::MAX; points.len()];
        assign(&m, &points, &centroids, &mut got);
        let want: Vec<usize> = points.iter().map(|p| nearest(&centroids, p)).collect();
        let first: Vec<usize> = (0..40).map(|p| 2 * p).collect();
        assert_eq!(want, first, "exact ties go to the first");
        assert_eq!(got, want);
    }

    /// Overlapping clusters in 48 dimensions with exact ties (duplicated points,
    /// points halfway between two others): the matrix-product assignment gives the
    /// direct computation's clusters, iterations and inertia, run for run.
    #[test]
    fn matrix_product_assignment_equals_the_direct_distances() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut pts: Vec<Vec<f32>> = (0..600)
            .map(|i| {
                (0..48)
                    .map(|j| (i % 5) as f32 * 0.6 * ((j % 3) as f32) + rng.random::<f32>() * 2.0)
                    .collect()
            })
            .collect();
        for i in 0..40 {
            let (a, b) = (pts[2 * i].clone(), pts[2 * i + 1].clone());
            pts.push(a.iter().zip(&b).map(|(x, y)| (x + y) / 2.0).collect());
            pts.push(a);
        }
        for k in [1, 2, 5, 9] {
            for seed in 0..4 {
                let want = direct_kmeans(&pts, k, 100, seed).unwrap();
                let got = kmeans(&pts, k, 100, seed).unwrap();
                assert_eq!(got, want, "k = {k}, seed {seed}");
            }
        }
    }

    #[test]
    fn kmeans_recovers_blobs_and_is_seeded() {
        let (pts, lab) = blobs();
        let km = kmeans(&pts, 3, 100, 1).unwrap();
        assert!((adjusted_rand_index(&km.assignment, &lab).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(km, kmeans(&pts, 3, 100, 1).unwrap());
        assert!(kmeans(&pts, 0, 10, 1).is_err());
        assert!(kmeans(&pts, 61, 10, 1).is_err());
    }

    #[test]
    fn restarts_keep_the_lowest_inertia() {
        // four blobs, two of them close: single seedings disagree on some seeds
        let mut pts = Vec::new();
        for (cx, cy) in [(0.0f32, 0.0f32), (10.0, 0.0), (0.0, 10.0), (1.5, 0.0)] {
            for i in 0..15 {
                let a = i as f32 * 0.7;
                pts.push(vec![cx + 0.4 * a.sin(), cy + 0.4 * a.cos()]);
            }
        }
        let singles: Vec<f64> = (0..8)
            .map(|s| kmeans(&pts, 4, 100, s).unwrap().inertia)
            .collect();
        let best = kmeans_restarts(&pts, 4, 100, 0, 8).unwrap();
        let lowest = singles.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            singles.iter().any(|&v| v > 1.5 * lowest),
            "some single seeding should land in a worse minimum: {singles:?}"
        );
        assert_eq!(best.inertia, lowest, "singles {singles:?}");
        assert_eq!(
            kmeans_restarts(&pts, 4, 100, 3, 1).unwrap(),
            kmeans(&pts, 4, 100, 3).unwrap()
        );
        assert!(kmeans_restarts(&pts, 4, 100, 0, 0).is_err());
    }

    #[test]
    fn ari_hand_cases() {
        // identical up to renaming
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[1, 1, 0, 0]).unwrap() - 1.0).abs() < 1e-12);
        // a = [0,0,1,1], b = [0,1,0,1]: index 0, rows 2, cols 2, expected 2*2/6 = 2/3,
        // max 2 -> ARI = (0 - 2/3) / (2 - 2/3) = -0.5
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap() + 0.5).abs() < 1e-12);
        let t = trajectories(&[vec![vec![1.0], vec![2.0]], vec![vec![3.0], vec![4.0]]]).unwrap();
        assert_eq!(t, vec![vec![1.0, 3.0], vec![2.0, 4.0]]);
    }
}
