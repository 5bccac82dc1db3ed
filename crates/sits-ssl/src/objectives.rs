//! Objectives that turn an encoder and a batch into a loss: BERT-style masked
//! reconstruction, SimCLR, DINO, PIMC; frozen-encoder embeddings and the
//! classification loss for fine-tuning.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, RngCore};
use sits_core::{ObjectiveOutput, SitsBatch};
use sits_data::augment::DateMasking;
use sits_models::nn::{linear, Linear};
use sits_models::{PixelTransformer, Ubarn};

use crate::losses::masked_mse;

/// How masked dates are hidden from the encoder.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Corruption {
    /// The embedding of a masked date is replaced by the learnable mask token.
    MaskToken,
    /// SITS-BERT: uniform noise in `±amplitude` added to every band of a masked
    /// date (0.5 on reflectances in the reference).
    Noise {
        /// Half-width of the uniform noise.
        amplitude: f64,
    },
    /// As described for U-BARN: a masked date takes the values of a random
    /// non-padded date of a random sample of the batch.
    Permute,
}

/// BERT-style masked reconstruction: hide whole dates, predict their values from
/// the per-date outputs with a linear decoder (`decoder`), MSE on the masked,
/// valid, non-padded observations only.
pub struct MaskedReconstruction<'a> {
    model: &'a PixelTransformer,
    decoder: Linear,
    /// Which dates to hide.
    pub masking: DateMasking,
    /// How to hide them.
    pub corruption: Corruption,
}

impl<'a> MaskedReconstruction<'a> {
    /// Wraps `model`, building the decoder under `vb` (`decoder`).
    pub fn new(
        model: &'a PixelTransformer,
        vb: VarBuilder,
        masking: DateMasking,
        corruption: Corruption,
    ) -> Result<Self> {
        let cfg = model.config();
        let decoder = linear(cfg.d_model, cfg.in_bands, vb.pp("decoder"))?;
        Ok(Self {
            model,
            decoder,
            masking,
            corruption,
        })
    }

    /// The loss of one batch `(B, T, C)`; masks and corruption draw from `rng`.
    pub fn loss(
        &self,
        batch: &SitsBatch,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> Result<ObjectiveOutput> {
        let x = batch.values();
        let (b, t, _) = x.dims3()?;
        let mask = self.masking.batch_mask(batch, rng)?; // (B, T) u8, valid & non-padded only
        let (input, token_mask) = match self.corruption {
            Corruption::MaskToken => (x.clone(), Some(mask.clone())),
            other => (corrupt(x, &mask, batch.pad_mask(), other, rng)?, None),
        };
        let valid = match batch.valid() {
            Some(v) => v.to_dtype(DType::U8)?,
            None => Tensor::ones((b, t), DType::U8, x.device())?,
        };
        let out = self.model.forward(
            &input,
            &self.model.positions(batch)?,
            Some(batch.pad_mask()),
            token_mask.as_ref(),
            train,
        )?;
        let pred = self.decoder.forward(&out.per_date)?;
        let counted = (mask.to_dtype(DType::F32)? * valid.to_dtype(DType::F32)?)?.unsqueeze(2)?;
        let frac = (counted.sum_all()?.to_scalar::<f32>()? as f64) / (b * t) as f64;
        let loss = masked_mse(&pred, &x.detach(), &counted)?;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("masked_fraction".into(), frac)],
        })
    }
}

