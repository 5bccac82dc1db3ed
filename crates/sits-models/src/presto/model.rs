//! Presto's encoder and decoder.

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder, VarMap};

use super::{
    month_table, position_table, sha256_file, PrestoConfig, DW_CLASSES, GROUPS, PUBLISHED_SHA256,
    SRTM_GROUP,
};
use crate::error::ModelError;
use crate::nn::{LayerNorm, Linear};
use crate::transformer::{drop_absent_tokens, masked_mean, VitBlock};

/// One batch of Presto inputs.
#[derive(Debug, Clone)]
pub struct PrestoInput {
    /// `(B, T, 17)` f32: the [`super::BANDS`] values, normalised
    /// ([`super::input::BandMap::normalise`]); anything where `mask` is set.
    pub x: Tensor,
    /// `(B, T, 17)`, any dtype: non-zero where a value is missing.
    pub mask: Tensor,
    /// `(B, T)` u32: Dynamic World class per timestep, [`DW_CLASSES`] when unknown.
    pub dynamic_world: Tensor,
    /// `(B, 2)` f32: latitude and longitude in degrees.
    pub latlons: Tensor,
    /// `(B, T)` u32: month of each timestep, 0 = January.
    pub months: Tensor,
}

impl PrestoInput {
    fn dims(&self) -> Result<(usize, usize)> {
        let (b, t, c) = self.x.dims3()?;
        if c != super::BANDS.len() {
            candle_core::bail!(
                "Presto reads {} values per timestep, got {c}",
                super::BANDS.len()
            );
        }
        for (name, got, want) in [
            ("mask", self.mask.dims(), vec![b, t, c]),
            ("dynamic_world", self.dynamic_world.dims(), vec![b, t]),
            ("latlons", self.latlons.dims(), vec![b, 2]),
            ("months", self.months.dims(), vec![b, t]),
        ] {
            if got != want.as_slice() {
                candle_core::bail!("Presto input: {name} has shape {got:?}, expected {want:?}");
            }
        }
        Ok((b, t))
    }
}

/// Encoder tokens after the final norm, with the mask of the missing ones.
#[derive(Debug, Clone)]
pub struct PrestoOutput {
    /// `(B, 1 + 9T + 1, D)`: the location token, then per group its timesteps
    /// ([`GROUPS`] order, SRTM one token), then Dynamic World.
    pub tokens: Tensor,
    /// `(B, 1 + 9T + 1)` u8: 1 where the token was missing (left out).
    pub missing: Tensor,
}

fn xavier_linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    let bound = (6.0 / (d_in + d_out) as f64).sqrt();
    let w = vb.get_with_hints(
        (d_out, d_in),
        "weight",
        Init::Uniform {
            lo: -bound,
            up: bound,
        },
    )?;
    let b = vb.get_with_hints(d_out, "bias", Init::Const(0.0))?;
    Ok(Linear::from_parts(w, Some(b)))
}

const NORMAL: Init = Init::Randn {
    mean: 0.0,
    stdev: 1.0,
};

/// `(B, T, a + c + p)`: month, channel and position embeddings side by side;
/// zeros for month and position when `static_token`.
fn side_by_side(
    month: &Tensor,
    channel: &Tensor,
    pos: &Tensor,
    static_token: bool,
) -> Result<Tensor> {
    let (b, t, _) = month.dims3()?;
    let ch = channel
        .reshape((1, 1, ()))?
        .broadcast_as((b, t, channel.dim(0)?))?;
    if static_token {
        let m = month.narrow(1, 0, 1)?.zeros_like()?;
        let p = pos.narrow(1, 0, 1)?.zeros_like()?;
        return Tensor::cat(&[&m, &ch.narrow(1, 0, 1)?, &p], 2);
    }
    Tensor::cat(&[month, &ch, pos], 2)
}

/// `(B, T, d)` rows of `table` picked by `idx` `(B, T)`.
fn lookup(table: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let (b, t) = idx.dims2()?;
    table
        .index_select(&idx.flatten_all()?, 0)?
        .reshape((b, t, table.dim(1)?))
}

/// Presto's encoder (upstream `Encoder`, parameters under `encoder.`).
#[derive(Debug, Clone)]
pub struct PrestoEncoder {
    eo_patch_embed: Vec<Linear>,
    dw_embed: Tensor,
    latlon_embed: Linear,
    blocks: Vec<VitBlock>,
    norm: LayerNorm,
    channel_embed: Tensor,
    months: Tensor,
    positions: Tensor,
    d: usize,
}

