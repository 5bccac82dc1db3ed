//! L-TAE2d, the lightweight temporal attention encoder of U-TAE
//! (`VSainteuf/utae-paps`, `src/backbones/ltae.py`), and its positional encoding.
//!
//! Parameter names are those of the PyTorch `state_dict` (`in_norm`, `inconv`,
//! `attention_heads.Q`, `attention_heads.fc1_k`, `mlp.0`, `mlp.1`, `out_norm`), so a
//! safetensors export loads with `VarBuilder` without renaming.

use candle_core::{DType, Module, ModuleT, Result, Tensor};
use candle_nn::Init;

use crate::nn::Linear;

use crate::nn::{BatchNorm, Ctx, GroupNorm};
use crate::ops::attention::{head_mix, query_attention};

/// The sinusoidal date encoding of U-TAE: for `d` dimensions,
/// `denom_i = T^(2⌊i/2⌋/d)`, `sin(pos/denom)` on even and `cos(pos/denom)` on odd
/// dimensions, the `d`-vector tiled `repeat` times. Positions are whatever the
/// caller passes: integer days since the reference date for U-TAE (PASTIS:
/// 2018-09-01), not day of year.
#[derive(Debug, Clone)]
pub struct PositionalEncoder {
    denom: Vec<f32>,
    repeat: usize,
}

impl PositionalEncoder {
    /// `d` dimensions of period `t`, tiled `repeat` times.
    pub fn new(d: usize, t: f32, repeat: usize) -> Self {
        // Same float32 arithmetic as torch.pow(T, 2 * (arange(d).float() // 2) / d).
        let denom = (0..d)
            .map(|i| t.powf((2.0 * (i / 2) as f32) / d as f32))
            .collect();
        Self { denom, repeat }
    }

    /// The per-dimension divisors.
    pub fn denom(&self) -> &[f32] {
        &self.denom
    }

    /// Encoding of positions `(B, T)` as `(B, T, d·repeat)`.
    pub fn forward(&self, positions: &Tensor) -> Result<Tensor> {
        let d = self.denom.len();
        let dev = positions.device();
        let denom = Tensor::from_slice(&self.denom, (1, 1, d), dev)?;
        let table = positions
            .to_dtype(DType::F32)?
            .unsqueeze(2)?
            .broadcast_div(&denom)?;
        let even: Vec<f32> = (0..d).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
        let even = Tensor::from_vec(even, (1, 1, d), dev)?;
        let odd = (1.0 - &even)?;
        let enc = (table.sin()?.broadcast_mul(&even)? + table.cos()?.broadcast_mul(&odd)?)?;
        let reps: Vec<&Tensor> = std::iter::repeat_n(&enc, self.repeat).collect();
        Tensor::cat(&reps, 2)
    }
}

/// L-TAE2d hyper-parameters. `Default` is the configuration U-TAE builds on
/// PASTIS: 128 input channels, 16 heads, `d_k` 4, `d_model` 256, MLP `[256, 128]`,
/// dropout 0.2, attention dropout 0.1, period 1000.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LtaeConfig {
    /// Channels of the input maps.
    pub in_channels: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Key/query size per head.
    pub d_k: usize,
    /// Widths of the MLP after the heads; the first must equal `d_model`.
    pub mlp: Vec<usize>,
    /// Dropout after the MLP.
    pub dropout: f32,
    /// Dropout on the attention weights.
    pub attn_dropout: f32,
    /// Size of the projected input (`inconv`).
    pub d_model: usize,
    /// Period of the positional encoding.
    pub period: f32,
}

impl Default for LtaeConfig {
    fn default() -> Self {
        Self {
            in_channels: 128,
            n_head: 16,
            d_k: 4,
            mlp: vec![256, 128],
            dropout: 0.2,
            attn_dropout: 0.1,
            d_model: 256,
            period: 1000.0,
        }
    }
}

/// L-TAE2d: one learned query per head attends over the dates of every pixel.
#[derive(Debug, Clone)]
pub struct Ltae2d {
    cfg: LtaeConfig,
    in_norm: GroupNorm,
    inconv: Linear,
    q: Tensor,
    fc1_k: Linear,
    mlp: Vec<(Linear, BatchNorm)>,
    out_norm: GroupNorm,
    pe: PositionalEncoder,
}

/// Output of [`Ltae2d::forward`].
#[derive(Debug, Clone)]
pub struct LtaeOutput {
    /// Aggregated maps `(B, mlp[-1], H, W)`.
    pub out: Tensor,
    /// Attention `(n_head, B, T, H, W)`.
    pub attention: Tensor,
}

