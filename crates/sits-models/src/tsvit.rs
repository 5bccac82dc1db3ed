//! TSViT (Tarasiou et al., CVPR 2023) as the `TSViT` class of
//! `michaeltrs/DeepSatModels` (`models/TSViT/TSViTdense.py`): a temporal transformer
//! per spatial patch with one class token per class, then a spatial transformer per
//! class token, then a per-patch linear head to pixel logits.
//!
//! Parameter names are the reference `state_dict` names. Like the reference:
//! dates enter as a one-hot day of year (366 entries) through a linear layer;
//! the final reshape from patches to pixels is the reference's (a plain reshape of
//! `(patches, p², classes)` into `(H, W, classes)`), and padded dates are **not**
//! masked by default (the reference zero-pads and gives them day 0). The masked
//! variant ([`TsvitConfig::mask_padding`]) hides padded dates from the temporal
//! attention.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use sits_core::{Encoder, SitsBatch};

use crate::nn::{softmax_last, Ctx, LayerNorm, Linear};

/// TSViT hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TsvitConfig {
    /// Image side (square images).
    pub img_res: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Classes (also the number of temporal class tokens).
    pub num_classes: usize,
    /// Bands (the reference's `num_channels` minus its date channel).
    pub bands: usize,
    /// Width.
    pub dim: usize,
    /// Temporal layers.
    pub temporal_depth: usize,
    /// Spatial layers.
    pub spatial_depth: usize,
    /// Heads.
    pub heads: usize,
    /// Width per head.
    pub dim_head: usize,
    /// Feed-forward width = `dim · scale_dim`.
    pub scale_dim: usize,
    /// Hide padded dates from the temporal attention (not in the reference).
    pub mask_padding: bool,
}

impl TsvitConfig {
    /// `configs/PASTIS24/TSViT_fold1.yaml`: 24×24, patch 2, 19 classes, 10 bands,
    /// dim 128, 4 + 4 layers, 4 heads of 32, MLP ×4: 1,657,476 parameters.
    pub fn pastis24() -> Self {
        Self {
            img_res: 24,
            patch_size: 2,
            num_classes: 19,
            bands: 10,
            dim: 128,
            temporal_depth: 4,
            spatial_depth: 4,
            heads: 4,
            dim_head: 32,
            scale_dim: 4,
            mask_padding: false,
        }
    }

    /// TSViT-S (`TSViT-S_fold1.yaml`): dim 64, heads of 16: 435,524 parameters.
    pub fn pastis24_small() -> Self {
        Self {
            dim: 64,
            dim_head: 16,
            ..Self::pastis24()
        }
    }
}

/// The reference attention: `to_qkv` without bias, `to_out.0` with bias.
#[derive(Debug, Clone)]
struct Attention {
    to_qkv: Linear,
    to_out: Linear,
    heads: usize,
    dim_head: usize,
}

impl Attention {
    fn new(vb: VarBuilder, dim: usize, heads: usize, dim_head: usize) -> Result<Self> {
        let inner = heads * dim_head;
        Ok(Self {
            to_qkv: crate::nn::linear_no_bias(dim, 3 * inner, vb.pp("to_qkv"))?,
            to_out: crate::nn::linear(inner, dim, vb.pp("to_out").pp(0))?,
            heads,
            dim_head,
        })
    }

    fn forward(&self, x: &Tensor, key_pad: Option<&Tensor>) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let inner = self.heads * self.dim_head;
        let qkv = self.to_qkv.forward(x)?;
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(2, i * inner, inner)?
                .reshape((b, n, self.heads, self.dim_head))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let dots = (q.matmul(&k.t()?)? * (self.dim_head as f64).powf(-0.5))?;
        let dots = match key_pad {
            Some(m) => {
                let m = m
                    .to_dtype(DType::U8)?
                    .reshape((b, 1, 1, n))?
                    .broadcast_as(dots.shape())?;
                let neg = Tensor::full(f32::NEG_INFINITY, dots.shape(), x.device())?
                    .to_dtype(dots.dtype())?;
                m.where_cond(&neg, &dots)?
            }
            None => dots,
        };
        let out = softmax_last(&dots)?
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, n, inner))?;
        self.to_out.forward(&out)
    }
}