impl PrestoEncoder {
    /// Builds the encoder over `vb` (fresh variables are initialised as upstream:
    /// Xavier-uniform embeddings, unit-normal embedding tables).
    pub fn new(vb: VarBuilder, cfg: &PrestoConfig) -> Result<Self> {
        let d = cfg.encoder_embedding_size;
        let (dm, dc, dp) = cfg.encoder_parts();
        let dev = vb.device().clone();
        let eo_patch_embed = GROUPS
            .iter()
            .map(|(name, idx)| xavier_linear(idx.len(), d, vb.pp("eo_patch_embed").pp(name)))
            .collect::<Result<_>>()?;
        let mlp = (d as f64 * cfg.mlp_ratio) as usize;
        let blocks = (0..cfg.encoder_depth)
            .map(|i| VitBlock::new(vb.pp("blocks").pp(i), d, cfg.encoder_num_heads, mlp, 1e-5))
            .collect::<Result<_>>()?;
        Ok(Self {
            eo_patch_embed,
            dw_embed: vb.get_with_hints((DW_CLASSES + 1, d), "dw_embed.weight", NORMAL)?,
            latlon_embed: xavier_linear(3, d, vb.pp("latlon_embed"))?,
            blocks,
            norm: LayerNorm::new(vb.pp("norm"), d, 1e-5)?,
            channel_embed: vb.get_with_hints(
                (GROUPS.len() + 1, dc),
                "channel_embed.weight",
                NORMAL,
            )?,
            months: month_table(dm, &dev)?,
            positions: position_table(cfg.max_sequence_length, dp, &dev)?,
            d,
        })
    }

    /// Token width (the embedding length).
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The band-group embedding table `(10, c)`, shared with the decoder.
    pub fn channel_embed(&self) -> &Tensor {
        &self.channel_embed
    }

    /// Embedded tokens before the blocks, `(B, 1 + 9T + 1, D)`, and the mask of the
    /// missing ones `(B, 1 + 9T + 1)` u8.
    pub fn tokens(&self, inp: &PrestoInput) -> Result<(Tensor, Tensor)> {
        let (b, t) = inp.dims()?;
        let max_len = self.positions.dim(0)?;
        if t > max_len {
            candle_core::bail!("Presto reads at most {max_len} timesteps, got {t}");
        }
        let dev = inp.x.device();
        let month = lookup(&self.months, &inp.months)?;
        let pos = self
            .positions
            .narrow(0, 0, t)?
            .unsqueeze(0)?
            .broadcast_as((b, t, self.positions.dim(1)?))?;
        let missing = inp.mask.ne(0.0)?.to_dtype(DType::F32)?;
        let latlon = self
            .latlon_embed
            .forward(&cartesian(&inp.latlons)?)?
            .unsqueeze(1)?;
        let mut tokens = vec![latlon];
        let mut masks = vec![Tensor::zeros((b, 1), DType::F32, dev)?];
        for (g, ((_, idx), embed)) in GROUPS.iter().zip(&self.eo_patch_embed).enumerate() {
            let sel = Tensor::from_vec(idx.iter().map(|&i| i as u32).collect(), idx.len(), dev)?;
            let mut tok = embed.forward(&inp.x.index_select(&sel, 2)?)?;
            let mut m = missing.index_select(&sel, 2)?.max(2)?;
            let stat = g == SRTM_GROUP;
            if stat {
                tok = tok.narrow(1, 0, 1)?;
                m = m.narrow(1, 0, 1)?;
            }
            let emb = side_by_side(&month, &self.channel_embed.get(g)?, &pos, stat)?;
            tokens.push((tok + emb)?);
            masks.push(m);
        }
        let dw = lookup(&self.dw_embed, &inp.dynamic_world)?;
        let emb = side_by_side(&month, &self.channel_embed.get(GROUPS.len())?, &pos, false)?;
        tokens.push((dw + emb)?);
        masks.push(
            inp.dynamic_world
                .eq(DW_CLASSES as f64)?
                .to_dtype(DType::F32)?,
        );
        Ok((
            Tensor::cat(&tokens, 1)?,
            Tensor::cat(&masks, 1)?.to_dtype(DType::U8)?,
        ))
    }

