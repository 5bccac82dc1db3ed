//! Transformers over date sequences: the pixel-series encoder (SITS-BERT/Presto
//! style) and the encoder layer it is made of (pre-norm GELU there; post-norm ReLU,
//! PyTorch's default, in U-BARN).
//!
//! Layer parameters carry the names of PyTorch's `nn.TransformerEncoderLayer`
//! (`self_attn.in_proj_weight`, `self_attn.out_proj`, `linear1`, `linear2`,
//! `norm1`, `norm2`), so weights of a PyTorch `nn.TransformerEncoder` with
//! `norm_first=True` and GELU load directly. Checked against such a model
//! (`tests/fixtures/make_fixtures.py`).

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use sits_core::{Encoder, SitsBatch};

use crate::nn::{Ctx, LayerNorm, Linear};

/// Multi-head self-attention with PyTorch's packed `in_proj` parameters.
#[derive(Debug, Clone)]
pub struct SelfAttention {
    in_proj_w: Tensor,
    in_proj_b: Tensor,
    out_proj: Linear,
    heads: usize,
}

impl SelfAttention {
    /// `dim` channels split over `heads`.
    pub fn new(vb: VarBuilder, dim: usize, heads: usize) -> Result<Self> {
        if heads == 0 || !dim.is_multiple_of(heads) {
            candle_core::bail!("attention: dim {dim} is not a multiple of {heads} heads");
        }
        let bound = (6.0 / (dim as f64 * 4.0)).sqrt();
        Ok(Self {
            in_proj_w: vb.get_with_hints(
                (3 * dim, dim),
                "in_proj_weight",
                candle_nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?,
            in_proj_b: vb.get_with_hints(3 * dim, "in_proj_bias", candle_nn::Init::Const(0.0))?,
            out_proj: crate::nn::linear(dim, dim, vb.pp("out_proj"))?,
            heads,
        })
    }

    /// Attention over `x` `(B, N, D)`; `key_pad` `(B, N)` (`u8`, 1 = ignore this key).
    /// The attention itself is [`crate::ops::attention::self_attention`] (one op each
    /// way on the CPU).
    pub fn forward(&self, x: &Tensor, key_pad: Option<&Tensor>) -> Result<Tensor> {
        let qkv =
            Linear::from_parts(self.in_proj_w.clone(), Some(self.in_proj_b.clone())).forward(x)?;
        let out = crate::ops::attention::self_attention(&qkv, self.heads, key_pad)?;
        self.out_proj.forward(&out)
    }
}

/// How an [`EncoderLayer`] is wired: PyTorch's `norm_first` and `activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LayerStyle {
    /// `x + attn(norm1(x))`, then `x + ff(norm2(x))`, GELU feed-forward (SITS-BERT,
    /// the pixel transformer).
    PreNormGelu,
    /// `norm1(x + attn(x))`, then `norm2(x + ff(x))`, ReLU feed-forward: PyTorch's
    /// default `nn.TransformerEncoderLayer`, which U-BARN uses.
    PostNormRelu,
}

/// A transformer encoder layer with PyTorch's parameter names (`self_attn`,
/// `linear1`, `linear2`, `norm1`, `norm2`), pre-norm GELU or post-norm ReLU
/// ([`LayerStyle`]).
#[derive(Debug, Clone)]
pub struct EncoderLayer {
    self_attn: SelfAttention,
    linear1: Linear,
    linear2: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    dropout: f32,
    style: LayerStyle,
}

impl EncoderLayer {
    /// A pre-norm GELU layer of width `dim`, `heads` heads, feed-forward width `ff`.
    pub fn new(vb: VarBuilder, dim: usize, heads: usize, ff: usize, dropout: f32) -> Result<Self> {
        Self::with_style(vb, dim, heads, ff, dropout, LayerStyle::PreNormGelu)
    }

    /// A layer wired as `style` says.
    pub fn with_style(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        ff: usize,
        dropout: f32,
        style: LayerStyle,
    ) -> Result<Self> {
        Ok(Self {
            self_attn: SelfAttention::new(vb.pp("self_attn"), dim, heads)?,
            linear1: crate::nn::linear(dim, ff, vb.pp("linear1"))?,
            linear2: crate::nn::linear(ff, dim, vb.pp("linear2"))?,
            norm1: LayerNorm::new(vb.pp("norm1"), dim, 1e-5)?,
            norm2: LayerNorm::new(vb.pp("norm2"), dim, 1e-5)?,
            dropout,
            style,
        })
    }

