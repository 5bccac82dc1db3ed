//! DINO (Caron et al. 2021, `facebookresearch/dino`, `main_dino.py`): a student and
//! an exponential-moving-average teacher see multi-crop views; the student learns
//! to match the teacher's centred, sharpened distribution over prototypes.
//! The loss, its centring and the schedules follow the reference code and are
//! checked against it.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use rand::RngCore;
use sits_core::{Augmentation, Encoder, Objective, ObjectiveOutput, SitsBatch, Step};
use sits_data::augment::SeriesViews;
use sits_models::nn::{l2_normalize, linear, log_softmax, Linear};
use sits_models::ops::softmax::multi_crop_cross_entropy;

use crate::embed::pooled;

/// DINO's teacher temperature per epoch: linear from `warmup` to `final_temp` over
/// `warmup_epochs`, then constant (code defaults 0.04, 0.04, 0).
pub fn teacher_temperature(
    epoch: usize,
    warmup: f64,
    final_temp: f64,
    warmup_epochs: usize,
) -> f64 {
    if epoch < warmup_epochs && warmup_epochs > 1 {
        warmup + (final_temp - warmup) * epoch as f64 / (warmup_epochs - 1) as f64
    } else {
        final_temp
    }
}

/// What one DINO loss evaluation reports besides the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DinoHealth {
    /// Mean entropy of the teacher distributions (collapse to one dimension → 0;
    /// collapse to uniform → ln K).
    pub teacher_entropy: f64,
    /// Mean KL(teacher ‖ student) over the loss pairs.
    pub kl: f64,
}

/// DINO loss state: the center and the temperatures.
#[derive(Debug, Clone)]
pub struct DinoLoss {
    center: Tensor,
    /// Student temperature (0.1).
    pub student_temp: f64,
    /// Center momentum (0.9).
    pub center_momentum: f64,
    /// Number of global crops (2); the teacher sees only those.
    pub n_global: usize,
}

impl DinoLoss {
    /// A loss over `out_dim` prototypes with the reference defaults.
    pub fn new(out_dim: usize, device: &candle_core::Device) -> Result<Self> {
        Ok(Self {
            center: Tensor::zeros((1, out_dim), DType::F32, device)?,
            student_temp: 0.1,
            center_momentum: 0.9,
            n_global: 2,
        })
    }

    /// The current center `(1, K)`.
    pub fn center(&self) -> &Tensor {
        &self.center
    }

    /// Replaces the center (for resuming from a checkpoint).
    pub fn set_center(&mut self, c: Tensor) -> Result<()> {
        if c.dims() != self.center.dims() {
            candle_core::bail!(
                "DINO center must be {:?}, got {:?}",
                self.center.dims(),
                c.dims()
            );
        }
        self.center = c;
        Ok(())
    }

    /// Loss of student outputs `(ncrops·B, K)` (global crops first) against teacher
    /// outputs `(n_global·B, K)` at teacher temperature `teacher_temp`: the mean over
    /// all (teacher crop `i`, student crop `v ≠ i`) pairs of the batch-mean
    /// cross-entropy. Then moves the center towards the teacher batch mean (the
    /// reference updates it after the loss, from the same teacher outputs).
    pub fn forward(
        &mut self,
        student: &Tensor,
        teacher: &Tensor,
        teacher_temp: f64,
    ) -> Result<(Tensor, DinoHealth)> {
        let (ns, k) = student.dims2()?;
        let (nt, kt) = teacher.dims2()?;
        let g = self.n_global;
        if k != kt || k != self.center.dim(1)? || nt % g != 0 || ns % (nt / g) != 0 {
            candle_core::bail!(
                "DINO loss: student {:?}, teacher {:?} and center {:?} do not fit {g} global crops",
                student.dims(),
                teacher.dims(),
                self.center.dims()
            );
        }
        let b = nt / g;
        let ncrops = ns / b;
        if ncrops < 2 {
            candle_core::bail!("DINO loss needs at least two student crops, got {ncrops}");
        }
        let t = teacher.to_dtype(DType::F32)?.detach();
        let lq = log_softmax(&(t.broadcast_sub(&self.center)? / teacher_temp)?)?;
        let q = lq.exp()?;
        // Sum over pairs (i, v != i) of CE(q_i, log_softmax(student_v / temp)), per
        // sample, in one op that never stores the student's log-softmax
        let pairs = g * ncrops - g.min(ncrops);
        let cross = multi_crop_cross_entropy(
            &student.to_dtype(DType::F32)?,
            &q,
            g,
            1.0 / self.student_temp,
        )?; // (B,)
        let loss = (cross.mean_all()? / pairs as f64)?;
        let entropy = (q.mul(&lq)?.sum(1)?.neg()?)
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        // mean KL over pairs = mean cross-entropy - mean teacher entropy
        let kl = loss.to_scalar::<f32>()? as f64 - entropy;
        // center <- m * center + (1 - m) * mean(teacher)
        let batch_center = t.mean_keepdim(0)?;
        self.center = ((&self.center * self.center_momentum)?
            + (batch_center * (1.0 - self.center_momentum))?)?;
        Ok((
            loss,
            DinoHealth {
                teacher_entropy: entropy,
                kl,
            },
        ))
    }
}

