//! 2D convolution by im2col and matrix products, with its own backward pass.
//!
//! - forward: `out = W · cols(x)`, the padding folded into the gather (no padded copy
//!   of the input);
//! - weight gradient: `dW = Σ_images dOut · cols(x)ᵀ`, one product per band;
//! - input gradient: `dCols = Wᵀ · dOut`, scattered back into the input (a reflected
//!   tap adds to the pixel it mirrors).
//!
//! candle 0.11 computes the weight gradient of its convolution as a convolution whose
//! kernel is the whole output-gradient map, which on CPU runs as a direct loop over
//! dot products; that pass was the largest share of a U-TAE train step.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::{cpu_f32, f32_slice};
use crate::nn::{reflect_pad2d, PaddingMode};

/// Largest im2col buffer of one worker, in `f32` values (8 MiB): the output rows of
/// an image are processed in bands that fit, so a large image never needs
/// `C·k²·H·W` floats at once.
const BAND_VALUES: usize = 1 << 21;

/// Marks a tap that falls in the zero padding.
const OUTSIDE: u32 = u32::MAX;

/// Sizes of one convolution, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    mode: PaddingMode,
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn new(
        (c, h, w): (usize, usize, usize),
        k: usize,
        stride: usize,
        pad: usize,
        mode: PaddingMode,
    ) -> Result<Self> {
        if k == 0 || stride == 0 {
            candle_core::bail!("conv2d: kernel size {k} and stride {stride} must be at least 1");
        }
        if h + 2 * pad < k || w + 2 * pad < k {
            candle_core::bail!(
                "conv2d: a {k}x{k} kernel does not fit a {h}x{w} input padded by {pad}"
            );
        }
        if mode == PaddingMode::Reflect && (pad >= h || pad >= w) {
            candle_core::bail!(
                "conv2d: reflect padding {pad} needs an input larger than {pad} on both sides, got {h}x{w}"
            );
        }
        if h.max(w) + 2 * pad >= OUTSIDE as usize {
            candle_core::bail!("conv2d: input {h}x{w} too large");
        }
        Ok(Self {
            c,
            h,
            w,
            k,
            stride,
            pad,
            mode,
            oh: (h + 2 * pad - k) / stride + 1,
            ow: (w + 2 * pad - k) / stride + 1,
        })
    }

    /// Checks that an output gradient is `(n, o, OH, OW)`.
    fn check_output_grad(&self, dims: &[usize], n: usize, o: usize) -> Result<()> {
        if dims != [n, o, self.oh, self.ow] {
            candle_core::bail!(
                "conv2d backward: output gradient {dims:?}, expected {:?}",
                [n, o, self.oh, self.ow]
            );
        }
        Ok(())
    }

    /// Rows of the column matrix: `C·k·k`.
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    /// For each kernel offset `ki` and output position `o` along an axis of input
    /// size `n` and output size `out`: the input index read, or [`OUTSIDE`].
    /// Laid out as `[ki * out + o]`.
    fn taps(&self, n: usize, out: usize) -> Vec<u32> {
        let mut t = Vec::with_capacity(self.k * out);
        for ki in 0..self.k {
            for o in 0..out {
                let i = (o * self.stride + ki) as isize - self.pad as isize;
                let last = n as isize - 1;
                let src = if (0..=last).contains(&i) {
                    i as u32
                } else {
                    match self.mode {
                        PaddingMode::Zeros => OUTSIDE,
                        // pad < n, so the mirror lands inside
                        PaddingMode::Reflect if i < 0 => (-i) as u32,
                        PaddingMode::Reflect => (2 * last - i) as u32,
                    }
                };
                t.push(src);
            }
        }
        t
    }

    /// Output rows per band so that a band's columns fit [`BAND_VALUES`].
    fn band_rows(&self) -> usize {
        (BAND_VALUES / (self.rows() * self.ow).max(1)).clamp(1, self.oh)
    }
}

/// Precomputed gather tables.
struct Taps {
    rows: Vec<u32>,
    cols: Vec<u32>,
    /// At stride 1, for each kernel column `kj`: the output columns `lo..hi` whose
    /// tap is inside the input row (read as one contiguous run from `lo + kj − pad`).
    inner: Vec<(usize, usize)>,
}

