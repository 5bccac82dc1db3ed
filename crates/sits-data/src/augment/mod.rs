//! Augmentations for self-supervised views, in one place: of [`Sample`]s before
//! collation (temporal, spectral, spatial and cloud simulations, composition,
//! multi-view generators, the date masks of BERT-style pretext tasks) and of
//! collated batches on the tensors ([`SeriesViews`], [`CubeViews`]: what SimCLR and
//! DINO use, so that one loader feeds any number of views). A *view* is always one
//! random augmented copy.
//!
//! Every augmentation implements [`Augmentation<Sample>`] or
//! [`Augmentation<SitsBatch>`]: it draws all its
//! randomness from the generator it is given, so a seeded generator (the loader
//! seeds one per sample from `(seed, epoch, index)`) reproduces the same views on
//! any number of threads. Values, validity masks and label maps are transformed
//! together; dates stay strictly increasing; nothing reads outside the sample.
//!
//! A pixel series has values `(T, C)` and validity `(T)`; a patch has values
//! `(T, C, H, W)`, validity `(T, H, W)` and possibly a label map `(H, W)`. Spatial
//! augmentations leave pixel series unchanged.
//!
//! ```
//! use std::sync::Arc;
//! use rand::SeedableRng;
//! use sits_data::augment::{Compose, DropDates, GaussianNoise, TemporalCrop, two_views};
//! use sits_core::dates::Timestamps;
//! use sits_data::Sample;
//!
//! let times = Timestamps::parse(&["2020-01-01", "2020-01-11", "2020-01-21", "2020-01-31"], "demo").unwrap();
//! let s = Sample { values: ndarray::Array2::<f32>::ones((4, 2)).into_dyn(), times, valid: None, label: None };
//! let aug = Compose::new(vec![
//!     Arc::new(TemporalCrop { min_len: 2, max_len: 4 }),
//!     Arc::new(DropDates { p: 0.2, min_keep: 2 }),
//!     Arc::new(GaussianNoise { std: 0.01 }),
//! ]);
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let (a, b) = two_views(&aug, &s, &mut rng).unwrap();
//! assert!(a.len() >= 2 && b.len() >= 2);
//! ```

use std::sync::Arc;

use candle_core::{Device, Tensor};
use chrono::TimeDelta;
use ndarray::{ArrayD, Axis, IxDyn};
use rand::{Rng, RngCore};
use sits_core::random::standard_normal;
use sits_core::resize::bilinear_taps;
use sits_core::{Augmentation, SitsBatch};

use crate::error::DataError;
use crate::loader::{Label, Sample};
use sits_core::dates::Timestamps;

mod batch;
pub use batch::{CubeViews, SeriesViews};

type CResult<T> = candle_core::Result<T>;

fn fail(e: DataError) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

fn bad_param(what: &str, reason: impl Into<String>) -> candle_core::Error {
    fail(DataError::Argument(format!("{what}: {}", reason.into())))
}

/// Keeps the dates at `keep` (sorted, distinct) of a sample.
pub fn select_dates(s: &Sample, keep: &[usize]) -> Sample {
    Sample {
        values: s.values.select(Axis(0), keep),
        times: s.times.select(keep),
        valid: s.valid.as_ref().map(|v| v.select(Axis(0), keep)),
        label: s.label.clone(),
    }
}

fn spatial(s: &Sample) -> Option<(usize, usize)> {
    let sh = s.values.shape();
    (sh.len() == 4).then(|| (sh[2], sh[3]))
}

// ---------------------------------------------------------------- temporal

/// A random window of consecutive dates whose length is uniform in
/// `[min_len, max_len]` (clamped to the series length).
#[derive(Debug, Clone, Copy)]
pub struct TemporalCrop {
    /// Shortest window (at least 1).
    pub min_len: usize,
    /// Longest window.
    pub max_len: usize,
}

impl Augmentation<Sample> for TemporalCrop {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        if self.min_len == 0 || self.min_len > self.max_len {
            return Err(bad_param(
                "TemporalCrop",
                format!(
                    "needs 1 <= min_len <= max_len, got {} and {}",
                    self.min_len, self.max_len
                ),
            ));
        }
        let t = s.len();
        let hi = self.max_len.min(t);
        let lo = self.min_len.min(hi);
        let len = rng.random_range(lo..=hi);
        let start = rng.random_range(0..=t - len);
        Ok(select_dates(s, &(start..start + len).collect::<Vec<_>>()))
    }
}

