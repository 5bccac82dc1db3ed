//! Aligned representations of irregular series (ALISE: Dumeur, Valero and Inglada,
//! 2024, arXiv 2407.08448).
//!
//! An encoder of dates (the pixel transformer, U-BARN) gives one vector per
//! *observed* date, so two series seen on different calendars give representations
//! of different lengths whose positions mean different days. ALISE's temporal
//! projection fixes that: `n_q` learned queries cross-attend the per-date vectors
//! of each pixel and return `n_q` vectors of the encoder's width, whatever the
//! number of dates and their days. The result is comparable across regions, years
//! and revisit patterns, which is what clustering and change detection over large
//! areas need.
//!
//! - [`TemporalProjector`]: the learned-query cross-attention. Queries are free
//!   parameters `(heads, n_q, d_k)`; keys are a bias-free linear map of the per-date
//!   vectors to `heads × d_k`; values are the per-date vectors themselves, split into
//!   `heads` channel groups (as in L-TAE), so each head's output is a convex
//!   combination of its group's per-date vectors. Output `(N, n_q, d)`.
//! - [`DateQueryDecoder`]: the shallow cross-attention decoder of the pretext task.
//!   A day-of-year sinusoid (period 1000, `d_query` values) of each date to
//!   reconstruct is projected to the queries; keys are a bias-free projection of the
//!   `n_q` aligned vectors, values those vectors split per head; a last linear layer
//!   maps the attended vector to the bands.
//!
//! Sizes of the public configuration of the follow-up work
//! (`Evoland-Land-Monitoring-Evolution/malice`, `config/module/alise_pretraining.yaml`):
//! 10 queries, 2 heads, key size 16; decoder queries of 16 values with period 1000.
//! The objective that trains them is `sits_ssl::alise`.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::nn::{linear, linear_no_bias, Linear};
use crate::transformer::sinusoid;

/// A large negative score for masked keys: finite so that a row whose keys are all
/// masked gives uniform weights, never NaN.
const MASKED: f64 = -1e9;

/// Sizes of the temporal projection and of the decoder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AliseConfig {
    /// Width `d` of the per-date vectors (the encoder's output).
    pub d_model: usize,
    /// Learned queries `n_q`: the representation is `n_q × d_model` values.
    pub n_queries: usize,
    /// Attention heads of the projection and of the decoder (`d_model` must be a
    /// multiple).
    pub heads: usize,
    /// Key size per head.
    pub d_k: usize,
    /// Size of the date encoding that queries the decoder.
    pub d_query: usize,
    /// Period of the decoder's day-of-year sinusoid.
    pub period: f32,
}

impl AliseConfig {
    /// The public configuration's sizes for `d_model`-wide per-date vectors: 10
    /// queries, 2 heads, key size 16, decoder queries of 16 values, period 1000.
    pub fn published(d_model: usize) -> Self {
        Self {
            d_model,
            n_queries: 10,
            heads: 2,
            d_k: 16,
            d_query: 16,
            period: 1000.0,
        }
    }

    /// Size of a flattened representation: `n_queries × d_model`.
    pub fn repr_dim(&self) -> usize {
        self.n_queries * self.d_model
    }

    fn check(&self) -> Result<()> {
        if self.d_model == 0 || self.n_queries == 0 || self.d_k == 0 || self.d_query == 0 {
            candle_core::bail!("ALISE config: every size must be at least 1, got {self:?}");
        }
        if self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            candle_core::bail!(
                "ALISE config: d_model {} is not a multiple of {} heads",
                self.d_model,
                self.heads
            );
        }
        Ok(())
    }
}

/// `(N, L, heads·k)` to `(N, heads, L, k)`.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (n, l, hk) = x.dims3()?;
    x.reshape((n, l, heads, hk / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// `(N, heads, L, k)` to `(N, L, heads·k)`.
fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (n, h, l, k) = x.dims4()?;
    x.transpose(1, 2)?.contiguous()?.reshape((n, l, h * k))
}

/// Softmax attention of queries `(N, H, Lq, k)` over keys `(N, H, Lk, k)` and values
/// `(N, H, Lk, v)`, optional key mask `(N, Lk)` (`u8`, 1 = ignore); returns the
/// outputs `(N, H, Lq, v)` and the weights `(N, H, Lq, Lk)`.
fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_pad: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let dk = q.dim(3)? as f64;
    let mut scores = (q.matmul(&k.transpose(2, 3)?.contiguous()?)? / dk.sqrt())?;
    if let Some(p) = key_pad {
        let (n, lk) = p.dims2()?;
        let bias = (p.to_dtype(scores.dtype())? * MASKED)?.reshape((n, 1, 1, lk))?;
        scores = scores.broadcast_add(&bias)?;
    }
    let w = crate::nn::softmax_last(&scores)?;
    Ok((w.matmul(v)?, w))
}

