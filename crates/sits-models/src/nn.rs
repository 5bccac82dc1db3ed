//! Building blocks shared by the models: reflect padding, convolutions with
//! PyTorch's padding modes, BatchNorm with running statistics kept as buffers, the
//! store of those buffers, dropout with a seedable generator, and seeded
//! initialisation of a whole `VarMap`.
//!
//! Trainable parameters live in a candle [`VarMap`] (through a
//! [`VarBuilder`]); non-trainable state (BatchNorm running mean/variance and
//! `num_batches_tracked`) lives in [`Buffers`], so that an optimiser never sees it
//! while a checkpoint still saves it under the PyTorch names.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Module, ModuleT, Result, Tensor, Var, D};
use candle_nn::{Init, VarBuilder, VarMap};

/// Non-trainable tensors of a model (running statistics), by full parameter name.
#[derive(Clone, Default)]
pub struct Buffers {
    inner: Arc<Mutex<BTreeMap<String, Var>>>,
}

impl std::fmt::Debug for Buffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffers")
            .field("names", &self.names())
            .finish()
    }
}

fn full_name(vb: &VarBuilder, name: &str) -> String {
    let p = vb.prefix();
    if p.is_empty() {
        name.to_string()
    } else {
        format!("{p}.{name}")
    }
}

impl Buffers {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer `name` under `vb`'s prefix: read from `vb`'s backend when it has
    /// it (a loaded checkpoint), otherwise created with `value` everywhere. Never
    /// registered as a trainable variable.
    pub fn get(
        &self,
        vb: &VarBuilder,
        name: &str,
        shape: &[usize],
        value: f64,
        dtype: DType,
    ) -> Result<Var> {
        let key = full_name(vb, name);
        let mut map = self
            .inner
            .lock()
            .map_err(|_| candle_core::Error::Msg("buffer store poisoned".into()))?;
        if let Some(v) = map.get(&key) {
            return Ok(v.clone());
        }
        let t = if vb.contains_tensor(name) {
            vb.get_unchecked_dtype(name, dtype)?.reshape(shape)?
        } else {
            Tensor::full(value, shape, vb.device())?.to_dtype(dtype)?
        };
        let var = Var::from_tensor(&t)?;
        map.insert(key, var.clone());
        Ok(var)
    }