    fn drop(&self, x: Tensor, train: bool) -> Result<Tensor> {
        if train && self.dropout > 0.0 {
            crate::nn::dropout(&x, self.dropout)
        } else {
            Ok(x)
        }
    }

    /// One layer over `x` `(B, N, D)`.
    pub fn forward(&self, x: &Tensor, key_pad: Option<&Tensor>, train: bool) -> Result<Tensor> {
        match self.style {
            LayerStyle::PreNormGelu => {
                let a = self.self_attn.forward(&self.norm1.forward(x)?, key_pad)?;
                let x = (x + self.drop(a, train)?)?;
                let f = self.linear2.forward(&self.drop(
                    crate::ops::activation::gelu(&self.linear1.forward(&self.norm2.forward(&x)?)?)?,
                    train,
                )?)?;
                x + self.drop(f, train)?
            }
            LayerStyle::PostNormRelu => {
                let a = self.self_attn.forward(x, key_pad)?;
                let x = self.norm1.forward(&(x + self.drop(a, train)?)?)?;
                let f = self
                    .linear2
                    .forward(&self.drop(self.linear1.forward(&x)?.relu()?, train)?)?;
                self.norm2.forward(&(x + self.drop(f, train)?)?)
            }
        }
    }
}

/// A timm-style pre-norm ViT block: `x + attn.proj(attention(attn.qkv(norm1(x))))`,
/// then `x + mlp.fc2(gelu(mlp.fc1(norm2(x))))`, with timm's parameter names
/// (`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`). Used by the
/// small ViT and by the published encoders ([`crate::presto`]).
#[derive(Debug, Clone)]
pub struct VitBlock {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl VitBlock {
    /// A block of width `d`, `heads` heads, MLP width `mlp`, layer norms with `eps`
    /// (timm's ViT uses 1e-6, `nn.LayerNorm`'s default is 1e-5).
    pub fn new(vb: VarBuilder, d: usize, heads: usize, mlp: usize, eps: f64) -> Result<Self> {
        if heads == 0 || !d.is_multiple_of(heads) {
            candle_core::bail!("ViT block: width {d} is not a multiple of {heads} heads");
        }
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), d, eps)?,
            qkv: crate::nn::linear(d, 3 * d, vb.pp("attn").pp("qkv"))?,
            proj: crate::nn::linear(d, d, vb.pp("attn").pp("proj"))?,
            norm2: LayerNorm::new(vb.pp("norm2"), d, eps)?,
            fc1: crate::nn::linear(d, mlp, vb.pp("mlp").pp("fc1"))?,
            fc2: crate::nn::linear(mlp, d, vb.pp("mlp").pp("fc2"))?,
            heads,
        })
    }

    /// The block over `x` `(B, N, D)`; `key_pad` `(B, N)` (non-zero = a token no
    /// query attends to, as if it were removed from the sequence).
    pub fn forward(&self, x: &Tensor, key_pad: Option<&Tensor>) -> Result<Tensor> {
        let qkv = self.qkv.forward(&self.norm1.forward(x)?)?;
        let a = crate::ops::attention::self_attention(&qkv, self.heads, key_pad)?;
        let x = (x + self.proj.forward(&a)?)?;
        let f = self.fc2.forward(&crate::ops::activation::gelu(
            &self.fc1.forward(&self.norm2.forward(&x)?)?,
        )?)?;
        x + f
    }
}

