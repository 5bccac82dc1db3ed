//! U-BARN (Dumeur et al., JSTARS 2024): a spatial U-Net applied to every date with
//! shared weights, then a transformer along time for every pixel, giving per-date
//! representations `(B, T, d, H, W)`; a temporal attention pooling gives
//! `(B, d, H, W)` for downstream heads.
//!
//! **Uncertain sizes.** The paper's code was not reachable when this was written;
//! the preset follows the best available description (ANCHORS.md §3.4): the U-TAE
//! U-Net without its L-TAE as the per-date encoder, `d_model` 64, 3 layers, 4 heads,
//! feed-forward 128, day-of-year sinusoid with period 1000. Treat the preset as a
//! U-BARN-like model, not as a reproduction; every size is a field of the config.

use candle_core::{DType, Module, Result, Tensor};
use sits_core::{Encoder, SitsBatch};

use crate::heads::TemporalAttentionPooling;
use crate::nn::{Conv2d, Ctx, LayerNorm, PaddingMode};
use crate::transformer::{sinusoid, EncoderLayer};
use crate::utae::{encoder_blocks, up_block, EncoderBlock, Norm, UpBlock};

/// U-BARN hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UbarnConfig {
    /// Input bands.
    pub input_dim: usize,
    /// U-Net encoder widths, top to bottom.
    pub encoder_widths: Vec<usize>,
    /// U-Net decoder widths, top to bottom (last = last encoder width).
    pub decoder_widths: Vec<usize>,
    /// Representation size.
    pub d_model: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Dropout in the transformer.
    pub dropout: f32,
    /// Period of the day-of-year sinusoid.
    pub period: f32,
    /// Heads of the temporal attention pooling.
    pub pool_heads: usize,
}

impl UbarnConfig {
    /// The preset described in the module documentation for `bands` input bands.
    pub fn preset(bands: usize) -> Self {
        Self {
            input_dim: bands,
            encoder_widths: vec![64, 64, 64, 128],
            decoder_widths: vec![32, 32, 64, 128],
            d_model: 64,
            layers: 3,
            heads: 4,
            d_ff: 128,
            dropout: 0.1,
            period: 1000.0,
            pool_heads: 4,
        }
    }
}

/// Outputs of [`Ubarn::forward`].
#[derive(Debug, Clone)]
pub struct UbarnOutput {
    /// Per-date representations `(B, T, d, H, W)` (padded dates: not meaningful).
    pub per_date: Tensor,
    /// Attention-pooled representation `(B, d, H, W)`.
    pub pooled: Tensor,
}

/// The U-BARN-like encoder.
pub struct Ubarn {
    cfg: UbarnConfig,
    encoder: Vec<EncoderBlock>,
    decoder: Vec<UpBlock>,
    proj: Conv2d,
    layers: Vec<EncoderLayer>,
    norm: LayerNorm,
    pool: TemporalAttentionPooling,
}

impl std::fmt::Debug for Ubarn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ubarn").field("cfg", &self.cfg).finish()
    }
}