/// EMA momentum of the DINO teacher at `step` of `total`: cosine from `base`
/// (0.996) to 1.
pub fn teacher_momentum(step: usize, total: usize, base: f64) -> f64 {
    if total == 0 {
        return 1.0;
    }
    1.0 - (1.0 - base) * ((std::f64::consts::PI * step as f64 / total as f64).cos() + 1.0) / 2.0
}

/// DINO head (facebookresearch/dino `DINOHead`, without BatchNorm): an MLP
/// `in → hidden → … → bottleneck` with GELU (`mlp.0`, `mlp.2`, `mlp.4` for 3
/// layers), L2 normalisation, then a weight-normalised linear layer without bias to
/// `out_dim` prototypes. The last layer loads from either PyTorch spelling:
/// `last_layer.weight_g`/`weight_v` (`nn.utils.weight_norm`) or
/// `last_layer.parametrizations.weight.original0`/`original1`
/// (`nn.utils.parametrizations.weight_norm`). With `norm_last_layer` the gain is
/// fixed to 1 (detached), as in the reference.
#[derive(Debug, Clone)]
pub struct DinoHead {
    mlp: Vec<Linear>,
    g: Tensor,
    v: Tensor,
    norm_last_layer: bool,
}

impl DinoHead {
    /// `nlayers` MLP layers (≥ 1), `hidden` and `bottleneck` widths, `out_dim`
    /// prototypes.
    pub fn new(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        nlayers: usize,
        hidden: usize,
        bottleneck: usize,
        norm_last_layer: bool,
    ) -> Result<Self> {
        let nlayers = nlayers.max(1);
        let mut mlp = Vec::new();
        for i in 0..nlayers {
            let a = if i == 0 { in_dim } else { hidden };
            let b = if i + 1 == nlayers { bottleneck } else { hidden };
            mlp.push(linear(a, b, vb.pp("mlp").pp(2 * i))?);
        }
        let last = vb.pp("last_layer");
        let param = last.pp("parametrizations").pp("weight");
        let (g, v) = if param.contains_tensor("original0") {
            (
                param.get((out_dim, 1), "original0")?,
                param.get((out_dim, bottleneck), "original1")?,
            )
        } else {
            (
                last.get_with_hints((out_dim, 1), "weight_g", Init::Const(1.0))?,
                last.get_with_hints(
                    (out_dim, bottleneck),
                    "weight_v",
                    candle_nn::init::DEFAULT_KAIMING_UNIFORM,
                )?,
            )
        };
        Ok(Self {
            mlp,
            g,
            v,
            norm_last_layer,
        })
    }

    /// The effective last-layer weight `g · v / ‖v‖` (row-wise).
    pub fn last_weight(&self) -> Result<Tensor> {
        let g = if self.norm_last_layer {
            self.g.detach()
        } else {
            self.g.clone()
        };
        let n = self.v.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
        self.v.broadcast_div(&n)?.broadcast_mul(&g)
    }

    /// Prototype scores `(B, out_dim)` of features `(B, in_dim)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.mlp.iter().enumerate() {
            h = l.forward(&h)?;
            if i + 1 < self.mlp.len() {
                h = sits_models::ops::activation::gelu(&h)?;
            }
        }
        let h = l2_normalize(&h)?;
        h.matmul(&self.last_weight()?.t()?)
    }
}

/// DINO for any encoder: a student and an EMA teacher (two models built the same
/// way), DINO heads on both, multi-crop views (by default of series: two long date
/// windows seen by both, `n_local` short windows seen by the student; set
/// `global`/`local` to [`sits_data::augment::CubeViews`] for spatial crops of cube
/// patches, or to any other [`Augmentation<SitsBatch>`]), the DINO loss with
/// centering and the teacher-temperature schedule, and the cosine teacher momentum.
///
/// The teacher moves towards the student in [`Objective::after_step`], once the
/// optimiser has updated the student, with the momentum of that step, as the
/// reference updates it after each step.
pub struct Dino<'a> {
    student: &'a dyn Encoder,
    teacher: &'a dyn Encoder,
    student_head: DinoHead,
    teacher_head: DinoHead,
    student_vars: Vec<candle_core::Var>,
    teacher_names: Vec<String>,
    teacher_vars: Vec<candle_core::Var>,
    loss: DinoLoss,
    /// Views seen by teacher and student.
    pub global: Box<dyn Augmentation<SitsBatch>>,
    /// Views seen by the student only.
    pub local: Box<dyn Augmentation<SitsBatch>>,
    /// Number of local views.
    pub n_local: usize,
    /// Teacher temperature per epoch: (warm-up start, final, warm-up epochs).
    pub teacher_temp: (f64, f64, usize),
    /// Base EMA momentum (0.996 in the reference).
    pub momentum: f64,
}

