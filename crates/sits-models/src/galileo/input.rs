//! From monthly series to Galileo's inputs.
//!
//! Galileo reads the same Sentinel-1 and Sentinel-2 bands and NDVI as Presto, so a
//! sensor's bands are matched, checked for units and composited by month with
//! [`crate::presto::input`] (its [`BandMap`](crate::presto::input::BandMap) and
//! [`monthly`](crate::presto::input::monthly)); this module converts those
//! composites to Galileo's units and normalisation and builds a batch of pixels
//! (`1 × 1` inputs, patch size 1).
//!
//! # Units and normalisation
//! As upstream pretrained the model (`Normalizer(std=True)` over
//! `normalization.json`): each Sentinel-1 band (dB) and Sentinel-2 band (digital
//! numbers, reflectance × 10⁴) becomes `(v − (mean − 2 sd)) / (4 sd)` with the mean
//! and standard deviation of the pretraining data; NDVI is read as it is. Note that
//! upstream's `construct_galileo_input(normalize=True)` skips these statistics (its
//! dictionary has string keys, which its `Normalizer` ignores) and divides
//! Sentinel-2 by 10⁴ instead; the pretraining normalisation is the one the weights
//! were trained with, and it is the one used here.
//!
//! The location is the pixel's latitude and longitude as a point on the unit
//! sphere (the `location` static group). ERA5 and SRTM bands that a Presto band map
//! may carry, and every other Galileo input (TerraClimate, VIIRS, Dynamic World,
//! WorldCereal, LandScan), are masked.

use candle_core::{Device, Tensor};
use serde::Deserialize;

use super::{
    SPACE_BANDS, SPACE_GROUPS, SPACE_TIME_BANDS, SPACE_TIME_GROUPS, STATIC_BANDS, STATIC_GROUPS,
    TIME_BANDS, TIME_GROUPS,
};
use crate::presto::input::{physical, MonthlySeries};
use crate::ModelError;

/// Presto input index of each Galileo space-time band ([`SPACE_TIME_BANDS`]).
const FROM_PRESTO: [usize; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16];

/// Shift and divisor of each space-time band: `(v − shift) / div`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Shifts, [`SPACE_TIME_BANDS`] order.
    pub shift: [f32; 13],
    /// Divisors.
    pub div: [f32; 13],
}

impl Normalization {
    /// Reads upstream's `normalization.json` (its `"13"` entry: the means and
    /// standard deviations of the 13 space-time bands) with upstream's two standard
    /// deviations each side.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        #[derive(Deserialize)]
        struct Stats {
            mean: Vec<f64>,
            std: Vec<f64>,
        }
        let err = |reason: String| ModelError::Input {
            what: "normalization.json".into(),
            reason,
        };
        let all: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let stats: Stats = serde_json::from_value(
            all.get("13")
                .cloned()
                .ok_or_else(|| err("no entry \"13\" (the space-time bands)".into()))?,
        )
        .map_err(|e| err(format!("entry \"13\": {e}")))?;
        if stats.mean.len() != 13 || stats.std.len() != 13 {
            return Err(err(format!(
                "entry \"13\" has {} means and {} standard deviations, expected 13",
                stats.mean.len(),
                stats.std.len()
            )));
        }
        let mut shift = [0f32; 13];
        let mut div = [1f32; 13];
        for i in 0..12 {
            let (m, s) = (stats.mean[i], stats.std[i]);
            if !(s.is_finite() && s > 0.0 && m.is_finite()) {
                return Err(err(format!(
                    "band {}: mean {m}, standard deviation {s}",
                    SPACE_TIME_BANDS[i]
                )));
            }
            shift[i] = (m - 2.0 * s) as f32;
            div[i] = (4.0 * s) as f32;
        }
        Ok(Self { shift, div })
    }

    /// The normalised Galileo value of space-time band `i` from Presto's normalised
    /// value `x` of the same band.
    pub fn from_presto(&self, i: usize, x: f32) -> f32 {
        let p = FROM_PRESTO[i];
        let v = physical(p, x);
        // Presto's Sentinel-2 values are reflectance; Galileo's are digital numbers
        let v = if (2..=11).contains(&p) { v * 1e4 } else { v };
        (v - self.shift[i]) / self.div[i]
    }
}