/// Sinusoidal encoding of day numbers: `sin(p / base^(2⌊i/2⌋/d))` on even and `cos`
/// on odd dimensions (SITS-BERT uses the day of year with base 10000).
pub fn sinusoid(positions: &Tensor, d: usize, base: f32) -> Result<Tensor> {
    let denom: Vec<f32> = (0..d)
        .map(|i| base.powf((2 * (i / 2)) as f32 / d as f32))
        .collect();
    let dev = positions.device();
    let denom = Tensor::from_vec(denom, (1, 1, d), dev)?;
    let ang = positions
        .to_dtype(DType::F32)?
        .unsqueeze(2)?
        .broadcast_div(&denom)?;
    let even: Vec<f32> = (0..d).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
    let even = Tensor::from_vec(even, (1, 1, d), dev)?;
    ang.sin()?.broadcast_mul(&even)? + ang.cos()?.broadcast_mul(&(1.0 - &even)?)?
}

/// Which date number feeds the position encoding of the pixel transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DateEncoding {
    /// Day of year (1..=366), seasonal and comparable across years.
    DayOfYear,
    /// Days since the batch's reference date, for series spanning years.
    DaysSinceReference,
}

/// Pixel transformer hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PixelTransformerConfig {
    /// Bands per date.
    pub in_bands: usize,
    /// Model width.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward width.
    pub d_ff: usize,
    /// Layers.
    pub layers: usize,
    /// Dropout in the layers.
    pub dropout: f32,
    /// Date numbers used by the position encoding.
    pub dates: DateEncoding,
    /// Base of the sinusoid.
    pub base: f32,
}

impl PixelTransformerConfig {
    /// SITS-BERT-sized defaults for `bands` bands: width 128, 4 heads, 256 feed-forward,
    /// 3 layers, dropout 0.1, day of year, base 10000.
    pub fn small(bands: usize) -> Self {
        Self {
            in_bands: bands,
            d_model: 128,
            heads: 4,
            d_ff: 256,
            layers: 3,
            dropout: 0.1,
            dates: DateEncoding::DayOfYear,
            base: 10000.0,
        }
    }
}

/// Per-date and pooled outputs of the pixel transformer.
#[derive(Debug, Clone)]
pub struct PixelTransformerOutput {
    /// `(B, T, d_model)`; values at padded dates are not meaningful.
    pub per_date: Tensor,
    /// Mean over the non-padded dates `(B, d_model)`.
    pub pooled: Tensor,
}

/// A transformer encoder for pixel time series `(B, T, C)`: per-date linear
/// embedding, a learnable mask token for masked-reconstruction pretext tasks, a
/// sinusoidal date encoding, pre-norm layers honouring the padding mask, a final
/// LayerNorm, per-date and pooled outputs.
#[derive(Debug, Clone)]
pub struct PixelTransformer {
    cfg: PixelTransformerConfig,
    embedding: Linear,
    mask_token: Tensor,
    layers: Vec<EncoderLayer>,
    norm: LayerNorm,
}

