//! A deterministic, parallel loader that turns a [`SampleSource`] into padded
//! [`SitsBatch`]es.
//!
//! Determinism: the shuffle of epoch `e` and the random generator handed to the
//! augmentation of sample `i` depend only on `(seed, e, i)`, never on which thread
//! prepares the sample, so the same seed gives identical batches with 1 or N threads.
//! Samples of a batch are prepared in parallel on a rayon pool; a background thread
//! prepares up to `prefetch` batches ahead of the consumer.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use chrono::NaiveDate;
use ndarray::{s, Array2, ArrayD, Axis, IxDyn};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sits_core::{Augmentation, SitsBatch};

use crate::cube::Datacube;
use crate::error::{DataError, Result};
use crate::samples::{SampleSet, Series};
use sits_core::dates::Timestamps;

/// The label of one sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    /// One class for the whole series.
    Class(usize),
    /// One class per pixel `(H, W)` (negative = ignore).
    Map(Array2<i64>),
}

/// One item before collation: a pixel series `(T, C)` or a patch series `(T, C, H, W)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Values `(T, C)` or `(T, C, H, W)`.
    pub values: ArrayD<f32>,
    /// One timestamp per date.
    pub times: Timestamps,
    /// Validity `(T)` or `(T, H, W)`; `None` = valid wherever no band is NaN.
    pub valid: Option<ArrayD<bool>>,
    /// Label, if any.
    pub label: Option<Label>,
}

impl Sample {
    /// A sample from a pixel series.
    pub fn from_series(s: &Series, label: Option<usize>) -> Self {
        Self {
            values: s.values.clone().into_dyn(),
            times: s.times.clone(),
            valid: s
                .valid
                .as_ref()
                .map(|v| ndarray::Array1::from(v.clone()).into_dyn()),
            label: label.map(Label::Class),
        }
    }

    /// Number of dates.
    pub fn len(&self) -> usize {
        self.values.shape()[0]
    }

    /// Whether the sample has no date.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Effective validity: stored mask and no NaN band, shape `(T)` or `(T, H, W)`.
    pub fn validity(&self) -> ArrayD<bool> {
        let sh = self.values.shape();
        let mut mask_shape = vec![sh[0]];
        mask_shape.extend_from_slice(&sh[2..]);
        let mut out = match &self.valid {
            Some(v) => v.clone(),
            None => ArrayD::from_elem(IxDyn(&mask_shape), true),
        };
        for c in 0..sh[1] {
            let band = self.values.index_axis(Axis(1), c);
            ndarray::Zip::from(&mut out).and(&band).for_each(|o, v| {
                if v.is_nan() {
                    *o = false
                }
            });
        }
        out
    }
}

/// Random access to samples, shared by the loader's threads.
pub trait SampleSource: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The sample at `index` (< `len()`).
    fn get(&self, index: usize) -> Result<Sample>;
}

// The loader's side of a sample set (kept here so that `samples` does not depend on
// the loader, which depends on it).
impl SampleSet {
    /// The samples at `indices` as a padded pixel batch `(B, T_max, C)`.
    pub fn to_batch(
        &self,
        indices: &[usize],
        reference: NaiveDate,
        device: &Device,
    ) -> Result<SitsBatch> {
        let items = indices
            .iter()
            .map(|&i| {
                let s = self.series().get(i).ok_or_else(|| DataError::OutOfBounds {
                    what: format!("sample index {i}"),
                    reason: format!("the set has {} samples", self.len()),
                })?;
                Ok(Sample::from_series(s, self.labels().map(|l| l[i])))
            })
            .collect::<Result<Vec<_>>>()?;
        collate(&items, reference, device)
    }
}

impl SampleSource for SampleSet {
    fn len(&self) -> usize {
        SampleSet::len(self)
    }
    fn get(&self, index: usize) -> Result<Sample> {
        let s = self
            .series()
            .get(index)
            .ok_or_else(|| DataError::OutOfBounds {
                what: format!("sample index {index}"),
                reason: format!("the set has {} samples", SampleSet::len(self)),
            })?;
        Ok(Sample::from_series(s, self.labels().map(|l| l[index])))
    }
}

/// Square patches of a cube on a regular grid, with an optional per-pixel label map.
#[derive(Debug, Clone)]
pub struct CubePatches {
    cube: Datacube,
    labels: Option<Array2<i64>>,
    origins: Vec<(usize, usize)>,
    size: usize,
}

impl CubePatches {
    /// Patches of `size x size` pixels every `stride` pixels.
    pub fn new(
        cube: Datacube,
        labels: Option<Array2<i64>>,
        size: usize,
        stride: usize,
    ) -> Result<Self> {
        let (_, _, h, w) = cube.shape();
        if let Some(l) = &labels {
            if l.dim() != (h, w) {
                return Err(DataError::Shape {
                    what: "patch label map".into(),
                    expected: format!("(H, W) = ({h}, {w})"),
                    got: l.shape().to_vec(),
                });
            }
        }
        let origins = cube.patch_origins(size, stride)?;
        Ok(Self {
            cube,
            labels,
            origins,
            size,
        })
    }