/// Drops each date with probability `p` (simulated irregular sampling), keeping at
/// least `min_keep` dates (or all of them if the series is shorter).
#[derive(Debug, Clone, Copy)]
pub struct DropDates {
    /// Probability of dropping a date.
    pub p: f64,
    /// Minimum number of dates kept.
    pub min_keep: usize,
}

impl Augmentation<Sample> for DropDates {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        if !(0.0..=1.0).contains(&self.p) {
            return Err(bad_param(
                "DropDates",
                format!("p = {} is not a probability", self.p),
            ));
        }
        let t = s.len();
        let mut keep: Vec<bool> = (0..t).map(|_| rng.random::<f64>() >= self.p).collect();
        let need = self.min_keep.min(t);
        let mut kept = keep.iter().filter(|&&k| k).count();
        while kept < need {
            let i = rng.random_range(0..t);
            if !keep[i] {
                keep[i] = true;
                kept += 1;
            }
        }
        let idx: Vec<usize> = (0..t).filter(|&i| keep[i]).collect();
        Ok(select_dates(s, &idx))
    }
}

/// Random sub-sampling to exactly `len` dates (sorted, without replacement).
/// Series with `len` dates or fewer are returned unchanged: the loader pads them.
#[derive(Debug, Clone, Copy)]
pub struct ResampleDates {
    /// Number of dates of the output.
    pub len: usize,
}

impl Augmentation<Sample> for ResampleDates {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        if self.len == 0 {
            return Err(bad_param("ResampleDates", "len must be at least 1"));
        }
        let t = s.len();
        if t <= self.len {
            return Ok(s.clone());
        }
        let mut idx = rand::seq::index::sample(rng, t, self.len).into_vec();
        idx.sort_unstable();
        Ok(select_dates(s, &idx))
    }
}

/// Moves the acquisition times: every date by the same offset, uniform in
/// `±shift_days`, and each date independently by up to `±jitter_days`. A date's
/// jitter is limited to less than half the gap to each neighbour, so the order of
/// the dates never changes.
#[derive(Debug, Clone, Copy)]
pub struct DateShift {
    /// Common shift bound, in days.
    pub shift_days: f64,
    /// Per-date jitter bound, in days.
    pub jitter_days: f64,
}

impl Augmentation<Sample> for DateShift {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        if !(self.shift_days >= 0.0 && self.jitter_days >= 0.0) {
            return Err(bad_param("DateShift", "bounds must be >= 0"));
        }
        let times = s.times.as_slice();
        let secs = |d: f64| (d * 86_400.0) as i64;
        let shift = if self.shift_days > 0.0 {
            secs(rng.random_range(-self.shift_days..=self.shift_days))
        } else {
            0
        };
        let t = times.len();
        let mut out = Vec::with_capacity(t);
        for i in 0..t {
            let gap = |a: usize, b: usize| (times[b] - times[a]).num_seconds();
            let before = if i > 0 {
                gap(i - 1, i) / 2 - 1
            } else {
                i64::MAX
            };
            let after = if i + 1 < t {
                gap(i, i + 1) / 2 - 1
            } else {
                i64::MAX
            };
            let bound = secs(self.jitter_days);
            let (lo, hi) = (-(bound.min(before.max(0))), bound.min(after.max(0)));
            let j = if hi > lo {
                rng.random_range(lo..=hi)
            } else {
                0
            };
            out.push(times[i] + TimeDelta::seconds(shift + j));
        }
        let times = Timestamps::new(out, "DateShift output").map_err(candle_core::Error::wrap)?;
        Ok(Sample { times, ..s.clone() })
    }
}

// ---------------------------------------------------------------- spectral

/// Adds Gaussian noise of standard deviation `std` to every value.
#[derive(Debug, Clone, Copy)]
pub struct GaussianNoise {
    /// Standard deviation, in the units of the values.
    pub std: f64,
}

impl Augmentation<Sample> for GaussianNoise {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        let mut out = s.clone();
        for v in out.values.iter_mut() {
            *v += (self.std * standard_normal(rng)) as f32;
        }
        Ok(out)
    }
}

