//! PIMC-style multimodal contrastive learning (after the PIMC paper's idea of
//! pairing a recurrence-plot image of a pixel's index series with the series
//! itself): a symmetric InfoNCE between the two modalities' embeddings, with a
//! learnable temperature (as CLIP).

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::RngCore;
use sits_core::{Objective, ObjectiveOutput, SitsBatch, Step};
use sits_models::nn::{l2_normalize, linear, log_softmax, Linear};

/// CLIP-style symmetric InfoNCE between paired embeddings of two modalities
/// `(N, d)` (PIMC: recurrence-plot encoder vs series encoder): positives are the
/// same row, `logits = a·bᵀ / temperature` on L2-normalised rows, loss =
/// (CE(rows) + CE(columns)) / 2.
pub fn symmetric_info_nce(a: &Tensor, b: &Tensor, temperature: &Tensor) -> Result<Tensor> {
    let (n, d) = a.dims2()?;
    if b.dims() != [n, d] {
        candle_core::bail!(
            "InfoNCE needs paired embeddings of the same shape, got {:?} and {:?}",
            a.dims(),
            b.dims()
        );
    }
    let (a, b) = (
        l2_normalize(&a.to_dtype(DType::F32)?)?,
        l2_normalize(&b.to_dtype(DType::F32)?)?,
    );
    let logits = a
        .matmul(&b.t()?)?
        .broadcast_div(&temperature.to_dtype(DType::F32)?)?;
    let diag = Tensor::arange(0u32, n as u32, a.device())?.reshape((n, 1))?;
    let rows = log_softmax(&logits)?.gather(&diag, 1)?.neg()?.mean_all()?;
    let cols = log_softmax(&logits.t()?.contiguous()?)?
        .gather(&diag, 1)?
        .neg()?
        .mean_all()?;
    (rows + cols)? * 0.5
}

/// PIMC-style multimodal contrastive learning: the recurrence-plot image of each
/// pixel's NDVI/EVI/SAVI series (one unthresholded plot per index, as channels)
/// through an image encoder, the pixel's series through a series encoder, each
/// projected to a common space, and a symmetric InfoNCE whose positives are the
/// same pixel. The temperature is learnable (stored as `log_tau`) or fixed.
///
/// The plots are computed on the tensors of the batch (`|x_i − x_j|` per index);
/// dates that are padded or whose index is undefined are set to 0 in the plot.
pub struct Pimc<'a> {
    series: &'a dyn sits_core::Encoder,
    images: &'a sits_models::SmallResNet,
    proj_series: Linear,
    proj_images: Linear,
    log_tau: Tensor,
    bands: Vec<String>,
    radiometry: sits_data::Radiometry,
}

impl<'a> Pimc<'a> {
    /// `bands` names the batch's bands (to find red, NIR, blue); the projections
    /// (`proj_series`, `proj_images`) and `log_tau` are built under `vb`. With
    /// `learn_tau` false the temperature stays at `tau`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        series: &'a dyn sits_core::Encoder,
        images: &'a sits_models::SmallResNet,
        vb: VarBuilder,
        dim: usize,
        bands: Vec<String>,
        radiometry: sits_data::Radiometry,
        tau: f64,
        learn_tau: bool,
    ) -> Result<Self> {
        let proj_series = linear(series.output_dim(), dim, vb.pp("proj_series"))?;
        let proj_images = linear(images.output_dim(), dim, vb.pp("proj_images"))?;
        let log_tau = if learn_tau {
            vb.get_with_hints((), "log_tau", candle_nn::Init::Const(tau.ln()))?
        } else {
            Tensor::new(tau.ln() as f32, vb.device())?
        };
        Ok(Self {
            series,
            images,
            proj_series,
            proj_images,
            log_tau,
            bands,
            radiometry,
        })
    }

    /// Recurrence images `(B, 3, T, T)` of NDVI, EVI and SAVI of a pixel batch.
    pub fn recurrence_images(&self, batch: &SitsBatch) -> Result<Tensor> {
        let (idx, valid) = sits_repr::indices::tensor_indices(
            batch.values(),
            &self.bands,
            2,
            self.radiometry,
            &sits_repr::SpectralIndex::pimc(),
        )
        .map_err(candle_core::Error::wrap)?;
        let keep = (valid.to_dtype(DType::F32)?
            * (1.0 - batch.pad_mask().to_dtype(DType::F32)?)?.unsqueeze(2)?)?; // (B, T, 1)
        let idx = keep.broadcast_mul(&idx.eq(&idx)?.where_cond(&idx, &idx.zeros_like()?)?)?; // NaN -> 0, masked -> 0
        let x = idx.permute((0, 2, 1))?.contiguous()?; // (B, 3, T)
        let rp = x.unsqueeze(3)?.broadcast_sub(&x.unsqueeze(2)?)?.abs()?; // (B, 3, T, T)
        let k = keep.squeeze(2)?; // (B, T)
        let pair = k
            .unsqueeze(2)?
            .broadcast_mul(&k.unsqueeze(1)?)?
            .unsqueeze(1)?; // (B, 1, T, T)
        rp.broadcast_mul(&pair)
    }
}

impl Objective for Pimc<'_> {
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        _rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let train = step.train;
        let zi = self.proj_images.forward(
            &self
                .images
                .forward(&self.recurrence_images(batch)?, train)?,
        )?;
        let zs = self
            .proj_series
            .forward(&self.series.encode(batch, train)?)?;
        let tau = self.log_tau.exp()?;
        let loss = symmetric_info_nce(&zi, &zs, &tau)?;
        let t = tau.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("temperature".into(), t)],
        })
    }

    fn name(&self) -> &str {
        "pimc"
    }
}