impl<'a> Dino<'a> {
    /// `student` and `teacher` must be built identically, the student's variables
    /// in `student_vm` under `student_prefix`, the teacher's in `teacher_vm`; the
    /// heads are added under `head` in both maps, and the teacher starts as a copy of
    /// the student.
    pub fn new(
        student: &'a dyn Encoder,
        teacher: &'a dyn Encoder,
        student_vm: &candle_nn::VarMap,
        teacher_vm: &candle_nn::VarMap,
        out_dim: usize,
        device: &candle_core::Device,
    ) -> Result<Self> {
        let d = student.output_dim();
        let svb = VarBuilder::from_varmap(student_vm, DType::F32, device);
        let tvb = VarBuilder::from_varmap(teacher_vm, DType::F32, device);
        let hidden = (4 * d).max(64);
        let student_head = DinoHead::new(svb.pp("head"), d, out_dim, 3, hidden, d.max(16), true)?;
        let teacher_head = DinoHead::new(tvb.pp("head"), d, out_dim, 3, hidden, d.max(16), true)?;
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
        let (teacher_names, teacher_vars): (Vec<String>, Vec<candle_core::Var>) =
            t.into_iter().unzip();
        crate::optim::ema_update(&teacher_vars, &student_vars, 0.0)?;
        Ok(Self {
            student,
            teacher,
            student_head,
            teacher_head,
            student_vars,
            teacher_names,
            teacher_vars,
            loss: DinoLoss::new(out_dim, device)?,
            global: Box::new(SeriesViews {
                crop_min: 0.6,
                crop_max: 1.0,
                drop: 0.1,
                noise: 0.02,
            }),
            local: Box::new(SeriesViews {
                crop_min: 0.2,
                crop_max: 0.4,
                drop: 0.1,
                noise: 0.02,
            }),
            n_local: 4,
            teacher_temp: (0.04, 0.04, 0),
            momentum: 0.996,
        })
    }

    /// The teacher's variables (sorted by name), e.g. to save the teacher.
    pub fn teacher_vars(&self) -> &[candle_core::Var] {
        &self.teacher_vars
    }
}

impl Objective for Dino<'_> {
    /// The loss of one batch, with teacher entropy and KL as metrics; the teacher
    /// temperature follows `step.epoch`.
    fn loss(
        &mut self,
        batch: &SitsBatch,
        step: &Step,
        rng: &mut dyn RngCore,
    ) -> Result<ObjectiveOutput> {
        let train = step.train;
        let g: Vec<SitsBatch> = (0..2)
            .map(|_| self.global.apply(batch, rng))
            .collect::<Result<_>>()?;
        let l: Vec<SitsBatch> = (0..self.n_local)
            .map(|_| self.local.apply(batch, rng))
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
        let temp = teacher_temperature(step.epoch, w0, w1, we);
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

    /// Moves the teacher towards the student with the momentum of `step` (cosine
    /// from `momentum` to 1 over `step.total_steps`).
    fn after_step(&mut self, step: &Step) -> Result<()> {
        let m = teacher_momentum(step.step as usize, step.total_steps as usize, self.momentum);
        crate::optim::ema_update(&self.teacher_vars, &self.student_vars, m)
    }

    /// The teacher's variables (`teacher.<name>`) and the centre (`center`).
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> = self
            .teacher_names
            .iter()
            .zip(&self.teacher_vars)
            .map(|(n, v)| (format!("teacher.{n}"), v.as_tensor().clone()))
            .collect();
        out.push(("center".into(), self.loss.center().clone()));
        Ok(out)
    }

    fn load_state(&mut self, tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        let get = |k: &str| {
            tensors.get(k).ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "DINO state: no `{k}` (a checkpoint of another objective or model?)"
                ))
            })
        };
        for (n, v) in self.teacher_names.iter().zip(&self.teacher_vars) {
            let t = get(&format!("teacher.{n}"))?;
            if t.dims() != v.dims() {
                candle_core::bail!(
                    "DINO state: `teacher.{n}` has shape {:?}, the teacher expects {:?}",
                    t.dims(),
                    v.dims()
                );
            }
            v.set(&t.to_dtype(v.dtype())?.to_device(v.device())?)?;
        }
        let c = get("center")?;
        self.loss.set_center(
            c.to_dtype(DType::F32)?
                .to_device(self.loss.center().device())?,
        )
    }

    fn name(&self) -> &str {
        "dino"
    }
}
