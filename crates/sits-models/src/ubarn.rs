//! U-BARN (Dumeur et al., JSTARS 2024): a spatial U-Net applied to every date with
//! shared weights, then a transformer along time for every pixel, giving per-date
//! representations `(B, T, d, H, W)`; a temporal attention pooling gives
//! `(B, d, H, W)` for downstream heads.
//!
//! **The preset follows the published model** (Dumeur et al., IEEE JSTARS 2024,
//! doi 10.1109/JSTARS.2024.3358066) as its follow-up's public configuration gives it
//! (`Evoland-Land-Monitoring-Evolution/malice`, `config/module/alise_pretraining.yaml`):
//! - a per-date U-Net with encoder widths [64, 64, 64, 128] and decoder widths
//!   [32, 32, 64, 128], strided convolutions of kernel 4, stride 2, padding 1,
//!   GroupNorm (4 groups) in the encoder, BatchNorm in the decoder and its skip
//!   convolutions, reflect padding;
//! - padded dates skipped before the U-Net and zero-filled after it;
//! - a day-of-year sinusoid with period 1000 added to the U-Net output;
//! - a per-pixel transformer of 3 post-norm layers (PyTorch's default
//!   `nn.TransformerEncoderLayer`: ReLU feed-forward, no final LayerNorm), `d_model`
//!   64, 4 heads, feed-forward 128, dropout 0.1;
//! - per-date output `(B, T, 64, H, W)`.
//!
//! What the public files do not show, and is our choice: the U-Net's blocks are
//! U-TAE's (the configuration keys are U-TAE's: `encoder_norm`, `decoding_norm`,
//! `skip_conv_norm`, `str_conv_k/s/p`); its 32-channel top becomes the 64-channel
//! input of the transformer through a 1x1 convolution (`proj`); PyTorch's layer also
//! drops attention weights during training, ours drops only the attention output
//! and the feed-forward. The temporal attention pooling to `(B, d, H, W)` is ours,
//! for downstream heads. [`LayerStyle::PreNormGelu`] gives the earlier pre-norm
//! variant with a final LayerNorm. Every size is a field of the config.

use candle_core::{DType, Module, Result, Tensor};
use sits_core::{Encoder, SitsBatch};

use crate::heads::TemporalAttentionPooling;
use crate::nn::{Conv2d, Ctx, LayerNorm, PaddingMode};
use crate::transformer::{sinusoid, EncoderLayer, LayerStyle};
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
    /// Wiring of the transformer layers. Post-norm ReLU layers (the published
    /// model) end in a LayerNorm already; pre-norm GELU layers get a final `norm`.
    /// Configurations saved before this field existed were pre-norm, hence the
    /// default.
    #[serde(default = "pre_norm")]
    pub layer_style: LayerStyle,
}

fn pre_norm() -> LayerStyle {
    LayerStyle::PreNormGelu
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
            layer_style: LayerStyle::PostNormRelu,
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
    norm: Option<LayerNorm>,
    pool: TemporalAttentionPooling,
}

impl std::fmt::Debug for Ubarn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ubarn").field("cfg", &self.cfg).finish()
    }
}