/// Hides the dates selected by `mask` `(B, T)` in `x` `(B, T, ...)` (any trailing
/// shape: `(C)` for pixel series, `(C, H, W)` for cubes) as `corruption` says;
/// the other dates are returned unchanged. [`Corruption::MaskToken`] acts inside a
/// model, not on its input, so it is refused here.
pub fn corrupt(
    x: &Tensor,
    mask: &Tensor,
    pad: &Tensor,
    corruption: Corruption,
    rng: &mut dyn RngCore,
) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let dims = x.dims().to_vec();
    if dims.len() < 3 || dims[0] != b || dims[1] != t {
        candle_core::bail!(
            "corrupt: values {dims:?} must be (B, T, ...) with (B, T) = ({b}, {t}) as the mask"
        );
    }
    let inner: usize = dims[2..].iter().product();
    let mut mshape = vec![b, t];
    mshape.extend(std::iter::repeat_n(1, dims.len() - 2));
    let m = mask
        .to_dtype(DType::U8)?
        .reshape(mshape)?
        .broadcast_as(x.shape())?;
    let replaced = match corruption {
        Corruption::MaskToken => candle_core::bail!(
            "corrupt: the mask token replaces date embeddings inside the model; use Noise or Permute on inputs"
        ),
        Corruption::Noise { amplitude } => {
            let noise: Vec<f32> = (0..b * t * inner)
                .map(|_| rng.random_range(-amplitude..=amplitude) as f32)
                .collect();
            (x + Tensor::from_vec(noise, x.shape(), x.device())?)?
        }
        Corruption::Permute => {
            let pad: Vec<Vec<u8>> = pad.to_dtype(DType::U8)?.to_vec2()?;
            let real: Vec<usize> = (0..b * t).filter(|&k| pad[k / t][k % t] == 0).collect();
            if real.is_empty() {
                candle_core::bail!("corrupt: every date of the batch is padding");
            }
            let src: Vec<u32> = (0..b * t)
                .map(|_| real[rng.random_range(0..real.len())] as u32)
                .collect();
            let idx = Tensor::from_vec(src, b * t, x.device())?;
            x.reshape((b * t, inner))?
                .index_select(&idx, 0)?
                .reshape(x.shape())?
        }
    };
    m.where_cond(&replaced, x)
}

/// Masked reconstruction for [`Ubarn`], as U-BARN is pretrained: whole dates of a
/// patch are hidden (every pixel of the date, so the U-Net cannot copy a neighbour
/// of the same date) by [`corrupt`], and a linear decoder (`decoder`, `d → C`)
/// predicts the hidden values from the per-date representations. The MSE counts
/// the hidden dates' pixels that are valid (not cloudy) and not padded.
pub struct CubeMaskedReconstruction<'a> {
    model: &'a Ubarn,
    decoder: Linear,
    /// Which dates to hide.
    pub masking: DateMasking,
    /// How to hide them: [`Corruption::Noise`] or [`Corruption::Permute`].
    pub corruption: Corruption,
}

impl<'a> CubeMaskedReconstruction<'a> {
    /// Wraps `model`, building the decoder under `vb` (`decoder`). U-BARN has no
    /// mask token, so [`Corruption::MaskToken`] is refused.
    pub fn new(
        model: &'a Ubarn,
        vb: VarBuilder,
        masking: DateMasking,
        corruption: Corruption,
    ) -> Result<Self> {
        if corruption == Corruption::MaskToken {
            candle_core::bail!(
                "U-BARN masked reconstruction: the model has no mask token; use Corruption::Noise or Corruption::Permute"
            );
        }
        let cfg = model.config();
        let decoder = linear(cfg.d_model, cfg.input_dim, vb.pp("decoder"))?;
        Ok(Self {
            model,
            decoder,
            masking,
            corruption,
        })
    }

    /// Reconstructions `(B, T, C, H, W)` of every date from the per-date
    /// representations of `input`.
    pub fn reconstruct(&self, input: &Tensor, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        let out = self
            .model
            .forward(input, &batch.doy()?, batch.pad_mask(), train)?;
        // (B, T, d, H, W) -> (B, T, H, W, d) -> decoder -> (B, T, C, H, W)
        self.decoder
            .forward(&out.per_date.permute((0, 1, 3, 4, 2))?)?
            .permute((0, 1, 4, 2, 3))
    }

