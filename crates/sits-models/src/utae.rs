//! U-TAE (Garnot & Landrieu, ICCV 2021) as in `VSainteuf/utae-paps`
//! (`src/backbones/utae.py`): a U-Net whose encoder runs on every date with shared
//! weights, an L-TAE2d on the lowest resolution, and skip connections collapsed in
//! time with the L-TAE attention.
//!
//! Faithful to the reference, including its quirks: reflect padding in every 3×3
//! and strided convolution, GroupNorm(4) in the encoder and BatchNorm in the
//! decoder, padded dates (all values equal to `pad_value`) skipped by the encoder
//! and masked with -1000 in the attention, attention resized bilinearly
//! (`align_corners = False`) for the skips, and BatchNorm + ReLU after the last
//! convolution, so the "logits" are non-negative. Parameter names are the PyTorch
//! `state_dict` names.

use candle_core::{DType, Module, ModuleT, Result, Tensor};
use sits_core::resize::resize_bilinear;
use sits_core::{Encoder, SitsBatch};

use crate::ltae::{Ltae2d, LtaeConfig, LtaeOutput};
use crate::nn::{BatchNorm, Conv2d, Ctx, GroupNorm, PaddingMode};

/// How the skip connections are collapsed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AggregationMode {
    /// Attention-weighted sum per channel group, one group per head (default).
    AttGroup,
    /// Attention averaged over heads, then a weighted sum.
    AttMean,
    /// Plain mean over the non-padded dates.
    Mean,
}

/// Which normalisation a convolution block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Norm {
    /// GroupNorm with 4 groups.
    Group,
    /// BatchNorm.
    Batch,
}

/// U-TAE hyper-parameters; [`UtaeConfig::pastis`] gives the reference defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UtaeConfig {
    /// Input bands.
    pub input_dim: usize,
    /// Encoder widths, top to bottom.
    pub encoder_widths: Vec<usize>,
    /// Decoder widths, top to bottom (last = last encoder width).
    pub decoder_widths: Vec<usize>,
    /// Output convolutions (the last is the number of classes).
    pub out_conv: Vec<usize>,
    /// Kernel, stride and padding of the strided convolutions.
    pub str_conv: (usize, usize, usize),
    /// Skip aggregation.
    pub agg_mode: AggregationMode,
    /// Encoder normalisation.
    pub encoder_norm: Norm,
    /// L-TAE heads.
    pub n_head: usize,
    /// L-TAE `d_model`.
    pub d_model: usize,
    /// L-TAE key size.
    pub d_k: usize,
    /// Value marking a padded date.
    pub pad_value: f32,
    /// Padding of the 3×3 and strided convolutions.
    pub reflect_padding: bool,
}

impl UtaeConfig {
    /// The defaults of `UTAE.__init__` and `train_semantic.py`: 10 bands, encoder
    /// `[64, 64, 64, 128]`, decoder `[32, 32, 64, 128]`, output `[32, 20]`, strided
    /// convolutions 4/2/1, `att_group`, GroupNorm, 16 heads, `d_model` 256, `d_k` 4,
    /// pad value 0, reflect padding: 1,087,260 parameters.
    pub fn pastis() -> Self {
        Self {
            input_dim: 10,
            encoder_widths: vec![64, 64, 64, 128],
            decoder_widths: vec![32, 32, 64, 128],
            out_conv: vec![32, 20],
            str_conv: (4, 2, 1),
            agg_mode: AggregationMode::AttGroup,
            encoder_norm: Norm::Group,
            n_head: 16,
            d_model: 256,
            d_k: 4,
            pad_value: 0.0,
            reflect_padding: true,
        }
    }
}

enum NormLayer {
    Group(GroupNorm),
    Batch(BatchNorm),
}

/// `ConvLayer`: convolutions each followed by a norm and a ReLU (module indices
/// 0, 1, (2), 3, 4, (5), ... as in the reference `nn.Sequential`).
pub(crate) struct ConvLayer {
    layers: Vec<(Conv2d, NormLayer)>,
}