    /// The blocks over tokens `x`, the `missing` ones left out of the attention.
    fn run_blocks(&self, mut x: Tensor, missing: &Tensor) -> Result<Tensor> {
        for blk in &self.blocks {
            x = blk.forward(&x, Some(missing))?;
        }
        Ok(x)
    }

    /// The pooled embedding `(B, D)`: the final norm of the mean of the present
    /// tokens (upstream's `eval_task=True`). Tokens missing in every series of the
    /// batch (a band group the input never has) are dropped before the blocks, as
    /// upstream drops missing tokens: the same numbers, a fraction of the work.
    pub fn forward(&self, inp: &PrestoInput) -> Result<Tensor> {
        let (x, missing) = self.tokens(inp)?;
        let (x, missing) = drop_absent_tokens(&x, &missing)?;
        let x = self.run_blocks(x, &missing)?;
        self.norm.forward(&masked_mean(&x, &missing)?)
    }

    /// Every token after the final norm (upstream's `eval_task=False`); the missing
    /// ones hold numbers that no present token has seen and that the decoder
    /// replaces.
    pub fn forward_tokens(&self, inp: &PrestoInput) -> Result<PrestoOutput> {
        let (x, missing) = self.tokens(inp)?;
        let x = self.run_blocks(x, &missing)?;
        Ok(PrestoOutput {
            tokens: self.norm.forward(&x)?,
            missing,
        })
    }
}

/// Latitude/longitude in degrees `(B, 2)` to points on the unit sphere `(B, 3)`.
fn cartesian(latlons: &Tensor) -> Result<Tensor> {
    let rad = (latlons.to_dtype(DType::F32)? * (std::f64::consts::PI / 180.0))?;
    let lat = rad.narrow(1, 0, 1)?;
    let lon = rad.narrow(1, 1, 1)?;
    let x = (lat.cos()? * lon.cos()?)?;
    let y = (lat.cos()? * lon.sin()?)?;
    Tensor::cat(&[&x, &y, &lat.sin()?], 1)
}

/// Presto's decoder (upstream `Decoder`, parameters under `decoder.`): rebuilds
/// every band of every timestep, and the Dynamic World class, from the encoder's
/// tokens with the missing ones replaced by a learned mask token.
#[derive(Debug, Clone)]
pub struct PrestoDecoder {
    decoder_embed: Linear,
    mask_token: Tensor,
    blocks: Vec<VitBlock>,
    norm: LayerNorm,
    eo_pred: Vec<Linear>,
    dw_pred: Linear,
    channel_embed: Tensor,
    months: Tensor,
    positions: Tensor,
}

impl PrestoDecoder {
    /// Builds the decoder over `vb`, sharing the encoder's band-group embedding.
    pub fn new(vb: VarBuilder, cfg: &PrestoConfig, channel_embed: Tensor) -> Result<Self> {
        let d = cfg.decoder_embedding_size;
        let (dm, _, dp) = cfg.decoder_parts();
        let dev = vb.device().clone();
        let mlp = (d as f64 * cfg.mlp_ratio) as usize;
        Ok(Self {
            decoder_embed: xavier_linear(cfg.encoder_embedding_size, d, vb.pp("decoder_embed"))?,
            mask_token: vb.get_with_hints(d, "mask_token", Init::Const(0.0))?,
            blocks: (0..cfg.decoder_depth)
                .map(|i| {
                    VitBlock::new(
                        vb.pp("decoder_blocks").pp(i),
                        d,
                        cfg.decoder_num_heads,
                        mlp,
                        1e-5,
                    )
                })
                .collect::<Result<_>>()?,
            norm: LayerNorm::new(vb.pp("decoder_norm"), d, 1e-5)?,
            eo_pred: GROUPS
                .iter()
                .map(|(name, idx)| xavier_linear(d, idx.len(), vb.pp("eo_decoder_pred").pp(name)))
                .collect::<Result<_>>()?,
            dw_pred: xavier_linear(d, DW_CLASSES, vb.pp("dw_decoder_pred"))?,
            channel_embed,
            months: month_table(dm, &dev)?,
            positions: position_table(cfg.max_sequence_length, dp, &dev)?,
        })
    }