    /// The loss of one cube batch `(B, T, C, H, W)`; masks and corruption draw from
    /// `rng`. Metric `masked_fraction`: share of the (date, pixel) entries counted.
    pub fn loss(
        &self,
        batch: &SitsBatch,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> Result<ObjectiveOutput> {
        let x = batch.values();
        let (b, t, _, h, w) = x.dims5().map_err(|_| {
            candle_core::Error::Msg(format!(
                "U-BARN masked reconstruction needs a cube batch (B, T, C, H, W), got {:?}",
                x.dims()
            ))
        })?;
        let mask = self.masking.batch_mask(batch, rng)?; // (B, T)
        let input = corrupt(x, &mask, batch.pad_mask(), self.corruption, rng)?;
        let pred = self.reconstruct(&input, batch, train)?;
        let valid = match batch.valid() {
            Some(v) if v.rank() == 4 => v.to_dtype(DType::F32)?,
            Some(v) => v
                .to_dtype(DType::F32)?
                .reshape((b, t, 1, 1))?
                .broadcast_as((b, t, h, w))?
                .contiguous()?,
            None => Tensor::ones((b, t, h, w), DType::F32, x.device())?,
        };
        let counted = valid
            .broadcast_mul(&mask.to_dtype(DType::F32)?.reshape((b, t, 1, 1))?)?
            .unsqueeze(2)?; // (B, T, 1, H, W)
        let frac = counted.sum_all()?.to_scalar::<f32>()? as f64 / (b * t * h * w) as f64;
        let loss = masked_mse(&pred, &x.detach(), &counted)?;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("masked_fraction".into(), frac)],
        })
    }
}

/// Random views of a collated pixel-series batch, made on the tensors so that one
/// loader feeds any number of views: each sample keeps a random window of its real
/// dates (a fraction uniform in `[crop_min, crop_max]`), drops dates of it with
/// probability `drop` (at least one stays), and gets Gaussian noise of standard
/// deviation `noise`. Dropped dates become padding, so attention and pooling ignore
/// them; padded dates never come back.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesViews {
    /// Smallest kept window, as a fraction of the real dates.
    pub crop_min: f64,
    /// Largest kept window, as a fraction of the real dates.
    pub crop_max: f64,
    /// Probability of dropping a date of the window.
    pub drop: f64,
    /// Standard deviation of the additive noise.
    pub noise: f64,
}

impl Default for SeriesViews {
    fn default() -> Self {
        Self {
            crop_min: 0.5,
            crop_max: 1.0,
            drop: 0.2,
            noise: 0.05,
        }
    }
}

impl SeriesViews {
    /// One view of `batch` (`(B, T, C)` values).
    pub fn view(&self, batch: &SitsBatch, rng: &mut dyn RngCore) -> Result<SitsBatch> {
        let x = batch.values();
        let (b, t, c) = x.dims3()?;
        let pad: Vec<Vec<u8>> = batch.pad_mask().to_vec2()?;
        let mut new_pad = vec![1u8; b * t];
        for (i, row) in pad.iter().enumerate() {
            let real: Vec<usize> = (0..t).filter(|&j| row[j] == 0).collect();
            if real.is_empty() {
                continue;
            }
            let n = real.len();
            let hi = self.crop_max.clamp(0.0, 1.0);
            let lo = self.crop_min.clamp(0.0, hi);
            let frac = rng.random_range(lo..=hi);
            let len = ((frac * n as f64).ceil() as usize).clamp(1, n);
            let start = rng.random_range(0..=n - len);
            let window = &real[start..start + len];
            let mut kept: Vec<usize> = window
                .iter()
                .copied()
                .filter(|_| rng.random::<f64>() >= self.drop)
                .collect();
            if kept.is_empty() {
                kept.push(window[rng.random_range(0..window.len())]);
            }
            for j in kept {
                new_pad[i * t + j] = 0;
            }
        }
        let noise: Vec<f32> = (0..b * t * c)
            .map(|_| (self.noise * sits_data::augment::standard_normal(rng)) as f32)
            .collect();
        let values = (x + Tensor::from_vec(noise, (b, t, c), x.device())?)?;
        let pad = Tensor::from_vec(new_pad, (b, t), x.device())?;
        let mut out = SitsBatch::new(
            values,
            batch.days().clone(),
            batch.doy()?,
            pad,
            batch.reference(),
        )?;
        if let Some(v) = batch.valid() {
            out = out.with_valid(v.clone())?;
        }
        Ok(out)
    }
}