/// Per-band affine jitter: band `c` becomes `x · (1 + g_c) + o_c` with `g_c` and
/// `o_c` Gaussian of standard deviations `gain_std` and `offset_std`.
#[derive(Debug, Clone, Copy)]
pub struct BandJitter {
    /// Standard deviation of the relative gain.
    pub gain_std: f64,
    /// Standard deviation of the offset.
    pub offset_std: f64,
}

impl Augmentation<Sample> for BandJitter {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        let mut out = s.clone();
        let c = s.values.shape()[1];
        for ci in 0..c {
            let g = 1.0 + self.gain_std * standard_normal(rng);
            let o = self.offset_std * standard_normal(rng);
            out.values
                .index_axis_mut(Axis(1), ci)
                .mapv_inplace(|x| (x as f64 * g + o) as f32);
        }
        Ok(out)
    }
}

/// Sets each band to `fill` (0 = the mean of standardised data) with probability
/// `p`, always keeping at least one band.
#[derive(Debug, Clone, Copy)]
pub struct BandDropout {
    /// Probability of dropping a band.
    pub p: f64,
    /// Value written into dropped bands.
    pub fill: f32,
}

impl Augmentation<Sample> for BandDropout {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        let c = s.values.shape()[1];
        let mut drop: Vec<bool> = (0..c).map(|_| rng.random::<f64>() < self.p).collect();
        if drop.iter().all(|&d| d) && c > 0 {
            drop[rng.random_range(0..c)] = false;
        }
        let mut out = s.clone();
        for (ci, d) in drop.into_iter().enumerate() {
            if d {
                out.values.index_axis_mut(Axis(1), ci).fill(self.fill);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- spatial

/// One of the 8 symmetries of the square: optional transpose, then optional flips
/// of rows and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dihedral {
    /// Swap the row and column axes first.
    pub transpose: bool,
    /// Reverse the row order.
    pub flip_rows: bool,
    /// Reverse the column order.
    pub flip_cols: bool,
}

impl Dihedral {
    /// The 8 elements.
    pub fn all() -> [Dihedral; 8] {
        let mut out = [Dihedral {
            transpose: false,
            flip_rows: false,
            flip_cols: false,
        }; 8];
        for (k, d) in out.iter_mut().enumerate() {
            *d = Dihedral {
                transpose: k & 4 != 0,
                flip_rows: k & 2 != 0,
                flip_cols: k & 1 != 0,
            };
        }
        out
    }

    /// Applies the symmetry to the last two axes of `a`.
    pub fn apply_hw<A: Clone>(&self, a: &ArrayD<A>) -> ArrayD<A> {
        let n = a.ndim();
        let mut v = a.view();
        if self.transpose {
            v.swap_axes(n - 2, n - 1);
        }
        if self.flip_rows {
            v.invert_axis(Axis(n - 2));
        }
        if self.flip_cols {
            v.invert_axis(Axis(n - 1));
        }
        v.as_standard_layout().into_owned()
    }

    fn apply_sample(&self, s: &Sample) -> Sample {
        Sample {
            values: self.apply_hw(&s.values),
            times: s.times.clone(),
            valid: s.valid.as_ref().map(|v| self.apply_hw(v)),
            label: match &s.label {
                Some(Label::Map(m)) => {
                    let m = self.apply_hw(&m.clone().into_dyn());
                    Some(Label::Map(m.into_dimensionality().expect("2D in, 2D out")))
                }
                other => other.clone(),
            },
        }
    }
}

/// A random flip/rotation of patches, the same for values, masks and labels. Square
/// patches draw among the 8 symmetries, rectangular ones among the 4 that keep the
/// shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlipRotate;

impl Augmentation<Sample> for FlipRotate {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        let Some((h, w)) = spatial(s) else {
            return Ok(s.clone());
        };
        let all = Dihedral::all();
        let d = if h == w {
            all[rng.random_range(0..8)]
        } else {
            all[rng.random_range(0..4)]
        };
        Ok(d.apply_sample(s))
    }
}

/// Crops a random window covering a fraction of the patch area uniform in `scale`
/// (same aspect ratio as the patch) and resizes it to `size`: bilinear for values,
/// nearest neighbour for validity and labels.
#[derive(Debug, Clone, Copy)]
pub struct RandomResizedCrop {
    /// Range of the area fraction, within `(0, 1]`.
    pub scale: (f64, f64),
    /// Output `(height, width)`.
    pub size: (usize, usize),
}

fn resize_hw<A: Copy>(
    a: &ArrayD<A>,
    win: (usize, usize, usize, usize),
    size: (usize, usize),
    f: impl Fn([A; 4], f32, f32) -> A,
) -> ArrayD<A> {
    let (r0, c0, wh, ww) = win;
    let (oh, ow) = size;
    let sh = a.shape().to_vec();
    let n = sh.len();
    let lead: usize = sh[..n - 2].iter().product();
    let (h, w) = (sh[n - 2], sh[n - 1]);
    let src = a.as_standard_layout();
    let src = src.as_slice().expect("standard layout");
    let mut out_shape = sh.clone();
    out_shape[n - 2] = oh;
    out_shape[n - 1] = ow;
    let mut out = Vec::with_capacity(lead * oh * ow);
    // the interpolation rule of the whole workspace (PyTorch, align_corners = false)
    let (ty, tx) = (bilinear_taps(wh, oh), bilinear_taps(ww, ow));
    for l in 0..lead {
        let plane = &src[l * h * w..(l + 1) * h * w];
        for &(y0, y1, fy) in &ty {
            for &(x0, x1, fx) in &tx {
                let at = |y: usize, x: usize| plane[(r0 + y) * w + c0 + x];
                out.push(f([at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)], fy, fx));
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).expect("shape computed above")
}

fn bilinear(p: [f32; 4], fy: f32, fx: f32) -> f32 {
    let top = p[0] * (1.0 - fx) + p[1] * fx;
    let bottom = p[2] * (1.0 - fx) + p[3] * fx;
    top * (1.0 - fy) + bottom * fy
}

fn nearest<A: Copy>(p: [A; 4], fy: f32, fx: f32) -> A {
    p[usize::from(fy >= 0.5) * 2 + usize::from(fx >= 0.5)]
}

impl Augmentation<Sample> for RandomResizedCrop {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        let (lo, hi) = self.scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) || self.size.0 == 0 || self.size.1 == 0 {
            return Err(bad_param(
                "RandomResizedCrop",
                format!(
                    "scale {:?} must be within (0, 1] and size {:?} positive",
                    self.scale, self.size
                ),
            ));
        }
        let Some((h, w)) = spatial(s) else {
            return Ok(s.clone());
        };
        let area = rng.random_range(lo..=hi);
        let side = area.sqrt();
        let wh = ((h as f64 * side).round() as usize).clamp(1, h);
        let ww = ((w as f64 * side).round() as usize).clamp(1, w);
        let r0 = rng.random_range(0..=h - wh);
        let c0 = rng.random_range(0..=w - ww);
        let win = (r0, c0, wh, ww);
        let values = resize_hw(&s.values, win, self.size, bilinear);
        let mut valid = s
            .valid
            .as_ref()
            .map(|v| resize_hw(v, win, self.size, nearest));
        // A NaN that leaks into an interpolated value invalidates that pixel.
        if let Some(v) = valid.as_mut() {
            let c = values.shape()[1];
            for ci in 0..c {
                let band = values.index_axis(Axis(1), ci);
                ndarray::Zip::from(&mut *v)
                    .and(&band)
                    .for_each(|ok, x| *ok &= !x.is_nan());
            }
        }
        let label = match &s.label {
            Some(Label::Map(m)) => {
                let m = resize_hw(&m.clone().into_dyn(), win, self.size, nearest);
                Some(Label::Map(m.into_dimensionality().expect("2D in, 2D out")))
            }
            other => other.clone(),
        };
        Ok(Sample {
            values,
            times: s.times.clone(),
            valid,
            label,
        })
    }
}

