//! Galileo's encoder: patch and group embeddings, the four encodings, the blocks.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::{LayerNorm, Linear};

use super::{GalileoConfig, BASE_GSD, SPACE_GROUPS, SPACE_TIME_GROUPS, STATIC_GROUPS, TIME_GROUPS};
use crate::transformer::{drop_absent_tokens, masked_mean, VitBlock};
use crate::ModelError;

/// One batch of Galileo inputs. Masks are per band group, non-zero = missing.
#[derive(Debug, Clone)]
pub struct GalileoInput {
    /// `(B, H, W, T, 13)` normalised space-time values ([`super::SPACE_TIME_BANDS`]).
    pub space_time: Tensor,
    /// `(B, H, W, T, 7)` space-time group mask.
    pub space_time_mask: Tensor,
    /// `(B, H, W, 16)` normalised space values.
    pub space: Tensor,
    /// `(B, H, W, 3)` space group mask.
    pub space_mask: Tensor,
    /// `(B, T, 6)` normalised time values.
    pub time: Tensor,
    /// `(B, T, 3)` time group mask.
    pub time_mask: Tensor,
    /// `(B, 18)` normalised static values (location as x, y, z on the unit sphere).
    pub static_: Tensor,
    /// `(B, 4)` static group mask.
    pub static_mask: Tensor,
    /// `(B, T)` u32 months, 0 = January.
    pub months: Tensor,
}

impl GalileoInput {
    /// `(B, H, W, T)`.
    pub fn dims(&self) -> Result<(usize, usize, usize, usize)> {
        let (b, h, w, t, _) = self.space_time.dims5()?;
        Ok((b, h, w, t))
    }
}

/// The resize of a `from × from` patch kernel to `to × to` as upstream's
/// `FlexiPatchEmbed` does it: the pseudo-inverse of PyTorch's antialiased bicubic
/// resize, which is separable, so the 2-D operator is `Q ⊗ Q` with `Q` `(to, from)`
/// returned here (row-major). Identity when `to == from`.
pub fn resize_kernel(from: usize, to: usize) -> Vec<f64> {
    if from == to {
        let mut q = vec![0.0; to * from];
        for i in 0..to {
            q[i * from + i] = 1.0;
        }
        return q;
    }
    // r[a][i]: weight of input pixel i in output pixel a (PyTorch's `_upsample_bicubic2d_aa`)
    let scale = from as f64 / to as f64;
    let (support, inv) = if scale >= 1.0 {
        (2.0 * scale, 1.0 / scale)
    } else {
        (2.0, 1.0)
    };
    let cubic = |x: f64| {
        let a = -0.5;
        let x = x.abs();
        if x < 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        } else {
            0.0
        }
    };
    let mut r = vec![0.0; to * from];
    for a in 0..to {
        let center = scale * (a as f64 + 0.5);
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(from as i64) as usize;
        let mut total = 0.0;
        for i in lo..hi {
            let w = cubic((i as f64 - center + 0.5) * inv);
            r[a * from + i] = w;
            total += w;
        }
        if total != 0.0 {
            for i in lo..hi {
                r[a * from + i] /= total;
            }
        }
    }
    // Q = pinv(Rᵀ) = (R Rᵀ)⁻¹ R, R of full row rank
    let mut g = vec![0.0; to * to];
    for a in 0..to {
        for b in 0..to {
            g[a * to + b] = (0..from).map(|i| r[a * from + i] * r[b * from + i]).sum();
        }
    }
    let ginv = invert(&g, to);
    let mut q = vec![0.0; to * from];
    for a in 0..to {
        for i in 0..from {
            q[a * from + i] = (0..to).map(|b| ginv[a * to + b] * r[b * from + i]).sum();
        }
    }
    q
}

/// Inverse of the `n × n` symmetric positive-definite `m` (Gauss-Jordan with
/// partial pivoting; `n` is at most the patch size).
fn invert(m: &[f64], n: usize) -> Vec<f64> {
    let mut a = m.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for c in 0..n {
        let p = (c..n)
            .max_by(|&x, &y| a[x * n + c].abs().total_cmp(&a[y * n + c].abs()))
            .unwrap_or(c);
        for k in 0..n {
            a.swap(c * n + k, p * n + k);
            inv.swap(c * n + k, p * n + k);
        }
        let d = a[c * n + c];
        for k in 0..n {
            a[c * n + k] /= d;
            inv[c * n + k] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = a[r * n + c];
                for k in 0..n {
                    a[r * n + k] -= f * a[c * n + k];
                    inv[r * n + k] -= f * inv[c * n + k];
                }
            }
        }
    }
    inv
}

