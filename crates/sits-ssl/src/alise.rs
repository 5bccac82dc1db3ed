//! ALISE pretraining (Dumeur, Valero and Inglada, 2024, arXiv 2407.08448): aligned
//! representations learnt from two date subsets of each series.
//!
//! Each step splits the observed dates of every series (or patch) at random into
//! two disjoint views. Both go through the same date encoder and
//! [`TemporalProjector`], giving `n_q × d` aligned vectors per pixel. The loss
//! has three terms, weighted 1, 1, 1 as in the public configuration of the
//! follow-up work (`malice`, `alise_pretraining.yaml`; the variance term of
//! VICReg is left out there too):
//! - **reconstruction**: the [`DateQueryDecoder`] queried with the days of year of
//!   the *other* view's dates rebuilds those observations from this view's aligned
//!   vectors (masked MSE over valid, observed values; both directions averaged).
//!   Being asked for dates it did not see is what makes the representation carry
//!   the series rather than its own calendar;
//! - **invariance**: the MSE between the two views' aligned vectors after a small
//!   per-query expander (`Linear-ReLU-Linear`);
//! - **covariance**: VICReg's decorrelation term on those expanded vectors, per
//!   query: the squared off-diagonal covariances over the batch divided by the
//!   width, averaged over the queries and summed over the two views.
//!
//! Works for pixel batches `(B, T, C)` with a [`PixelTransformer`] and for patch
//! batches `(B, T, C, H, W)` with [`Ubarn`], whose per-date maps become one
//! sequence per pixel (see [`DateEncoder`]).

use std::borrow::Cow;

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use rand::seq::SliceRandom;
use rand::RngCore;
use sits_core::{BatchLayout, Objective, ObjectiveOutput, SitsBatch, Step};
use sits_models::alise::{AliseConfig, DateQueryDecoder, TemporalProjector};
use sits_models::{PixelTransformer, Ubarn};

use crate::bert::masked_mse;
use crate::simclr::ProjectionHead;

/// An encoder that gives one vector per date of every sequence: `(N, T, d)` with
/// `N = B` for pixel batches and `N = B·H·W` (pixel-major, as
/// [`sequences`] orders them) for patch batches.
pub trait DateEncoder {
    /// Per-date vectors of `batch`.
    fn date_vectors(&self, batch: &SitsBatch, train: bool) -> Result<Tensor>;
    /// Their width `d`.
    fn date_dim(&self) -> usize;
}

impl DateEncoder for PixelTransformer {
    fn date_vectors(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        Ok(self.encode_dates(batch, None, train)?.per_date)
    }
    fn date_dim(&self) -> usize {
        self.config().d_model
    }
}

impl DateEncoder for Ubarn {
    /// Per-date vectors of every pixel; dates without any valid pixel in a sample
    /// skip the U-Net as padding ([`SitsBatch::with_empty_dates_as_padding`]): give
    /// the projector the pad mask of a batch converted the same way
    /// ([`for_date_encoder`]; the objective and [`AlignedEncoder`] do), as their
    /// vectors are not meaningful.
    fn date_vectors(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        let batch = batch.clone().with_empty_dates_as_padding()?;
        let z = self
            .forward(batch.values(), &batch.doy()?, batch.pad_mask(), train)?
            .per_date; // (B, T, d, H, W)
        let (b, t, d, h, w) = z.dims5()?;
        z.permute((0, 3, 4, 1, 2))?.reshape((b * h * w, t, d))
    }
    fn date_dim(&self) -> usize {
        self.config().d_model
    }
}

/// A batch as one sequence per series or per pixel.
#[derive(Debug, Clone)]
pub struct Sequences {
    /// Observations `(N, T, C)`.
    pub values: Tensor,
    /// Day of year `(N, T)`, f32.
    pub doy: Tensor,
    /// Padding `(N, T)`, u8 (1 = padded date).
    pub pad: Tensor,
    /// Usable observations `(N, T)`, u8 (1 = usable; all ones without a validity
    /// mask).
    pub valid: Tensor,
}