    /// Top-left corner of each patch.
    pub fn origins(&self) -> &[(usize, usize)] {
        &self.origins
    }
}

impl SampleSource for CubePatches {
    fn len(&self) -> usize {
        self.origins.len()
    }
    fn get(&self, index: usize) -> Result<Sample> {
        let &(r, c) = self
            .origins
            .get(index)
            .ok_or_else(|| DataError::OutOfBounds {
                what: format!("patch index {index}"),
                reason: format!("there are {} patches", self.origins.len()),
            })?;
        let p = self.cube.window(r, c, self.size, self.size)?;
        let valid = p.validity().into_dyn();
        Ok(Sample {
            values: p.physical().into_dyn(),
            times: p.times().clone(),
            valid: Some(valid),
            label: self
                .labels
                .as_ref()
                .map(|l| Label::Map(l.slice(s![r..r + self.size, c..c + self.size]).to_owned())),
        })
    }
}

/// Pads samples to the longest one and stacks them into a [`SitsBatch`].
///
/// Padded dates get zero values, day 0 and pad flag 1; invalid observations (mask or
/// NaN) get value 0 and validity 0, so no NaN reaches a model. All samples must have
/// the same layout and bands, and either all or none must carry labels.
pub fn collate(items: &[Sample], reference: NaiveDate, device: &Device) -> Result<SitsBatch> {
    let first = items
        .first()
        .ok_or_else(|| DataError::Empty("batch".into()))?;
    let inner: Vec<usize> = first.values.shape()[1..].to_vec();
    let t_max = items.iter().map(Sample::len).max().unwrap_or(0);
    if t_max == 0 {
        return Err(DataError::Empty("every series of the batch (T = 0)".into()));
    }
    let b = items.len();
    let per_date: usize = inner.iter().product();
    let spatial: usize = inner[1..].iter().product();
    let mut values = vec![0f32; b * t_max * per_date];
    let mut valid = vec![0u8; b * t_max * spatial];
    let mut days = Vec::with_capacity(b);
    let mut pads = Vec::with_capacity(b);
    for (i, it) in items.iter().enumerate() {
        if it.values.shape()[1..] != inner[..] {
            return Err(DataError::Shape {
                what: format!("batch item {i}"),
                expected: format!("(T, {inner:?}) like item 0"),
                got: it.values.shape().to_vec(),
            });
        }
        if it.times.len() != it.len() {
            return Err(DataError::Dates {
                what: format!("batch item {i}"),
                reason: format!("{} timestamps for T = {}", it.times.len(), it.len()),
            });
        }
        let v = it.validity();
        let t = it.len();
        let vals = it.values.as_standard_layout();
        let vals = vals.as_slice().unwrap_or(&[]);
        let vmask = v.as_standard_layout();
        let vmask = vmask.as_slice().unwrap_or(&[]);
        let vo = i * t_max * per_date;
        let mo = i * t_max * spatial;
        for ti in 0..t {
            for c in 0..inner[0] {
                for p in 0..spatial {
                    let ok = vmask[ti * spatial + p];
                    let x = vals[ti * per_date + c * spatial + p];
                    values[vo + ti * per_date + c * spatial + p] = if ok { x } else { 0.0 };
                }
            }
            for p in 0..spatial {
                valid[mo + ti * spatial + p] = vmask[ti * spatial + p] as u8;
            }
        }
        let mut d = it.times.days_since(reference);
        d.resize(t_max, 0);
        days.push(d);
        let mut p = vec![false; t];
        p.resize(t_max, true);
        pads.push(p);
    }
    let mut vshape = vec![b, t_max];
    vshape.extend_from_slice(&inner);
    let mut mshape = vec![b, t_max];
    mshape.extend_from_slice(&inner[1..]);
    let values = Tensor::from_vec(values, vshape, device)?;
    let mut batch = SitsBatch::from_days(values, &days, &pads, reference, device)?
        .with_valid(Tensor::from_vec(valid, mshape, device)?)?;
    let labelled = items.iter().filter(|s| s.label.is_some()).count();
    if labelled == b {
        let mut lab = Vec::new();
        let mut lshape = vec![b];
        for it in items {
            match &it.label {
                Some(Label::Class(c)) => lab.push(*c as i64),
                Some(Label::Map(m)) => {
                    if lshape.len() == 1 {
                        lshape.extend_from_slice(m.shape());
                    }
                    lab.extend(m.iter().copied());
                }
                None => {}
            }
        }
        if lab.len() != lshape.iter().product::<usize>() {
            return Err(DataError::Argument(
                "batch mixes class labels and label maps".into(),
            ));
        }
        batch = batch.with_labels(Tensor::from_vec(lab, lshape, device)?)?;
    } else if labelled != 0 {
        return Err(DataError::Argument(format!(
            "batch has {labelled} labelled and {} unlabelled items",
            b - labelled
        )));
    }
    Ok(batch)
}