/// Random views of a collated cube batch `(B, T, C, H, W)`: a random square-ish
/// window covering a fraction of the patch area uniform in `scale`, resized
/// bilinearly to `size`, flipped horizontally and/or vertically with probability
/// 1/2 each, dates dropped into padding with probability `drop` (one always
/// stays), Gaussian noise of standard deviation `noise`. The validity mask is not
/// carried over (the view's values are interpolated).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CubeViews {
    /// Range of the kept area fraction, within `(0, 1]`.
    pub scale: (f64, f64),
    /// Output `(height, width)`.
    pub size: (usize, usize),
    /// Probability of dropping a date.
    pub drop: f64,
    /// Standard deviation of the additive noise.
    pub noise: f64,
}

impl CubeViews {
    /// One view of `batch`.
    pub fn view(&self, batch: &SitsBatch, rng: &mut dyn RngCore) -> Result<SitsBatch> {
        let x = batch.values();
        let (b, t, c, h, w) = x.dims5()?;
        let (lo, hi) = self.scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            candle_core::bail!(
                "CubeViews: scale {:?} must be within (0, 1] and ordered",
                self.scale
            );
        }
        let pad: Vec<Vec<u8>> = batch.pad_mask().to_vec2()?;
        let mut items = Vec::with_capacity(b);
        let mut new_pad = vec![1u8; b * t];
        for (i, row) in pad.iter().enumerate() {
            let side = rng.random_range(lo..=hi).sqrt();
            let wh = ((h as f64 * side).round() as usize).clamp(1, h);
            let ww = ((w as f64 * side).round() as usize).clamp(1, w);
            let (r0, c0) = (rng.random_range(0..=h - wh), rng.random_range(0..=w - ww));
            let crop = x.get(i)?.narrow(2, r0, wh)?.narrow(3, c0, ww)?; // (T, C, wh, ww)
            let mut v = sits_models::nn::resize_bilinear(&crop, self.size.0, self.size.1)?;
            for dim in [2usize, 3] {
                if rng.random::<f64>() < 0.5 {
                    let n = v.dim(dim)?;
                    let rev =
                        Tensor::from_vec((0..n as u32).rev().collect::<Vec<_>>(), n, v.device())?;
                    v = v.index_select(&rev, dim)?;
                }
            }
            items.push(v);
            let real: Vec<usize> = (0..t).filter(|&j| row[j] == 0).collect();
            let mut kept: Vec<usize> = real
                .iter()
                .copied()
                .filter(|_| rng.random::<f64>() >= self.drop)
                .collect();
            if kept.is_empty() && !real.is_empty() {
                kept.push(real[rng.random_range(0..real.len())]);
            }
            for j in kept {
                new_pad[i * t + j] = 0;
            }
        }
        let values = Tensor::stack(&items, 0)?;
        let n = b * t * c * self.size.0 * self.size.1;
        let noise: Vec<f32> = (0..n)
            .map(|_| (self.noise * sits_data::augment::standard_normal(rng)) as f32)
            .collect();
        let shape = values.shape().clone();
        let values = (values + Tensor::from_vec(noise, shape, x.device())?)?;
        let pad = Tensor::from_vec(new_pad, (b, t), x.device())?;
        SitsBatch::new(
            values,
            batch.days().clone(),
            batch.doy()?,
            pad,
            batch.reference(),
        )
    }
}

/// Views of either kind, for [`SimClr`] and [`Dino`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Views {
    /// Pixel series `(B, T, C)`.
    Series(SeriesViews),
    /// Cube patches `(B, T, C, H, W)`.
    Cube(CubeViews),
}

impl Views {
    /// One view of `batch`.
    pub fn view(&self, batch: &SitsBatch, rng: &mut dyn RngCore) -> Result<SitsBatch> {
        match self {
            Views::Series(v) => v.view(batch, rng),
            Views::Cube(v) => v.view(batch, rng),
        }
    }
}

impl From<SeriesViews> for Views {
    fn from(v: SeriesViews) -> Self {
        Views::Series(v)
    }
}

impl From<CubeViews> for Views {
    fn from(v: CubeViews) -> Self {
        Views::Cube(v)
    }
}