/// A `(B, T)` mask of `batch` repeated for every sequence of [`sequences`]: itself
/// for pixel batches, once per pixel (pixel-major) for patch batches.
fn per_sequence(batch: &SitsBatch, m: &Tensor) -> Result<Tensor> {
    match batch.layout() {
        BatchLayout::Pixel => Ok(m.clone()),
        BatchLayout::Patch => {
            let (b, t, _, h, w) = batch.values().dims5()?;
            m.unsqueeze(1)?
                .broadcast_as((b, h * w, t))?
                .reshape((b * h * w, t))
        }
    }
}

/// The pad mask `(N, T)` of the sequences of `batch` (without copying its values).
pub fn sequence_pad(batch: &SitsBatch) -> Result<Tensor> {
    per_sequence(batch, batch.pad_mask())
}

/// The sequences of `batch`: itself for pixel batches; for patch batches one per
/// pixel, pixel-major (`n = (b·H + y)·W + x`), dates and padding repeated.
pub fn sequences(batch: &SitsBatch) -> Result<Sequences> {
    let x = batch.values();
    let (b, t) = (batch.batch_size(), batch.seq_len());
    let ones = || Tensor::ones((b, t), DType::U8, x.device());
    match batch.layout() {
        BatchLayout::Pixel => Ok(Sequences {
            values: x.clone(),
            doy: batch.doy()?,
            pad: sequence_pad(batch)?,
            valid: match batch.valid() {
                Some(v) => v.clone(),
                None => ones()?,
            },
        }),
        BatchLayout::Patch => {
            let (_, _, c, h, w) = x.dims5()?;
            let valid = match batch.valid() {
                Some(v) => v.permute((0, 2, 3, 1))?.reshape((b * h * w, t))?,
                None => Tensor::ones((b * h * w, t), DType::U8, x.device())?,
            };
            Ok(Sequences {
                values: x.permute((0, 3, 4, 1, 2))?.reshape((b * h * w, t, c))?,
                doy: per_sequence(batch, &batch.doy()?)?,
                pad: sequence_pad(batch)?,
                valid,
            })
        }
    }
}

/// Splits the observed dates of every row of `pad` `(B, T)` (1 = padded) at random
/// into two disjoint views and returns their pad masks: a row's observed dates are
/// shuffled and the first `round(fraction · n)` (at least 1, at most `n − 1`) go to
/// the first view, the rest to the second. A row with a single observed date gives
/// it to both views.
pub fn split_dates(pad: &[Vec<u8>], fraction: f64, rng: &mut dyn RngCore) -> (Vec<u8>, Vec<u8>) {
    let t = pad.first().map_or(0, Vec::len);
    let (mut a, mut b) = (vec![1u8; pad.len() * t], vec![1u8; pad.len() * t]);
    for (i, row) in pad.iter().enumerate() {
        let mut real: Vec<usize> = (0..t).filter(|&j| row[j] == 0).collect();
        if real.len() == 1 {
            a[i * t + real[0]] = 0;
            b[i * t + real[0]] = 0;
            continue;
        }
        real.shuffle(rng);
        let n = real.len();
        let k = ((fraction * n as f64).round() as usize).clamp(1, n.saturating_sub(1).max(1));
        for (r, &j) in real.iter().enumerate() {
            if r < k {
                a[i * t + j] = 0;
            } else {
                b[i * t + j] = 0;
            }
        }
    }
    (a, b)
}

/// VICReg's covariance term of `z` `(N, Q, p)`, per query: the squared off-diagonal
/// entries of the `p × p` covariance over the `N` rows, summed and divided by `p`;
/// averaged over the `Q` queries. Needs `N >= 2`.
pub fn covariance_penalty(z: &Tensor) -> Result<Tensor> {
    let (n, q, p) = z.dims3()?;
    if n < 2 {
        candle_core::bail!("covariance penalty: needs at least 2 rows, got {n}");
    }
    let zc = z.broadcast_sub(&z.mean_keepdim(0)?)?; // (N, Q, p)
    let zq = zc.transpose(0, 1)?.contiguous()?; // (Q, N, p)
    let cov = (zq.transpose(1, 2)?.contiguous()?.matmul(&zq)? / (n as f64 - 1.0))?; // (Q, p, p)
    let eye = Tensor::eye(p, z.dtype(), z.device())?;
    let off = cov.broadcast_mul(&(1.0 - eye)?)?;
    off.sqr()?.sum_all()? / (p * q) as f64
}

