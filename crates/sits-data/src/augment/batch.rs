//! Random views of collated batches, made on the tensors so that one loader feeds
//! any number of views (SimCLR takes two, DINO's multi-crop eight): date windows,
//! dropped dates and noise for pixel series ([`SeriesViews`]); resized spatial
//! crops, flips, dropped dates and noise for cube patches ([`CubeViews`]). Both are
//! [`Augmentation<SitsBatch>`]; the sample-level augmentations of the parent module
//! are `Augmentation<Sample>`.
//!
//! Dropped dates become padding (attention and pooling ignore them); padded dates
//! never come back; every sample with a real date keeps at least one.

use candle_core::{Result, Tensor};
use rand::{Rng, RngCore};
use sits_core::random::standard_normal;
use sits_core::resize::resize_bilinear;
use sits_core::{Augmentation, SitsBatch};

/// Random views of a collated pixel-series batch, made on the tensors so that one
/// loader feeds any number of views: each sample keeps a random window of its real
/// dates (a fraction uniform in `[crop_min, crop_max]`), drops dates of it with
/// probability `drop` (at least one stays), and gets Gaussian noise of standard
/// deviation `noise`. Dropped dates become padding, so attention and pooling ignore
/// them; padded dates never come back.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesViews {
    /// Smallest kept window, as a fraction of the real dates.
    pub crop_min: f64,
    /// Largest kept window, as a fraction of the real dates.
    pub crop_max: f64,
    /// Probability of dropping a date of the window.
    pub drop: f64,
    /// Standard deviation of the additive noise.
    pub noise: f64,
}

impl Default for SeriesViews {
    fn default() -> Self {
        Self {
            crop_min: 0.5,
            crop_max: 1.0,
            drop: 0.2,
            noise: 0.05,
        }
    }
}

impl Augmentation<SitsBatch> for SeriesViews {
    /// One view of `batch` (`(B, T, C)` values).
    fn apply(&self, batch: &SitsBatch, rng: &mut dyn RngCore) -> Result<SitsBatch> {
        let x = batch.values();
        let (b, t, c) = x.dims3().map_err(|_| {
            candle_core::Error::Msg(format!(
                "SeriesViews: expected pixel series (B, T, C), got {:?}; use CubeViews for patches",
                x.dims()
            ))
        })?;
        let pad: Vec<Vec<u8>> = batch.pad_mask().to_vec2()?;
        let mut new_pad = vec![1u8; b * t];
        for (i, row) in pad.iter().enumerate() {
            let real: Vec<usize> = (0..t).filter(|&j| row[j] == 0).collect();
            if real.is_empty() {
                continue;
            }
            let n = real.len();
            let hi = self.crop_max.clamp(0.0, 1.0);
            let lo = self.crop_min.clamp(0.0, hi);
            let frac = rng.random_range(lo..=hi);
            let len = ((frac * n as f64).ceil() as usize).clamp(1, n);
            let start = rng.random_range(0..=n - len);
            let window = &real[start..start + len];
            let mut kept: Vec<usize> = window
                .iter()
                .copied()
                .filter(|_| rng.random::<f64>() >= self.drop)
                .collect();
            if kept.is_empty() {
                kept.push(window[rng.random_range(0..window.len())]);
            }
            for j in kept {
                new_pad[i * t + j] = 0;
            }
        }
        let noise: Vec<f32> = (0..b * t * c)
            .map(|_| (self.noise * standard_normal(rng)) as f32)
            .collect();
        let values = (x + Tensor::from_vec(noise, (b, t, c), x.device())?)?;
        let pad = Tensor::from_vec(new_pad, (b, t), x.device())?;
        let mut out = SitsBatch::new(
            values,
            batch.days().clone(),
            batch.doy()?,
            pad,
            batch.reference(),
        )?;
        if let Some(v) = batch.valid() {
            out = out.with_valid(v.clone())?;
        }
        Ok(out)
    }
}

