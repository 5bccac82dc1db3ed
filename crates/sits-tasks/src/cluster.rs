//! Clusters of pixel-period embeddings: k-means on all periods at once (one
//! taxonomy shared by every period, drawn as one map per period) and k-means on
//! each pixel's trajectory (its embeddings of every period concatenated, so the
//! distance is the Euclidean distance summed over periods: one map of dynamics).

use ndarray::Array3;
use serde::{Deserialize, Serialize};
use sits_ssl::cluster::{adjusted_rand_index, kmeans_restarts, trajectories};

use crate::error::{Result, TaskError};
use crate::input::Grid;
use crate::maps::{MapKind, MapStack};

/// Settings of [`cluster`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Number of clusters.
    pub k: usize,
    /// Lloyd iterations at most.
    pub max_iter: usize,
    /// Seed of the k-means++ initialisation (of the first run; run `r` uses
    /// `seed + r`).
    pub seed: u64,
    /// k-means runs from different seedings; the one of lowest inertia is kept
    /// ([`sits_ssl::cluster::kmeans_restarts`]).
    #[serde(default = "default_restarts")]
    pub restarts: usize,
    /// Scale every feature to zero mean and unit variance over the rows first, so
    /// that no dimension dominates the distance.
    pub standardise: bool,
    /// Also cluster the trajectories of the pixels present in every period.
    pub trajectories: bool,
}

fn default_restarts() -> usize {
    10
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            k: 6,
            max_iter: 100,
            seed: 0,
            restarts: default_restarts(),
            standardise: true,
            trajectories: true,
        }
    }
}

/// What [`cluster`] found.
#[derive(Debug, Clone)]
pub struct Clusters {
    /// Cluster of each row.
    pub assignment: Vec<usize>,
    /// Sum of squared distances to the centroids (in the standardised space).
    pub inertia: f64,
    /// Rows per cluster.
    pub sizes: Vec<usize>,
    /// Adjusted Rand index with the labelled rows, when some rows are labelled.
    pub ari: Option<f64>,
    /// The same clusters' adjusted Rand index on the two halves of the labelled
    /// pixels of [`labels_by_pixel_halves`], `(first, second)`, when each half has at
    /// least 2 labelled rows: choose settings (k, the encoder, its epochs) on the
    /// first, report the second.
    pub ari_halves: Option<(f64, f64)>,
    /// Trajectory cluster of each pixel present in every period, as
    /// `(row, col, cluster)`, when asked for and there are at least 2 periods.
    pub trajectory: Option<Vec<(usize, usize, usize)>>,
}

/// Per-column mean and standard deviation of rows (in f64), to scale them to zero
/// mean and unit variance; a constant column becomes 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardisation {
    /// Mean of each column.
    pub mean: Vec<f64>,
    /// Standard deviation of each column (at least 1e-8).
    pub sd: Vec<f64>,
}

impl Standardisation {
    /// The statistics of `rows` (rows of equal length).
    pub fn fit(rows: &[Vec<f32>]) -> Self {
        let d = rows.first().map_or(0, Vec::len);
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for r in rows {
            for (j, &v) in r.iter().enumerate() {
                mean[j] += v as f64 / n;
                sq[j] += (v as f64).powi(2) / n;
            }
        }
        let sd = (0..d)
            .map(|j| (sq[j] - mean[j].powi(2)).max(0.0).sqrt().max(1e-8))
            .collect();
        Self { mean, sd }
    }

    /// `row` scaled.
    pub fn apply(&self, row: &[f32]) -> Vec<f32> {
        row.iter()
            .zip(self.mean.iter().zip(&self.sd))
            .map(|(&v, (m, s))| ((v as f64 - m) / s) as f32)
            .collect()
    }
}

/// Each column of `rows` scaled to zero mean and unit variance (a constant column
/// becomes 0).
pub fn standardise(rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let st = Standardisation::fit(rows);
    rows.iter().map(|r| st.apply(r)).collect()
}

/// Adjusted Rand index between `assign` and the labels over the labelled rows;
/// `None` when fewer than 2 rows are labelled.
pub fn ari_on_labelled(assign: &[usize], labels: &[Option<usize>]) -> Result<Option<f64>> {
    let (a, b): (Vec<usize>, Vec<usize>) = assign
        .iter()
        .zip(labels)
        .filter_map(|(&c, l)| l.map(|l| (c, l)))
        .unzip();
    if a.len() < 2 {
        return Ok(None);
    }
    Ok(Some(adjusted_rand_index(&a, &b)?))
}