/// VICReg's variance term of `z` `(N, Q, p)`: the mean over queries and features of
/// `relu(1 − sqrt(var + 1e-4))`, the variance taken over the `N` rows (unbiased). It
/// keeps the expanded vectors from shrinking to a constant, which the invariance and
/// covariance terms alone allow. Needs `N >= 2`.
pub fn variance_penalty(z: &Tensor) -> Result<Tensor> {
    let n = z.dim(0)?;
    if n < 2 {
        candle_core::bail!("variance penalty: needs at least 2 rows, got {n}");
    }
    let zc = z.broadcast_sub(&z.mean_keepdim(0)?)?;
    let var = (zc.sqr()?.sum(0)? / (n as f64 - 1.0))?; // (Q, p)
    (1.0 - (var + 1e-4)?.sqrt()?)?.relu()?.mean_all()
}

/// Weights of the loss terms.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AliseWeights {
    /// Cross-view reconstruction.
    pub reconstruction: f64,
    /// Invariance between the views.
    pub invariance: f64,
    /// Covariance penalty.
    pub covariance: f64,
    /// Variance penalty ([`variance_penalty`], both views averaged); 0 in the public
    /// configuration.
    #[serde(default)]
    pub variance: f64,
}

impl Default for AliseWeights {
    /// 1, 1, 1 and no variance term (the public configuration).
    fn default() -> Self {
        Self {
            reconstruction: 1.0,
            invariance: 1.0,
            covariance: 1.0,
            variance: 0.0,
        }
    }
}

/// The ALISE objective (module documentation). The encoder and the projector are
/// borrowed: together they are the representation kept after pretraining; the
/// decoder and the expander are the objective's own, under `vb`.
pub struct Alise<'a> {
    encoder: &'a dyn DateEncoder,
    projector: &'a TemporalProjector,
    decoder: DateQueryDecoder,
    expander: ProjectionHead,
    /// Term weights.
    pub weights: AliseWeights,
    /// Share of a series' observed dates in the first view.
    pub view_fraction: f64,
}

impl<'a> Alise<'a> {
    /// Builds the decoder (`decoder`, reconstructing `bands` bands) and the expander
    /// (`expander`, `d → d → d`) under `vb`.
    pub fn new(
        encoder: &'a dyn DateEncoder,
        projector: &'a TemporalProjector,
        vb: VarBuilder,
        bands: usize,
    ) -> Result<Self> {
        let cfg: AliseConfig = projector.config().clone();
        if encoder.date_dim() != cfg.d_model {
            candle_core::bail!(
                "ALISE: the encoder gives {}-wide vectors, the projector expects {}",
                encoder.date_dim(),
                cfg.d_model
            );
        }
        let d = cfg.d_model;
        Ok(Self {
            decoder: DateQueryDecoder::new(vb.pp("decoder"), cfg, bands)?,
            expander: ProjectionHead::new(vb.pp("expander"), d, d, d, 2)?,
            encoder,
            projector,
            weights: AliseWeights::default(),
            view_fraction: 0.5,
        })
    }

    /// The aligned vectors `(N, n_q, d)` of a view and its sequence pad mask.
    fn aligned(&self, view: &SitsBatch, train: bool) -> Result<(Tensor, Tensor)> {
        let z = self.encoder.date_vectors(view, train)?;
        let pad = sequence_pad(view)?;
        Ok((self.projector.forward(&z, Some(&pad))?, pad))
    }
}

/// `batch` as the ALISE objective and [`AlignedEncoder`] see it: for patch batches,
/// dates without any valid pixel in a sample become padding
/// ([`SitsBatch::with_empty_dates_as_padding`]; U-BARN skips them, so the projector
/// must not attend to them); pixel batches unchanged (their invalid observations
/// stay out of the reconstruction target through the validity mask).
pub fn for_date_encoder(batch: &SitsBatch) -> Result<Cow<'_, SitsBatch>> {
    Ok(match batch.layout() {
        BatchLayout::Patch => Cow::Owned(batch.clone().with_empty_dates_as_padding()?),
        BatchLayout::Pixel => Cow::Borrowed(batch),
    })
}