impl Taps {
    fn new(g: &Geometry) -> Self {
        let inner = (0..g.k)
            .map(|kj| {
                if g.stride != 1 {
                    return (0, 0);
                }
                let lo = g.pad.saturating_sub(kj).min(g.ow);
                let hi = (g.w + g.pad).saturating_sub(kj).min(g.ow).max(lo);
                (lo, hi)
            })
            .collect();
        Self {
            rows: g.taps(g.h, g.oh),
            cols: g.taps(g.w, g.ow),
            inner,
        }
    }
}

thread_local! {
    /// This worker's column buffer, kept between calls: a fresh buffer of several
    /// megabytes per call goes back to the OS when freed and is faulted in again
    /// next time.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with a buffer of `len` values (contents unspecified): this thread's kept
/// buffer, or a fresh one if that is in use (a nested call on the same thread, which
/// rayon's work stealing can cause).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0f32; len]),
    })
}

/// Columns of output rows `oy0..oy1` of one image: `col[r, (oy - oy0)·ow + ox]` with
/// `r = (c·k + ki)·k + kj`.
fn im2col(x: &[f32], g: &Geometry, t: &Taps, oy0: usize, oy1: usize, col: &mut [f32]) {
    let (k, ow, w) = (g.k, g.ow, g.w);
    let n = (oy1 - oy0) * ow;
    for c in 0..g.c {
        let plane = &x[c * g.h * w..(c + 1) * g.h * w];
        for ki in 0..k {
            for kj in 0..k {
                let r = (c * k + ki) * k + kj;
                let dst = &mut col[r * n..(r + 1) * n];
                let ctab = &t.cols[kj * ow..(kj + 1) * ow];
                for (oy, d) in (oy0..oy1).zip(dst.chunks_exact_mut(ow)) {
                    let sy = t.rows[ki * g.oh + oy];
                    if sy == OUTSIDE {
                        d.fill(0.0);
                        continue;
                    }
                    let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                    let (lo, hi) = t.inner[kj];
                    if hi > lo {
                        // stride 1: one contiguous run, the borders through the table
                        let off = lo + kj - g.pad;
                        d[lo..hi].copy_from_slice(&src[off..off + hi - lo]);
                    }
                    for ox in (0..lo).chain(hi.max(lo)..ow) {
                        let sx = ctab[ox];
                        d[ox] = if sx == OUTSIDE { 0.0 } else { src[sx as usize] };
                    }
                }
            }
        }
    }
}

/// Adds columns of output rows `oy0..oy1` back into one image's gradient.
fn col2im(col: &[f32], g: &Geometry, t: &Taps, oy0: usize, oy1: usize, dx: &mut [f32]) {
    let (k, ow, w) = (g.k, g.ow, g.w);
    let n = (oy1 - oy0) * ow;
    for c in 0..g.c {
        let plane = &mut dx[c * g.h * w..(c + 1) * g.h * w];
        for ki in 0..k {
            for kj in 0..k {
                let r = (c * k + ki) * k + kj;
                let src = &col[r * n..(r + 1) * n];
                let ctab = &t.cols[kj * ow..(kj + 1) * ow];
                for (oy, s) in (oy0..oy1).zip(src.chunks_exact(ow)) {
                    let sy = t.rows[ki * g.oh + oy];
                    if sy == OUTSIDE {
                        continue;
                    }
                    let dst = &mut plane[sy as usize * w..(sy as usize + 1) * w];
                    let (lo, hi) = t.inner[kj];
                    if hi > lo {
                        let off = lo + kj - g.pad;
                        for (o, &v) in dst[off..off + hi - lo].iter_mut().zip(&s[lo..hi]) {
                            *o += v;
                        }
                    }
                    for ox in (0..lo).chain(hi.max(lo)..ow) {
                        let sx = ctab[ox];
                        if sx != OUTSIDE {
                            dst[sx as usize] += s[ox];
                        }
                    }
                }
            }
        }
    }
}

/// Pixels per block of [`transpose_band`]: a block's destination rows (`o` values
/// each) stay in the first-level cache while every channel writes into them.
const TRANSPOSE_BLOCK: usize = 64;