impl ConvLayer {
    fn new(
        ctx: &Ctx,
        widths: &[usize],
        norm: Norm,
        k: usize,
        s: usize,
        p: usize,
        mode: PaddingMode,
    ) -> Result<Self> {
        let mut layers = Vec::new();
        for i in 0..widths.len() - 1 {
            let conv = Conv2d::new(ctx.vb.pp(3 * i), widths[i], widths[i + 1], k, s, p, mode)?;
            let nl = match norm {
                Norm::Group => {
                    NormLayer::Group(GroupNorm::new(ctx.vb.pp(3 * i + 1), 4, widths[i + 1])?)
                }
                Norm::Batch => NormLayer::Batch(BatchNorm::new(&ctx.pp(3 * i + 1), widths[i + 1])?),
            };
            layers.push((conv, nl));
        }
        Ok(Self { layers })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut out = x.clone();
        for (conv, nl) in &self.layers {
            out = conv.forward(&out)?;
            out = match nl {
                NormLayer::Group(g) => g.forward(&out)?,
                NormLayer::Batch(b) => b.forward_t(&out, train)?,
            };
            out = out.relu()?;
        }
        Ok(out)
    }
}

pub(crate) enum EncoderBlock {
    In(ConvLayer),
    Down {
        down: ConvLayer,
        conv1: ConvLayer,
        conv2: ConvLayer,
    },
}

impl EncoderBlock {
    pub(crate) fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            EncoderBlock::In(c) => c.forward(x, train),
            EncoderBlock::Down { down, conv1, conv2 } => {
                let out = conv1.forward(&down.forward(x, train)?, train)?;
                out.clone() + conv2.forward(&out, train)?
            }
        }
    }

    /// The reference's `smart_forward`: frames `(B·T)` that are padding skip the
    /// block and come out as `pad_value`.
    pub(crate) fn shared_forward(
        &self,
        x: &Tensor,
        frame_pad: &[bool],
        pad_value: f32,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t, c, h, w) = x.dims5()?;
        let flat = x.reshape((b * t, c, h, w))?;
        if !frame_pad.iter().any(|&p| p) {
            let out = self.forward(&flat, train)?;
            let (_, c2, h2, w2) = out.dims4()?;
            return out.reshape((b, t, c2, h2, w2));
        }
        let keep: Vec<u32> = (0..b * t)
            .filter(|&i| !frame_pad[i])
            .map(|i| i as u32)
            .collect();
        if keep.is_empty() {
            candle_core::bail!("U-TAE: every date of the batch is padding");
        }
        let idx = Tensor::from_vec(keep.clone(), keep.len(), x.device())?;
        let out = self.forward(&flat.index_select(&idx, 0)?, train)?;
        let (_, c2, h2, w2) = out.dims4()?;
        let base = Tensor::zeros((b * t, c2, h2, w2), out.dtype(), out.device())?;
        let mut full = base.index_add(&idx, &out, 0)?;
        if pad_value != 0.0 {
            let pad: Vec<f32> = frame_pad
                .iter()
                .map(|&p| if p { pad_value } else { 0.0 })
                .collect();
            let pad =
                Tensor::from_vec(pad, (b * t, 1, 1, 1), x.device())?.to_dtype(full.dtype())?;
            full = full.broadcast_add(&pad)?;
        }
        full.reshape((b, t, c2, h2, w2))
    }
}

pub(crate) struct UpBlock {
    skip_conv: (Conv2d, BatchNorm),
    up: (candle_nn::ConvTranspose2d, BatchNorm),
    conv1: ConvLayer,
    conv2: ConvLayer,
}

impl UpBlock {
    pub(crate) fn forward(&self, x: &Tensor, skip: &Tensor, train: bool) -> Result<Tensor> {
        let up = self.up.1.forward_t(&self.up.0.forward(x)?, train)?.relu()?;
        let sk = self
            .skip_conv
            .1
            .forward_t(&self.skip_conv.0.forward(skip)?, train)?
            .relu()?;
        let out = self.conv1.forward(&Tensor::cat(&[&up, &sk], 1)?, train)?;
        out.clone() + self.conv2.forward(&out, train)?
    }
}