/// A batch of pixel series (monthly composites through Presto's band map) as a
/// [`super::GalileoInput`] of `1 × 1` inputs on `device`. `latlons` are `[lat,
/// lon]` degrees, one per series (`None`: the location group is masked). Shorter
/// series are padded with masked months.
pub fn batch(
    series: &[MonthlySeries],
    latlons: Option<&[[f32; 2]]>,
    norm: &Normalization,
    device: &Device,
) -> Result<super::GalileoInput, ModelError> {
    let b = series.len();
    if latlons.is_some_and(|l| l.len() != b) {
        return Err(ModelError::Input {
            what: "Galileo batch".into(),
            reason: format!("{b} series and {} locations", latlons.map_or(0, <[_]>::len)),
        });
    }
    let t = series
        .iter()
        .map(MonthlySeries::len)
        .max()
        .unwrap_or(0)
        .max(1);
    let (nb, ng) = (SPACE_TIME_BANDS.len(), SPACE_TIME_GROUPS.len());
    let mut x = vec![0f32; b * t * nb];
    let mut m = vec![1u8; b * t * ng];
    let mut months = vec![0u32; b * t];
    for (s, ser) in series.iter().enumerate() {
        for k in 0..ser.len() {
            let src = &ser.x[k * 17..(k + 1) * 17];
            let miss = &ser.mask[k * 17..(k + 1) * 17];
            let row = (s * t + k) * nb;
            for (i, &p) in FROM_PRESTO.iter().enumerate() {
                if miss[p] == 0 {
                    x[row + i] = norm.from_presto(i, src[p]);
                }
            }
            for (g, (_, idx)) in SPACE_TIME_GROUPS.iter().enumerate() {
                let present = idx.iter().all(|&i| miss[FROM_PRESTO[i]] == 0);
                m[(s * t + k) * ng + g] = u8::from(!present);
            }
        }
        let m0 = ser.months.first().copied().unwrap_or(0);
        for k in 0..t {
            months[s * t + k] = (m0 + k as u32) % 12;
        }
    }
    let mut st = vec![0f32; b * STATIC_BANDS];
    let mut st_m = vec![1u8; b * STATIC_GROUPS.len()];
    if let Some(ll) = latlons {
        let loc = STATIC_GROUPS[1].1;
        for (s, &[lat, lon]) in ll.iter().enumerate() {
            let (lat, lon) = (lat.to_radians(), lon.to_radians());
            let xyz = [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()];
            for (j, &i) in loc.iter().enumerate() {
                st[s * STATIC_BANDS + i] = xyz[j];
            }
            st_m[s * STATIC_GROUPS.len() + 1] = 0;
        }
    }
    let build = || -> candle_core::Result<super::GalileoInput> {
        Ok(super::GalileoInput {
            space_time: Tensor::from_vec(x, (b, 1, 1, t, nb), device)?,
            space_time_mask: Tensor::from_vec(m, (b, 1, 1, t, ng), device)?,
            space: Tensor::zeros((b, 1, 1, SPACE_BANDS), candle_core::DType::F32, device)?,
            space_mask: Tensor::ones(
                (b, 1, 1, SPACE_GROUPS.len()),
                candle_core::DType::U8,
                device,
            )?,
            time: Tensor::zeros((b, t, TIME_BANDS), candle_core::DType::F32, device)?,
            time_mask: Tensor::ones((b, t, TIME_GROUPS.len()), candle_core::DType::U8, device)?,
            static_: Tensor::from_vec(st, (b, STATIC_BANDS), device)?,
            static_mask: Tensor::from_vec(st_m, (b, STATIC_GROUPS.len()), device)?,
            months: Tensor::from_vec(months, (b, t), device)?,
        })
    };
    build().map_err(|e| ModelError::Input {
        what: "Galileo batch".into(),
        reason: e.to_string(),
    })
}