/// `dst[p·o + c] = src[c·stride + p]` for `o` channels and `np` pixels: an output
/// gradient band, channel-major with a row stride of a whole image, rewritten
/// pixel-major.
///
/// The `gemm` crate writes into a column-major destination and reads its left
/// operand column-major; anything else it first gathers into packed panels. With
/// the band channel-major, the weight gradient's product could only be posed with
/// one gathered operand, and gemm chose the whole column buffer (`perf`, `conv2d`
/// bench: that gather was a quarter of the forward + backward time, twice the weight
/// gradient's arithmetic). From the pixel-major copy the product is posed with both
/// operands at unit stride. Copying the band alone, with the product posed as
/// before, changed nothing: the gather of the columns stayed.
fn transpose_band(src: &[f32], o: usize, np: usize, stride: usize, dst: &mut [f32]) {
    for p0 in (0..np).step_by(TRANSPOSE_BLOCK) {
        let p1 = (p0 + TRANSPOSE_BLOCK).min(np);
        for c in 0..o {
            let row = &src[c * stride + p0..c * stride + p1];
            for (p, &v) in (p0..p1).zip(row) {
                dst[p * o + c] = v;
            }
        }
    }
}

/// Row-major matrix view for [`matmul`]: pointer, row stride, column stride.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// `dst (m x n, row stride dst_rs) = [dst +] a (m x k) · b (k x n)`.
///
/// # Safety
/// The views must cover `m x k` and `k x n` valid values and `dst` `m` rows of
/// `n` values at stride `dst_rs`, not overlapping `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: View,
    b: View,
    par: Parallelism,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// How the images are shared out: `groups` contiguous runs of images, one per
/// worker, and the threads each matrix product may use. Fixed for a given image
/// count and thread count, so sums are in the same order on every run.
fn split(images: usize) -> (usize, Parallelism) {
    let threads = rayon::current_num_threads().max(1);
    let groups = images.clamp(1, threads);
    let inner = threads / groups;
    let par = if inner > 1 {
        Parallelism::Rayon(inner)
    } else {
        Parallelism::None
    };
    (groups, par)
}

/// Forward: `(x (N, C, H, W), w (O, C, k, k)) -> (N, O, OH, OW)`.
#[derive(Debug, Clone, Copy)]
struct Conv {
    stride: usize,
    pad: usize,
    mode: PaddingMode,
}