impl Ubarn {
    /// Builds the model (`unet.in_conv`, `unet.down_blocks`, `unet.up_blocks`,
    /// `proj`, `transformer.layers.{i}`, `norm`, `pool`).
    pub fn new(ctx: &Ctx, cfg: UbarnConfig) -> Result<Self> {
        let (ew, dw) = (&cfg.encoder_widths, &cfg.decoder_widths);
        if ew.len() != dw.len() || ew.len() < 2 || ew.last() != dw.last() {
            candle_core::bail!("U-BARN config: encoder {ew:?} and decoder {dw:?} widths need the same length (>= 2) and the same last width");
        }
        let unet = ctx.pp("unet");
        let mode = PaddingMode::Reflect;
        let encoder = encoder_blocks(&unet, cfg.input_dim, ew, Norm::Group, (4, 2, 1), mode)?;
        let mut decoder = Vec::new();
        for (j, i) in (1..ew.len()).rev().enumerate() {
            decoder.push(up_block(
                &unet.pp("up_blocks").pp(j),
                dw[i],
                dw[i - 1],
                ew[i - 1],
                (4, 2, 1),
                mode,
            )?);
        }
        let proj = Conv2d::new(
            ctx.vb.pp("proj"),
            dw[0],
            cfg.d_model,
            1,
            1,
            0,
            PaddingMode::Zeros,
        )?;
        let layers = (0..cfg.layers)
            .map(|i| {
                EncoderLayer::new(
                    ctx.vb.pp("transformer").pp("layers").pp(i),
                    cfg.d_model,
                    cfg.heads,
                    cfg.d_ff,
                    cfg.dropout,
                )
            })
            .collect::<Result<_>>()?;
        let norm = LayerNorm::new(ctx.vb.pp("norm"), cfg.d_model, 1e-5)?;
        let pool =
            TemporalAttentionPooling::new(ctx.vb.pp("pool"), cfg.d_model, cfg.pool_heads, 8)?;
        Ok(Self {
            cfg,
            encoder,
            decoder,
            proj,
            layers,
            norm,
            pool,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UbarnConfig {
        &self.cfg
    }

    /// Encodes `x` `(B, T, C, H, W)` with day-of-year positions `(B, T)` and pad mask
    /// `(B, T)` (`u8`, 1 = padded; padded dates skip the U-Net and are hidden from
    /// attention and pooling).
    pub fn forward(
        &self,
        x: &Tensor,
        doy: &Tensor,
        pad: &Tensor,
        train: bool,
    ) -> Result<UbarnOutput> {
        let (b, t, c, h, w) = x.dims5()?;
        if c != self.cfg.input_dim {
            candle_core::bail!(
                "U-BARN expects {} bands, got input {:?}",
                self.cfg.input_dim,
                x.dims()
            );
        }
        let f = 1 << (self.cfg.encoder_widths.len() - 1);
        if !h.is_multiple_of(f) || !w.is_multiple_of(f) {
            candle_core::bail!("U-BARN needs H and W divisible by {f}, got {h} x {w}");
        }
        let frame_pad: Vec<bool> = pad
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?
            .into_iter()
            .map(|v| v == 1)
            .collect();
        if frame_pad.len() != b * t {
            candle_core::bail!(
                "U-BARN pad mask must be (B, T) = ({b}, {t}), got {:?}",
                pad.dims()
            );
        }
        let mut feats = Vec::new();
        let mut cur = x.clone();
        for block in &self.encoder {
            cur = block.shared_forward(&cur, &frame_pad, 0.0, train)?;
            feats.push(cur.clone());
        }
        // Decoder per date (B·T frames) with the encoder maps of the same date as skips.
        let flat = |m: &Tensor| -> Result<Tensor> {
            let (b, t, c, h, w) = m.dims5()?;
            m.reshape((b * t, c, h, w))
        };
        let mut out = flat(&cur)?;
        for (i, up) in self.decoder.iter().enumerate() {
            out = up.forward(&out, &flat(&feats[feats.len() - 2 - i])?, train)?;
        }
        let d = self.cfg.d_model;
        let out = self.proj.forward(&out)?; // (B·T, d, H, W)
        let seq = out
            .reshape((b, t, d, h, w))?
            .permute((0, 3, 4, 1, 2))?
            .reshape((b * h * w, t, d))?;
        let pe = sinusoid(doy, d, self.cfg.period)?.to_dtype(seq.dtype())?; // (B, T, d)
        let pe = pe
            .unsqueeze(1)?
            .broadcast_as((b, h * w, t, d))?
            .reshape((b * h * w, t, d))?;
        // Without any padded date the mask would hide nothing; skipping it saves
        // a (B·H·W, heads, T, T) select per layer, a third of the backward pass.
        let key_pad = if frame_pad.iter().any(|&p| p) {
            Some(
                pad.to_dtype(DType::U8)?
                    .unsqueeze(1)?
                    .broadcast_as((b, h * w, t))?
                    .reshape((b * h * w, t))?,
            )
        } else {
            None
        };
        let mut z = (seq + pe)?;
        for layer in &self.layers {
            z = layer.forward(&z, key_pad.as_ref(), train)?;
        }
        let z = self.norm.forward(&z)?;
        let (pooled, _) = self.pool.forward(&z, key_pad.as_ref())?;
        let pooled = pooled
            .reshape((b, h, w, d))?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        let per_date = z
            .reshape((b, h, w, t, d))?
            .permute((0, 3, 4, 1, 2))?
            .contiguous()?;
        Ok(UbarnOutput { per_date, pooled })
    }
}

impl Encoder for Ubarn {
    /// Pooled maps `(B, d, H, W)` of a cube batch, day of year as positions.
    fn encode(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        Ok(self
            .forward(batch.values(), &batch.doy()?, batch.pad_mask(), train)?
            .pooled)
    }

    fn output_dim(&self) -> usize {
        self.cfg.d_model
    }
}