/// The reference `Transformer`: pre-norm attention and GELU feed-forward blocks and
/// a final LayerNorm.
#[derive(Debug, Clone)]
struct Transformer {
    layers: Vec<(LayerNorm, Attention, LayerNorm, Linear, Linear)>,
    norm: LayerNorm,
}

impl Transformer {
    fn new(
        vb: VarBuilder,
        dim: usize,
        depth: usize,
        heads: usize,
        dim_head: usize,
        mlp: usize,
    ) -> Result<Self> {
        let mut layers = Vec::new();
        for i in 0..depth {
            let l = vb.pp("layers").pp(i);
            layers.push((
                LayerNorm::new(l.pp(0).pp("norm"), dim, 1e-5)?,
                Attention::new(l.pp(0).pp("fn"), dim, heads, dim_head)?,
                LayerNorm::new(l.pp(1).pp("norm"), dim, 1e-5)?,
                crate::nn::linear(dim, mlp, l.pp(1).pp("fn").pp("net").pp(0))?,
                crate::nn::linear(mlp, dim, l.pp(1).pp("fn").pp("net").pp(3))?,
            ));
        }
        Ok(Self {
            layers,
            norm: LayerNorm::new(vb.pp("norm"), dim, 1e-5)?,
        })
    }

    fn forward(&self, x: &Tensor, key_pad: Option<&Tensor>) -> Result<Tensor> {
        let mut x = x.clone();
        for (n1, attn, n2, l1, l2) in &self.layers {
            x = (attn.forward(&n1.forward(&x)?, key_pad)? + &x)?;
            x = (l2.forward(&crate::ops::activation::gelu(
                &l1.forward(&n2.forward(&x)?)?,
            )?)? + &x)?;
        }
        self.norm.forward(&x)
    }
}

/// The TSViT network.
#[derive(Debug, Clone)]
pub struct Tsvit {
    cfg: TsvitConfig,
    patch_embedding: Linear,
    temporal_embedding: Linear,
    temporal_token: Tensor,
    temporal_transformer: Transformer,
    space_pos_embedding: Tensor,
    space_transformer: Transformer,
    head_norm: LayerNorm,
    head: Linear,
}