/// The labels of `grid` (one per row) split into two halves by pixel, `(validation,
/// test)`: every period of a pixel falls in the same half, drawn from a fixed hash of
/// its position (about half of the labelled pixels each). For an unsupervised method
/// (k-means, a choice of embedding) whose settings are chosen on the agreement with
/// labels: choose on the first half with [`ari_on_labelled`], report the second.
pub fn labels_by_pixel_halves(grid: &Grid) -> (Vec<Option<usize>>, Vec<Option<usize>>) {
    // splitmix64 of the position: neighbouring pixels land independently
    let half = |row: usize, col: usize| {
        let mut z = ((row as u64) << 32 ^ col as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) & 1
    };
    grid.index
        .iter()
        .map(|p| {
            let first = half(p.row, p.col) == 0;
            (p.label.filter(|_| first), p.label.filter(|_| !first))
        })
        .unzip()
}

/// Clusters `rows` (one per entry of `grid.index`).
pub fn cluster(rows: &[Vec<f32>], grid: &Grid, cfg: &ClusterConfig) -> Result<Clusters> {
    if rows.len() != grid.index.len() {
        return Err(TaskError::Settings(format!(
            "{} rows for {} pixel-periods",
            rows.len(),
            grid.index.len()
        )));
    }
    let x = if cfg.standardise {
        standardise(rows)
    } else {
        rows.to_vec()
    };
    let km = kmeans_restarts(&x, cfg.k, cfg.max_iter, cfg.seed, cfg.restarts)?;
    let ari = ari_on_labelled(&km.assignment, &grid.labels())?;
    let (first, second) = labels_by_pixel_halves(grid);
    let ari_halves = match (
        ari_on_labelled(&km.assignment, &first)?,
        ari_on_labelled(&km.assignment, &second)?,
    ) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    let mut sizes = vec![0usize; cfg.k];
    km.assignment.iter().for_each(|&c| sizes[c] += 1);
    let trajectory = if cfg.trajectories && grid.periods.len() >= 2 {
        Some(trajectory_clusters(&x, grid, cfg)?)
    } else {
        None
    };
    Ok(Clusters {
        assignment: km.assignment,
        inertia: km.inertia,
        sizes,
        ari,
        ari_halves,
        trajectory,
    })
}

fn trajectory_clusters(
    x: &[Vec<f32>],
    grid: &Grid,
    cfg: &ClusterConfig,
) -> Result<Vec<(usize, usize, usize)>> {
    let (h, w) = grid.size;
    let np = grid.periods.len();
    // the row of each pixel in each period
    let mut at = vec![usize::MAX; np * h * w];
    for (i, p) in grid.index.iter().enumerate() {
        if let Some(t) = grid.period_index(p.period) {
            at[(t * h + p.row) * w + p.col] = i;
        }
    }
    let pixels: Vec<(usize, usize)> = (0..h * w)
        .filter(|&q| (0..np).all(|t| at[t * h * w + q] != usize::MAX))
        .map(|q| (q / w, q % w))
        .collect();
    if pixels.len() < cfg.k {
        return Err(TaskError::input(
            "trajectories",
            format!(
                "{} pixels are present in all {np} periods, fewer than k = {}",
                pixels.len(),
                cfg.k
            ),
        ));
    }
    let per_period: Vec<Vec<Vec<f32>>> = (0..np)
        .map(|t| {
            pixels
                .iter()
                .map(|&(r, c)| x[at[(t * h + r) * w + c]].clone())
                .collect()
        })
        .collect();
    let traj = trajectories(&per_period)?;
    let km = kmeans_restarts(&traj, cfg.k, cfg.max_iter, cfg.seed, cfg.restarts)?;
    Ok(pixels
        .into_iter()
        .zip(km.assignment)
        .map(|((r, c), k)| (r, c, k))
        .collect())
}

/// The cluster maps named `name`: one layer per period (NaN where a pixel has no
/// row).
pub fn cluster_map(c: &Clusters, grid: &Grid, name: &str) -> Result<MapStack> {
    let (h, w) = grid.size;
    let mut v = Array3::<f32>::from_elem((grid.periods.len(), h, w), f32::NAN);
    for (p, &k) in grid.index.iter().zip(&c.assignment) {
        if let Some(t) = grid.period_index(p.period) {
            v[[t, p.row, p.col]] = k as f32;
        }
    }
    Ok(MapStack {
        name: name.into(),
        band: "cluster".into(),
        labels: grid.periods.iter().map(i32::to_string).collect(),
        times: period_times(grid)?,
        values: v,
        kind: MapKind::Categorical,
        geo: grid.geo.clone(),
    })
}