// ---------------------------------------------------------------- clouds

/// Synthetic clouds and their shadows. Each date is cloudy with probability
/// `p_date`; a cloudy date of a patch gets 1..=`max_blobs` discs of radius uniform in
/// `radius` (pixels) whose pixels take the value `cloud_value` in every band, and a
/// shadow: the same discs moved by `shadow_offset` with values multiplied by
/// `shadow_factor`. Cloud and shadow pixels are marked invalid. On a pixel series a
/// cloudy date is a cloud over the whole pixel.
#[derive(Debug, Clone, Copy)]
pub struct CloudBlobs {
    /// Probability that a date is cloudy.
    pub p_date: f64,
    /// Maximum number of discs per cloudy date.
    pub max_blobs: usize,
    /// Range of disc radii, in pixels.
    pub radius: (f64, f64),
    /// Value of cloudy observations in every band.
    pub cloud_value: f32,
    /// Offset `(rows, cols)` of the shadow from its cloud.
    pub shadow_offset: (i64, i64),
    /// Factor applied to shadowed observations (1 = no shadow).
    pub shadow_factor: f32,
}

impl Default for CloudBlobs {
    fn default() -> Self {
        Self {
            p_date: 0.2,
            max_blobs: 3,
            radius: (2.0, 8.0),
            cloud_value: 1.0,
            shadow_offset: (4, 4),
            shadow_factor: 0.5,
        }
    }
}

