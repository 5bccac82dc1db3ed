//! Projection heads of the SSL methods: SimCLR's MLP projector and DINO's head with
//! its weight-normalised last layer.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

use crate::losses::l2_normalize;

fn linear(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<candle_nn::Linear> {
    candle_nn::linear(d_in, d_out, vb)
}

fn forward_linear(l: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    // one product for all leading dimensions
    let dims = x.dims().to_vec();
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = l.forward(&x.reshape((rows, dims[dims.len() - 1]))?)?;
    let mut out = dims;
    let last = out.len() - 1;
    out[last] = y.dim(1)?;
    y.reshape(out)
}

/// SimCLR projector: `Linear(d, hidden) → ReLU → Linear(hidden, out)` (sthalles,
/// `layers = 2`), or with more hidden layers (google's 3-layer head, without its
/// BatchNorms). Names `layers.{i}`.
#[derive(Debug, Clone)]
pub struct ProjectionHead {
    layers: Vec<candle_nn::Linear>,
}

impl ProjectionHead {
    /// `layers` linear layers (at least 1) from `d_in` through `hidden` to `d_out`.
    pub fn new(
        vb: VarBuilder,
        d_in: usize,
        hidden: usize,
        d_out: usize,
        layers: usize,
    ) -> Result<Self> {
        let layers = layers.max(1);
        let mut v = Vec::with_capacity(layers);
        for i in 0..layers {
            let a = if i == 0 { d_in } else { hidden };
            let b = if i + 1 == layers { d_out } else { hidden };
            v.push(linear(a, b, vb.pp("layers").pp(i))?);
        }
        Ok(Self { layers: v })
    }

    /// Projections `(…, d_out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = forward_linear(l, &h)?;
            if i + 1 < self.layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }
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
    mlp: Vec<candle_nn::Linear>,
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
            h = forward_linear(l, &h)?;
            if i + 1 < self.mlp.len() {
                h = h.gelu_erf()?;
            }
        }
        let h = l2_normalize(&h)?;
        h.matmul(&self.last_weight()?.t()?)
    }
}