    /// The reconstruction from the encoder's tokens: the 17 values per timestep
    /// `(B, T, 17)` and Dynamic World logits `(B, T, 9)`. `months` `(B, T)` u32.
    pub fn forward(&self, enc: &PrestoOutput, months: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = months.dims2()?;
        let n = enc.tokens.dim(1)?;
        if n != 9 * t + 2 {
            candle_core::bail!("Presto decoder: {n} tokens for {t} timesteps (needs 9T + 2)");
        }
        let x = self.decoder_embed.forward(&enc.tokens)?;
        let d = x.dim(D::Minus1)?;
        let fill = self
            .mask_token
            .reshape((1, 1, d))?
            .broadcast_as(x.shape())?;
        let x = enc
            .missing
            .unsqueeze(2)?
            .broadcast_as(x.shape())?
            .where_cond(&fill, &x)?;
        // the same month/channel/position embedding as the encoder's, at this width
        let month = lookup(&self.months, months)?;
        let pos = self
            .positions
            .narrow(0, 0, t)?
            .unsqueeze(0)?
            .broadcast_as((b, t, self.positions.dim(1)?))?;
        let mut emb = vec![Tensor::zeros((b, 1, d), x.dtype(), x.device())?];
        for g in 0..=GROUPS.len() {
            let ch = self.channel_embed.get(g)?;
            emb.push(side_by_side(&month, &ch, &pos, g == SRTM_GROUP)?);
        }
        let mut x = (x + Tensor::cat(&emb, 1)?)?;
        for blk in &self.blocks {
            x = blk.forward(&x, None)?;
        }
        let x = self.norm.forward(&x)?;
        let mut eo = Vec::with_capacity(GROUPS.len());
        let mut at = 1;
        for (g, pred) in self.eo_pred.iter().enumerate() {
            if g == SRTM_GROUP {
                let y = pred.forward(&x.narrow(1, at, 1)?)?;
                eo.push(y.broadcast_as((b, t, y.dim(2)?))?.contiguous()?);
                at += 1;
            } else {
                eo.push(pred.forward(&x.narrow(1, at, t)?)?);
                at += t;
            }
        }
        let dw = self.dw_pred.forward(&x.narrow(1, at, t)?)?;
        Ok((Tensor::cat(&eo, 2)?, dw))
    }
}

/// Presto: encoder, and decoder for reconstruction and continued pretraining.
#[derive(Debug, Clone)]
pub struct Presto {
    /// The encoder (parameters `encoder.*`).
    pub encoder: PrestoEncoder,
    /// The decoder (parameters `decoder.*`).
    pub decoder: PrestoDecoder,
}

impl Presto {
    /// Builds the model over `vb` (parameters under `encoder.` and `decoder.`).
    pub fn new(vb: VarBuilder, cfg: &PrestoConfig) -> Result<Self> {
        let encoder = PrestoEncoder::new(vb.pp("encoder"), cfg)?;
        let decoder = PrestoDecoder::new(vb.pp("decoder"), cfg, encoder.channel_embed.clone())?;
        Ok(Self { encoder, decoder })
    }

    /// Encoder then decoder: the reconstruction of every value `(B, T, 17)` and the
    /// Dynamic World logits `(B, T, 9)` (upstream `Presto.forward`).
    pub fn reconstruct(&self, inp: &PrestoInput) -> Result<(Tensor, Tensor)> {
        let enc = self.encoder.forward_tokens(inp)?;
        self.decoder.forward(&enc, &inp.months)
    }

    /// Loads weights with upstream's names (`default_model.pt` as published, or a
    /// safetensors file written by this library) into a new [`VarMap`] and builds
    /// the model over it, on `device`. When `sha256` is given, the file's checksum
    /// must equal it (see [`PUBLISHED_SHA256`]).
    pub fn load(
        path: &Path,
        cfg: &PrestoConfig,
        sha256: Option<&str>,
        device: &Device,
    ) -> std::result::Result<(Self, VarMap), ModelError> {
        if let Some(want) = sha256 {
            let got = sha256_file(path).map_err(|e| ModelError::Weights {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            if got != want {
                return Err(ModelError::Weights {
                    path: path.to_path_buf(),
                    reason: format!(
                        "sha256 {got}, expected {want}{}",
                        if want == PUBLISHED_SHA256 {
                            " (the published Presto default_model.pt, \
                             github.com/nasaharvest/presto data/default_model.pt)"
                        } else {
                            ""
                        }
                    ),
                });
            }
        }
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
        let model = Presto::new(vb, cfg).map_err(|e| ModelError::Weights {
            path: path.to_path_buf(),
            reason: format!("building Presto: {e}"),
        })?;
        crate::io::load_weights(path, &vars, &crate::Buffers::new())?;
        Ok((model, vars))
    }
}