/// An encoder's representation as vectors: `(B, d, H, W)` maps are averaged over
/// space, `(B, d)` is kept.
pub fn pooled(z: Tensor) -> Result<Tensor> {
    if z.rank() == 4 {
        z.mean(3)?.mean(2)
    } else {
        Ok(z)
    }
}

/// SimCLR: two [`SeriesViews`] of each series, any [`sits_core::Encoder`], a
/// projection head, NT-Xent with an explicit reduction.
pub struct SimClr<'a> {
    encoder: &'a dyn sits_core::Encoder,
    head: crate::heads::ProjectionHead,
    /// How views are made.
    pub views: Views,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// NT-Xent reduction.
    pub reduction: crate::losses::NtXentReduction,
}

impl<'a> SimClr<'a> {
    /// Wraps `encoder`; the projection head (`Linear-ReLU-Linear` to `proj_dim`) is
    /// built under `vb` (`projector`).
    pub fn new(
        encoder: &'a dyn sits_core::Encoder,
        vb: VarBuilder,
        proj_dim: usize,
        views: impl Into<Views>,
        temperature: f64,
    ) -> Result<Self> {
        let d = encoder.output_dim();
        let head = crate::heads::ProjectionHead::new(vb.pp("projector"), d, d, proj_dim, 2)?;
        Ok(Self {
            encoder,
            head,
            views: views.into(),
            temperature,
            reduction: crate::losses::NtXentReduction::MeanOverAnchors,
        })
    }

    /// The loss of one batch.
    pub fn loss(
        &self,
        batch: &SitsBatch,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> Result<ObjectiveOutput> {
        let (v1, v2) = (self.views.view(batch, rng)?, self.views.view(batch, rng)?);
        let z1 = self
            .head
            .forward(&pooled(self.encoder.encode(&v1, train)?)?)?;
        let z2 = self
            .head
            .forward(&pooled(self.encoder.encode(&v2, train)?)?)?;
        let loss = crate::losses::nt_xent(&z1, &z2, self.temperature, self.reduction)?;
        // positive-pair cosine similarity, a health metric (1 = views collapsed together)
        let cos = (crate::losses::l2_normalize(&z1)? * crate::losses::l2_normalize(&z2)?)?
            .sum(1)?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("positive_cosine".into(), cos)],
        })
    }
}

/// DINO for any encoder: a student and an EMA teacher (two models built the same
/// way), DINO heads on both, multi-crop views (by default of series: two long date
/// windows seen by both, `n_local` short windows seen by the student; set
/// `global`/`local` to [`CubeViews`] for spatial crops of cube patches), the DINO loss with
/// centering and the teacher-temperature schedule, and the cosine teacher momentum.
///
/// The teacher is moved towards the student at the start of each call, from the
/// student weights the previous optimiser step produced: the same teacher weights
/// at every teacher forward pass as the reference's update after the step.
pub struct Dino<'a> {
    student: &'a dyn sits_core::Encoder,
    teacher: &'a dyn sits_core::Encoder,
    student_head: crate::heads::DinoHead,
    teacher_head: crate::heads::DinoHead,
    student_vars: Vec<candle_core::Var>,
    teacher_vars: Vec<candle_core::Var>,
    loss: crate::losses::DinoLoss,
    /// Views seen by teacher and student.
    pub global: Views,
    /// Views seen by the student only.
    pub local: Views,
    /// Number of local views.
    pub n_local: usize,
    /// Teacher temperature per epoch: (warm-up start, final, warm-up epochs).
    pub teacher_temp: (f64, f64, usize),
    /// Base EMA momentum (0.996 in the reference).
    pub momentum: f64,
    /// Total optimiser steps of the run (for the momentum schedule).
    pub total_steps: usize,
    calls: usize,
}

