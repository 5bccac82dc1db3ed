//! Small encoders for 2D representations (recurrence plots, GAF/MTF images,
//! planar images) with any number of channels: a ResNet and a ViT. Both map
//! `(B, C, H, W)` images to `(B, d)` features.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::transformer::VitBlock;

use crate::nn::{BatchNorm, Conv2d, Ctx, LayerNorm, PaddingMode};

/// Basic residual block: two 3×3 convolutions with BatchNorm, a 1×1 projection on
/// the shortcut when the shape changes (torchvision names: `conv1`, `bn1`, `conv2`,
/// `bn2`, `downsample.0`, `downsample.1`).
struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    down: Option<(Conv2d, BatchNorm)>,
}

impl BasicBlock {
    fn new(ctx: &Ctx, c_in: usize, c_out: usize, stride: usize) -> Result<Self> {
        let down = if stride != 1 || c_in != c_out {
            Some((
                Conv2d::new(
                    ctx.vb.pp("downsample").pp(0),
                    c_in,
                    c_out,
                    1,
                    stride,
                    0,
                    PaddingMode::Zeros,
                )?,
                BatchNorm::new(&ctx.pp("downsample").pp(1), c_out)?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: Conv2d::new(
                ctx.vb.pp("conv1"),
                c_in,
                c_out,
                3,
                stride,
                1,
                PaddingMode::Zeros,
            )?,
            bn1: BatchNorm::new(&ctx.pp("bn1"), c_out)?,
            conv2: Conv2d::new(
                ctx.vb.pp("conv2"),
                c_out,
                c_out,
                3,
                1,
                1,
                PaddingMode::Zeros,
            )?,
            bn2: BatchNorm::new(&ctx.pp("bn2"), c_out)?,
            down,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let h = self.bn2.forward_t(&self.conv2.forward(&h)?, train)?;
        let short = match &self.down {
            Some((c, b)) => b.forward_t(&c.forward(x)?, train)?,
            None => x.clone(),
        };
        (h + short)?.relu()
    }
}

/// A small ResNet: 3×3 stem, three stages of two basic blocks (widths `w`, `2w`,
/// `4w`, the last two with stride 2), global average pooling: `(B, C, H, W)` →
/// `(B, 4w)`. Works for images as small as 8×8 (a 23×23 recurrence plot is fine).
pub struct SmallResNet {
    stem: (Conv2d, BatchNorm),
    blocks: Vec<BasicBlock>,
    out_dim: usize,
}

impl std::fmt::Debug for SmallResNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmallResNet")
            .field("out_dim", &self.out_dim)
            .finish()
    }
}

impl SmallResNet {
    /// `channels` input channels, base width `w`.
    pub fn new(ctx: &Ctx, channels: usize, w: usize) -> Result<Self> {
        let stem = (
            Conv2d::new(ctx.vb.pp("conv1"), channels, w, 3, 1, 1, PaddingMode::Zeros)?,
            BatchNorm::new(&ctx.pp("bn1"), w)?,
        );
        let mut blocks = Vec::new();
        let widths = [w, 2 * w, 4 * w];
        let mut c_in = w;
        for (s, &c) in widths.iter().enumerate() {
            for j in 0..2 {
                let stride = if s > 0 && j == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(
                    &ctx.pp(format!("layer{}", s + 1)).pp(j),
                    c_in,
                    c,
                    stride,
                )?);
                c_in = c;
            }
        }
        Ok(Self {
            stem,
            blocks,
            out_dim: 4 * w,
        })
    }

    /// Feature size.
    pub fn output_dim(&self) -> usize {
        self.out_dim
    }

    /// Features `(B, 4w)` of images `(B, C, H, W)`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self
            .stem
            .1
            .forward_t(&self.stem.0.forward(x)?, train)?
            .relu()?;
        for b in &self.blocks {
            h = b.forward(&h, train)?;
        }
        h.mean(3)?.mean(2)
    }
}

/// A small ViT: `patch × patch` patches of an `image × image` image embedded by a
/// strided convolution (`patch_embed.proj`), a class token, learned positions,
/// pre-norm blocks, a final LayerNorm; the class token's output is the feature
/// `(B, d)`. The image side must be a multiple of the patch side.
pub struct SmallVit {
    patch_embed: candle_nn::Conv2d,
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<VitBlock>,
    norm: LayerNorm,
    image: usize,
    d: usize,
}

impl std::fmt::Debug for SmallVit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmallVit")
            .field("image", &self.image)
            .field("d", &self.d)
            .finish()
    }
}

impl SmallVit {
    /// `channels` input channels, width `d`, `depth` blocks of `heads` heads.
    pub fn new(
        vb: VarBuilder,
        channels: usize,
        image: usize,
        patch: usize,
        d: usize,
        depth: usize,
        heads: usize,
    ) -> Result<Self> {
        if patch == 0 || !image.is_multiple_of(patch) || !d.is_multiple_of(heads.max(1)) {
            candle_core::bail!("ViT: image {image} must be a multiple of the patch {patch}, and d {d} of the heads {heads}");
        }
        let n = (image / patch).pow(2);
        let cfg = candle_nn::Conv2dConfig {
            stride: patch,
            ..Default::default()
        };
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        Ok(Self {
            patch_embed: candle_nn::conv2d(
                channels,
                d,
                patch,
                cfg,
                vb.pp("patch_embed").pp("proj"),
            )?,
            cls_token: vb.get_with_hints((1, 1, d), "cls_token", init)?,
            pos_embed: vb.get_with_hints((1, n + 1, d), "pos_embed", init)?,
            blocks: (0..depth)
                .map(|i| VitBlock::new(vb.pp("blocks").pp(i), d, heads, 4 * d, 1e-6))
                .collect::<Result<_>>()?,
            norm: LayerNorm::new(vb.pp("norm"), d, 1e-6)?,
            image,
            d,
        })
    }

    /// Feature size.
    pub fn output_dim(&self) -> usize {
        self.d
    }

    /// Features `(B, d)` of images `(B, C, image, image)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        if h != self.image || w != self.image {
            candle_core::bail!("ViT built for {0} x {0} images, got {h} x {w}", self.image);
        }
        let p = self
            .patch_embed
            .forward(x)?
            .flatten_from(2)?
            .transpose(1, 2)?; // (B, N, d)
        let cls = self.cls_token.broadcast_as((b, 1, self.d))?;
        let mut z = Tensor::cat(&[&cls, &p], 1)?.broadcast_add(&self.pos_embed)?;
        for blk in &self.blocks {
            z = blk.forward(&z, None)?;
        }
        self.norm.forward(&z)?.narrow(1, 0, 1)?.squeeze(1)
    }
}