impl Ubarn {
    /// Builds the model (`unet.in_conv`, `unet.down_blocks`, `unet.up_blocks`,
    /// `proj`, `transformer.layers.{i}`, `norm` for pre-norm layers only, `pool`).
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
                EncoderLayer::with_style(
                    ctx.vb.pp("transformer").pp("layers").pp(i),
                    cfg.d_model,
                    cfg.heads,
                    cfg.d_ff,
                    cfg.dropout,
                    cfg.layer_style,
                )
            })
            .collect::<Result<_>>()?;
        let norm = match cfg.layer_style {
            LayerStyle::PreNormGelu => Some(LayerNorm::new(ctx.vb.pp("norm"), cfg.d_model, 1e-5)?),
            LayerStyle::PostNormRelu => None,
        };
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
    ///
    /// Every intermediate activation stays alive until the outputs are dropped (they
    /// are what a backward pass needs): about 12 GB for a 104 x 104 image of 48 dates
    /// at the `segmentation` example's sizes. To encode large images without
    /// gradients use [`Ubarn::infer`].
    pub fn forward(
        &self,
        x: &Tensor,
        doy: &Tensor,
        pad: &Tensor,
        train: bool,
    ) -> Result<UbarnOutput> {
        let (b, t, _, h, w) = x.dims5()?;
        let frame_pad = self.check_input(x, pad)?;
        let maps = self.spatial(x, &frame_pad, train)?; // (B·T, d, H, W)
        let seq = self.pixel_sequences(&maps, b, t)?;
        let (pe, key_pad) = self.positions_and_mask(doy, pad, &frame_pad, b, h * w)?;
        let (z, pooled) = self.temporal(&seq, &pe, key_pad.as_ref(), train)?;
        self.assemble(&z, &pooled, b, h, w)
    }

    /// Evaluation-mode encoding of large images with bounded memory and no autograd
    /// graph: the U-Net runs on `dates_per_chunk` dates at a time (its dates are
    /// independent) and the temporal transformer on `pixels_per_chunk` pixels at a
    /// time (its pixels are independent), each chunk's result detached before the
    /// next starts, so peak memory follows the chunk sizes, not the image size.
    ///
    /// The outputs equal those of [`Ubarn::forward`] with `train = false` up to
    /// floating-point summation order (tested to 1e-5), except on padded dates,
    /// whose per-date vectors are meaningless in both. The returned tensors carry
    /// no gradient.
    pub fn infer(
        &self,
        x: &Tensor,
        doy: &Tensor,
        pad: &Tensor,
        dates_per_chunk: usize,
        pixels_per_chunk: usize,
    ) -> Result<UbarnOutput> {
        if dates_per_chunk == 0 || pixels_per_chunk == 0 {
            candle_core::bail!("U-BARN infer: chunk sizes must be at least 1");
        }
        let (b, t, _, h, w) = x.dims5()?;
        let frame_pad = self.check_input(x, pad)?;
        let d = self.cfg.d_model;
        let mut per_chunk = Vec::new();
        for t0 in (0..t).step_by(dates_per_chunk) {
            let tc = dates_per_chunk.min(t - t0);
            let fp: Vec<bool> = (0..b)
                .flat_map(|i| frame_pad[i * t + t0..i * t + t0 + tc].iter().copied())
                .collect();
            let maps = if fp.iter().all(|&p| p) {
                // Only padded dates: hidden from attention and pooling anyway.
                Tensor::zeros((b, tc, d, h, w), x.dtype(), x.device())?
            } else {
                let xc = x.narrow(1, t0, tc)?.contiguous()?.detach();
                self.spatial(&xc, &fp, false)?
                    .reshape((b, tc, d, h, w))?
                    .detach()
            };
            per_chunk.push(maps);
        }
        let maps = Tensor::cat(&per_chunk, 1)?.reshape((b * t, d, h, w))?;
        drop(per_chunk);
        let seq = self.pixel_sequences(&maps, b, t)?.contiguous()?;
        drop(maps);
        let (pe, key_pad) = self.positions_and_mask(doy, pad, &frame_pad, b, h * w)?;
        let pe = pe.contiguous()?;
        let n = b * h * w;
        let (mut zs, mut pools) = (Vec::new(), Vec::new());
        for p0 in (0..n).step_by(pixels_per_chunk) {
            let pc = pixels_per_chunk.min(n - p0);
            let kp = match &key_pad {
                Some(k) => Some(k.narrow(0, p0, pc)?),
                None => None,
            };
            let (z, pooled) = self.temporal(
                &seq.narrow(0, p0, pc)?,
                &pe.narrow(0, p0, pc)?,
                kp.as_ref(),
                false,
            )?;
            zs.push(z.detach());
            pools.push(pooled.detach());
        }
        let z = Tensor::cat(&zs, 0)?;
        let pooled = Tensor::cat(&pools, 0)?;
        drop((zs, pools));
        let out = self.assemble(&z, &pooled, b, h, w)?;
        Ok(UbarnOutput {
            per_date: out.per_date.detach(),
            pooled: out.pooled.detach(),
        })
    }

    /// Validates the input shapes; returns the pad flag of every `(b, t)` frame.
    fn check_input(&self, x: &Tensor, pad: &Tensor) -> Result<Vec<bool>> {
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
        Ok(frame_pad)
    }

    /// The U-Net and the projection on every observed frame: `(B·T, d, H, W)`, zeros
    /// on padded frames (they never enter the U-Net, so they cannot touch its
    /// BatchNorm statistics either).
    fn spatial(&self, x: &Tensor, frame_pad: &[bool], train: bool) -> Result<Tensor> {
        let (b, t, c, h, w) = x.dims5()?;
        let flat = x.reshape((b * t, c, h, w))?;
        if !frame_pad.iter().any(|&p| p) {
            return self.unet(&flat, train);
        }
        let keep: Vec<u32> = (0..b * t)
            .filter(|&i| !frame_pad[i])
            .map(|i| i as u32)
            .collect();
        if keep.is_empty() {
            candle_core::bail!("U-BARN: every date of the batch is padding");
        }
        let idx = Tensor::from_vec(keep.clone(), keep.len(), x.device())?;
        let out = self.unet(&flat.index_select(&idx, 0)?, train)?;
        let (_, d, h2, w2) = out.dims4()?;
        Tensor::zeros((b * t, d, h2, w2), out.dtype(), out.device())?.index_add(&idx, &out, 0)
    }

    /// The U-Net and the projection on frames `(F, C, H, W)`: `(F, d, H, W)`.
    fn unet(&self, frames: &Tensor, train: bool) -> Result<Tensor> {
        let mut feats = Vec::with_capacity(self.encoder.len());
        let mut cur = frames.clone();
        for block in &self.encoder {
            cur = block.forward(&cur, train)?;
            feats.push(cur.clone());
        }
        let mut out = cur;
        for (i, up) in self.decoder.iter().enumerate() {
            out = up.forward(&out, &feats[feats.len() - 2 - i], train)?;
        }
        self.proj.forward(&out)
    }

    /// `(B·T, d, H, W)` maps to one sequence per pixel, `(B·H·W, T, d)`.
    fn pixel_sequences(&self, maps: &Tensor, b: usize, t: usize) -> Result<Tensor> {
        let (_, d, h, w) = maps.dims4()?;
        maps.reshape((b, t, d, h, w))?
            .permute((0, 3, 4, 1, 2))?
            .reshape((b * h * w, t, d))
    }

    /// Day-of-year encodings `(B·P, T, d)` and the key mask `(B·P, T)` of `P`
    /// pixels per image (no mask when no date is padded).
    fn positions_and_mask(
        &self,
        doy: &Tensor,
        pad: &Tensor,
        frame_pad: &[bool],
        b: usize,
        pixels: usize,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let d = self.cfg.d_model;
        let t = frame_pad.len() / b;
        let pe = sinusoid(doy, d, self.cfg.period)?; // (B, T, d)
        let pe = pe
            .unsqueeze(1)?
            .broadcast_as((b, pixels, t, d))?
            .reshape((b * pixels, t, d))?;
        // Without any padded date the mask would hide nothing; skipping it saves
        // a (B·H·W, heads, T, T) select per layer, a third of the backward pass.
        let key_pad = if frame_pad.iter().any(|&p| p) {
            Some(
                pad.to_dtype(DType::U8)?
                    .unsqueeze(1)?
                    .broadcast_as((b, pixels, t))?
                    .reshape((b * pixels, t))?,
            )
        } else {
            None
        };
        Ok((pe, key_pad))
    }

    /// The transformer, final norm and pooling on pixel sequences `(N, T, d)`:
    /// per-date outputs `(N, T, d)` and pooled `(N, d)`.
    fn temporal(
        &self,
        seq: &Tensor,
        pe: &Tensor,
        key_pad: Option<&Tensor>,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let mut z = (seq + pe.to_dtype(seq.dtype())?)?;
        for layer in &self.layers {
            z = layer.forward(&z, key_pad, train)?;
        }
        let z = match &self.norm {
            Some(n) => n.forward(&z)?,
            None => z,
        };
        let (pooled, _) = self.pool.forward(&z, key_pad)?;
        Ok((z, pooled))
    }

    /// Pixel-major results back to maps.
    fn assemble(
        &self,
        z: &Tensor,
        pooled: &Tensor,
        b: usize,
        h: usize,
        w: usize,
    ) -> Result<UbarnOutput> {
        let pooled = crate::nn::pixels_to_maps(pooled, b, h, w)?;
        let per_date = crate::nn::pixels_to_maps(z, b, h, w)?;
        Ok(UbarnOutput { per_date, pooled })
    }
}

impl Encoder for Ubarn {
    /// Pooled maps `(B, d, H, W)` of a cube batch, day of year as positions; dates
    /// without any valid pixel in a sample count as padding
    /// ([`SitsBatch::with_empty_dates_as_padding`]).
    fn encode(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        let batch = batch.clone().with_empty_dates_as_padding()?;
        Ok(self
            .forward(batch.values(), &batch.doy()?, batch.pad_mask(), train)?
            .pooled)
    }

    fn output_dim(&self) -> usize {
        self.cfg.d_model
    }
}