impl<'a> Dino<'a> {
    /// `student` and `teacher` must be built identically, the student's variables
    /// in `student_vm` under `student_prefix`, the teacher's in `teacher_vm`; the
    /// heads are added under `head` in both maps, and the teacher starts as a copy of
    /// the student.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        student: &'a dyn sits_core::Encoder,
        teacher: &'a dyn sits_core::Encoder,
        student_vm: &candle_nn::VarMap,
        teacher_vm: &candle_nn::VarMap,
        out_dim: usize,
        device: &candle_core::Device,
        total_steps: usize,
    ) -> Result<Self> {
        let d = student.output_dim();
        let svb = VarBuilder::from_varmap(student_vm, DType::F32, device);
        let tvb = VarBuilder::from_varmap(teacher_vm, DType::F32, device);
        let hidden = (4 * d).max(64);
        let student_head =
            crate::heads::DinoHead::new(svb.pp("head"), d, out_dim, 3, hidden, d.max(16), true)?;
        let teacher_head =
            crate::heads::DinoHead::new(tvb.pp("head"), d, out_dim, 3, hidden, d.max(16), true)?;
        let sorted = |vm: &candle_nn::VarMap| -> Result<Vec<(String, candle_core::Var)>> {
            let data = vm
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?;
            let mut v: Vec<(String, candle_core::Var)> =
                data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(v)
        };
        let (s, t) = (sorted(student_vm)?, sorted(teacher_vm)?);
        if s.len() != t.len()
            || s.iter()
                .zip(&t)
                .any(|(a, b)| a.0 != b.0 || a.1.shape() != b.1.shape())
        {
            candle_core::bail!(
                "DINO: student and teacher variables differ (build both models the same way)"
            );
        }
        let student_vars: Vec<candle_core::Var> = s.into_iter().map(|(_, v)| v).collect();
        let teacher_vars: Vec<candle_core::Var> = t.into_iter().map(|(_, v)| v).collect();
        crate::optim::ema_update(&teacher_vars, &student_vars, 0.0)?;
        Ok(Self {
            student,
            teacher,
            student_head,
            teacher_head,
            student_vars,
            teacher_vars,
            loss: crate::losses::DinoLoss::new(out_dim, device)?,
            global: Views::Series(SeriesViews {
                crop_min: 0.6,
                crop_max: 1.0,
                drop: 0.1,
                noise: 0.02,
            }),
            local: Views::Series(SeriesViews {
                crop_min: 0.2,
                crop_max: 0.4,
                drop: 0.1,
                noise: 0.02,
            }),
            n_local: 4,
            teacher_temp: (0.04, 0.04, 0),
            momentum: 0.996,
            total_steps,
            calls: 0,
        })
    }

    /// The loss of one batch at `epoch`, with teacher entropy and KL as metrics.
    pub fn loss(
        &mut self,
        batch: &SitsBatch,
        epoch: usize,
        rng: &mut dyn RngCore,
        train: bool,
    ) -> Result<ObjectiveOutput> {
        if self.calls > 0 {
            let m =
                crate::losses::teacher_momentum(self.calls - 1, self.total_steps, self.momentum);
            crate::optim::ema_update(&self.teacher_vars, &self.student_vars, m)?;
        }
        self.calls += 1;
        let g: Vec<SitsBatch> = (0..2)
            .map(|_| self.global.view(batch, rng))
            .collect::<Result<_>>()?;
        let l: Vec<SitsBatch> = (0..self.n_local)
            .map(|_| self.local.view(batch, rng))
            .collect::<Result<_>>()?;
        let mut s_out = Vec::with_capacity(2 + self.n_local);
        for v in g.iter().chain(l.iter()) {
            s_out.push(
                self.student_head
                    .forward(&pooled(self.student.encode(v, train)?)?)?,
            );
        }
        let mut t_out = Vec::with_capacity(2);
        for v in &g {
            t_out.push(
                self.teacher_head
                    .forward(&pooled(self.teacher.encode(v, false)?)?)?
                    .detach(),
            );
        }
        let (w0, w1, we) = self.teacher_temp;
        let temp = crate::losses::teacher_temperature(epoch, w0, w1, we);
        let (loss, health) =
            self.loss
                .forward(&Tensor::cat(&s_out, 0)?, &Tensor::cat(&t_out, 0)?, temp)?;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![
                ("teacher_entropy".into(), health.teacher_entropy),
                ("kl".into(), health.kl),
            ],
        })
    }

    /// The teacher's variables (sorted by name), e.g. to save the teacher.
    pub fn teacher_vars(&self) -> &[candle_core::Var] {
        &self.teacher_vars
    }
}