impl Conv {
    fn geometry(&self, x: &[usize], w: &[usize]) -> Result<(usize, usize, Geometry)> {
        let (&[n, c, h, wd], &[o, ci, kh, kw]) = (x, w) else {
            candle_core::bail!(
                "conv2d: expected (N, C, H, W) and (O, C, k, k), got {x:?} and {w:?}"
            );
        };
        if ci != c || kh != kw {
            candle_core::bail!("conv2d: weight {w:?} does not fit input {x:?} (square kernels over all input channels)");
        }
        Ok((
            n,
            o,
            Geometry::new((c, h, wd), kh, self.stride, self.pad, self.mode)?,
        ))
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "sits-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, o, g) = self.geometry(l1.dims(), l2.dims())?;
        let x = f32_slice(s1, l1, "conv2d input")?;
        let wt = f32_slice(s2, l2, "conv2d weight")?;
        let taps = Taps::new(&g);
        let (rows, img_in, img_out) = (g.rows(), g.c * g.h * g.w, o * g.oh * g.ow);
        let band = g.band_rows();
        let mut out = vec![0f32; n * img_out];
        let (groups, par) = split(n);
        let per = n.div_ceil(groups).max(1);
        out.par_chunks_mut(per * img_out.max(1))
            .enumerate()
            .for_each(|(gi, chunk)| {
                with_scratch(rows * band * g.ow, |col| {
                    for (j, y) in chunk.chunks_exact_mut(img_out.max(1)).enumerate() {
                        let i = gi * per + j;
                        let xi = &x[i * img_in..(i + 1) * img_in];
                        for oy0 in (0..g.oh).step_by(band) {
                            let oy1 = (oy0 + band).min(g.oh);
                            let np = (oy1 - oy0) * g.ow;
                            im2col(xi, &g, &taps, oy0, oy1, col);
                            // SAFETY: wt is o x rows, col rows x np, y holds o rows of
                            // oh·ow values from column oy0·ow on.
                            unsafe {
                                matmul(
                                    o,
                                    np,
                                    rows,
                                    y.as_mut_ptr().add(oy0 * g.ow),
                                    g.oh * g.ow,
                                    false,
                                    View {
                                        ptr: wt.as_ptr(),
                                        rs: rows as isize,
                                        cs: 1,
                                    },
                                    View {
                                        ptr: col.as_ptr(),
                                        rs: np as isize,
                                        cs: 1,
                                    },
                                    par,
                                )
                            }
                        }
                    }
                });
            });
        Ok((CpuStorage::F32(out), Shape::from((n, o, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(
                &w.contiguous()?,
                &InputGrad {
                    conv: *self,
                    input: x.dims4()?,
                },
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.contiguous()?.apply_op2_no_bwd(
                &grad,
                &WeightGrad {
                    conv: *self,
                    weight: w.dims4()?,
                },
            )?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// Input gradient: `(dOut (N, O, OH, OW), w) -> dx (N, C, H, W)`.
struct InputGrad {
    conv: Conv,
    input: (usize, usize, usize, usize),
}

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "sits-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, wd) = self.input;
        let (_, o, g) = self.conv.geometry(&[n, c, h, wd], l2.dims())?;
        g.check_output_grad(l1.dims(), n, o)?;
        let dy = f32_slice(s1, l1, "conv2d output gradient")?;
        let wt = f32_slice(s2, l2, "conv2d weight")?;
        let taps = Taps::new(&g);
        let (rows, img_in, img_out) = (g.rows(), c * h * wd, o * g.oh * g.ow);
        let band = g.band_rows();
        let mut dx = vec![0f32; n * img_in];
        let (groups, par) = split(n);
        let per = n.div_ceil(groups).max(1);
        dx.par_chunks_mut(per * img_in.max(1))
            .enumerate()
            .for_each(|(gi, chunk)| {
                // written before col2im reads it: a fresh zeroed allocation read first
                // maps the shared zero page, and each first write then costs a
                // copy-on-write fault with a TLB flush on every core (perf: ~20 % of
                // the conv bench's forward + backward before this fill)
                chunk.fill(0.0);
                with_scratch(rows * band * g.ow, |col| {
                    for (j, dxi) in chunk.chunks_exact_mut(img_in.max(1)).enumerate() {
                        let i = gi * per + j;
                        let dyi = &dy[i * img_out..(i + 1) * img_out];
                        for oy0 in (0..g.oh).step_by(band) {
                            let oy1 = (oy0 + band).min(g.oh);
                            let np = (oy1 - oy0) * g.ow;
                            // SAFETY: wᵀ is rows x o (read through strides), dyi holds
                            // o rows of oh·ow values, col rows x np.
                            unsafe {
                                matmul(
                                    rows,
                                    np,
                                    o,
                                    col.as_mut_ptr(),
                                    np,
                                    false,
                                    View {
                                        ptr: wt.as_ptr(),
                                        rs: 1,
                                        cs: rows as isize,
                                    },
                                    View {
                                        ptr: dyi.as_ptr().add(oy0 * g.ow),
                                        rs: (g.oh * g.ow) as isize,
                                        cs: 1,
                                    },
                                    par,
                                )
                            }
                            col2im(&col[..rows * np], &g, &taps, oy0, oy1, dxi);
                        }
                    }
                });
            });
        Ok((CpuStorage::F32(dx), Shape::from((n, c, h, wd))))
    }
}

/// Weight gradient: `(x, dOut) -> dw (O, C, k, k)`.
struct WeightGrad {
    conv: Conv,
    weight: (usize, usize, usize, usize),
}

impl CustomOp2 for WeightGrad {
    fn name(&self) -> &'static str {
        "sits-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (o, c, k, k2) = self.weight;
        let (n, _, g) = self.conv.geometry(l1.dims(), &[o, c, k, k2])?;
        g.check_output_grad(l2.dims(), n, o)?;
        let x = f32_slice(s1, l1, "conv2d input")?;
        let dy = f32_slice(s2, l2, "conv2d output gradient")?;
        let taps = Taps::new(&g);
        let (rows, img_in, img_out) = (g.rows(), g.c * g.h * g.w, o * g.oh * g.ow);
        let band = g.band_rows();
        let (groups, par) = split(n);
        let per = n.div_ceil(groups).max(1);
        let partials: Vec<Vec<f32>> = (0..groups)
            .into_par_iter()
            .map(|gi| {
                // this worker's sum, transposed: rows x o
                let mut dwt = vec![0f32; rows * o];
                // this worker's output-gradient band, pixel-major (see `transpose_band`)
                let mut dyt = vec![0f32; band * g.ow * o];
                with_scratch(rows * band * g.ow, |col| {
                    for i in gi * per..((gi + 1) * per).min(n) {
                        let xi = &x[i * img_in..(i + 1) * img_in];
                        let dyi = &dy[i * img_out..(i + 1) * img_out];
                        for oy0 in (0..g.oh).step_by(band) {
                            let oy1 = (oy0 + band).min(g.oh);
                            let np = (oy1 - oy0) * g.ow;
                            im2col(xi, &g, &taps, oy0, oy1, col);
                            let dyt = &mut dyt[..np * o];
                            transpose_band(&dyi[oy0 * g.ow..], o, np, g.oh * g.ow, dyt);
                            // dWᵀ (rows x o) += cols · dyᵀ: the gemm crate computes it
                            // as dW = dy · colsᵀ into a column-major dW, reading dy
                            // column-major from the pixel-major copy and colsᵀ with
                            // unit row stride, so neither operand is gathered.
                            // SAFETY: col is rows x np, dyt np x o, dwt rows x o.
                            unsafe {
                                matmul(
                                    rows,
                                    o,
                                    np,
                                    dwt.as_mut_ptr(),
                                    o,
                                    true,
                                    View {
                                        ptr: col.as_ptr(),
                                        rs: np as isize,
                                        cs: 1,
                                    },
                                    View {
                                        ptr: dyt.as_ptr(),
                                        rs: o as isize,
                                        cs: 1,
                                    },
                                    par,
                                )
                            }
                        }
                    }
                });
                dwt
            })
            .collect();
        let mut dwt = vec![0f32; rows * o];
        for p in &partials {
            for (a, b) in dwt.iter_mut().zip(p) {
                *a += b;
            }
        }
        let mut dw = vec![0f32; o * rows];
        transpose_band(&dwt, rows, o, o, &mut dw);
        Ok((CpuStorage::F32(dw), Shape::from((o, c, k, k))))
    }
}

/// 2D convolution of `x (N, C, H, W)` by `w (O, C, k, k)` (groups 1), with `pad`
/// pixels of `mode` padding on every side and the given `stride`; output
/// `(N, O, (H + 2·pad − k) / stride + 1, ...)` as PyTorch's `Conv2d` (no bias).
///
/// On the CPU with `f32` tensors this is the op of this module, with its own
/// backward pass; elsewhere it is [`conv2d_candle`].
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
    mode: PaddingMode,
) -> Result<Tensor> {
    if cpu_f32(&[x, w]) {
        x.contiguous()?
            .apply_op2(&w.contiguous()?, Conv { stride, pad, mode })
    } else {
        conv2d_candle(x, w, stride, pad, mode)
    }
}

/// The same convolution with candle's own operations (reflect padding as a padded
/// copy). Runs on any device; the reference [`conv2d`]'s op is tested against.
///
/// A strided convolution whose window does not land exactly on the last input row or
/// column (`(size + 2·pad − k) % stride != 0`, e.g. a stride-2 convolution of an
/// odd-sized image) runs as a stride-1 convolution followed by keeping every
/// `stride`-th output: candle 0.11's backward pass of such a strided convolution
/// returns an input gradient of the wrong size.
pub fn conv2d_candle(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
    mode: PaddingMode,
) -> Result<Tensor> {
    let (x, zero_pad) = match mode {
        PaddingMode::Reflect if pad > 0 => (reflect_pad2d(x, pad)?, 0),
        PaddingMode::Reflect => (x.clone(), 0),
        PaddingMode::Zeros => (x.clone(), pad),
    };
    let (_, _, h, wd) = x.dims4()?;
    let k = w.dim(3)?;
    let exact = |n: usize| (n + 2 * zero_pad).saturating_sub(k).is_multiple_of(stride);
    if stride == 1 || (exact(h) && exact(wd)) {
        return x.conv2d(w, zero_pad, stride, 1, 1);
    }
    let y = x.conv2d(w, zero_pad, 1, 1, 1)?;
    let (_, _, oh, ow) = y.dims4()?;
    let rows: Vec<u32> = (0..oh as u32).step_by(stride).collect();
    let cols: Vec<u32> = (0..ow as u32).step_by(stride).collect();
    let (nr, nc) = (rows.len(), cols.len());
    y.index_select(&Tensor::from_vec(rows, nr, x.device())?, 2)?
        .index_select(&Tensor::from_vec(cols, nc, x.device())?, 3)
}
