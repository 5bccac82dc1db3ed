//! AdamW with inspectable state (for exact checkpoint/resume), global-norm gradient
//! clipping, the cosine learning-rate schedule with linear warm-up, and EMA updates.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// AdamW (decoupled weight decay, as `torch.optim.AdamW`) over named variables.
/// Variables without a gradient at a step are left untouched (their moments too).
#[derive(Debug)]
pub struct AdamW {
    vars: Vec<(String, Var)>,
    m: Vec<Var>,
    v: Vec<Var>,
    t: u64,
    /// β1 (0.9).
    pub beta1: f64,
    /// β2 (0.999).
    pub beta2: f64,
    /// ε (1e-8).
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl AdamW {
    /// An optimiser over `vars` (name, variable).
    pub fn new(vars: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| Var::zeros(v.shape(), v.dtype(), v.device()))
            .collect::<Result<_>>()?;
        let v = vars
            .iter()
            .map(|(_, v)| Var::zeros(v.shape(), v.dtype(), v.device()))
            .collect::<Result<_>>()?;
        Ok(Self {
            vars,
            m,
            v,
            t: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// An optimiser over every variable of `vars`, in name order.
    pub fn from_varmap(vars: &candle_nn::VarMap, weight_decay: f64) -> Result<Self> {
        let mut named: Vec<(String, Var)> = vars
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("VarMap lock poisoned".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Self::new(named, weight_decay)
    }

    /// Back-propagates `loss` and takes one step with learning rate `lr` (for
    /// hand-written loops; [`crate::train::Trainer`] adds clipping, schedules and
    /// checkpoints).
    pub fn backward_step(&mut self, loss: &Tensor, lr: f64) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads, lr)
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The optimised variables.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.t += 1;
        for i in 0..self.vars.len() {
            if let Some(g) = grads.get(self.vars[i].1.as_tensor()) {
                self.update(i, g, lr)?;
            }
        }
        Ok(())
    }

    /// One update from gradients computed by hand, one per variable in the order of
    /// [`vars`](Self::vars) (for objectives whose gradient has a closed form, without
    /// building an autograd graph).
    pub fn step_with(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        if grads.len() != self.vars.len() {
            candle_core::bail!(
                "AdamW: {} gradients for {} variables",
                grads.len(),
                self.vars.len()
            );
        }
        self.t += 1;
        for (i, g) in grads.iter().enumerate() {
            self.update(i, g, lr)?;
        }
        Ok(())
    }

    /// The update of variable `i` with gradient `g` at step `self.t`.
    fn update(&mut self, i: usize, g: &Tensor, lr: f64) -> Result<()> {
        let t = self.t as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 / (1.0 - b1.powi(t));
        let c2 = 1.0 / (1.0 - b2.powi(t));
        let var = &self.vars[i].1;
        let m = ((self.m[i].as_tensor() * b1)? + (g * (1.0 - b1))?)?;
        let v = ((self.v[i].as_tensor() * b2)? + (g.sqr()? * (1.0 - b2))?)?;
        let theta = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
        let upd = ((&m * c1)? / ((&v * c2)?.sqrt()? + self.eps)?)?;
        var.set(&(theta - (upd * lr)?)?)?;
        self.m[i].set(&m)?;
        self.v[i].set(&v)
    }

    /// Moments as named tensors (`optim.m.<var>`, `optim.v.<var>`) for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("optim.m.{name}"), self.m[i].as_tensor().clone()));
            out.push((format!("optim.v.{name}"), self.v[i].as_tensor().clone()));
        }
        out
    }

    /// Restores moments and step count saved by [`AdamW::state_tensors`].
    pub fn load_state(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<()> {
        for (i, (name, _)) in self.vars.iter().enumerate() {
            for (kind, store) in [("m", &self.m[i]), ("v", &self.v[i])] {
                let key = format!("optim.{kind}.{name}");
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint has no `{key}`")))?;
                store.set(t)?;
            }
        }
        self.t = steps;
        Ok(())
    }
}

/// Scales the gradients of `vars` so that their global L2 norm is at most
/// `max_norm`; returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[(String, Var)], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    if norm > max_norm && norm > 0.0 {
        let s = max_norm / (norm + 1e-6);
        for (_, v) in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * s)?);
            }
        }
    }
    Ok(norm)
}

/// Learning rate at `step` of `total`: linear warm-up from 0 over `warmup` steps to
/// `base`, then cosine decay to `min`.
pub fn cosine_lr(step: u64, total: u64, warmup: u64, base: f64, min: f64) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let p = ((step - warmup) as f64 / span).min(1.0);
    min + (base - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
}

/// `teacher ← m·teacher + (1 − m)·student`, variable by variable (same order and
/// shapes).
pub fn ema_update(teacher: &[Var], student: &[Var], m: f64) -> Result<()> {
    if teacher.len() != student.len() {
        candle_core::bail!(
            "EMA: {} teacher and {} student variables",
            teacher.len(),
            student.len()
        );
    }
    for (t, s) in teacher.iter().zip(student) {
        t.set(&((t.as_tensor() * m)? + (s.as_tensor().detach() * (1.0 - m))?)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn hand_gradients_step_like_autograd() {
        let dev = Device::Cpu;
        let init = Tensor::new(&[0.5f32, -1.0, 2.0], &dev).unwrap();
        let (a, b) = (
            Var::from_tensor(&init).unwrap(),
            Var::from_tensor(&init).unwrap(),
        );
        let mut by_graph = AdamW::new(vec![("x".into(), a.clone())], 0.01).unwrap();
        let mut by_hand = AdamW::new(vec![("x".into(), b.clone())], 0.01).unwrap();
        for step in 0..5 {
            let lr = 0.1 / (1.0 + step as f64);
            // loss Σ x³ / 3: gradient x²
            let x = a.as_tensor();
            let loss = ((x.sqr().unwrap() * x).unwrap().sum_all().unwrap() / 3.0).unwrap();
            by_graph.backward_step(&loss, lr).unwrap();
            let g = b.as_tensor().sqr().unwrap();
            by_hand.step_with(&[g], lr).unwrap();
        }
        let (x, y) = (
            a.as_tensor().to_vec1::<f32>().unwrap(),
            b.as_tensor().to_vec1::<f32>().unwrap(),
        );
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() < 1e-6, "{x:?} against {y:?}");
        }
        assert!((x[0] - 0.5).abs() > 0.05, "the steps moved x: {x:?}");
        assert_eq!(by_hand.steps(), 5);
        assert!(
            by_hand.step_with(&[], 0.1).is_err(),
            "one gradient per variable"
        );
    }
}