    /// Names of the stored buffers, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// All buffers as `(name, tensor)`, sorted by name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.inner
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// All buffers as `(name, variable)`, sorted by name; setting a variable
    /// changes the model's state.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.inner
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Overwrites the buffers present in `tensors` (for instance after loading a
    /// checkpoint into a model built on a fresh `VarMap`). Unknown names are errors.
    pub fn set_from(&self, tensors: &std::collections::HashMap<String, Tensor>) -> Result<usize> {
        let map = self
            .inner
            .lock()
            .map_err(|_| candle_core::Error::Msg("buffer store poisoned".into()))?;
        let mut n = 0;
        for (k, v) in map.iter() {
            if let Some(t) = tensors.get(k) {
                v.set(&t.to_dtype(v.dtype())?.reshape(v.shape())?)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Model-building context: the parameter builder plus the buffer store.
#[derive(Clone)]
pub struct Ctx<'a> {
    /// Trainable parameters.
    pub vb: VarBuilder<'a>,
    /// Running statistics.
    pub buffers: Buffers,
}

impl<'a> Ctx<'a> {
    /// A context over `vb` with a fresh buffer store.
    pub fn new(vb: VarBuilder<'a>) -> Self {
        Self {
            vb,
            buffers: Buffers::new(),
        }
    }

    /// The sub-context for the child module `name`.
    pub fn pp(&self, name: impl ToString) -> Self {
        Self {
            vb: self.vb.pp(name),
            buffers: self.buffers.clone(),
        }
    }
}

/// Pads the last two dimensions by `p` with reflection (PyTorch's `reflect` mode:
/// the edge value is not repeated). Needs `p` smaller than each of those sizes.
pub fn reflect_pad2d(x: &Tensor, p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(x.clone());
    }
    let rank = x.rank();
    let mut out = x.clone();
    for dim in [rank - 2, rank - 1] {
        let n = out.dim(dim)?;
        if p >= n {
            candle_core::bail!("reflect padding {p} needs a size above {p} on dimension {dim}, got {n} (shape {:?})", x.dims());
        }
        // Mirrored strips (edge excluded) on both sides, joined with one `cat`:
        // several times faster than an `index_select` over the whole tensor.
        let mut parts = Vec::with_capacity(2 * p + 1);
        for i in (1..=p).rev() {
            parts.push(out.narrow(dim, i, 1)?);
        }
        parts.push(out.clone());
        for i in 0..p {
            parts.push(out.narrow(dim, n - 2 - i, 1)?);
        }
        out = Tensor::cat(&parts, dim)?;
    }
    Ok(out)
}

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaddingMode {
    /// Zeros (PyTorch `zeros`).
    Zeros,
    /// Reflection without repeating the edge (PyTorch `reflect`).
    Reflect,
}

/// `nn.Conv2d` with a padding mode; parameters `weight` `[out, in, k, k]` and `bias`.
///
/// Runs [`crate::ops::conv2d`]: on the CPU in `f32`, an im2col convolution with its
/// own backward pass and the padding folded into the gather; elsewhere candle's
/// convolution.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
    mode: PaddingMode,
    stride: usize,
}

impl Conv2d {
    /// Builds the layer from `vb` (`weight`, `bias`), initialised as candle's
    /// `conv2d` (PyTorch's default).
    pub fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: usize,
        mode: PaddingMode,
    ) -> Result<Self> {
        let inner = candle_nn::conv2d(c_in, c_out, k, Default::default(), vb)?;
        Ok(Self {
            weight: inner.weight().clone(),
            bias: inner.bias().cloned(),
            padding,
            mode,
            stride,
        })
    }

    /// The same layer computed by candle's own operations on any device (see
    /// [`crate::ops::conv2d_candle`]).
    pub fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        let y = crate::ops::conv2d_candle(x, &self.weight, self.stride, self.padding, self.mode)?;
        self.add_bias(y)
    }

    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(b) => crate::ops::norm::add_channel_bias(&y, b),
            None => Ok(y),
        }
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = crate::ops::conv2d(x, &self.weight, self.stride, self.padding, self.mode)?;
        self.add_bias(y)
    }
}