impl Tsvit {
    /// Builds the model under `ctx` with the reference's parameter names (it has no
    /// running statistics: only `ctx.vb` is used).
    pub fn new(ctx: &Ctx, cfg: TsvitConfig) -> Result<Self> {
        let vb = ctx.vb.clone();
        if cfg.patch_size == 0 || !cfg.img_res.is_multiple_of(cfg.patch_size) {
            candle_core::bail!(
                "TSViT: image size {} is not a multiple of the patch size {}",
                cfg.img_res,
                cfg.patch_size
            );
        }
        let p2 = cfg.patch_size * cfg.patch_size;
        let np = (cfg.img_res / cfg.patch_size).pow(2);
        let mlp = cfg.dim * cfg.scale_dim;
        let randn = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        Ok(Self {
            patch_embedding: crate::nn::linear(
                p2 * cfg.bands,
                cfg.dim,
                vb.pp("to_patch_embedding").pp(1),
            )?,
            temporal_embedding: crate::nn::linear(
                366,
                cfg.dim,
                vb.pp("to_temporal_embedding_input"),
            )?,
            temporal_token: vb.get_with_hints(
                (1, cfg.num_classes, cfg.dim),
                "temporal_token",
                randn,
            )?,
            temporal_transformer: Transformer::new(
                vb.pp("temporal_transformer"),
                cfg.dim,
                cfg.temporal_depth,
                cfg.heads,
                cfg.dim_head,
                mlp,
            )?,
            space_pos_embedding: vb.get_with_hints(
                (1, np, cfg.dim),
                "space_pos_embedding",
                randn,
            )?,
            space_transformer: Transformer::new(
                vb.pp("space_transformer"),
                cfg.dim,
                cfg.spatial_depth,
                cfg.heads,
                cfg.dim_head,
                mlp,
            )?,
            head_norm: LayerNorm::new(vb.pp("mlp_head").pp(0), cfg.dim, 1e-5)?,
            head: crate::nn::linear(cfg.dim, p2, vb.pp("mlp_head").pp(1))?,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TsvitConfig {
        &self.cfg
    }

    /// The reference's day index from its normalised date channel:
    /// `int64(doy_norm · 365.0001)` in float32 (it truncates).
    pub fn day_index_from_normalised(doy_norm: &Tensor) -> Result<Tensor> {
        (doy_norm.to_dtype(DType::F32)? * 365.0001)?
            .floor()?
            .to_dtype(DType::U32)
    }

    /// Class logits `(B, classes, H, W)` of `x` `(B, T, C, H, W)` with day indices
    /// `day` `(B, T)` in `0..366`. `pad` `(B, T)` (`u8`, 1 = padded) is used only
    /// when `mask_padding` is set.
    pub fn forward(&self, x: &Tensor, day: &Tensor, pad: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, c, h, w) = x.dims5()?;
        let cfg = &self.cfg;
        if c != cfg.bands || h != cfg.img_res || w != cfg.img_res {
            candle_core::bail!(
                "TSViT expects (B, T, {}, {}, {}), got {:?}",
                cfg.bands,
                cfg.img_res,
                cfg.img_res,
                x.dims()
            );
        }
        let p = cfg.patch_size;
        let (hp, wp) = (h / p, w / p);
        let np = hp * wp;
        let k = cfg.num_classes;
        let d = cfg.dim;
        // one-hot days -> learned embedding (B, T, dim)
        let day = day.to_dtype(DType::U32)?;
        let day_max = day.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if day_max > 365 {
            candle_core::bail!("TSViT day index {day_max} is outside 0..366");
        }
        let onehot = candle_nn::encoding::one_hot(day.flatten_all()?, 366, 1f32, 0f32)?
            .to_dtype(x.dtype())?;
        let tpos = self
            .temporal_embedding
            .forward(&onehot)?
            .reshape((b, t, d))?;
        // 'b t c (h p1) (w p2) -> (b h w) t (p1 p2 c)'
        let patches = x
            .reshape(vec![b, t, c, hp, p, wp, p])?
            .permute(vec![0, 3, 5, 1, 4, 6, 2])?
            .reshape((b * np, t, p * p * c))?;
        let e = self
            .patch_embedding
            .forward(&patches)?
            .reshape((b, np, t, d))?;
        let e = e
            .broadcast_add(&tpos.unsqueeze(1)?)?
            .reshape((b * np, t, d))?;
        let cls = self.temporal_token.broadcast_as((b * np, k, d))?;
        let seq = Tensor::cat(&[&cls, &e], 1)?;
        let key_pad = match (cfg.mask_padding, pad) {
            (true, Some(m)) => {
                let m = m
                    .to_dtype(DType::U8)?
                    .unsqueeze(1)?
                    .broadcast_as((b, np, t))?
                    .reshape((b * np, t))?;
                Some(Tensor::cat(
                    &[&Tensor::zeros((b * np, k), DType::U8, x.device())?, &m],
                    1,
                )?)
            }
            _ => None,
        };
        let out = self.temporal_transformer.forward(&seq, key_pad.as_ref())?;
        let out = out
            .narrow(1, 0, k)?
            .reshape((b, np, k, d))?
            .permute((0, 2, 1, 3))?
            .reshape((b * k, np, d))?;
        let out = out.broadcast_add(&self.space_pos_embedding)?;
        let out = self.space_transformer.forward(&out, None)?;
        let out = self
            .head
            .forward(&self.head_norm.forward(&out.reshape((b * k * np, d))?)?)?;
        let out = out
            .reshape((b, k, np, p * p))?
            .permute((0, 2, 3, 1))?
            .reshape((b, h, w, k))?;
        out.permute((0, 3, 1, 2))?.contiguous()
    }
}

impl Encoder for Tsvit {
    /// Class logits `(B, classes, H, W)` of a cube batch, with the day of year of
    /// each date as index (1..=366 from the batch; the reference uses 0..=365 from its
    /// normalised channel).
    fn encode(&self, batch: &SitsBatch, _train: bool) -> Result<Tensor> {
        self.forward(batch.values(), &batch.doy()?, Some(batch.pad_mask()))
    }

    fn output_dim(&self) -> usize {
        self.cfg.num_classes
    }
}
