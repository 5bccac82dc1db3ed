//! Task heads on top of any encoder: linear and MLP classifiers, a per-pixel
//! segmentation head, temporal attention pooling, and a forecasting head.

use candle_core::{DType, Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::Linear;

use crate::nn::{softmax_last, BatchNorm, Conv2d, Ctx, PaddingMode};

/// `Linear(d, classes)`.
#[derive(Debug, Clone)]
pub struct LinearHead {
    lin: Linear,
}

impl LinearHead {
    /// A linear classifier (`lin`).
    pub fn new(vb: VarBuilder, d: usize, classes: usize) -> Result<Self> {
        Ok(Self {
            lin: crate::nn::linear(d, classes, vb.pp("lin"))?,
        })
    }

    /// Logits `(B, classes)` of features `(B, d)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.lin.forward(x)
    }
}

/// `Linear(d, hidden) → ReLU → Dropout → Linear(hidden, out)` (`fc1`, `fc2`).
#[derive(Debug, Clone)]
pub struct MlpHead {
    fc1: Linear,
    fc2: Linear,
    dropout: f32,
}

impl MlpHead {
    /// A two-layer perceptron.
    pub fn new(vb: VarBuilder, d: usize, hidden: usize, out: usize, dropout: f32) -> Result<Self> {
        Ok(Self {
            fc1: crate::nn::linear(d, hidden, vb.pp("fc1"))?,
            fc2: crate::nn::linear(hidden, out, vb.pp("fc2"))?,
            dropout,
        })
    }

    /// Outputs `(B, out)` of features `(B, d)`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.fc1.forward(x)?.relu()?;
        let h = if train && self.dropout > 0.0 {
            crate::nn::dropout(&h, self.dropout)?
        } else {
            h
        };
        self.fc2.forward(&h)
    }
}

/// Per-pixel classifier on feature maps `(B, d, H, W)`: a 3×3 convolution with
/// BatchNorm and ReLU then a 1×1 convolution to the classes, or the 1×1 alone
/// (`hidden = None`, a linear probe per pixel).
pub struct SegmentationHead {
    hidden: Option<(Conv2d, BatchNorm)>,
    out: Conv2d,
}

impl std::fmt::Debug for SegmentationHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentationHead")
            .field("hidden", &self.hidden.is_some())
            .finish()
    }
}

impl SegmentationHead {
    /// Builds the head (`conv`, `bn`, `out`).
    pub fn new(ctx: &Ctx, d: usize, hidden: Option<usize>, classes: usize) -> Result<Self> {
        let (hidden, d_out) = match hidden {
            Some(h) => (
                Some((
                    Conv2d::new(ctx.vb.pp("conv"), d, h, 3, 1, 1, PaddingMode::Reflect)?,
                    BatchNorm::new(&ctx.pp("bn"), h)?,
                )),
                h,
            ),
            None => (None, d),
        };
        Ok(Self {
            hidden,
            out: Conv2d::new(
                ctx.vb.pp("out"),
                d_out,
                classes,
                1,
                1,
                0,
                PaddingMode::Zeros,
            )?,
        })
    }

    /// Logits `(B, classes, H, W)`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = match &self.hidden {
            Some((conv, bn)) => bn.forward_t(&conv.forward(x)?, train)?.relu()?,
            None => x.clone(),
        };
        self.out.forward(&h)
    }
}

/// Attention pooling over dates with learned queries (one per head, L-TAE style):
/// `(B, T, d)` → `(B, d)`, or `(B, T, d, H, W)` → `(B, d, H, W)` per pixel. Padded
/// dates get no weight.
#[derive(Debug, Clone)]
pub struct TemporalAttentionPooling {
    query: Tensor,
    key: Linear,
    heads: usize,
    d_k: usize,
}

impl TemporalAttentionPooling {
    /// `heads` queries of size `d_k` over features of size `d` (`query`, `key`).
    pub fn new(vb: VarBuilder, d: usize, heads: usize, d_k: usize) -> Result<Self> {
        if heads == 0 || !d.is_multiple_of(heads) {
            candle_core::bail!("attention pooling: d {d} is not a multiple of {heads} heads");
        }
        let std = (2.0 / d_k as f64).sqrt();
        Ok(Self {
            query: vb.get_with_hints(
                (heads, d_k),
                "query",
                candle_nn::Init::Randn {
                    mean: 0.0,
                    stdev: std,
                },
            )?,
            key: crate::nn::linear(d, heads * d_k, vb.pp("key"))?,
            heads,
            d_k,
        })
    }

    /// Pooled `(B, d)` of `(B, T, d)` with pad mask `(B, T)` (`u8`, 1 = padded);
    /// also returns the attention `(B, heads, T)`.
    pub fn forward(&self, x: &Tensor, pad: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (b, t, d) = x.dims3()?;
        let k = self
            .key
            .forward(x)?
            .reshape((b, t, self.heads, self.d_k))?
            .permute((0, 2, 1, 3))?; // (B, h, T, dk)
        let q = self.query.reshape((1, self.heads, 1, self.d_k))?;
        let scores = (k.broadcast_mul(&q)?.sum(3)? / (self.d_k as f64).sqrt())?; // (B, h, T)
        let scores = match pad {
            Some(m) => {
                let m = m
                    .to_dtype(DType::U8)?
                    .reshape((b, 1, t))?
                    .broadcast_as((b, self.heads, t))?;
                let neg = Tensor::full(-1e9f32, (b, self.heads, t), x.device())?
                    .to_dtype(scores.dtype())?;
                m.where_cond(&neg, &scores)?
            }
            None => scores,
        };
        let attn = softmax_last(&scores)?;
        let v = x
            .reshape((b, t, self.heads, d / self.heads))?
            .permute((0, 2, 1, 3))?
            .contiguous()?; // (B, h, T, d/h)
        let out = attn
            .unsqueeze(2)?
            .contiguous()?
            .matmul(&v)?
            .squeeze(2)?
            .reshape((b, d))?;
        Ok((out, attn))
    }

    /// Per-pixel pooling of `(B, T, d, H, W)` to `(B, d, H, W)`.
    pub fn forward_maps(&self, x: &Tensor, pad: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, d, h, w) = x.dims5()?;
        let seq = x.permute((0, 3, 4, 1, 2))?.reshape((b * h * w, t, d))?;
        let pad = match pad {
            Some(m) => Some(
                m.to_dtype(DType::U8)?
                    .unsqueeze(1)?
                    .broadcast_as((b, h * w, t))?
                    .reshape((b * h * w, t))?,
            ),
            None => None,
        };
        let (out, _) = self.forward(&seq, pad.as_ref())?;
        out.reshape((b, h, w, d))?
            .permute((0, 3, 1, 2))?
            .contiguous()
    }
}

/// Predicts the next `horizon` dates of `bands` bands from a representation `(B, d)`:
/// `(B, horizon, bands)`.
#[derive(Debug, Clone)]
pub struct ForecastHead {
    lin: Linear,
    horizon: usize,
    bands: usize,
}

impl ForecastHead {
    /// A linear forecaster (`lin`).
    pub fn new(vb: VarBuilder, d: usize, horizon: usize, bands: usize) -> Result<Self> {
        Ok(Self {
            lin: crate::nn::linear(d, horizon * bands, vb.pp("lin"))?,
            horizon,
            bands,
        })
    }

    /// Forecast `(B, horizon, bands)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        self.lin.forward(x)?.reshape((b, self.horizon, self.bands))
    }
}
