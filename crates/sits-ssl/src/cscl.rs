//! CSCL (Tarasiou & Zafeiriou): supervised contrastive pretraining for semantic
//! segmentation. Each location is compared with the `k × k` window around it by a
//! cosine similarity between 1×1-convolution queries and keys (keys offset by
//! learned relative position embeddings), and the linear loss
//! `−pos_weight·y·s + (1 − y)·s` pulls same-label neighbours together.
//!
//! [`ContextSelfSimilarity`] follows `models/LocalSelfAttention/cscl.py` of
//! `michaeltrs/DeepSatModels` (stride 1, dilation 1, `norm_emb = True`) with its
//! parameter names (`query_conv.weight`, `key_conv.weight`, `rel_h`, `rel_w`), and
//! is checked against it.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::RngCore;
use sits_core::{Encoder, Objective, ObjectiveOutput, SitsBatch, Step};

/// Cosine similarity of every location with its `k × k` neighbourhood.
#[derive(Debug, Clone)]
pub struct ContextSelfSimilarity {
    query: candle_nn::Conv2d,
    key: candle_nn::Conv2d,
    rel_h: Tensor,
    rel_w: Tensor,
    attn: usize,
    groups: usize,
    k: usize,
}

impl ContextSelfSimilarity {
    /// `in_channels` → `attn_channels` (even, a multiple of `groups`), window `k`
    /// (odd).
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        attn_channels: usize,
        k: usize,
        groups: usize,
    ) -> Result<Self> {
        if k.is_multiple_of(2)
            || !attn_channels.is_multiple_of(2)
            || groups == 0
            || !attn_channels.is_multiple_of(groups)
        {
            candle_core::bail!("CSCL: window {k} must be odd, attn_channels {attn_channels} even and a multiple of groups {groups}");
        }
        let cfg = candle_nn::Conv2dConfig::default();
        let randn = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        Ok(Self {
            query: candle_nn::conv2d_no_bias(
                in_channels,
                attn_channels,
                1,
                cfg,
                vb.pp("query_conv"),
            )?,
            key: candle_nn::conv2d_no_bias(in_channels, attn_channels, 1, cfg, vb.pp("key_conv"))?,
            rel_h: vb.get_with_hints((attn_channels / 2, 1, 1, k, 1), "rel_h", randn)?,
            rel_w: vb.get_with_hints((attn_channels / 2, 1, 1, 1, k), "rel_w", randn)?,
            attn: attn_channels,
            groups,
            k,
        })
    }

    /// Similarities `(B, H, W, k, k)` of feature maps `(B, C, H, W)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        let (a, g, k) = (self.attn, self.groups, self.k);
        let p = k / 2;
        let q = self.query.forward(x)?; // (B, A, H, W)
        let kk = self
            .key
            .forward(x)?
            .pad_with_zeros(2, p, p)?
            .pad_with_zeros(3, p, p)?;
        // unfold: (B, A, H, W, k·k), u-major
        let mut shifts = Vec::with_capacity(k * k);
        for u in 0..k {
            for v in 0..k {
                shifts.push(kk.narrow(2, u, h)?.narrow(3, v, w)?);
            }
        }
        let unfolded = Tensor::stack(&shifts, 4)?;
        // relative positions: rows by u for the first half of the channels, by v for the second
        let rh = self
            .rel_h
            .reshape((a / 2, k, 1))?
            .broadcast_as((a / 2, k, k))?;
        let rw = self
            .rel_w
            .reshape((a / 2, 1, k))?
            .broadcast_as((a / 2, k, k))?;
        let rel = Tensor::cat(&[&rh, &rw], 0)?.reshape((1, a, 1, 1, k * k))?;
        let keys = unfolded.broadcast_add(&rel)?; // (B, A, H, W, kk)
        let keys = keys
            .reshape((b, g, a / g, h, w, k * k))?
            .permute((0, 1, 3, 4, 2, 5))?; // (B, g, H, W, A/g, kk)
        let qs = q.reshape((b, g, a / g, h, w))?.permute((0, 1, 3, 4, 2))?; // (B, g, H, W, A/g)
        let qn = sits_models::nn::l2_normalize(&qs)?;
        let kn = keys.broadcast_div(
            &keys
                .sqr()?
                .sum_keepdim(4)?
                .sqrt()?
                .clamp(1e-12, f64::INFINITY)?,
        )?;
        let sim = kn.broadcast_mul(&qn.unsqueeze(5)?)?.sum(4)?; // (B, g, H, W, kk)
        sim.sum(1)?.reshape((b, h, w, k, k))
    }
}