/// PIMC-style multimodal contrastive learning: the recurrence-plot image of each
/// pixel's NDVI/EVI/SAVI series (one unthresholded plot per index, as channels)
/// through an image encoder, the pixel's series through a series encoder, each
/// projected to a common space, and a symmetric InfoNCE whose positives are the
/// same pixel. The temperature is learnable (stored as `log_tau`) or fixed.
///
/// The plots are computed on the tensors of the batch (`|x_i − x_j|` per index);
/// dates that are padded or whose index is undefined are set to 0 in the plot.
pub struct Pimc<'a> {
    series: &'a dyn sits_core::Encoder,
    images: &'a sits_models::SmallResNet,
    proj_series: Linear,
    proj_images: Linear,
    log_tau: Tensor,
    bands: Vec<String>,
    radiometry: sits_data::Radiometry,
}

impl<'a> Pimc<'a> {
    /// `bands` names the batch's bands (to find red, NIR, blue); the projections
    /// (`proj_series`, `proj_images`) and `log_tau` are built under `vb`. With
    /// `learn_tau` false the temperature stays at `tau`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        series: &'a dyn sits_core::Encoder,
        images: &'a sits_models::SmallResNet,
        vb: VarBuilder,
        dim: usize,
        bands: Vec<String>,
        radiometry: sits_data::Radiometry,
        tau: f64,
        learn_tau: bool,
    ) -> Result<Self> {
        let proj_series = linear(series.output_dim(), dim, vb.pp("proj_series"))?;
        let proj_images = linear(images.output_dim(), dim, vb.pp("proj_images"))?;
        let log_tau = if learn_tau {
            vb.get_with_hints((), "log_tau", candle_nn::Init::Const(tau.ln()))?
        } else {
            Tensor::new(tau.ln() as f32, vb.device())?
        };
        Ok(Self {
            series,
            images,
            proj_series,
            proj_images,
            log_tau,
            bands,
            radiometry,
        })
    }

    /// Recurrence images `(B, 3, T, T)` of NDVI, EVI and SAVI of a pixel batch.
    pub fn recurrence_images(&self, batch: &SitsBatch) -> Result<Tensor> {
        let (idx, valid) = sits_repr::indices::tensor_indices(
            batch.values(),
            &self.bands,
            2,
            self.radiometry,
            &sits_repr::SpectralIndex::pimc(),
        )
        .map_err(candle_core::Error::wrap)?;
        let keep = (valid.to_dtype(DType::F32)?
            * (1.0 - batch.pad_mask().to_dtype(DType::F32)?)?.unsqueeze(2)?)?; // (B, T, 1)
        let idx = keep.broadcast_mul(&idx.eq(&idx)?.where_cond(&idx, &idx.zeros_like()?)?)?; // NaN -> 0, masked -> 0
        let x = idx.permute((0, 2, 1))?.contiguous()?; // (B, 3, T)
        let rp = x.unsqueeze(3)?.broadcast_sub(&x.unsqueeze(2)?)?.abs()?; // (B, 3, T, T)
        let k = keep.squeeze(2)?; // (B, T)
        let pair = k
            .unsqueeze(2)?
            .broadcast_mul(&k.unsqueeze(1)?)?
            .unsqueeze(1)?; // (B, 1, T, T)
        rp.broadcast_mul(&pair)
    }

    /// The loss of one batch, with the current temperature as a metric.
    pub fn loss(&self, batch: &SitsBatch, train: bool) -> Result<ObjectiveOutput> {
        let zi = self.proj_images.forward(
            &self
                .images
                .forward(&self.recurrence_images(batch)?, train)?,
        )?;
        let zs = self
            .proj_series
            .forward(&self.series.encode(batch, train)?)?;
        let tau = self.log_tau.exp()?;
        let loss = crate::losses::symmetric_info_nce(&zi, &zs, &tau)?;
        let t = tau.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("temperature".into(), t)],
        })
    }
}