impl Augmentation<Sample> for CloudBlobs {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        let (rlo, rhi) = self.radius;
        if !((0.0..=1.0).contains(&self.p_date) && rlo > 0.0 && rlo <= rhi) {
            return Err(bad_param(
                "CloudBlobs",
                format!(
                    "p_date {} must be a probability and radius {:?} positive and ordered",
                    self.p_date, self.radius
                ),
            ));
        }
        let mut out = s.clone();
        let mut valid = s.validity();
        let t = s.len();
        let c = s.values.shape()[1];
        match spatial(s) {
            None => {
                for ti in 0..t {
                    if rng.random::<f64>() < self.p_date {
                        out.values
                            .index_axis_mut(Axis(0), ti)
                            .fill(self.cloud_value);
                        valid[[ti]] = false;
                    }
                }
            }
            Some((h, w)) => {
                for ti in 0..t {
                    if rng.random::<f64>() >= self.p_date {
                        continue;
                    }
                    let n = rng.random_range(1..=self.max_blobs.max(1));
                    for _ in 0..n {
                        let cy = rng.random_range(0.0..h as f64);
                        let cx = rng.random_range(0.0..w as f64);
                        let r = rng.random_range(rlo..=rhi);
                        let (dy, dx) = self.shadow_offset;
                        for y in 0..h {
                            for x in 0..w {
                                let in_disc = |oy: f64, ox: f64| {
                                    let (yy, xx) = (y as f64 + 0.5 - oy, x as f64 + 0.5 - ox);
                                    yy * yy + xx * xx <= r * r
                                };
                                let cloud = in_disc(cy, cx);
                                let shadow = !cloud
                                    && self.shadow_factor != 1.0
                                    && in_disc(cy + dy as f64, cx + dx as f64);
                                if cloud || shadow {
                                    for ci in 0..c {
                                        let v = &mut out.values[[ti, ci, y, x]];
                                        *v = if cloud {
                                            self.cloud_value
                                        } else {
                                            *v * self.shadow_factor
                                        };
                                    }
                                    valid[[ti, y, x]] = false;
                                }
                            }
                        }
                    }
                }
            }
        }
        out.valid = Some(valid);
        Ok(out)
    }
}

// ---------------------------------------------------------------- composition

/// Applies augmentations one after the other.
#[derive(Clone, Default)]
pub struct Compose {
    steps: Vec<Arc<dyn Augmentation<Sample>>>,
}

impl Compose {
    /// A pipeline of `steps`, applied in order.
    pub fn new(steps: Vec<Arc<dyn Augmentation<Sample>>>) -> Self {
        Self { steps }
    }
}

impl Augmentation<Sample> for Compose {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        let mut cur = s.clone();
        for step in &self.steps {
            cur = step.apply(&cur, rng)?;
        }
        Ok(cur)
    }
}

/// Applies `inner` with probability `p`, otherwise returns the sample unchanged.
#[derive(Clone)]
pub struct RandomApply {
    /// Probability of applying `inner`.
    pub p: f64,
    /// The augmentation.
    pub inner: Arc<dyn Augmentation<Sample>>,
}