/// The trajectory cluster map named `name` (one layer dated at the first period).
pub fn trajectory_map(traj: &[(usize, usize, usize)], grid: &Grid, name: &str) -> Result<MapStack> {
    let (h, w) = grid.size;
    let mut v = Array3::<f32>::from_elem((1, h, w), f32::NAN);
    for &(r, c, k) in traj {
        v[[0, r, c]] = k as f32;
    }
    let first = grid.period_starts.first().cloned().unwrap_or_default();
    Ok(MapStack {
        name: name.into(),
        band: "cluster".into(),
        labels: vec!["all".into()],
        times: sits_core::dates::Timestamps::parse(&[first], "first period")
            .map_err(sits_data::DataError::from)?,
        values: v,
        kind: MapKind::Categorical,
        geo: grid.geo.clone(),
    })
}

pub(crate) fn period_times(grid: &Grid) -> Result<sits_core::dates::Timestamps> {
    Ok(
        sits_core::dates::Timestamps::parse(&grid.period_starts, "period starts")
            .map_err(sits_data::DataError::from)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::PixelPeriod;

    /// Two periods of an `h x w` grid, one pixel in seven unlabelled, three classes.
    fn two_period_grid(h: usize, w: usize) -> Grid {
        let mut index = Vec::new();
        for period in [2019, 2020] {
            for row in 0..h {
                for col in 0..w {
                    index.push(PixelPeriod {
                        row,
                        col,
                        period,
                        label: (!(row * w + col).is_multiple_of(7)).then_some((row + col) % 3),
                        split: None,
                    });
                }
            }
        }
        Grid {
            index,
            size: (h, w),
            periods: vec![2019, 2020],
            period_starts: vec!["2019-01-01".into(), "2020-01-01".into()],
            class_names: vec!["a".into(), "b".into(), "c".into()],
            geo: None,
        }
    }

    #[test]
    fn clusters_are_scored_on_both_halves() {
        let grid = two_period_grid(12, 12);
        // rows that separate the classes except for every tenth row, which
        // sits with the next class: the ARI is high but below 1 on each half
        let rows: Vec<Vec<f32>> = grid
            .index
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = p.label.unwrap_or(0);
                let c = if i.is_multiple_of(10) { (c + 1) % 3 } else { c };
                vec![10.0 * c as f32 + (i % 3) as f32 * 0.1]
            })
            .collect();
        let cfg = ClusterConfig {
            k: 3,
            trajectories: false,
            ..ClusterConfig::default()
        };
        let c = cluster(&rows, &grid, &cfg).unwrap();
        let (first, second) = labels_by_pixel_halves(&grid);
        let want = (
            ari_on_labelled(&c.assignment, &first).unwrap().unwrap(),
            ari_on_labelled(&c.assignment, &second).unwrap().unwrap(),
        );
        assert_eq!(c.ari_halves, Some(want));
        assert!(
            want.0 > 0.5 && want.0 < 1.0 && want.1 > 0.5 && want.1 < 1.0,
            "{want:?}"
        );
        // without labels neither half can be scored
        let mut unlabelled = grid.clone();
        unlabelled.index.iter_mut().for_each(|p| p.label = None);
        let c = cluster(&rows, &unlabelled, &cfg).unwrap();
        assert_eq!((c.ari, c.ari_halves), (None, None));
    }

    #[test]
    fn pixel_halves_keep_a_pixel_together_and_split_the_labels() {
        let (h, w) = (20, 20);
        let grid = two_period_grid(h, w);
        let (val, test) = labels_by_pixel_halves(&grid);
        let n = h * w;
        let mut in_val = 0;
        for (i, p) in grid.index.iter().enumerate() {
            // a labelled row is in exactly one half, with its label; others in none
            match p.label {
                Some(l) => {
                    assert!(val[i].is_some() != test[i].is_some(), "row {i}");
                    assert_eq!(val[i].or(test[i]), Some(l));
                }
                None => assert!(val[i].is_none() && test[i].is_none()),
            }
            // both periods of a pixel in the same half
            let j = (i + n) % (2 * n);
            assert_eq!(val[i].is_some(), val[j].is_some());
            in_val += usize::from(val[i].is_some());
        }
        let labelled = grid.index.iter().filter(|p| p.label.is_some()).count();
        let share = in_val as f64 / labelled as f64;
        assert!((0.4..0.6).contains(&share), "validation share {share}");
    }
}