/// The per-date encoder of U-TAE (`in_conv`, `down_blocks.{i}`) under `ctx`.
pub(crate) fn encoder_blocks(
    ctx: &Ctx,
    input_dim: usize,
    ew: &[usize],
    norm: Norm,
    (k, s, p): (usize, usize, usize),
    mode: PaddingMode,
) -> Result<Vec<EncoderBlock>> {
    let mut encoder = vec![EncoderBlock::In(ConvLayer::new(
        &ctx.pp("in_conv").pp("conv").pp("conv"),
        &[input_dim, ew[0], ew[0]],
        norm,
        3,
        1,
        1,
        mode,
    )?)];
    for i in 0..ew.len() - 1 {
        let c = ctx.pp("down_blocks").pp(i);
        encoder.push(EncoderBlock::Down {
            down: ConvLayer::new(
                &c.pp("down").pp("conv"),
                &[ew[i], ew[i]],
                norm,
                k,
                s,
                p,
                mode,
            )?,
            conv1: ConvLayer::new(
                &c.pp("conv1").pp("conv"),
                &[ew[i], ew[i + 1]],
                norm,
                3,
                1,
                1,
                mode,
            )?,
            conv2: ConvLayer::new(
                &c.pp("conv2").pp("conv"),
                &[ew[i + 1], ew[i + 1]],
                norm,
                3,
                1,
                1,
                mode,
            )?,
        });
    }
    Ok(encoder)
}

/// One decoder block of U-TAE under `ctx` (`skip_conv`, `up`, `conv1`, `conv2`).
pub(crate) fn up_block(
    ctx: &Ctx,
    d_in: usize,
    d_out: usize,
    d_skip: usize,
    (k, s, p): (usize, usize, usize),
    mode: PaddingMode,
) -> Result<UpBlock> {
    let tcfg = candle_nn::ConvTranspose2dConfig {
        padding: p,
        stride: s,
        ..Default::default()
    };
    Ok(UpBlock {
        skip_conv: (
            Conv2d::new(
                ctx.vb.pp("skip_conv").pp(0),
                d_skip,
                d_skip,
                1,
                1,
                0,
                PaddingMode::Zeros,
            )?,
            BatchNorm::new(&ctx.pp("skip_conv").pp(1), d_skip)?,
        ),
        up: (
            candle_nn::conv_transpose2d(d_in, d_out, k, tcfg, ctx.vb.pp("up").pp(0))?,
            BatchNorm::new(&ctx.pp("up").pp(1), d_out)?,
        ),
        conv1: ConvLayer::new(
            &ctx.pp("conv1").pp("conv"),
            &[d_out + d_skip, d_out],
            Norm::Batch,
            3,
            1,
            1,
            mode,
        )?,
        conv2: ConvLayer::new(
            &ctx.pp("conv2").pp("conv"),
            &[d_out, d_out],
            Norm::Batch,
            3,
            1,
            1,
            mode,
        )?,
    })
}

/// The U-TAE network.
pub struct Utae {
    cfg: UtaeConfig,
    encoder: Vec<EncoderBlock>,
    temporal_encoder: Ltae2d,
    up_blocks: Vec<UpBlock>,
    out_conv: ConvLayer,
}

impl std::fmt::Debug for Utae {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Utae").field("cfg", &self.cfg).finish()
    }
}

/// Everything [`Utae::forward_full`] computes.
#[derive(Debug, Clone)]
pub struct UtaeOutput {
    /// Output of `out_conv` `(B, classes, H, W)` (after its BatchNorm + ReLU).
    pub logits: Tensor,
    /// Decoder features before `out_conv` `(B, decoder_widths[0], H, W)`.
    pub features: Tensor,
    /// L-TAE attention `(n_head, B, T, H/2^k, W/2^k)`.
    pub attention: Tensor,
    /// L-TAE output then each decoder level, coarse to fine (the reference's `maps`).
    pub maps: Vec<Tensor>,
}