impl Augmentation<Sample> for RandomApply {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Sample> {
        if rng.random::<f64>() < self.p {
            self.inner.apply(s, rng)
        } else {
            Ok(s.clone())
        }
    }
}

/// Two independent views of one sample: the positive pair of contrastive methods.
pub fn two_views(
    aug: &dyn Augmentation<Sample>,
    s: &Sample,
    rng: &mut dyn RngCore,
) -> CResult<(Sample, Sample)> {
    Ok((aug.apply(s, rng)?, aug.apply(s, rng)?))
}

/// DINO-style multi-crop: `n_global` views from `global` then `n_local` views from
/// `local` (for series, long and short date windows; for patches, large and small
/// spatial crops).
#[derive(Clone)]
pub struct MultiCrop {
    /// Augmentation of the global views.
    pub global: Arc<dyn Augmentation<Sample>>,
    /// Number of global views (2 in DINO).
    pub n_global: usize,
    /// Augmentation of the local views.
    pub local: Arc<dyn Augmentation<Sample>>,
    /// Number of local views.
    pub n_local: usize,
}

impl MultiCrop {
    /// The global views followed by the local views.
    pub fn views(&self, s: &Sample, rng: &mut dyn RngCore) -> CResult<Vec<Sample>> {
        let mut out = Vec::with_capacity(self.n_global + self.n_local);
        for _ in 0..self.n_global {
            out.push(self.global.apply(s, rng)?);
        }
        for _ in 0..self.n_local {
            out.push(self.local.apply(s, rng)?);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------- masking

/// Which dates a BERT-style pretext task hides: a fraction `ratio` of the valid
/// dates of each series (rounded, at least one when there is any valid date, and
/// at most all but one when there are two or more), either scattered at random or
/// as one contiguous run of valid dates.
#[derive(Debug, Clone, Copy)]
pub struct DateMasking {
    /// Fraction of the valid dates to mask.
    pub ratio: f64,
    /// One contiguous block instead of scattered dates.
    pub contiguous: bool,
}

impl DateMasking {
    /// Mask (true = hidden) over the dates of one series; only valid dates are
    /// ever masked.
    pub fn sample(&self, valid: &[bool], rng: &mut dyn RngCore) -> Vec<bool> {
        let idx: Vec<usize> = (0..valid.len()).filter(|&i| valid[i]).collect();
        let n = idx.len();
        let mut mask = vec![false; valid.len()];
        if n == 0 {
            return mask;
        }
        let mut k = ((self.ratio * n as f64).round() as usize).max(1);
        if n >= 2 {
            k = k.min(n - 1);
        }
        if self.contiguous {
            let start = rng.random_range(0..=n - k);
            for &i in &idx[start..start + k] {
                mask[i] = true;
            }
        } else {
            for j in rand::seq::index::sample(rng, n, k) {
                mask[idx[j]] = true;
            }
        }
        mask
    }

    /// Masks `(B, T)` (`u8`, 1 = hidden) for a collated pixel-series batch: padded
    /// dates and invalid observations are never masked.
    pub fn batch_mask(&self, batch: &SitsBatch, rng: &mut dyn RngCore) -> CResult<Tensor> {
        if !(self.ratio > 0.0 && self.ratio < 1.0) {
            return Err(bad_param(
                "DateMasking",
                format!("ratio {} must be in (0, 1)", self.ratio),
            ));
        }
        let (b, t) = batch.pad_mask().dims2()?;
        let pad: Vec<Vec<u8>> = batch.pad_mask().to_vec2()?;
        let valid: Option<Vec<Vec<u8>>> = match batch.valid() {
            Some(v) if v.rank() == 2 => Some(v.to_vec2()?),
            Some(v) => {
                // (B, T, H, W): a date is usable if any pixel is valid.
                Some(v.flatten_from(2)?.max(2)?.to_vec2()?)
            }
            None => None,
        };
        let mut out = Vec::with_capacity(b * t);
        for i in 0..b {
            let ok: Vec<bool> = (0..t)
                .map(|j| pad[i][j] == 0 && valid.as_ref().is_none_or(|v| v[i][j] == 1))
                .collect();
            out.extend(self.sample(&ok, rng).into_iter().map(u8::from));
        }
        Tensor::from_vec(out, (b, t), &Device::Cpu)?.to_device(batch.values().device())
    }
}
