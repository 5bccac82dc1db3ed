//! SimCLR (Chen et al. 2020): two random views of each sample through the same
//! encoder and a projection head, and the NT-Xent loss whose positive for each view
//! is the other view of the same sample. The loss is checked against the two
//! reference reductions (`sthalles/SimCLR` and `google-research/simclr`).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::RngCore;
use sits_core::{Augmentation, Objective, ObjectiveOutput, SitsBatch, Step};
use sits_models::nn::{l2_normalize, linear, Linear};
use sits_models::ops::contrastive::nt_xent_per_anchor;

use crate::embed::pooled;

/// How NT-Xent is reduced. The two reference implementations differ by exactly 2×.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NtXentReduction {
    /// Mean over the 2N anchors (sthalles/SimCLR `info_nce_loss`).
    MeanOverAnchors,
    /// Sum of the two directional means over N (google-research/simclr
    /// `add_contrastive_loss`): twice [`NtXentReduction::MeanOverAnchors`].
    SumOfDirections,
}

/// SimCLR NT-Xent of two views `(N, d)`: both L2-normalised, cosine similarities
/// over `temperature`, each embedding's positive is its other view and its
/// negatives the 2N − 2 others (self-similarity excluded).
pub fn nt_xent(
    z1: &Tensor,
    z2: &Tensor,
    temperature: f64,
    reduction: NtXentReduction,
) -> Result<Tensor> {
    // computed in f32 whatever the inputs' dtype; one op each way on the CPU
    let mean = nt_xent_per_anchor(
        &z1.to_dtype(DType::F32)?,
        &z2.to_dtype(DType::F32)?,
        temperature,
    )?
    .mean_all()?;
    match reduction {
        NtXentReduction::MeanOverAnchors => Ok(mean),
        NtXentReduction::SumOfDirections => mean * 2.0,
    }
}

/// SimCLR projector: `Linear(d, hidden) → ReLU → Linear(hidden, out)` (sthalles,
/// `layers = 2`), or with more hidden layers (google's 3-layer head, without its
/// BatchNorms). Names `layers.{i}`.
#[derive(Debug, Clone)]
pub struct ProjectionHead {
    layers: Vec<Linear>,
}

impl ProjectionHead {
    /// `layers` linear layers (at least 1) from `d_in` through `hidden` to `d_out`.
    pub fn new(
        vb: VarBuilder,
        d_in: usize,
        hidden: usize,
        d_out: usize,
        layers: usize,
    ) -> Result<Self> {
        let layers = layers.max(1);
        let mut v = Vec::with_capacity(layers);
        for i in 0..layers {
            let a = if i == 0 { d_in } else { hidden };
            let b = if i + 1 == layers { d_out } else { hidden };
            v.push(linear(a, b, vb.pp("layers").pp(i))?);
        }
        Ok(Self { layers: v })
    }

    /// Projections `(…, d_out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h)?;
            if i + 1 < self.layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }
}

/// SimCLR: two views of each sample by any [`Augmentation<SitsBatch>`] (for instance
/// [`sits_data::augment::SeriesViews`] or [`sits_data::augment::CubeViews`]), any
/// [`sits_core::Encoder`], a
/// projection head, NT-Xent with an explicit reduction.
pub struct SimClr<'a> {
    encoder: &'a dyn sits_core::Encoder,
    head: ProjectionHead,
    /// How views are made.
    pub views: Box<dyn Augmentation<SitsBatch>>,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// NT-Xent reduction.
    pub reduction: NtXentReduction,
}

impl<'a> SimClr<'a> {
    /// Wraps `encoder`; the projection head (`Linear-ReLU-Linear` to `proj_dim`) is
    /// built under `vb` (`projector`).
    pub fn new(
        encoder: &'a dyn sits_core::Encoder,
        vb: VarBuilder,
        proj_dim: usize,
        views: impl Augmentation<SitsBatch> + 'static,
        temperature: f64,
    ) -> Result<Self> {
        let d = encoder.output_dim();
        let head = ProjectionHead::new(vb.pp("projector"), d, d, proj_dim, 2)?;
        Ok(Self {
            encoder,
            head,
            views: Box::new(views),
            temperature,
            reduction: NtXentReduction::MeanOverAnchors,
        })
    }
}

impl Objective for SimClr<'_> {
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let train = step.train;
        let (v1, v2) = (self.views.apply(batch, rng)?, self.views.apply(batch, rng)?);
        let z1 = self
            .head
            .forward(&pooled(self.encoder.encode(&v1, train)?)?)?;
        let z2 = self
            .head
            .forward(&pooled(self.encoder.encode(&v2, train)?)?)?;
        let loss = nt_xent(&z1, &z2, self.temperature, self.reduction)?;
        // positive-pair cosine similarity, a health metric (1 = views collapsed together)
        let cos = (l2_normalize(&z1)? * l2_normalize(&z2)?)?
            .sum(1)?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("positive_cosine".into(), cos)],
        })
    }

    fn name(&self) -> &str {
        "simclr"
    }
}