impl Ltae2d {
    /// Builds the module under `ctx` (PyTorch names).
    pub fn new(ctx: &Ctx, cfg: LtaeConfig) -> Result<Self> {
        if cfg.mlp.first() != Some(&cfg.d_model)
            || !cfg.d_model.is_multiple_of(cfg.n_head)
            || !cfg.in_channels.is_multiple_of(cfg.n_head)
        {
            candle_core::bail!(
                "L-TAE config: mlp[0] must equal d_model ({:?} vs {}) and d_model ({}) and in_channels ({}) must be multiples of n_head ({})",
                cfg.mlp, cfg.d_model, cfg.d_model, cfg.in_channels, cfg.n_head
            );
        }
        let vb = &ctx.vb;
        let in_norm = GroupNorm::new(vb.pp("in_norm"), cfg.n_head, cfg.in_channels)?;
        let w = vb.pp("inconv").get_with_hints(
            (cfg.d_model, cfg.in_channels, 1),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bound = 1.0 / (cfg.in_channels as f64).sqrt();
        let b = vb.pp("inconv").get_with_hints(
            cfg.d_model,
            "bias",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let inconv = Linear::from_parts(w.squeeze(2)?, Some(b));
        let std = (2.0 / cfg.d_k as f64).sqrt();
        let q = vb.pp("attention_heads").get_with_hints(
            (cfg.n_head, cfg.d_k),
            "Q",
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        )?;
        let fc1_k = crate::nn::linear(
            cfg.d_model,
            cfg.n_head * cfg.d_k,
            vb.pp("attention_heads").pp("fc1_k"),
        )?;
        let mut mlp = Vec::new();
        for i in 0..cfg.mlp.len() - 1 {
            let lin = crate::nn::linear(cfg.mlp[i], cfg.mlp[i + 1], vb.pp("mlp").pp(3 * i))?;
            let bn = BatchNorm::new(&ctx.pp("mlp").pp(3 * i + 1), cfg.mlp[i + 1])?;
            mlp.push((lin, bn));
        }
        let last = *cfg.mlp.last().unwrap_or(&cfg.d_model);
        let out_norm = GroupNorm::new(vb.pp("out_norm"), cfg.n_head, last)?;
        let pe = PositionalEncoder::new(cfg.d_model / cfg.n_head, cfg.period, cfg.n_head);
        Ok(Self {
            cfg,
            in_norm,
            inconv,
            q,
            fc1_k,
            mlp,
            out_norm,
            pe,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LtaeConfig {
        &self.cfg
    }

    /// Encodes `x` `(B, T, C, H, W)` with date positions `(B, T)` and an optional pad
    /// mask `(B, T)` (`u8`, 1 = padded: the date's attention score becomes -1000
    /// before the softmax, as in the reference).
    pub fn forward(
        &self,
        x: &Tensor,
        positions: &Tensor,
        pad_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<LtaeOutput> {
        let (b, t, c, h, w) = x.dims5()?;
        if positions.dims() != [b, t] {
            candle_core::bail!(
                "L-TAE: positions must be (B, T) = ({b}, {t}), got {:?}",
                positions.dims()
            );
        }
        let n = b * h * w;
        let nh = self.cfg.n_head;
        let dm = self.cfg.d_model;
        // (B·H·W, C, T) in one copy, the layout of the input GroupNorm; then (N, T, C)
        let out = x.permute((0, 3, 4, 2, 1))?.reshape((n, c, t))?;
        let out = self.in_norm.forward(&out)?.transpose(1, 2)?;
        let out = self.inconv.forward(&out.contiguous()?)?; // (N, T, d_model)
        let pe = self.pe.forward(positions)?.to_dtype(out.dtype())?; // (B, T, d_model)
        let pe = pe
            .unsqueeze(1)?
            .broadcast_as((b, h * w, t, dm))?
            .reshape((n, t, dm))?;
        let out = (out + pe)?;
        // attention weights (N, nh, T): one learned query per head against the keys
        let k = self.fc1_k.forward(&out)?; // (N, T, nh · d_k)
        if let Some(m) = pad_mask {
            if m.dims() != [b, t] {
                candle_core::bail!(
                    "L-TAE: pad mask must be (B, T) = ({b}, {t}), got {:?}",
                    m.dims()
                );
            }
        }
        let q = self.q.reshape((nh, self.cfg.d_k))?;
        let attn = query_attention(&k, &q, pad_mask, h * w, -1000.0)?;
        let attn_d = if train && self.cfg.attn_dropout > 0.0 {
            // the dropout mask is drawn in the (nh, N, T) order of earlier releases,
            // so the same seed drops the same weights
            crate::nn::dropout(&attn.transpose(0, 1)?, self.cfg.attn_dropout)?
                .transpose(0, 1)?
                .contiguous()?
        } else {
            attn.clone()
        };
        // each head's weighted sum of its d_model / nh channels of the values
        let mut out = head_mix(&attn_d, &out)?; // (N, d_model)
        for (lin, bn) in &self.mlp {
            out = bn.forward_t(&lin.forward(&out)?, train)?.relu()?;
        }
        if train {
            out = crate::nn::dropout(&out, self.cfg.dropout)?;
        }
        let out = self.out_norm.forward(&out)?;
        let out = crate::nn::pixels_to_maps(&out, b, h, w)?;
        let attention = attn
            .reshape((b, h, w, nh, t))?
            .permute((3, 0, 4, 1, 2))?
            .contiguous()?;
        Ok(LtaeOutput { out, attention })
    }
}