/// `batch` with another pad mask (the dates a view keeps).
fn view_of(batch: &SitsBatch, pad: Vec<u8>) -> Result<SitsBatch> {
    let (b, t) = (batch.batch_size(), batch.seq_len());
    let pad = Tensor::from_vec(pad, (b, t), batch.values().device())?;
    let v = SitsBatch::new(
        batch.values().clone(),
        batch.days().clone(),
        batch.doy()?,
        pad,
        batch.reference(),
    )?;
    match batch.valid() {
        Some(m) => v.with_valid(m.clone()),
        None => Ok(v),
    }
}

impl Objective for Alise<'_> {
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let batch = &for_date_encoder(batch)?;
        let pad: Vec<Vec<u8>> = batch.pad_mask().to_dtype(DType::U8)?.to_vec2()?;
        let (pa, pb) = split_dates(&pad, self.view_fraction, rng);
        let (va, vb) = (view_of(batch, pa)?, view_of(batch, pb)?);
        let (ra, pad_a) = self.aligned(&va, step.train)?;
        let (rb, pad_b) = self.aligned(&vb, step.train)?;

        let seq = sequences(batch)?;
        let target = seq.values.detach();
        let valid = seq.valid.to_dtype(DType::F32)?;
        let seen_by = |p: &Tensor| -> Result<Tensor> {
            ((1.0 - p.to_dtype(DType::F32)?)? * &valid)?.unsqueeze(2)
        };
        // each view rebuilds the dates the other one kept
        let rec_a = masked_mse(
            &self.decoder.forward(&ra, &seq.doy)?,
            &target,
            &seen_by(&pad_b)?,
        )?;
        let rec_b = masked_mse(
            &self.decoder.forward(&rb, &seq.doy)?,
            &target,
            &seen_by(&pad_a)?,
        )?;
        let rec = ((rec_a + rec_b)? * 0.5)?;
        let ea = self.expander.forward(&ra)?.to_dtype(DType::F32)?;
        let eb = self.expander.forward(&rb)?.to_dtype(DType::F32)?;
        let inv = (&ea - &eb)?.sqr()?.mean_all()?;
        let cov = (covariance_penalty(&ea)? + covariance_penalty(&eb)?)?;
        let var = ((variance_penalty(&ea)? + variance_penalty(&eb)?)? * 0.5)?;
        let w = self.weights;
        let loss = ((&rec * w.reconstruction)? + (&inv * w.invariance)?)?;
        let loss = ((loss + (&cov * w.covariance)?)? + (&var * w.variance)?)?;
        let scalar = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
        Ok(ObjectiveOutput {
            metrics: vec![
                ("reconstruction".into(), scalar(&rec)?),
                ("invariance".into(), scalar(&inv)?),
                ("covariance".into(), scalar(&cov)?),
                ("variance".into(), scalar(&var)?),
            ],
            loss,
        })
    }

    fn name(&self) -> &str {
        "alise"
    }
}

/// A date encoder followed by its [`TemporalProjector`], as an
/// [`sits_core::Encoder`]: `(B, n_q·d)` for pixel batches (the aligned vectors
/// flattened query by query), `(B, n_q·d, H, W)` for patch batches.
pub struct AlignedEncoder<'a> {
    encoder: &'a dyn DateEncoder,
    projector: &'a TemporalProjector,
}

impl<'a> AlignedEncoder<'a> {
    /// Wraps `encoder` and `projector`.
    pub fn new(encoder: &'a dyn DateEncoder, projector: &'a TemporalProjector) -> Self {
        Self { encoder, projector }
    }
}

impl sits_core::Encoder for AlignedEncoder<'_> {
    /// Patch batches are converted as in training ([`for_date_encoder`]): a date
    /// without any valid pixel in a sample is padding for the projector too.
    fn encode(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        let batch = &for_date_encoder(batch)?;
        let z = self.encoder.date_vectors(batch, train)?;
        let pad = sequence_pad(batch)?;
        let r = self.projector.forward(&z, Some(&pad))?.flatten_from(1)?; // (N, n_q·d)
        match batch.layout() {
            BatchLayout::Pixel => Ok(r),
            BatchLayout::Patch => {
                let (b, _, _, h, w) = batch.values().dims5()?;
                sits_models::nn::pixels_to_maps(&r, b, h, w)
            }
        }
    }

    fn output_dim(&self) -> usize {
        self.projector.config().repr_dim()
    }
}