/// Loader settings.
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Items per batch.
    pub batch_size: usize,
    /// Shuffle the order each epoch.
    pub shuffle: bool,
    /// Seed of the shuffle and of the augmentations.
    pub seed: u64,
    /// Drop the last incomplete batch.
    pub drop_last: bool,
    /// Threads preparing samples (`None` = rayon's default).
    pub num_threads: Option<usize>,
    /// Batches prepared ahead of the consumer (at least 1).
    pub prefetch: usize,
    /// Reference date of the batches' day offsets.
    pub reference: NaiveDate,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            shuffle: true,
            seed: 0,
            drop_last: false,
            num_threads: None,
            prefetch: 2,
            reference: sits_core::dates::pastis_reference(),
        }
    }
}

/// Turns a [`SampleSource`] into an iterator of padded batches per epoch.
pub struct Loader {
    source: Arc<dyn SampleSource>,
    augment: Option<Arc<dyn Augmentation<Sample>>>,
    config: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
    device: Device,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("len", &self.source.len())
            .field("config", &self.config)
            .finish()
    }
}

/// Mixes seed, epoch and index into one 64-bit seed (SplitMix64 finaliser).
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Loader {
    /// A loader over `source` producing batches on `device`.
    pub fn new(
        source: Arc<dyn SampleSource>,
        config: LoaderConfig,
        device: Device,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(DataError::Argument("batch_size must be at least 1".into()));
        }
        if source.is_empty() {
            return Err(DataError::Empty("loader source".into()));
        }
        let mut builder = rayon::ThreadPoolBuilder::new();
        if let Some(n) = config.num_threads {
            builder = builder.num_threads(n);
        }
        let pool = builder.build().map_err(|e| {
            DataError::Argument(format!("cannot build the loader thread pool: {e}"))
        })?;
        Ok(Self {
            source,
            augment: None,
            config,
            pool: Arc::new(pool),
            device,
        })
    }

    /// Applies `augment` to every sample (with a generator seeded per sample).
    pub fn with_augmentation(mut self, augment: Arc<dyn Augmentation<Sample>>) -> Self {
        self.augment = Some(augment);
        self
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.source.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.source.len()).collect();
        if self.config.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(self.config.seed, epoch, u64::MAX));
            idx.shuffle(&mut rng);
        }
        idx
    }

    /// Prepares one batch from sample indices (in parallel on the loader's pool).
    pub fn batch(&self, epoch: u64, indices: &[usize]) -> Result<SitsBatch> {
        prepare(
            &self.source,
            self.augment.as_ref(),
            &self.pool,
            &self.config,
            &self.device,
            epoch,
            indices,
        )
    }

    /// Iterates over the batches of `epoch`, prepared in the background.
    pub fn epoch(&self, epoch: u64) -> BatchIter {
        let order = self.order(epoch);
        let bs = self.config.batch_size;
        let mut chunks: Vec<Vec<usize>> = order.chunks(bs).map(<[usize]>::to_vec).collect();
        if self.config.drop_last && chunks.last().is_some_and(|c| c.len() < bs) {
            chunks.pop();
        }
        let (tx, rx) = sync_channel(self.config.prefetch.max(1));
        let (source, augment, pool) =
            (self.source.clone(), self.augment.clone(), self.pool.clone());
        let (config, device) = (self.config.clone(), self.device.clone());
        std::thread::spawn(move || {
            for idx in chunks {
                let b = prepare(
                    &source,
                    augment.as_ref(),
                    &pool,
                    &config,
                    &device,
                    epoch,
                    &idx,
                );
                let stop = b.is_err();
                if tx.send(b).is_err() || stop {
                    break;
                }
            }
        });
        BatchIter { rx }
    }
}

fn prepare(
    source: &Arc<dyn SampleSource>,
    augment: Option<&Arc<dyn Augmentation<Sample>>>,
    pool: &rayon::ThreadPool,
    config: &LoaderConfig,
    device: &Device,
    epoch: u64,
    indices: &[usize],
) -> Result<SitsBatch> {
    let items: Vec<Sample> = pool.install(|| {
        indices
            .par_iter()
            .map(|&i| {
                let s = source.get(i)?;
                match augment {
                    None => Ok(s),
                    Some(a) => {
                        let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, epoch, i as u64));
                        Ok(a.apply(&s, &mut rng)?)
                    }
                }
            })
            .collect::<Result<Vec<_>>>()
    })?;
    collate(&items, config.reference, device)
}

/// Batches of one epoch, in order. Stops after the first error.
#[derive(Debug)]
pub struct BatchIter {
    rx: Receiver<Result<SitsBatch>>,
}

impl Iterator for BatchIter {
    type Item = Result<SitsBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}