/// 1-D sin-cos encoding of `pos` in `e` values as upstream computes it
/// (frequencies `10000^(-k / 2e)`, `k < e / 2`; sines then cosines).
fn sincos(pos: f64, e: usize) -> Vec<f32> {
    let half = e / 2;
    let ang: Vec<f32> = (0..half)
        .map(|k| {
            let omega = 1.0 / 10000f64.powf(k as f64 / e as f64 / 2.0);
            (pos as f32) * omega as f32
        })
        .collect();
    ang.iter()
        .map(|a| a.sin())
        .chain(ang.iter().map(|a| a.cos()))
        .collect()
}

/// The 2-D position encoding `(h, w, q)` of an `h × w` token grid whose tokens
/// cover `gsd_ratio` × [`BASE_GSD`] metres: the column's encoding then the row's.
fn spatial_table(h: usize, w: usize, q: usize, gsd_ratio: f64, dev: &Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(h * w * q);
    for i in 0..h {
        for j in 0..w {
            v.extend(sincos(j as f64 * gsd_ratio, q / 2));
            v.extend(sincos(i as f64 * gsd_ratio, q / 2));
        }
    }
    Tensor::from_vec(v, (h, w, q), dev)
}

/// A patch embedding: the stored `(D, c, P, P)` kernel and its bias.
#[derive(Debug, Clone)]
struct PatchEmbed {
    weight: Tensor,
    bias: Tensor,
}

impl PatchEmbed {
    fn new(vb: VarBuilder, c: usize, d: usize, p: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get((d, c, p, p), "proj.weight")?,
            bias: vb.get(d, "proj.bias")?,
        })
    }

    /// `x` `(B, H, W, [T,] c)` to `(B, H/p, W/p, [T,] D)` with patches of `p`.
    fn forward(&self, x: &Tensor, p: usize) -> Result<Tensor> {
        let (d, c, big, _) = self.weight.dims4()?;
        let dims = x.dims().to_vec();
        let (b, hh, ww) = (dims[0], dims[1], dims[2]);
        let t = if dims.len() == 5 { dims[3] } else { 1 };
        let (h, w) = (hh / p, ww / p);
        let kernel = if p == big {
            self.weight.reshape((d, c * p * p))?
        } else {
            let q: Vec<f32> = resize_kernel(big, p).iter().map(|&v| v as f32).collect();
            let q = Tensor::from_vec(q, (p, big), x.device())?;
            let w4 = self.weight.reshape((d * c, big, big))?;
            q.broadcast_matmul(&w4)?
                .broadcast_matmul(&q.t()?)?
                .reshape((d, c * p * p))?
        };
        // (B, h, p, w, p, T, c) -> (B, h, w, T, c, p, p)
        let patches = x
            .reshape(vec![b, h, p, w, p, t, c])?
            .permute(vec![0, 1, 3, 5, 6, 2, 4])?
            .reshape((b * h * w * t, c * p * p))?;
        let out = patches.matmul(&kernel.t()?)?.broadcast_add(&self.bias)?;
        if dims.len() == 5 {
            out.reshape(vec![b, h, w, t, d])
        } else {
            out.reshape((b, h, w, d))
        }
    }
}

/// `mask` `(B, H, W, [T,] G)` at the top-left pixel of every `p × p` patch.
fn patch_mask(mask: &Tensor, p: usize) -> Result<Tensor> {
    let dims = mask.dims().to_vec();
    let (b, hh, ww) = (dims[0], dims[1], dims[2]);
    let rest = &dims[3..];
    let mut shape = vec![b, hh / p, p, ww / p, p];
    shape.extend_from_slice(rest);
    let m = mask.reshape(shape)?.narrow(2, 0, 1)?.narrow(4, 0, 1)?;
    let mut out = vec![b, hh / p, ww / p];
    out.extend_from_slice(rest);
    m.reshape(out)
}

