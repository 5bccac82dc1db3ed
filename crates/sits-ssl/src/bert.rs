//! BERT-style masked reconstruction of pixel series (SITS-BERT, Yuan & Lin 2021;
//! the U-BARN pretext task of Dumeur et al. 2024 on pixels): whole dates are hidden
//! (by a learnable mask token, by SITS-BERT's uniform noise, or by U-BARN's
//! permutation) and a linear decoder predicts their values from the encoder's
//! per-date outputs; the loss is the MSE over the hidden, valid, non-padded
//! observations.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, RngCore};
use sits_core::{Objective, ObjectiveOutput, SitsBatch, Step};
use sits_data::augment::DateMasking;
use sits_models::nn::{linear, Linear};
use sits_models::PixelTransformer;

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
}

impl Objective for MaskedReconstruction<'_> {
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let train = step.train;
        let x = batch.values();
        let (b, t, _) = x.dims3()?;
        let mask = self.masking.batch_mask(batch, rng)?; // (B, T) u8, valid & non-padded only
        let (input, token_mask) = match self.corruption {
            Corruption::MaskToken => (x.clone(), Some(mask.clone())),
            other => (corrupt(x, &mask, batch.pad_mask(), other, rng)?, None),
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
        reconstruction_output(&pred, x, &counted)
    }

    fn name(&self) -> &str {
        "masked-reconstruction"
    }
}

/// The masked MSE of `pred` against `target` over the `counted` entries (1 =
/// counted, shaped like `pred` but with one band), and the share of counted entries
/// as the `masked_fraction` metric.
pub(crate) fn reconstruction_output(
    pred: &Tensor,
    target: &Tensor,
    counted: &Tensor,
) -> Result<ObjectiveOutput> {
    let frac = counted.sum_all()?.to_scalar::<f32>()? as f64 / counted.elem_count() as f64;
    let loss = masked_mse(pred, &target.detach(), counted)?;
    Ok(ObjectiveOutput {
        loss,
        metrics: vec![("masked_fraction".into(), frac)],
    })
}

/// Hides the dates selected by `mask` `(B, T)` in `x` `(B, T, ...)` (any trailing
/// shape: `(C)` for pixel series, `(C, H, W)` for cubes) as `corruption` says;
/// the other dates are returned unchanged. [`Corruption::MaskToken`] acts inside a
/// model, not on its input, so it is refused here.
pub fn corrupt(
    x: &Tensor,
    mask: &Tensor,
    pad: &Tensor,
    corruption: Corruption,
    rng: &mut dyn RngCore,
) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let dims = x.dims().to_vec();
    if dims.len() < 3 || dims[0] != b || dims[1] != t {
        candle_core::bail!(
            "corrupt: values {dims:?} must be (B, T, ...) with (B, T) = ({b}, {t}) as the mask"
        );
    }
    let inner: usize = dims[2..].iter().product();
    let mut mshape = vec![b, t];
    mshape.extend(std::iter::repeat_n(1, dims.len() - 2));
    let m = mask
        .to_dtype(DType::U8)?
        .reshape(mshape)?
        .broadcast_as(x.shape())?;
    let replaced = match corruption {
        Corruption::MaskToken => candle_core::bail!(
            "corrupt: the mask token replaces date embeddings inside the model; use Noise or Permute on inputs"
        ),
        Corruption::Noise { amplitude } => {
            let noise: Vec<f32> = (0..b * t * inner)
                .map(|_| rng.random_range(-amplitude..=amplitude) as f32)
                .collect();
            (x + Tensor::from_vec(noise, x.shape(), x.device())?)?
        }
        Corruption::Permute => {
            let pad: Vec<Vec<u8>> = pad.to_dtype(DType::U8)?.to_vec2()?;
            let real: Vec<usize> = (0..b * t).filter(|&k| pad[k / t][k % t] == 0).collect();
            if real.is_empty() {
                candle_core::bail!("corrupt: every date of the batch is padding");
            }
            let src: Vec<u32> = (0..b * t)
                .map(|_| real[rng.random_range(0..real.len())] as u32)
                .collect();
            let idx = Tensor::from_vec(src, b * t, x.device())?;
            x.reshape((b * t, inner))?
                .index_select(&idx, 0)?
                .reshape(x.shape())?
        }
    };
    m.where_cond(&replaced, x)
}

/// Mean squared error over the entries selected by `mask` (broadcastable to
/// `pred`; 1 = counted), the BERT-style reconstruction loss: pass masked dates that
/// are valid and not padded. Errors when nothing is selected.
pub fn masked_mse(pred: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if pred.dims() != target.dims() {
        candle_core::bail!(
            "masked MSE: prediction {:?} and target {:?} differ",
            pred.dims(),
            target.dims()
        );
    }
    let m = mask.to_dtype(DType::F32)?.broadcast_as(pred.shape())?;
    let count = m.sum_all()?.to_scalar::<f32>()?;
    if count == 0.0 {
        candle_core::bail!("masked MSE: the mask selects no entry");
    }
    let err = (pred.to_dtype(DType::F32)? - target.to_dtype(DType::F32)?)?.sqr()?;
    (err * m)?.sum_all()? / count as f64
}
