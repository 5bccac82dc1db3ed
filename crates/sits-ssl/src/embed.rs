//! Frozen-encoder embeddings: pooling of per-date or per-pixel outputs into one
//! vector per sample, and [`embed`] over a whole loader.

use candle_core::{Result, Tensor};
use sits_core::SitsBatch;
use sits_models::PixelTransformer;

/// An encoder's representation as vectors: `(B, d, H, W)` maps are averaged over
/// space, `(B, d)` is kept.
pub fn pooled(z: Tensor) -> Result<Tensor> {
    if z.rank() == 4 {
        z.mean(3)?.mean(2)
    } else {
        Ok(z)
    }
}

/// How a [`PixelTransformer`]'s per-date outputs `(B, T, d)` become one vector per
/// series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pooling {
    /// The mean over non-padded dates: `d` values (the model's own `pooled`).
    Mean,
    /// The per-date outputs concatenated in date order: `dates * d` values, padded
    /// dates zeroed. Keeps the timing of the phenology, which a mean washes out;
    /// needs series of exactly `dates` dates (e.g. one agricultural year of
    /// 16-day composites).
    Flatten {
        /// The number of dates every batch must have.
        dates: usize,
    },
}

/// A [`PixelTransformer`] with a [`Pooling`], as an [`sits_core::Encoder`] (for
/// [`embed`], probes and [`crate::finetune::Classification`]).
#[derive(Debug, Clone, Copy)]
pub struct PooledPixelEncoder<'a> {
    model: &'a PixelTransformer,
    pooling: Pooling,
}

impl<'a> PooledPixelEncoder<'a> {
    /// Wraps `model`.
    pub fn new(model: &'a PixelTransformer, pooling: Pooling) -> Self {
        Self { model, pooling }
    }
}

impl sits_core::Encoder for PooledPixelEncoder<'_> {
    fn encode(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        let out = self.model.encode_dates(batch, None, train)?;
        match self.pooling {
            Pooling::Mean => Ok(out.pooled),
            Pooling::Flatten { dates } => {
                let (b, t, _) = out.per_date.dims3()?;
                if t != dates {
                    candle_core::bail!(
                        "flatten pooling expects {dates} dates per series, the batch has {t} \
                         (B = {b}); resample or crop the series to a common length first"
                    );
                }
                let keep = (1.0 - batch.pad_mask().to_dtype(out.per_date.dtype())?)?;
                out.per_date
                    .broadcast_mul(&keep.unsqueeze(2)?)?
                    .flatten_from(1)
            }
        }
    }

    fn output_dim(&self) -> usize {
        let d = self.model.config().d_model;
        match self.pooling {
            Pooling::Mean => d,
            Pooling::Flatten { dates } => dates * d,
        }
    }
}

/// Representations `(N, d)` of every sample of `loader` (use a loader without
/// shuffling to keep the source order) by a frozen encoder, batch by batch: memory
/// holds one batch of inputs plus the `N × d` output.
pub fn embed(encoder: &dyn sits_core::Encoder, loader: &sits_data::Loader) -> Result<Tensor> {
    let mut parts = Vec::with_capacity(loader.num_batches());
    for batch in loader.epoch(0) {
        let batch = batch.map_err(candle_core::Error::wrap)?;
        parts.push(encoder.encode(&batch, false)?.detach());
    }
    if parts.is_empty() {
        candle_core::bail!("embed: the loader yields no batch");
    }
    Tensor::cat(&parts, 0)
}
