//! Masked reconstruction for U-BARN (Dumeur et al., IEEE JSTARS 2024, doi
//! 10.1109/JSTARS.2024.3358066): whole dates of a patch are hidden and a linear
//! decoder predicts them from the per-date representations.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::RngCore;
use sits_core::{Objective, ObjectiveOutput, SitsBatch, Step};
use sits_data::augment::DateMasking;
use sits_models::nn::{linear, Linear};
use sits_models::Ubarn;

use crate::bert::{corrupt, reconstruction_output, Corruption};

/// Masked reconstruction for [`Ubarn`], as U-BARN is pretrained: whole dates of a
/// patch are hidden (every pixel of the date, so the U-Net cannot copy a neighbour
/// of the same date) by [`corrupt`], and a linear decoder (`decoder`, `d → C`)
/// predicts the hidden values from the per-date representations. The MSE counts
/// the hidden dates' pixels that are valid (not cloudy) and not padded.
pub struct CubeMaskedReconstruction<'a> {
    model: &'a Ubarn,
    decoder: Linear,
    /// Which dates to hide.
    pub masking: DateMasking,
    /// How to hide them: [`Corruption::Noise`] or [`Corruption::Permute`].
    pub corruption: Corruption,
}

impl<'a> CubeMaskedReconstruction<'a> {
    /// Wraps `model`, building the decoder under `vb` (`decoder`). U-BARN has no
    /// mask token, so [`Corruption::MaskToken`] is refused.
    pub fn new(
        model: &'a Ubarn,
        vb: VarBuilder,
        masking: DateMasking,
        corruption: Corruption,
    ) -> Result<Self> {
        if corruption == Corruption::MaskToken {
            candle_core::bail!(
                "U-BARN masked reconstruction: the model has no mask token; use Corruption::Noise or Corruption::Permute"
            );
        }
        let cfg = model.config();
        let decoder = linear(cfg.d_model, cfg.input_dim, vb.pp("decoder"))?;
        Ok(Self {
            model,
            decoder,
            masking,
            corruption,
        })
    }

    /// Reconstructions `(B, T, C, H, W)` of every date from the per-date
    /// representations of `input`.
    pub fn reconstruct(&self, input: &Tensor, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        let out = self
            .model
            .forward(input, &batch.doy()?, batch.pad_mask(), train)?;
        // (B, T, d, H, W) -> (B, T, H, W, d) -> decoder -> (B, T, C, H, W)
        self.decoder
            .forward(&out.per_date.permute((0, 1, 3, 4, 2))?)?
            .permute((0, 1, 4, 2, 3))
    }
}

impl Objective for CubeMaskedReconstruction<'_> {
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let train = step.train;
        // dates without any valid pixel in a patch are padding: the date mask and
        // the corruption draw from the others, and the U-Net skips them (see
        // `SitsBatch::with_empty_dates_as_padding`: a constant image's GroupNorm
        // would blow the gradient up)
        let batch = &batch.clone().with_empty_dates_as_padding()?;
        let x = batch.values();
        let (b, t, _, h, w) = x.dims5().map_err(|_| {
            candle_core::Error::Msg(format!(
                "U-BARN masked reconstruction needs a cube batch (B, T, C, H, W), got {:?}",
                x.dims()
            ))
        })?;
        let mask = self.masking.batch_mask(batch, rng)?; // (B, T)
        let input = corrupt(x, &mask, batch.pad_mask(), self.corruption, rng)?;
        let pred = self.reconstruct(&input, batch, train)?;
        let valid = match batch.valid() {
            Some(v) if v.rank() == 4 => v.to_dtype(DType::F32)?,
            Some(v) => v
                .to_dtype(DType::F32)?
                .reshape((b, t, 1, 1))?
                .broadcast_as((b, t, h, w))?
                .contiguous()?,
            None => Tensor::ones((b, t, h, w), DType::F32, x.device())?,
        };
        let counted = valid
            .broadcast_mul(&mask.to_dtype(DType::F32)?.reshape((b, t, 1, 1))?)?
            .unsqueeze(2)?; // (B, T, 1, H, W)
        reconstruction_output(&pred, x, &counted)
    }

    fn name(&self) -> &str {
        "ubarn-masked-reconstruction"
    }
}
