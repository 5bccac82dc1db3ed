//! Objectives that turn an encoder and a batch into a loss. So far: BERT-style
//! masked reconstruction of whole dates for the pixel transformer.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, RngCore};
use sits_core::{ObjectiveOutput, SitsBatch};
use sits_data::augment::DateMasking;
use sits_models::nn::{linear, Linear};
use sits_models::PixelTransformer;

use crate::losses::masked_mse;

/// How masked dates are hidden from the encoder.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Corruption {
    /// The embedding of a masked date is replaced by the learnable mask token.
    MaskToken,
    /// SITS-BERT: uniform noise in `±amplitude` added to every band of a masked
    /// date (0.5 on reflectances in the reference).
    Noise {
        /// Half-width of the uniform noise.
        amplitude: f64,
    },
    /// As described for U-BARN: a masked date takes the values of a random
    /// non-padded date of a random sample of the batch.
    Permute,
}

/// BERT-style masked reconstruction: hide whole dates, predict their values from
/// the per-date outputs with a linear decoder (`decoder`), MSE on the masked,
/// valid, non-padded observations only.
pub struct MaskedReconstruction<'a> {
    model: &'a PixelTransformer,
    decoder: Linear,
    /// Which dates to hide.
    pub masking: DateMasking,
    /// How to hide them.
    pub corruption: Corruption,
}

impl<'a> MaskedReconstruction<'a> {
    /// Wraps `model`, building the decoder under `vb` (`decoder`).
    pub fn new(
        model: &'a PixelTransformer,
        vb: VarBuilder,
        masking: DateMasking,
        corruption: Corruption,
    ) -> Result<Self> {
        let cfg = model.config();
        let decoder = linear(cfg.d_model, cfg.in_bands, vb.pp("decoder"))?;
        Ok(Self {
            model,
            decoder,
            masking,
            corruption,
        })
    }

    /// The loss of one batch `(B, T, C)`; masks and corruption draw from `rng`.
    pub fn loss(
        &self,
        batch: &SitsBatch,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> Result<ObjectiveOutput> {
        let x = batch.values();
        let (b, t, c) = x.dims3()?;
        let mask = self.masking.batch_mask(batch, rng)?; // (B, T) u8, valid & non-padded only
        let m3 = mask.unsqueeze(2)?.broadcast_as((b, t, c))?;
        let (input, token_mask) = match self.corruption {
            Corruption::MaskToken => (x.clone(), Some(mask.clone())),
            Corruption::Noise { amplitude } => {
                let noise: Vec<f32> = (0..b * t * c)
                    .map(|_| rng.random_range(-amplitude..=amplitude) as f32)
                    .collect();
                let noise = Tensor::from_vec(noise, (b, t, c), x.device())?;
                let noisy = (x + noise)?;
                (m3.where_cond(&noisy, x)?, None)
            }
            Corruption::Permute => {
                let pad: Vec<Vec<u8>> = batch.pad_mask().to_vec2()?;
                let real: Vec<(usize, usize)> = (0..b)
                    .flat_map(|i| (0..t).map(move |j| (i, j)))
                    .filter(|&(i, j)| pad[i][j] == 0)
                    .collect();
                let src: Vec<u32> = (0..b * t)
                    .map(|_| {
                        let (i, j) = real[rng.random_range(0..real.len())];
                        (i * t + j) as u32
                    })
                    .collect();
                let idx = Tensor::from_vec(src, b * t, x.device())?;
                let shuffled = x
                    .reshape((b * t, c))?
                    .index_select(&idx, 0)?
                    .reshape((b, t, c))?;
                (m3.where_cond(&shuffled, x)?, None)
            }
        };
        let valid = match batch.valid() {
            Some(v) => v.to_dtype(DType::U8)?,
            None => Tensor::ones((b, t), DType::U8, x.device())?,
        };
        let out = self.model.forward(
            &input,
            &self.model.positions(batch)?,
            Some(batch.pad_mask()),
            token_mask.as_ref(),
            train,
        )?;
        let pred = self.decoder.forward(&out.per_date)?;
        let counted = (mask.to_dtype(DType::F32)? * valid.to_dtype(DType::F32)?)?.unsqueeze(2)?;
        let frac = (counted.sum_all()?.to_scalar::<f32>()? as f64) / (b * t) as f64;
        let loss = masked_mse(&pred, &x.detach(), &counted)?;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("masked_fraction".into(), frac)],
        })
    }
}