/// Targets of CSCL from label maps `(B, H, W)` (`i64`): `same` is 1 where the
/// neighbour at window offset `(u, v)` has the centre's label, `valid` is 1 where
/// the neighbour lies inside the image and neither it nor the centre carries the
/// `ignore` label. Both `(B, H, W, k, k)` `f32`.
pub fn cscl_targets(labels: &Tensor, k: usize, ignore: Option<i64>) -> Result<(Tensor, Tensor)> {
    let (b, h, w) = labels.dims3()?;
    let l: Vec<i64> = labels.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let p = (k / 2) as i64;
    let mut same = vec![0f32; b * h * w * k * k];
    let mut valid = vec![0f32; b * h * w * k * k];
    for bi in 0..b {
        for i in 0..h {
            for j in 0..w {
                let c = l[(bi * h + i) * w + j];
                for u in 0..k {
                    for v in 0..k {
                        let (ni, nj) = (i as i64 + u as i64 - p, j as i64 + v as i64 - p);
                        let o = (((bi * h + i) * w + j) * k + u) * k + v;
                        if ni < 0 || nj < 0 || ni >= h as i64 || nj >= w as i64 {
                            continue;
                        }
                        let n = l[(bi * h + ni as usize) * w + nj as usize];
                        if Some(c) == ignore || Some(n) == ignore {
                            continue;
                        }
                        valid[o] = 1.0;
                        same[o] = if n == c { 1.0 } else { 0.0 };
                    }
                }
            }
        }
    }
    let dev = labels.device();
    Ok((
        Tensor::from_vec(same, (b, h, w, k, k), dev)?,
        Tensor::from_vec(valid, (b, h, w, k, k), dev)?,
    ))
}

/// The CSCL loss of feature maps `(B, C, H, W)` against label maps `(B, H, W)`.
pub fn cscl_objective(
    sim: &ContextSelfSimilarity,
    features: &Tensor,
    labels: &Tensor,
    ignore: Option<i64>,
    pos_weight: f64,
) -> Result<Tensor> {
    let s = sim.forward(features)?;
    let (same, valid) = cscl_targets(labels, sim.k, ignore)?;
    cscl_loss(&s, &same, &valid, pos_weight)
}

/// CSCL's linear similarity loss `mean(−pos_weight·y·s + (1 − y)·s)` over the
/// entries where `valid` is 1 (`s` similarities, `y` 1 where the neighbour has the
/// centre's label). DeepSatModels uses `pos_weight = 0.125`.
pub fn cscl_loss(sim: &Tensor, same: &Tensor, valid: &Tensor, pos_weight: f64) -> Result<Tensor> {
    let s = sim.to_dtype(DType::F32)?;
    let y = same.to_dtype(DType::F32)?;
    let v = valid.to_dtype(DType::F32)?.broadcast_as(s.shape())?;
    let count = v.sum_all()?.to_scalar::<f32>()?;
    if count == 0.0 {
        candle_core::bail!("CSCL loss: no valid entry");
    }
    let per = ((y.neg()? * pos_weight)?.mul(&s)? + (1.0 - &y)?.mul(&s)?)?;
    (per * v)?.sum_all()? / count as f64
}

/// CSCL pretraining as an [`Objective`]: the encoder's feature maps `(B, C, H, W)`
/// through a [`ContextSelfSimilarity`], against the label maps `(B, H, W)` of the
/// batch. DeepSatModels trains it with `pos_weight = 0.125` and ignores its
/// background label.
pub struct Cscl<'a> {
    encoder: &'a dyn Encoder,
    similarity: ContextSelfSimilarity,
    /// Label ignored in both the centre and the neighbour.
    pub ignore: Option<i64>,
    /// Weight of the same-label term.
    pub pos_weight: f64,
}

impl<'a> Cscl<'a> {
    /// `encoder` must give feature maps `(B, C, H, W)` with `C` the similarity's
    /// input channels.
    pub fn new(encoder: &'a dyn Encoder, similarity: ContextSelfSimilarity) -> Self {
        Self {
            encoder,
            similarity,
            ignore: None,
            pos_weight: 0.125,
        }
    }
}

impl Objective for Cscl<'_> {
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        _rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let labels = batch
            .labels()
            .ok_or_else(|| candle_core::Error::Msg("CSCL needs label maps in the batch".into()))?;
        let features = self.encoder.encode(batch, step.train)?;
        if features.rank() != 4 {
            candle_core::bail!(
                "CSCL needs feature maps (B, C, H, W) from the encoder, got {:?}",
                features.dims()
            );
        }
        let loss = cscl_objective(
            &self.similarity,
            &features,
            labels,
            self.ignore,
            self.pos_weight,
        )?;
        Ok(ObjectiveOutput {
            loss,
            metrics: Vec::new(),
        })
    }

    fn name(&self) -> &str {
        "cscl"
    }
}