/// Galileo's encoder (upstream `Encoder`).
#[derive(Debug, Clone)]
pub struct GalileoEncoder {
    space_time_embed: Vec<PatchEmbed>,
    space_embed: Vec<PatchEmbed>,
    time_embed: Vec<Linear>,
    static_embed: Vec<Linear>,
    blocks: Vec<VitBlock>,
    norm: LayerNorm,
    pos_embed: Tensor,
    month_embed: Tensor,
    s_t_channel: Tensor,
    sp_channel: Tensor,
    t_channel: Tensor,
    st_channel: Tensor,
    cfg: GalileoConfig,
}

impl GalileoEncoder {
    /// Builds the encoder from `vb` holding upstream's parameters, with the
    /// attention's `q`, `k` and `v` already fused into `attn.qkv` (as
    /// [`Self::load`] does).
    pub fn new(vb: VarBuilder, cfg: &GalileoConfig) -> Result<Self> {
        let d = cfg.embedding_size;
        let q = d / 4;
        if !d.is_multiple_of(8) {
            candle_core::bail!("Galileo: width {d} is not a multiple of 8");
        }
        let p = cfg.max_patch_size;
        let mlp = (d as f64 * cfg.mlp_ratio) as usize;
        let patch = |fam: &str, groups: &[(&str, &[usize])]| -> Result<Vec<PatchEmbed>> {
            groups
                .iter()
                .map(|(name, idx)| PatchEmbed::new(vb.pp(fam).pp(name), idx.len(), d, p))
                .collect()
        };
        let linear = |fam: &str, groups: &[(&str, &[usize])]| -> Result<Vec<Linear>> {
            groups
                .iter()
                .map(|(name, idx)| crate::nn::linear(idx.len(), d, vb.pp(fam).pp(name)))
                .collect()
        };
        Ok(Self {
            space_time_embed: patch("space_time_embed", &SPACE_TIME_GROUPS)?,
            space_embed: patch("space_embed", &SPACE_GROUPS)?,
            time_embed: linear("time_embed", &TIME_GROUPS)?,
            static_embed: linear("static_embed", &STATIC_GROUPS)?,
            blocks: (0..cfg.depth)
                .map(|i| VitBlock::new(vb.pp("blocks").pp(i), d, cfg.num_heads, mlp, 1e-5))
                .collect::<Result<_>>()?,
            norm: LayerNorm::new(vb.pp("norm"), d, 1e-5)?,
            pos_embed: vb.get((cfg.max_sequence_length, q), "pos_embed")?,
            month_embed: vb.get((12, q), "month_embed.weight")?,
            s_t_channel: vb.get((SPACE_TIME_GROUPS.len(), q), "s_t_channel_embed")?,
            sp_channel: vb.get((SPACE_GROUPS.len(), q), "sp_channel_embed")?,
            t_channel: vb.get((TIME_GROUPS.len(), q), "t_channel_embed")?,
            st_channel: vb.get((STATIC_GROUPS.len(), q), "st_channel_embed")?,
            cfg: cfg.clone(),
        })
    }