impl PixelTransformer {
    /// Builds the model (`embedding`, `mask_token`, `encoder.layers.{i}`, `norm`)
    /// under `ctx` (it has no running statistics: only `ctx.vb` is used).
    pub fn new(ctx: &Ctx, cfg: PixelTransformerConfig) -> Result<Self> {
        let vb = ctx.vb.clone();
        let embedding = crate::nn::linear(cfg.in_bands, cfg.d_model, vb.pp("embedding"))?;
        let mask_token = vb.get_with_hints(
            cfg.d_model,
            "mask_token",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let layers = (0..cfg.layers)
            .map(|i| {
                EncoderLayer::new(
                    vb.pp("encoder").pp("layers").pp(i),
                    cfg.d_model,
                    cfg.heads,
                    cfg.d_ff,
                    cfg.dropout,
                )
            })
            .collect::<Result<_>>()?;
        let norm = LayerNorm::new(vb.pp("norm"), cfg.d_model, 1e-5)?;
        Ok(Self {
            cfg,
            embedding,
            mask_token,
            layers,
            norm,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PixelTransformerConfig {
        &self.cfg
    }

    /// Encodes `x` `(B, T, C)` at date numbers `positions` `(B, T)`. `pad` `(B, T)`
    /// (`u8`, 1 = padded) hides dates from attention and pooling; `masked` `(B, T)`
    /// (`u8`, 1 = hidden) replaces the embedding of a date by the mask token before
    /// the position is added.
    pub fn forward(
        &self,
        x: &Tensor,
        positions: &Tensor,
        pad: Option<&Tensor>,
        masked: Option<&Tensor>,
        train: bool,
    ) -> Result<PixelTransformerOutput> {
        let (b, t, c) = x.dims3()?;
        if c != self.cfg.in_bands {
            candle_core::bail!(
                "pixel transformer expects {} bands, got input {:?} (B, T, C)",
                self.cfg.in_bands,
                x.dims()
            );
        }
        let d = self.cfg.d_model;
        let mut e = self.embedding.forward(x)?;
        if let Some(m) = masked {
            let m = m
                .to_dtype(DType::U8)?
                .reshape((b, t, 1))?
                .broadcast_as((b, t, d))?;
            let tok = self
                .mask_token
                .reshape((1, 1, d))?
                .broadcast_as((b, t, d))?;
            e = m.where_cond(&tok, &e)?;
        }
        let mut h = (e + sinusoid(positions, d, self.cfg.base)?.to_dtype(x.dtype())?)?;
        for layer in &self.layers {
            h = layer.forward(&h, pad, train)?;
        }
        let h = self.norm.forward(&h)?;
        let keep = match pad {
            Some(p) => (1.0 - p.to_dtype(h.dtype())?)?,
            None => Tensor::ones((b, t), h.dtype(), h.device())?,
        };
        let n = keep.sum_keepdim(1)?.clamp(1.0, f64::INFINITY)?;
        let pooled = h
            .broadcast_mul(&keep.unsqueeze(2)?)?
            .sum(1)?
            .broadcast_div(&n)?;
        Ok(PixelTransformerOutput {
            per_date: h,
            pooled,
        })
    }

    /// The date numbers of a batch for this model's [`DateEncoding`].
    pub fn positions(&self, batch: &SitsBatch) -> Result<Tensor> {
        match self.cfg.dates {
            DateEncoding::DayOfYear => batch.doy(),
            DateEncoding::DaysSinceReference => Ok(batch.days().clone()),
        }
    }

    /// Per-date outputs for a pixel batch, with optional masked dates.
    pub fn encode_dates(
        &self,
        batch: &SitsBatch,
        masked: Option<&Tensor>,
        train: bool,
    ) -> Result<PixelTransformerOutput> {
        self.forward(
            batch.values(),
            &self.positions(batch)?,
            Some(batch.pad_mask()),
            masked,
            train,
        )
    }
}

impl Encoder for PixelTransformer {
    /// Pooled representation `(B, d_model)` of a pixel batch `(B, T, C)`.
    fn encode(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        Ok(self.encode_dates(batch, None, train)?.pooled)
    }

    fn output_dim(&self) -> usize {
        self.cfg.d_model
    }
}

/// `x` `(B, N, D)` and `missing` `(B, N)` (non-zero = a token no query attends to)
/// without the tokens missing in every row: they take part in no attention, so the
/// other tokens' outputs are the same, for less work. Refuses a batch where every
/// token is missing.
pub fn drop_absent_tokens(x: &Tensor, missing: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, n) = missing.dims2()?;
    let keep: Vec<u32> = missing
        .ne(0.0)?
        .to_dtype(DType::F32)?
        .sum(0)?
        .to_vec1::<f32>()?
        .iter()
        .enumerate()
        .filter(|&(_, &m)| (m as usize) < b)
        .map(|(i, _)| i as u32)
        .collect();
    if keep.is_empty() {
        candle_core::bail!("every token of the batch is missing");
    }
    if keep.len() == n {
        return Ok((x.clone(), missing.clone()));
    }
    let keep = Tensor::new(keep.as_slice(), x.device())?;
    Ok((
        x.index_select(&keep, 1)?.contiguous()?,
        missing.index_select(&keep, 1)?.contiguous()?,
    ))
}

/// Mean over the last-but-one dimension ignoring `pad` (`u8` `(B, T)`, 1 = padded).
pub fn masked_mean(h: &Tensor, pad: &Tensor) -> Result<Tensor> {
    let keep = (1.0 - pad.to_dtype(h.dtype())?)?;
    let n = keep.sum_keepdim(1)?.clamp(1.0, f64::INFINITY)?;
    h.broadcast_mul(&keep.unsqueeze(D::Minus1)?)?
        .sum(1)?
        .broadcast_div(&n)
}