/// Random views of a collated cube batch `(B, T, C, H, W)`: a random square-ish
/// window covering a fraction of the patch area uniform in `scale`, resized
/// bilinearly to `size`, flipped horizontally and/or vertically with probability
/// 1/2 each, dates dropped into padding with probability `drop` (one always
/// stays), Gaussian noise of standard deviation `noise`. The validity mask is not
/// carried over (the view's values are interpolated).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CubeViews {
    /// Range of the kept area fraction, within `(0, 1]`.
    pub scale: (f64, f64),
    /// Output `(height, width)`.
    pub size: (usize, usize),
    /// Probability of dropping a date.
    pub drop: f64,
    /// Standard deviation of the additive noise.
    pub noise: f64,
}

impl Augmentation<SitsBatch> for CubeViews {
    /// One view of `batch` (`(B, T, C, H, W)` values).
    fn apply(&self, batch: &SitsBatch, rng: &mut dyn RngCore) -> Result<SitsBatch> {
        let x = batch.values();
        let (b, t, c, h, w) = x.dims5().map_err(|_| {
            candle_core::Error::Msg(format!(
                "CubeViews: expected patches (B, T, C, H, W), got {:?}; use SeriesViews for pixel series",
                x.dims()
            ))
        })?;
        if self.size.0 == 0 || self.size.1 == 0 {
            candle_core::bail!("CubeViews: output size {:?} must be positive", self.size);
        }
        let (lo, hi) = self.scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            candle_core::bail!(
                "CubeViews: scale {:?} must be within (0, 1] and ordered",
                self.scale
            );
        }
        let pad: Vec<Vec<u8>> = batch.pad_mask().to_vec2()?;
        let mut items = Vec::with_capacity(b);
        let mut new_pad = vec![1u8; b * t];
        for (i, row) in pad.iter().enumerate() {
            let side = rng.random_range(lo..=hi).sqrt();
            let wh = ((h as f64 * side).round() as usize).clamp(1, h);
            let ww = ((w as f64 * side).round() as usize).clamp(1, w);
            let (r0, c0) = (rng.random_range(0..=h - wh), rng.random_range(0..=w - ww));
            let crop = x.get(i)?.narrow(2, r0, wh)?.narrow(3, c0, ww)?; // (T, C, wh, ww)
                                                                        // contiguous: a crop already at the output size comes back as a strided view,
                                                                        // which the flips' index_select refuses
            let mut v = resize_bilinear(&crop, self.size.0, self.size.1)?.contiguous()?;
            for dim in [2usize, 3] {
                if rng.random::<f64>() < 0.5 {
                    let n = v.dim(dim)?;
                    let rev =
                        Tensor::from_vec((0..n as u32).rev().collect::<Vec<_>>(), n, v.device())?;
                    v = v.index_select(&rev, dim)?;
                }
            }
            items.push(v);
            let real: Vec<usize> = (0..t).filter(|&j| row[j] == 0).collect();
            let mut kept: Vec<usize> = real
                .iter()
                .copied()
                .filter(|_| rng.random::<f64>() >= self.drop)
                .collect();
            if kept.is_empty() && !real.is_empty() {
                kept.push(real[rng.random_range(0..real.len())]);
            }
            for j in kept {
                new_pad[i * t + j] = 0;
            }
        }
        let values = Tensor::stack(&items, 0)?;
        let n = b * t * c * self.size.0 * self.size.1;
        let noise: Vec<f32> = (0..n)
            .map(|_| (self.noise * standard_normal(rng)) as f32)
            .collect();
        let shape = values.shape().clone();
        let values = (values + Tensor::from_vec(noise, shape, x.device())?)?;
        let pad = Tensor::from_vec(new_pad, (b, t), x.device())?;
        SitsBatch::new(
            values,
            batch.days().clone(),
            batch.doy()?,
            pad,
            batch.reference(),
        )
    }
}
