//! Ready-made inputs for self-supervised learning built from the representations of
//! this crate.
//!
//! - [`index_recurrence_images`]: the PIMC image modality, one recurrence plot per
//!   spectral index (NDVI, EVI, SAVI by default) stacked as channels.
//! - [`PlanarSlice`] and [`planar_pair`]: two different planar representations of the
//!   same cube region, a positive pair for contrastive learning (the hypothesis of
//!   the LIPADE internship proposal on self-supervised learning for SITS).
//!
//! **Masked dates.** A recurrence plot compares every date with every other one, so
//! a cloudy date cannot simply be left out without changing the image size. The
//! choice made here is to gap-fill first: invalid dates of each index series (cloud,
//! nodata, undefined index) are linearly interpolated in time from the valid ones
//! (constant before the first and after the last), using the real acquisition
//! dates. A series with no valid date at all is an error naming the sample.

use ndarray::{Array3, Array4, ArrayView4};
use rand::{Rng, RngCore};
use rayon::prelude::*;
use sits_data::gapfill::fill_series;
use sits_data::{Radiometry, SampleSet, Series};

use crate::error::{param, ReprError, Result};
use crate::indices::{series_indices, SpectralIndex};
use crate::planar::{curve_order, oblique_slice, planar_image, random_walk_image, Curve};
use crate::recurrence::RecurrencePlot;

/// Recurrence images `(N, K, m, m)` of the `K` spectral `indices` of every series
/// of `set` (which must all have the same length). Invalid dates are gap-filled
/// first (see the module documentation).
pub fn index_recurrence_images(
    set: &SampleSet,
    radiometry: Radiometry,
    indices: &[SpectralIndex],
    rp: &RecurrencePlot,
) -> Result<Array4<f32>> {
    let n = set.len();
    if n == 0 {
        return Err(param("set", "the sample set is empty"));
    }
    let t = set.series()[0].len();
    if let Some((i, s)) = set.series().iter().enumerate().find(|(_, s)| s.len() != t) {
        return Err(ReprError::Shape {
            what: format!(
                "series {} (`{}`)",
                i,
                set.ids().get(i).map_or("", String::as_str)
            ),
            expected: format!("{t} dates like the first series"),
            got: vec![s.len()],
        });
    }
    let k = indices.len();
    let filled: Vec<Series> = set
        .series()
        .par_iter()
        .enumerate()
        .map(|(i, s)| {
            let (values, valid) = series_indices(s, set.bands(), radiometry, indices)?;
            let mut series = Series::new(values, s.times.clone(), Some(valid))?;
            fill_series(&mut series).map_err(|_| ReprError::NonFinite {
                what: "spectral index series".into(),
                location: format!(
                    "sample {i} (`{}`): no valid date to gap-fill from",
                    set.ids().get(i).map_or("", String::as_str)
                ),
            })?;
            Ok(series)
        })
        .collect::<Result<_>>()?;
    let mut x = Array3::<f32>::zeros((n, k, t));
    for (i, s) in filled.iter().enumerate() {
        for ki in 0..k {
            for ti in 0..t {
                x[[i, ki, ti]] = s.values[[ti, ki]];
            }
        }
    }
    rp.transform_channels(x.view())
}

/// One planar representation of a region `(T, C, H, W)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlanarSlice {
    /// All pixels along a space-filling curve: `(C, H·W, T)`.
    Curve(Curve),
    /// The x-t plane of a random row: `(C, W, T)`.
    RandomRow,
    /// The y-t plane of a random column: `(C, H, T)`.
    RandomColumn,
    /// The plane along a line through the centre at a uniformly random angle.
    RandomOblique,
    /// `walks` random walks of `steps` pixels from the centre pixel.
    RandomWalk {
        /// Number of walks.
        walks: usize,
        /// Pixels per walk.
        steps: usize,
    },
}

impl PlanarSlice {
    /// This view of `region`, drawing its randomness from `rng`.
    pub fn apply(&self, region: ArrayView4<'_, f32>, rng: &mut dyn RngCore) -> Result<Array3<f32>> {
        let (_, _, h, w) = region.dim();
        if h == 0 || w == 0 {
            return Err(ReprError::Shape {
                what: "region for a planar view".into(),
                expected: "(T, C, H, W) with H, W >= 1".into(),
                got: region.shape().to_vec(),
            });
        }
        match *self {
            PlanarSlice::Curve(c) => planar_image(region, &curve_order(c, h, w)),
            PlanarSlice::RandomRow => crate::planar::xt_slice(region, rng.random_range(0..h)),
            PlanarSlice::RandomColumn => crate::planar::yt_slice(region, rng.random_range(0..w)),
            PlanarSlice::RandomOblique => {
                let centre = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
                oblique_slice(region, centre, rng.random_range(0.0..180.0))
            }
            PlanarSlice::RandomWalk { walks, steps } => {
                random_walk_image(region, (h / 2, w / 2), walks, steps, rng)
            }
        }
    }
}

/// Two planar views of the same region: a positive pair. The views usually differ
/// in their number of rows; an encoder with global pooling takes both.
pub fn planar_pair(
    region: ArrayView4<'_, f32>,
    slices: (PlanarSlice, PlanarSlice),
    rng: &mut dyn RngCore,
) -> Result<(Array3<f32>, Array3<f32>)> {
    Ok((slices.0.apply(region, rng)?, slices.1.apply(region, rng)?))
}