/// Batch normalisation over dimension 1 with PyTorch's semantics: in training the
/// batch statistics normalise (biased variance) and the running estimates move by
/// `momentum` (unbiased variance); in evaluation the running estimates normalise.
/// Parameters `weight`, `bias`; buffers `running_mean`, `running_var`,
/// `num_batches_tracked`.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    /// Builds the layer for `c` channels (eps 1e-5, momentum 0.1, as PyTorch).
    pub fn new(ctx: &Ctx, c: usize) -> Result<Self> {
        let vb = &ctx.vb;
        let weight = vb.get_with_hints(c, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(c, "bias", Init::Const(0.0))?;
        let dt = weight.dtype();
        Ok(Self {
            weight,
            bias,
            running_mean: ctx.buffers.get(vb, "running_mean", &[c], 0.0, dt)?,
            running_var: ctx.buffers.get(vb, "running_var", &[c], 1.0, dt)?,
            num_batches_tracked: ctx.buffers.get(
                vb,
                "num_batches_tracked",
                &[],
                0.0,
                DType::I64,
            )?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    fn shape_for(&self, x: &Tensor) -> Vec<usize> {
        let mut s = vec![1; x.rank()];
        s[1] = self.weight.dim(0).unwrap_or(1);
        s
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if x.rank() < 2 {
            candle_core::bail!("BatchNorm needs (N, C, ...) input, got {:?}", x.dims());
        }
        if train {
            let c = x.dim(1)?;
            let n = x.elem_count() / c.max(1);
            if n < 2 {
                candle_core::bail!(
                    "BatchNorm in training needs more than one value per channel, got input {:?}",
                    x.dims()
                );
            }
            let (mean, var) = crate::ops::norm::channel_moments(x)?;
            let m = self.momentum;
            let unbiased = (var * (n as f64 / (n as f64 - 1.0)))?;
            let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?;
            let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            let nb = (self.num_batches_tracked.as_tensor() + 1.0)?;
            self.num_batches_tracked.set(&nb)?;
            return crate::ops::norm::normalize(
                x,
                &self.weight,
                &self.bias,
                crate::ops::norm::Stats::PerChannel,
                self.eps,
            );
        }
        let shape = self.shape_for(x);
        let mean = self.running_mean.as_tensor().reshape(shape.as_slice())?;
        let var = self.running_var.as_tensor().reshape(shape.as_slice())?;
        let inv = (var + self.eps)?.sqrt()?.recip()?;
        let scale = self.weight.reshape(shape.as_slice())?.broadcast_mul(&inv)?;
        x.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&self.bias.reshape(shape.as_slice())?)
    }
}

/// `nn.GroupNorm` (eps 1e-5) accepting `(N, C)` as well as `(N, C, ...)` input;
/// parameters `weight`, `bias`. Runs [`crate::ops::norm::normalize`] (one fused op
/// with its backward pass on the CPU).
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
}

impl GroupNorm {
    /// Builds the layer (`weight`, `bias`).
    pub fn new(vb: VarBuilder, groups: usize, c: usize) -> Result<Self> {
        if groups == 0 || !c.is_multiple_of(groups) {
            candle_core::bail!("GroupNorm: {c} channels cannot be split into {groups} groups");
        }
        Ok(Self {
            weight: vb.get_with_hints(c, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(c, "bias", Init::Const(0.0))?,
            groups,
        })
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::norm::normalize(
            x,
            &self.weight,
            &self.bias,
            crate::ops::norm::Stats::PerSample {
                groups: self.groups,
            },
            1e-5,
        )
    }
}

thread_local! {
    /// The generator behind [`dropout`] on this thread: ChaCha8, seeded by
    /// [`seed_dropout`] (seed 0 until then).
    static DROPOUT_RNG: std::cell::RefCell<rand_chacha::ChaCha8Rng> =
        std::cell::RefCell::new(<rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0));
}

/// Reseeds this thread's generator of [`dropout`], as `torch.manual_seed` does for
/// PyTorch's dropout. candle's own CPU generator cannot be seeded, so the models of
/// this crate draw their dropout masks here instead; the training loop of `sits-ssl`
/// reseeds before every step from its seed and the step number, which makes
/// training with dropout reproducible and resumable. The generator is per thread, so
/// models trained on different threads do not disturb each other.
pub fn seed_dropout(seed: u64) {
    DROPOUT_RNG.with(|g| {
        *g.borrow_mut() = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed)
    });
}

/// Inverted dropout with a seedable generator ([`seed_dropout`]): each element of
/// `x` is zeroed with probability `p` and the others are scaled by `1 / (1 - p)`
/// (candle's and PyTorch's convention). `p = 0` returns `x` unchanged; `p` outside
/// `[0, 1)` is an error. The mask is drawn on the CPU, on the calling thread, and
/// moved to `x`'s device.
pub fn dropout(x: &Tensor, p: f32) -> Result<Tensor> {
    use rand::Rng;
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout probability must be in [0, 1), got {p}");
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    let keep = 1.0 / (1.0 - p);
    let n = x.elem_count();
    let mask: Vec<f32> = DROPOUT_RNG.with(|g| {
        let mut rng = g.borrow_mut();
        (0..n)
            .map(|_| if rng.random::<f32>() < p { 0.0 } else { keep })
            .collect()
    });
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}