/// ALISE's temporal projection: `n_q` learned queries cross-attending a sequence of
/// per-date vectors (module documentation). Parameters `queries` `(heads, n_q, d_k)`
/// and `key.weight` `(heads·d_k, d)`.
#[derive(Debug, Clone)]
pub struct TemporalProjector {
    cfg: AliseConfig,
    queries: Tensor,
    key: Linear,
}

impl TemporalProjector {
    /// Builds the projection under `vb`.
    pub fn new(vb: VarBuilder, cfg: AliseConfig) -> Result<Self> {
        cfg.check()?;
        let std = (2.0 / cfg.d_model as f64).sqrt();
        let queries = vb.get_with_hints(
            (cfg.heads, cfg.n_queries, cfg.d_k),
            "queries",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        )?;
        let key = linear_no_bias(cfg.d_model, cfg.heads * cfg.d_k, vb.pp("key"))?;
        Ok(Self { cfg, queries, key })
    }

    /// The sizes.
    pub fn config(&self) -> &AliseConfig {
        &self.cfg
    }

    /// Aligned vectors `(N, n_q, d)` of sequences `(N, T, d)`; `key_pad` `(N, T)`
    /// (`u8`, 1 = padded date) hides dates. A sequence must keep at least one date:
    /// with all of them hidden its weights are uniform over padding.
    pub fn forward(&self, seq: &Tensor, key_pad: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.forward_with_weights(seq, key_pad)?.0)
    }

    /// [`Self::forward`] and the attention weights `(N, heads, n_q, T)` (which dates
    /// each query reads).
    pub fn forward_with_weights(
        &self,
        seq: &Tensor,
        key_pad: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (n, t, d) = seq.dims3()?;
        if d != self.cfg.d_model {
            candle_core::bail!(
                "temporal projector expects per-date vectors of {} values, got {:?} (N, T, d)",
                self.cfg.d_model,
                seq.dims()
            );
        }
        if let Some(p) = key_pad {
            if p.dims() != [n, t] {
                candle_core::bail!(
                    "temporal projector: pad mask must be (N, T) = ({n}, {t}), got {:?}",
                    p.dims()
                );
            }
        }
        let h = self.cfg.heads;
        let k = split_heads(&self.key.forward(seq)?, h)?; // (N, H, T, dk)
        let v = split_heads(seq, h)?; // (N, H, T, d/H)
        let q = self
            .queries
            .unsqueeze(0)?
            .broadcast_as((n, h, self.cfg.n_queries, self.cfg.d_k))?
            .contiguous()?;
        let (out, w) = attend(&q, &k, &v, key_pad)?;
        Ok((merge_heads(&out)?, w))
    }
}

/// ALISE's shallow decoder: date encodings query the aligned vectors, a linear layer
/// maps the result to the bands (module documentation). Parameters `query.weight`,
/// `key.weight`, `out.weight`, `out.bias`.
#[derive(Debug, Clone)]
pub struct DateQueryDecoder {
    cfg: AliseConfig,
    query: Linear,
    key: Linear,
    out: Linear,
}

impl DateQueryDecoder {
    /// Builds the decoder under `vb` for `bands` output bands.
    pub fn new(vb: VarBuilder, cfg: AliseConfig, bands: usize) -> Result<Self> {
        cfg.check()?;
        if bands == 0 {
            candle_core::bail!("ALISE decoder: needs at least one output band");
        }
        let hk = cfg.heads * cfg.d_k;
        Ok(Self {
            query: linear_no_bias(cfg.d_query, hk, vb.pp("query"))?,
            key: linear_no_bias(cfg.d_model, hk, vb.pp("key"))?,
            out: linear(cfg.d_model, bands, vb.pp("out"))?,
            cfg,
        })
    }

    /// Reconstructions `(N, T', bands)` at the days of year `doy` `(N, T')` from
    /// aligned vectors `(N, n_q, d)`.
    pub fn forward(&self, aligned: &Tensor, doy: &Tensor) -> Result<Tensor> {
        let (n, nq, d) = aligned.dims3()?;
        if d != self.cfg.d_model || nq != self.cfg.n_queries {
            candle_core::bail!(
                "ALISE decoder expects aligned vectors (N, {}, {}), got {:?}",
                self.cfg.n_queries,
                self.cfg.d_model,
                aligned.dims()
            );
        }
        let (nd, _) = doy.dims2()?;
        if nd != n {
            candle_core::bail!(
                "ALISE decoder: {n} representations but dates for {nd} sequences ({:?})",
                doy.dims()
            );
        }
        let h = self.cfg.heads;
        let pe = sinusoid(doy, self.cfg.d_query, self.cfg.period)?.to_dtype(aligned.dtype())?;
        let q = split_heads(&self.query.forward(&pe)?, h)?; // (N, H, T', dk)
        let k = split_heads(&self.key.forward(aligned)?, h)?; // (N, H, nq, dk)
        let v = split_heads(aligned, h)?; // (N, H, nq, d/H)
        let (att, _) = attend(&q, &k, &v, None)?;
        self.out.forward(&merge_heads(&att)?)
    }
}
