//! Presto's masked-reconstruction pretext task, to continue pretraining the
//! published Presto ([`sits_models::presto`]) on a user's unlabelled pixels.
//!
//! Upstream hides a share of the present tokens (band group × month) and trains
//! encoder and decoder to rebuild the hidden values, with an MSE on them (and a
//! cross-entropy on Dynamic World classes, which user inputs do not carry). Upstream
//! draws its masks from several strategies (random tokens, whole timesteps, whole
//! groups, contiguous months); this objective draws random tokens, with
//! [`PrestoReconstruction::mask_ratio`] (upstream's 0.75 by default) of each
//! series' present tokens hidden and at least one left visible.
//!
//! # Batch layout
//! The loader's series are Presto series: one date per month, 19 bands: the 17 of
//! [`sits_models::presto::BANDS`] normalised as upstream (0 where missing), then
//! latitude and longitude in degrees (the same on every date). A month without an
//! observation is an invalid date. Bands the input never has are given once, as
//! [`PrestoReconstruction::band_present`]. `sits_tasks::published` builds such
//! series from any input.

use candle_core::{DType, Result, Tensor};
use rand::{Rng, RngCore};
use sits_core::{Objective, ObjectiveOutput, SitsBatch, Step};
use sits_models::presto::{Presto, PrestoInput, DW_CLASSES, GROUPS, SRTM_GROUP};

use crate::bert::masked_mse;

/// Bands of a Presto series: the 17 model inputs, then latitude and longitude.
pub const SERIES_BANDS: usize = 19;

/// Presto's masked reconstruction (see the module docs).
pub struct PrestoReconstruction<'a> {
    model: &'a Presto,
    /// Which of the 17 inputs the data carries at all.
    pub band_present: [bool; 17],
    /// Share of each series' present tokens hidden.
    pub mask_ratio: f64,
}

impl<'a> PrestoReconstruction<'a> {
    /// Wraps `model` (whose variables the trainer updates, encoder and decoder).
    pub fn new(model: &'a Presto, band_present: [bool; 17], mask_ratio: f64) -> Result<Self> {
        if !(mask_ratio > 0.0 && mask_ratio < 1.0) {
            candle_core::bail!("Presto pretext: mask ratio {mask_ratio} must be in (0, 1)");
        }
        Ok(Self {
            model,
            band_present,
            mask_ratio,
        })
    }
}

/// Month (0 = January) of a day of year (1..=366; leap years shift March onwards by
/// one day, which the 15th of a month survives).
fn month_of_doy(doy: f32) -> u32 {
    const STARTS: [f32; 12] = [
        1.0, 32.0, 60.0, 91.0, 121.0, 152.0, 182.0, 213.0, 244.0, 274.0, 305.0, 335.0,
    ];
    STARTS.iter().rposition(|&s| doy >= s).unwrap_or(0) as u32
}

impl Objective for PrestoReconstruction<'_> {
    fn name(&self) -> &str {
        "presto-reconstruction"
    }

    fn loss(
        &mut self,
        batch: &SitsBatch,
        _step: &Step,
        rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let all = batch.values();
        let (b, t, c) = all.dims3()?;
        if c != SERIES_BANDS {
            candle_core::bail!(
                "Presto pretext: series of {c} bands, expected {SERIES_BANDS} (17 inputs, \
                 latitude, longitude)"
            );
        }
        let dev = all.device();
        let x = all.narrow(2, 0, 17)?.contiguous()?;
        let latlons = all
            .narrow(1, 0, 1)?
            .narrow(2, 17, 2)?
            .squeeze(1)?
            .contiguous()?;
        let months: Vec<u32> = batch
            .doy()?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|&d| month_of_doy(d))
            .collect();
        let pad = batch.pad_mask().flatten_all()?.to_vec1::<u8>()?;
        let valid = match batch.valid() {
            Some(v) => v.to_dtype(DType::U8)?.flatten_all()?.to_vec1::<u8>()?,
            None => vec![1; b * t],
        };
        // tokens present in the data: (series, month, group)
        let groups: Vec<usize> = (0..GROUPS.len())
            .filter(|&g| g != SRTM_GROUP && GROUPS[g].1.iter().all(|&i| self.band_present[i]))
            .collect();
        let mut missing = vec![1u8; b * t * 17];
        let mut counted = vec![0f32; b * t * 17];
        for s in 0..b {
            let mut present = Vec::new();
            for k in 0..t {
                let at = s * t + k;
                if pad[at] != 0 || valid[at] == 0 {
                    continue;
                }
                for (i, p) in self.band_present.iter().enumerate() {
                    if *p {
                        missing[at * 17 + i] = 0;
                    }
                }
                present.extend(groups.iter().map(|&g| (k, g)));
            }
            if present.len() < 2 {
                continue;
            }
            let mut hide: Vec<bool> = present
                .iter()
                .map(|_| rng.random::<f64>() < self.mask_ratio)
                .collect();
            if hide.iter().all(|&h| h) {
                let keep = rng.random_range(0..hide.len());
                hide[keep] = false;
            }
            for (&(k, g), _) in present.iter().zip(&hide).filter(|(_, &h)| h) {
                for &i in GROUPS[g].1 {
                    missing[(s * t + k) * 17 + i] = 1;
                    counted[(s * t + k) * 17 + i] = 1.0;
                }
            }
        }
        let n_counted = counted.iter().filter(|&&v| v > 0.0).count();
        let inp = PrestoInput {
            x: x.clone(),
            mask: Tensor::from_vec(missing, (b, t, 17), dev)?,
            dynamic_world: Tensor::full(DW_CLASSES as u32, (b, t), dev)?,
            latlons,
            months: Tensor::from_vec(months, (b, t), dev)?,
        };
        let (eo, _) = self.model.reconstruct(&inp)?;
        let counted = Tensor::from_vec(counted, (b, t, 17), dev)?;
        let loss = masked_mse(&eo, &x.detach(), &counted)?;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![(
                "masked_fraction".into(),
                n_counted as f64 / (b * t * 17) as f64,
            )],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::month_of_doy;

    #[test]
    fn the_fifteenth_of_every_month_falls_in_its_month_in_any_year() {
        for leap in [false, true] {
            let mut doy = 0.0;
            for (m, days) in [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ]
            .into_iter()
            .enumerate()
            {
                assert_eq!(month_of_doy(doy + 15.0), m as u32, "leap {leap}");
                doy += days as f32;
            }
        }
    }
}