/// How a [`PixelTransformer`]'s per-date outputs `(B, T, d)` become one vector per
/// series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pooling {
    /// The mean over non-padded dates: `d` values (the model's own `pooled`).
    Mean,
    /// The per-date outputs concatenated in date order: `dates * d` values, padded
    /// dates zeroed. Keeps the timing of the phenology, which a mean washes out;
    /// needs series of exactly `dates` dates (e.g. one agricultural year of
    /// 16-day composites).
    Flatten {
        /// The number of dates every batch must have.
        dates: usize,
    },
}

/// A [`PixelTransformer`] with a [`Pooling`], as an [`sits_core::Encoder`] (for
/// [`embed`], probes and [`classification_loss`]).
#[derive(Debug, Clone, Copy)]
pub struct PooledPixelEncoder<'a> {
    model: &'a PixelTransformer,
    pooling: Pooling,
}

impl<'a> PooledPixelEncoder<'a> {
    /// Wraps `model`.
    pub fn new(model: &'a PixelTransformer, pooling: Pooling) -> Self {
        Self { model, pooling }
    }
}

impl sits_core::Encoder for PooledPixelEncoder<'_> {
    fn encode(&self, batch: &SitsBatch, train: bool) -> Result<Tensor> {
        let out = self.model.encode_dates(batch, None, train)?;
        match self.pooling {
            Pooling::Mean => Ok(out.pooled),
            Pooling::Flatten { dates } => {
                let (b, t, _) = out.per_date.dims3()?;
                if t != dates {
                    candle_core::bail!(
                        "flatten pooling expects {dates} dates per series, the batch has {t} \
                         (B = {b}); resample or crop the series to a common length first"
                    );
                }
                let keep = (1.0 - batch.pad_mask().to_dtype(out.per_date.dtype())?)?;
                out.per_date
                    .broadcast_mul(&keep.unsqueeze(2)?)?
                    .flatten_from(1)
            }
        }
    }

    fn output_dim(&self) -> usize {
        let d = self.model.config().d_model;
        match self.pooling {
            Pooling::Mean => d,
            Pooling::Flatten { dates } => dates * d,
        }
    }
}

/// Representations `(N, d)` of every sample of `loader` (use a loader without
/// shuffling to keep the source order) by a frozen encoder, batch by batch: memory
/// holds one batch of inputs plus the `N × d` output.
pub fn embed(encoder: &dyn sits_core::Encoder, loader: &sits_data::Loader) -> Result<Tensor> {
    let mut parts = Vec::with_capacity(loader.num_batches());
    for batch in loader.epoch(0) {
        let batch = batch.map_err(candle_core::Error::wrap)?;
        parts.push(encoder.encode(&batch, false)?.detach());
    }
    if parts.is_empty() {
        candle_core::bail!("embed: the loader yields no batch");
    }
    Tensor::cat(&parts, 0)
}

/// Supervised classification for fine-tuning: `head` on the encoder's
/// representation, cross-entropy against `batch.labels()` (entries labelled
/// negative are ignored), accuracy as a metric. Pixel-series batches give logits
/// `(B, K)` against labels `(B)`; cube batches with label maps give logits
/// `(B, K, H, W)` against `(B, H, W)`, i.e. semantic segmentation (see
/// [`crate::losses::cross_entropy_ignore`]). Train the encoder's and the head's
/// variables together in a [`crate::train::Trainer`] (or freeze the encoder with
/// `frozen_prefixes` for a trained linear head).
pub fn classification_loss(
    encoder: &dyn sits_core::Encoder,
    head: &dyn Fn(&Tensor) -> Result<Tensor>,
    batch: &SitsBatch,
    train: bool,
) -> Result<ObjectiveOutput> {
    let labels = batch
        .labels()
        .ok_or_else(|| candle_core::Error::Msg("classification needs a labelled batch".into()))?;
    let logits = head(&encoder.encode(batch, train)?)?; // (B, K) or (B, K, H, W)
    let (loss, accuracy) = crate::losses::cross_entropy_ignore(&logits, labels)?;
    Ok(ObjectiveOutput {
        loss,
        metrics: vec![("accuracy".into(), accuracy)],
    })
}