/// Softmax over the last dimension, with a gradient: [`crate::ops::softmax::softmax_last`]
/// (one fused op each way on the CPU in `f32`; candle's operations elsewhere).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    crate::ops::softmax::softmax_last(x)
}

/// Per-pixel rows `(B·H·W, ...)` back to maps `(B, ..., H, W)`: the inverse of
/// flattening maps into one row per pixel, as the temporal encoders do.
pub fn pixels_to_maps(x: &Tensor, b: usize, h: usize, w: usize) -> Result<Tensor> {
    let mut shape = vec![b, h, w];
    shape.extend_from_slice(&x.dims()[1..]);
    let mut order: Vec<usize> = vec![0];
    order.extend(3..shape.len());
    order.extend([1, 2]);
    x.reshape(shape)?.permute(order)?.contiguous()
}

/// Log-softmax over the last dimension, stable for large values, with a gradient:
/// [`crate::ops::softmax::log_softmax_last`] (one fused op each way on the CPU in
/// `f32`; a max-shifted log-sum-exp of candle's operations elsewhere).
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    crate::ops::softmax::log_softmax_last(x)
}

/// Rows scaled to unit L2 norm over the last dimension (norm clamped at 1e-12, as
/// PyTorch's `F.normalize`).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&n)
}

/// Re-draws every variable of `vars` from a generator seeded with `seed`, so a run
/// starts from the same weights every time (candle's own initialisers draw from an
/// unseeded generator). Variables are visited in name order and drawn by shape and
/// name, as PyTorch initialises its layers by default:
/// - rank >= 2 (linear and convolution weights): uniform in `±1/sqrt(fan_in)`, with
///   `fan_in` the product of all dimensions but the first;
/// - rank 1 named `*bias` or `*.beta`: 0; rank 1 named `*weight` or `*.gamma`
///   (normalisation scales): 1;
/// - anything else of rank 1 (mask tokens, biases by other names): normal with
///   standard deviation 0.02. Scalars (e.g. a learnable temperature) keep their value.
pub fn seeded_init(vars: &VarMap, seed: u64) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let data = vars
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("seeded_init: the VarMap lock is poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n = var.elem_count();
        let vals: Vec<f32> = match dims.len() {
            0 => continue,
            1 if name.ends_with("bias") || name.ends_with(".beta") => vec![0.0; n],
            1 if name.ends_with("weight") || name.ends_with(".gamma") => vec![1.0; n],
            1 => (0..n)
                .map(|_| 0.02 * sits_core::random::standard_normal(&mut rng) as f32)
                .collect(),
            _ => {
                let fan_in: usize = dims[1..].iter().product();
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
            }
        };
        let t = Tensor::from_vec(vals, dims.as_slice(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn reflect_padding_matches_pytorch() {
        // torch.nn.functional.pad(arange(4).view(1,1,1,4) -> 2x? ; reflect of [0,1,2,3] by 2 = [2,1,0,1,2,3,2,1]
        let x = Tensor::arange(0f32, 4.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let x = Tensor::cat(&[&x, &(&x + 10.0).unwrap(), &(&x + 20.0).unwrap()], 2).unwrap();
        let y = reflect_pad2d(&x, 2).unwrap();
        assert_eq!(y.dims(), &[1, 1, 7, 8]);
        let rows: Vec<Vec<f32>> = y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(rows[2], vec![2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        assert_eq!(
            rows[0],
            vec![22.0, 21.0, 20.0, 21.0, 22.0, 23.0, 22.0, 21.0]
        );
        assert_eq!(rows[6], vec![2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
        assert!(reflect_pad2d(&x, 3).is_err());
    }
}

/// `nn.LayerNorm` over the last dimension (`weight`, `bias`). candle's fused layer
/// norm has no backward pass, so this one uses it only when nothing needs a
/// gradient and otherwise composes plain (differentiable) operations.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// A layer norm over `d` features.
    pub fn new(vb: VarBuilder, d: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", Init::Const(0.0))?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let needs_grad = x.track_op() || self.weight.track_op() || self.bias.track_op();
        if !needs_grad && x.is_contiguous() {
            return candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32);
        }
        // rows of features as (rows, features, 1): one group per row
        let d = x.dim(D::Minus1)?;
        let rows = x.elem_count() / d.max(1);
        crate::ops::norm::normalize(
            &x.reshape((rows, d, 1))?,
            &self.weight,
            &self.bias,
            crate::ops::norm::Stats::PerSample { groups: 1 },
            self.eps,
        )?
        .reshape(x.shape())
    }
}

/// `nn.Linear` (`weight` `[out, in]`, optional `bias`) that multiplies all leading
/// dimensions at once: candle's `Linear` turns a `(B, N, in)` input into `B` small
/// batched products, which is several times slower on CPU for short sequences.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Wraps existing parameters.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let d_in = *dims.last().unwrap_or(&0);
        let rows: usize = dims[..dims.len().saturating_sub(1)].iter().product();
        // one op each way on the CPU (crate::ops::linear)
        let y = crate::ops::linear::linear(
            &x.reshape((rows, d_in))?,
            &self.weight,
            self.bias.as_ref(),
        )?;
        let mut out = dims;
        if let Some(last) = out.last_mut() {
            *last = self.weight.dim(0)?;
        }
        y.reshape(out)
    }
}

/// A [`Linear`] with PyTorch's default initialisation (uniform ±1/√in for both).
pub fn linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    let l = candle_nn::linear(d_in, d_out, vb)?;
    Ok(Linear::from_parts(l.weight().clone(), l.bias().cloned()))
}

/// A [`Linear`] without bias.
pub fn linear_no_bias(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Linear> {
    let l = candle_nn::linear_no_bias(d_in, d_out, vb)?;
    Ok(Linear::from_parts(l.weight().clone(), None))
}

#[cfg(test)]
mod conv_shape_tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fallback_matches_the_native_strided_convolution() {
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let conv = Conv2d::new(vb, 3, 4, 3, 2, 1, PaddingMode::Zeros).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 9, 11), &Device::Cpu).unwrap();
        let native = x
            .conv2d(&conv.weight, 1, 2, 1, 1)
            .unwrap()
            .broadcast_add(&conv.bias.as_ref().unwrap().reshape((1, 4, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(native.dims(), &[2, 4, 5, 6]);
        for y in [conv.forward(&x).unwrap(), conv.forward_candle(&x).unwrap()] {
            let d = (y - &native).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        }
    }

    #[test]
    fn strided_conv_output_sizes_follow_pytorch() {
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        for (k, p) in [(1, 0), (3, 1)] {
            let conv =
                Conv2d::new(vb.pp(format!("c{k}")), 16, 32, k, 2, p, PaddingMode::Zeros).unwrap();
            for (h, w) in [(23, 25), (25, 23), (24, 24), (13, 12)] {
                let x = Tensor::ones((32, 16, h, w), DType::F32, &Device::Cpu).unwrap();
                let y = conv.forward(&x).unwrap();
                let out = |n: usize| (n + 2 * p - k) / 2 + 1;
                assert_eq!(y.dims(), &[32, 32, out(h), out(w)], "k {k}, input {h}x{w}");
                // the input gradient has the input's size (candle's strided backward
                // does not for the inexact sizes) and matches the native path's
                // values where that one is right
                let v = candle_core::Var::from_tensor(&x.affine(0.1, 0.0).unwrap()).unwrap();
                let g = conv
                    .forward(v.as_tensor())
                    .unwrap()
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap();
                let grads = g.backward().unwrap();
                assert_eq!(
                    grads.get(&v).unwrap().dims(),
                    x.dims(),
                    "k {k}, input {h}x{w}"
                );
            }
        }
    }
}