impl Utae {
    /// Builds the network under `ctx` (PyTorch parameter names).
    pub fn new(ctx: &Ctx, cfg: UtaeConfig) -> Result<Self> {
        let ew = &cfg.encoder_widths;
        let dw = &cfg.decoder_widths;
        if ew.len() != dw.len() || ew.len() < 2 || ew.last() != dw.last() {
            candle_core::bail!("U-TAE config: encoder {ew:?} and decoder {dw:?} widths need the same length (>= 2) and the same last width");
        }
        let mode = if cfg.reflect_padding {
            PaddingMode::Reflect
        } else {
            PaddingMode::Zeros
        };
        let encoder = encoder_blocks(ctx, cfg.input_dim, ew, cfg.encoder_norm, cfg.str_conv, mode)?;
        let temporal_encoder = Ltae2d::new(
            &ctx.pp("temporal_encoder"),
            LtaeConfig {
                in_channels: *ew.last().unwrap_or(&128),
                n_head: cfg.n_head,
                d_k: cfg.d_k,
                mlp: vec![cfg.d_model, *ew.last().unwrap_or(&128)],
                d_model: cfg.d_model,
                ..LtaeConfig::default()
            },
        )?;
        let mut up_blocks = Vec::new();
        for (j, i) in (1..ew.len()).rev().enumerate() {
            up_blocks.push(up_block(
                &ctx.pp("up_blocks").pp(j),
                dw[i],
                dw[i - 1],
                ew[i - 1],
                cfg.str_conv,
                mode,
            )?);
        }
        let mut oc = vec![dw[0]];
        oc.extend_from_slice(&cfg.out_conv);
        let out_conv = ConvLayer::new(
            &ctx.pp("out_conv").pp("conv").pp("conv"),
            &oc,
            Norm::Batch,
            3,
            1,
            1,
            mode,
        )?;
        Ok(Self {
            cfg,
            encoder,
            temporal_encoder,
            up_blocks,
            out_conv,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UtaeConfig {
        &self.cfg
    }

    /// Pad mask `(B, T)` as the reference computes it: a date is padding when every
    /// value of it equals `pad_value`.
    pub fn pad_mask_of(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _, _, _) = x.dims5()?;
        let flat = x.reshape((b, t, ()))?;
        let is_pad = flat
            .eq(self.cfg.pad_value as f64)?
            .to_dtype(DType::F32)?
            .min(2)?;
        is_pad.to_dtype(DType::U8)
    }

    /// Logits `(B, classes, H, W)` and attention for input `(B, T, C, H, W)` and
    /// date positions `(B, T)` (integer days since the reference date as floats).
    pub fn forward(&self, x: &Tensor, positions: &Tensor, train: bool) -> Result<(Tensor, Tensor)> {
        let o = self.forward_full(x, positions, None, train)?;
        Ok((o.logits, o.attention))
    }

    /// The full forward pass. `pad_mask` `(B, T)` (`u8`, 1 = padded) is combined
    /// with the reference's own detection of all-`pad_value` dates.
    pub fn forward_full(
        &self,
        x: &Tensor,
        positions: &Tensor,
        pad_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<UtaeOutput> {
        let (_, _, c, h, w) = x.dims5()?;
        if c != self.cfg.input_dim {
            candle_core::bail!(
                "U-TAE expects {} bands, got input {:?} (B, T, C, H, W)",
                self.cfg.input_dim,
                x.dims()
            );
        }
        let levels = self.cfg.encoder_widths.len() - 1;
        let f = 1 << levels;
        if !h.is_multiple_of(f) || !w.is_multiple_of(f) {
            candle_core::bail!(
                "U-TAE with {levels} down-samplings needs H and W divisible by {f}, got {h} x {w}"
            );
        }
        let mut pm = self.pad_mask_of(x)?;
        if let Some(m) = pad_mask {
            pm = pm.maximum(&m.to_dtype(DType::U8)?)?;
        }
        let frame_pad: Vec<bool> = pm
            .flatten_all()?
            .to_vec1::<u8>()?
            .into_iter()
            .map(|v| v == 1)
            .collect();
        let any_pad = frame_pad.iter().any(|&p| p);
        let mut feats = Vec::with_capacity(self.encoder.len());
        let mut cur = x.clone();
        for block in &self.encoder {
            cur = block.shared_forward(&cur, &frame_pad, self.cfg.pad_value, train)?;
            feats.push(cur.clone());
        }
        let LtaeOutput { out, attention } =
            self.temporal_encoder
                .forward(&cur, positions, any_pad.then_some(&pm), train)?;
        let mut out = out;
        let mut maps = vec![out.clone()];
        let keep = (1.0 - pm.to_dtype(x.dtype())?)?; // (B, T)
        for (i, up) in self.up_blocks.iter().enumerate() {
            let skip_in = &feats[feats.len() - 2 - i];
            let skip = self.aggregate(skip_in, &attention, &keep, any_pad)?;
            out = up.forward(&out, &skip, train)?;
            maps.push(out.clone());
        }
        let logits = self.out_conv.forward(&out, train)?;
        Ok(UtaeOutput {
            logits,
            features: out,
            attention,
            maps,
        })
    }

    /// The reference's `Temporal_Aggregator`.
    fn aggregate(&self, x: &Tensor, attn: &Tensor, keep: &Tensor, any_pad: bool) -> Result<Tensor> {
        let (b, t, c, h, w) = x.dims5()?;
        match self.cfg.agg_mode {
            AggregationMode::AttGroup => {
                let (nh, _, _, ah, aw) = attn.dims5()?;
                let a = attn.reshape((nh * b, t, ah, aw))?;
                let a = if h > ah {
                    resize_bilinear(&a, h, w)?
                } else if ah / h > 1 {
                    a.avg_pool2d(ah / h)?
                } else {
                    a
                };
                let mut a = a.reshape((nh, b, t, h, w))?;
                if any_pad {
                    a = a.broadcast_mul(&keep.reshape((1, b, t, 1, 1))?)?;
                }
                let xg = x
                    .reshape((b, t, nh, c / nh, h, w))?
                    .permute((2, 0, 1, 3, 4, 5))?; // (nh, B, T, C/nh, H, W)
                let out = xg.broadcast_mul(&a.unsqueeze(3)?)?.sum(2)?; // (nh, B, C/nh, H, W)
                out.permute((1, 0, 2, 3, 4))?.reshape((b, c, h, w))
            }
            AggregationMode::AttMean => {
                let a = attn.mean(0)?; // (B, T, ah, aw)
                let mut a = resize_bilinear(&a, h, w)?;
                if any_pad {
                    a = a.broadcast_mul(&keep.reshape((b, t, 1, 1))?)?;
                }
                x.broadcast_mul(&a.unsqueeze(2)?)?.sum(1)
            }
            AggregationMode::Mean => {
                if any_pad {
                    let k = keep.reshape((b, t, 1, 1, 1))?;
                    let n = keep.sum(1)?.reshape((b, 1, 1, 1))?;
                    x.broadcast_mul(&k)?.sum(1)?.broadcast_div(&n)
                } else {
                    x.mean(1)
                }
            }
        }
    }
}

impl Encoder for Utae {
    /// Decoder features `(B, decoder_widths[0], H, W)` of a cube batch
    /// `(B, T, C, H, W)`, with the batch's days (since its reference date) as
    /// positions and its pad mask. Use `SitsBatch::days_since` to rebase the days
    /// onto the reference date the model was trained with (PASTIS: 2018-09-01).
    fn encode(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        let o = self.forward_full(batch.values(), batch.days(), Some(batch.pad_mask()), train)?;
        Ok(o.features)
    }

    fn output_dim(&self) -> usize {
        self.cfg.decoder_widths[0]
    }
}