    /// Loads upstream's `encoder.pt` (or a safetensors file with the same names)
    /// on `device`. When `sha256` is given, the file's checksum must equal it (see
    /// [`super::NANO_SHA256`]).
    pub fn load(
        path: &Path,
        cfg: &GalileoConfig,
        sha256: Option<&str>,
        device: &Device,
    ) -> std::result::Result<Self, ModelError> {
        let err = |reason: String| ModelError::Weights {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(want) = sha256 {
            let got = crate::presto::sha256_file(path).map_err(|e| err(e.to_string()))?;
            if got != want {
                return Err(err(format!(
                    "sha256 {got}, expected {want}{}",
                    if want == super::NANO_SHA256 {
                        " (the published Galileo nano encoder.pt, \
                         github.com/nasaharvest/galileo data/models/nano/encoder.pt)"
                    } else {
                        ""
                    }
                )));
            }
        }
        let raw = crate::io::load_tensors(path, device)?;
        let mut tensors: HashMap<String, Tensor> = raw
            .into_iter()
            .map(|(k, v)| (k.replace(".backbone", ""), v))
            .collect();
        for i in 0..cfg.depth {
            for part in ["weight", "bias"] {
                let names = ["q", "k", "v"].map(|n| format!("blocks.{i}.attn.{n}.{part}"));
                let got: Vec<Tensor> = names
                    .iter()
                    .map(|n| {
                        tensors
                            .remove(n)
                            .ok_or_else(|| err(format!("no tensor `{n}`")))
                    })
                    .collect::<std::result::Result<_, _>>()?;
                let fused = Tensor::cat(&got, 0).map_err(|e| err(e.to_string()))?;
                tensors.insert(format!("blocks.{i}.attn.qkv.{part}"), fused);
            }
        }
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        Self::new(vb, cfg).map_err(|e| err(format!("building Galileo: {e}")))
    }

    /// Token width (the embedding length).
    pub fn dim(&self) -> usize {
        self.cfg.embedding_size
    }

    /// The configuration.
    pub fn config(&self) -> &GalileoConfig {
        &self.cfg
    }

    /// Embedded tokens before the blocks, `(B, N, D)` in upstream's order (space-time
    /// `h w t g`, space `h w g`, time `t g`, static `g`), and their mask `(B, N)` u8
    /// (1 = missing), for patches of `patch` pixels of `resolution_m` metres.
    pub fn tokens(
        &self,
        inp: &GalileoInput,
        patch: usize,
        resolution_m: f64,
    ) -> Result<(Tensor, Tensor)> {
        let (b, hh, ww, t) = inp.dims()?;
        let d = self.dim();
        let q = d / 4;
        let dev = inp.space_time.device();
        if patch == 0 || patch > self.cfg.max_patch_size {
            candle_core::bail!(
                "Galileo: patch size {patch}, expected 1 to {}",
                self.cfg.max_patch_size
            );
        }
        if hh != ww || !hh.is_multiple_of(patch) {
            candle_core::bail!(
                "Galileo: a {hh} × {ww} input does not cut into square patches of {patch}"
            );
        }
        if t > self.cfg.max_sequence_length {
            candle_core::bail!(
                "Galileo reads at most {} timesteps, got {t}",
                self.cfg.max_sequence_length
            );
        }
        let (h, w) = (hh / patch, ww / patch);
        let select = |x: &Tensor, idx: &[usize]| -> Result<Tensor> {
            let sel = Tensor::from_vec(idx.iter().map(|&i| i as u32).collect(), idx.len(), dev)?;
            x.index_select(&sel, x.rank() - 1)
        };
        let missing = |m: &Tensor| m.ne(0.0)?.to_dtype(DType::F32);

        // the four encodings, quarter width each
        let month = self
            .month_embed
            .index_select(&inp.months.flatten_all()?, 0)?
            .reshape((b, t, q))?;
        let pos = self.pos_embed.narrow(0, 0, t)?;
        let gsd = resolution_m * patch as f64 / BASE_GSD;
        let spatial = spatial_table(h, w, q, gsd, dev)?;

        // space-time tokens (B, h, w, T, G, D)
        let g = SPACE_TIME_GROUPS.len();
        let st_tok = SPACE_TIME_GROUPS
            .iter()
            .zip(&self.space_time_embed)
            .map(|((_, idx), e)| e.forward(&select(&inp.space_time, idx)?, patch))
            .collect::<Result<Vec<_>>>()?;
        let st_tok = Tensor::stack(&st_tok, 4)?;
        let shape = (b, h, w, t, g, q);
        let enc = Tensor::cat(
            &[
                self.s_t_channel
                    .reshape((1, 1, 1, 1, g, q))?
                    .broadcast_as(shape)?,
                pos.reshape((1, 1, 1, t, 1, q))?.broadcast_as(shape)?,
                month.reshape((b, 1, 1, t, 1, q))?.broadcast_as(shape)?,
                spatial.reshape((1, h, w, 1, 1, q))?.broadcast_as(shape)?,
            ],
            5,
        )?;
        let st_x = (st_tok + enc)?.reshape((b, h * w * t * g, d))?;
        let st_m =
            missing(&patch_mask(&inp.space_time_mask, patch)?)?.reshape((b, h * w * t * g))?;

        // space tokens (B, h, w, G, D)
        let g = SPACE_GROUPS.len();
        let sp_tok = SPACE_GROUPS
            .iter()
            .zip(&self.space_embed)
            .map(|((_, idx), e)| e.forward(&select(&inp.space, idx)?, patch))
            .collect::<Result<Vec<_>>>()?;
        let sp_tok = Tensor::stack(&sp_tok, 3)?;
        let shape = (b, h, w, g, q);
        let enc = Tensor::cat(
            &[
                self.sp_channel
                    .reshape((1, 1, 1, g, q))?
                    .broadcast_as(shape)?,
                Tensor::zeros((b, h, w, g, 2 * q), DType::F32, dev)?,
                spatial.reshape((1, h, w, 1, q))?.broadcast_as(shape)?,
            ],
            4,
        )?;
        let sp_x = (sp_tok + enc)?.reshape((b, h * w * g, d))?;
        let sp_m = missing(&patch_mask(&inp.space_mask, patch)?)?.reshape((b, h * w * g))?;

        // time tokens (B, T, G, D)
        let g = TIME_GROUPS.len();
        let t_tok = TIME_GROUPS
            .iter()
            .zip(&self.time_embed)
            .map(|((_, idx), e)| e.forward(&select(&inp.time, idx)?))
            .collect::<Result<Vec<_>>>()?;
        let t_tok = Tensor::stack(&t_tok, 2)?;
        let shape = (b, t, g, q);
        let enc = Tensor::cat(
            &[
                self.t_channel.reshape((1, 1, g, q))?.broadcast_as(shape)?,
                pos.reshape((1, t, 1, q))?.broadcast_as(shape)?,
                month.reshape((b, t, 1, q))?.broadcast_as(shape)?,
                Tensor::zeros(shape, DType::F32, dev)?,
            ],
            3,
        )?;
        let t_x = (t_tok + enc)?.reshape((b, t * g, d))?;
        let t_m = missing(&inp.time_mask)?.reshape((b, t * g))?;

        // static tokens (B, G, D)
        let g = STATIC_GROUPS.len();
        let s_tok = STATIC_GROUPS
            .iter()
            .zip(&self.static_embed)
            .map(|((_, idx), e)| e.forward(&select(&inp.static_, idx)?))
            .collect::<Result<Vec<_>>>()?;
        let s_tok = Tensor::stack(&s_tok, 1)?;
        let enc = Tensor::cat(
            &[
                self.st_channel
                    .reshape((1, g, q))?
                    .broadcast_as((b, g, q))?,
                Tensor::zeros((b, g, 3 * q), DType::F32, dev)?,
            ],
            2,
        )?;
        let s_x = (s_tok + enc)?;
        let s_m = missing(&inp.static_mask)?;

        Ok((
            Tensor::cat(&[st_x, sp_x, t_x, s_x], 1)?,
            Tensor::cat(&[st_m, sp_m, t_m, s_m], 1)?.to_dtype(DType::U8)?,
        ))
    }

    /// Every token after the blocks and the final norm, `(B, N, D)`, and the mask
    /// `(B, N)` (upstream's encoder output, flattened in its order; the missing
    /// tokens hold numbers no present token has seen).
    pub fn forward_tokens(
        &self,
        inp: &GalileoInput,
        patch: usize,
        resolution_m: f64,
    ) -> Result<(Tensor, Tensor)> {
        let (mut x, missing) = self.tokens(inp, patch, resolution_m)?;
        for blk in &self.blocks {
            x = blk.forward(&x, Some(&missing))?;
        }
        Ok((self.norm.forward(&x)?, missing))
    }

    /// The pooled embedding `(B, D)`: the mean of the present tokens after the final
    /// norm (upstream's `average_tokens`). Tokens missing in every input of the
    /// batch are dropped before the blocks: the same numbers, less work.
    pub fn forward(&self, inp: &GalileoInput, patch: usize, resolution_m: f64) -> Result<Tensor> {
        let (x, missing) = self.tokens(inp, patch, resolution_m)?;
        let (mut x, missing) = drop_absent_tokens(&x, &missing)?;
        for blk in &self.blocks {
            x = blk.forward(&x, Some(&missing))?;
        }
        masked_mean(&self.norm.forward(&x)?, &missing)
    }
}
