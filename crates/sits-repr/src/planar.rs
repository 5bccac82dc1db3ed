//! Deep-STaR planar representations of image time series (Chelali et al., VISAPP
//! 2020, CVIU 2021): a `(T, C, H, W)` region rewritten as a 2D image whose rows are
//! pixels and whose columns are dates, so that a plain 2D network sees space and
//! time at once.
//!
//! - [`curve_order`] orders the pixels of any `H × W` rectangle along a space-filling
//!   curve. [`Curve::Hilbert`] is the classical Hilbert curve on `2^k × 2^k` squares
//!   and, for every other size, the generalised Hilbert ("gilbert") construction:
//!   the rectangle is split recursively into halves whose sides keep the curve
//!   continuous; for some odd-by-even sizes one step of the curve is diagonal
//!   instead of horizontal or vertical. [`Curve::Snake`] (boustrophedon rows) is the
//!   simple alternative.
//! - [`planar_image`] gathers `X[t, c, π(k)]` into `(C, N, T)`; [`planar_mask`] does
//!   the same for a validity mask.
//! - [`xt_slice`], [`yt_slice`], [`oblique_slice`]: planes through a row, a column, or
//!   a line at any angle (bilinear sampling).
//! - [`random_walk_image`]: `K` random walks of `L` pixels from a seed pixel, stacked
//!   (the IJPRAI 2021 variant).
//! - [`local_views`]: non-overlapping patches of a planar image flattened into
//!   tokens for a transformer; [`planar_batch`] builds the planar images of many
//!   regions of a cube in parallel.
//!
//! ```
//! use ndarray::Array4;
//! use sits_repr::planar::{curve_order, planar_image, Curve};
//! let order = curve_order(Curve::Hilbert, 4, 4);
//! assert_eq!(order[0], (0, 0));
//! assert_eq!(order.len(), 16);
//! let region = Array4::<f32>::zeros((10, 3, 4, 4)); // T, C, H, W
//! let img = planar_image(region.view(), &order).unwrap();
//! assert_eq!(img.dim(), (3, 16, 10)); // C, pixels along the curve, dates
//! ```

use ndarray::{Array2, Array3, Array4, ArrayView3, ArrayView4, Axis};
use rand::Rng;
use rayon::prelude::*;

use crate::error::{param, ReprError, Result};

/// A pixel ordering of a rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Curve {
    /// Hilbert curve (generalised to any rectangle).
    #[default]
    Hilbert,
    /// Row by row, every other row reversed.
    Snake,
    /// Row-major order.
    RowMajor,
}

/// The pixels `(row, col)` of an `h × w` rectangle in the order of `curve`.
pub fn curve_order(curve: Curve, h: usize, w: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(h * w);
    if h == 0 || w == 0 {
        return out;
    }
    match curve {
        Curve::RowMajor => {
            for r in 0..h {
                out.extend((0..w).map(|c| (r, c)));
            }
        }
        Curve::Snake => {
            for r in 0..h {
                if r % 2 == 0 {
                    out.extend((0..w).map(|c| (r, c)));
                } else {
                    out.extend((0..w).rev().map(|c| (r, c)));
                }
            }
        }
        Curve::Hilbert => {
            let (w, h) = (w as i64, h as i64);
            if w >= h {
                gilbert(&mut out, (0, 0), (w, 0), (0, h));
            } else {
                gilbert(&mut out, (0, 0), (0, h), (w, 0));
            }
        }
    }
    out
}

/// Generalised Hilbert curve over the rectangle spanned from `p` by the major axis
/// `a` and the minor axis `b` (coordinates are `(x = col, y = row)`).
fn gilbert(out: &mut Vec<(usize, usize)>, p: (i64, i64), a: (i64, i64), b: (i64, i64)) {
    let (x, y) = p;
    let (ax, ay) = a;
    let (bx, by) = b;
    let w = (ax + ay).abs();
    let h = (bx + by).abs();
    let (dax, day) = (ax.signum(), ay.signum());
    let (dbx, dby) = (bx.signum(), by.signum());
    if h == 1 {
        for i in 0..w {
            out.push(((y + i * day) as usize, (x + i * dax) as usize));
        }
        return;
    }
    if w == 1 {
        for i in 0..h {
            out.push(((y + i * dby) as usize, (x + i * dbx) as usize));
        }
        return;
    }
    let (mut ax2, mut ay2) = (ax.div_euclid(2), ay.div_euclid(2));
    let (mut bx2, mut by2) = (bx.div_euclid(2), by.div_euclid(2));
    let w2 = (ax2 + ay2).abs();
    let h2 = (bx2 + by2).abs();
    if 2 * w > 3 * h {
        // Long rectangle: split along the major axis into two halves.
        if w2 % 2 == 1 && w > 2 {
            ax2 += dax;
            ay2 += day;
        }
        gilbert(out, (x, y), (ax2, ay2), (bx, by));
        gilbert(out, (x + ax2, y + ay2), (ax - ax2, ay - ay2), (bx, by));
    } else {
        // Roughly square: up, across, down.
        if h2 % 2 == 1 && h > 2 {
            bx2 += dbx;
            by2 += dby;
        }
        gilbert(out, (x, y), (bx2, by2), (ax2, ay2));
        gilbert(out, (x + bx2, y + by2), (ax, ay), (bx - bx2, by - by2));
        gilbert(
            out,
            (x + (ax - dax) + (bx2 - dbx), y + (ay - day) + (by2 - dby)),
            (-bx2, -by2),
            (-(ax - ax2), -(ay - ay2)),
        );
    }
}

fn check_order(order: &[(usize, usize)], h: usize, w: usize) -> Result<()> {
    if let Some(&(r, c)) = order.iter().find(|&&(r, c)| r >= h || c >= w) {
        return Err(param(
            "order",
            format!("pixel ({r}, {c}) is outside the {h} x {w} region"),
        ));
    }
    Ok(())
}

/// Planar image `(C, N, T)` of a region `(T, C, H, W)`: row `k` holds the series of
/// pixel `order[k]`.
pub fn planar_image(region: ArrayView4<'_, f32>, order: &[(usize, usize)]) -> Result<Array3<f32>> {
    let (t, c, h, w) = region.dim();
    check_order(order, h, w)?;
    let n = order.len();
    let mut out = Array3::<f32>::zeros((c, n, t));
    let dst = out.as_slice_mut().expect("fresh array is contiguous");
    gather_planar(region, order, (0, 0), dst);
    Ok(out)
}

/// Writes the planar image of the window at `origin` into `dst` (`C·N·T` values).
/// Loops run date by date over one `(H, W)` plane so that reads stay within a plane
/// and writes within the `(N, T)` image of one band (cache-sized for usual regions).
fn gather_planar(
    values: ArrayView4<'_, f32>,
    order: &[(usize, usize)],
    origin: (usize, usize),
    dst: &mut [f32],
) {
    let (t, c, h, w) = values.dim();
    let n = order.len();
    let std = values.as_standard_layout();
    let src = std.as_slice().expect("standard layout");
    let offsets: Vec<usize> = order
        .iter()
        .map(|&(r, col)| (origin.0 + r) * w + origin.1 + col)
        .collect();
    for ci in 0..c {
        let img = &mut dst[ci * n * t..(ci + 1) * n * t];
        for ti in 0..t {
            let plane = &src[(ti * c + ci) * h * w..(ti * c + ci + 1) * h * w];
            for (k, &off) in offsets.iter().enumerate() {
                img[k * t + ti] = plane[off];
            }
        }
    }
}

/// The validity mask `(T, H, W)` of a region in planar layout `(N, T)`.
pub fn planar_mask(valid: ArrayView3<'_, bool>, order: &[(usize, usize)]) -> Result<Array2<bool>> {
    let (t, h, w) = valid.dim();
    check_order(order, h, w)?;
    let mut out = Array2::from_elem((order.len(), t), false);
    for (k, &(r, c)) in order.iter().enumerate() {
        for ti in 0..t {
            out[[k, ti]] = valid[[ti, r, c]];
        }
    }
    Ok(out)
}

/// The x-t plane through row `row`: `(C, W, T)`.
pub fn xt_slice(region: ArrayView4<'_, f32>, row: usize) -> Result<Array3<f32>> {
    let (_, _, h, w) = region.dim();
    if row >= h {
        return Err(param("row", format!("{row} is outside 0..{h}")));
    }
    let order: Vec<_> = (0..w).map(|c| (row, c)).collect();
    planar_image(region, &order)
}

/// The y-t plane through column `col`: `(C, H, T)`.
pub fn yt_slice(region: ArrayView4<'_, f32>, col: usize) -> Result<Array3<f32>> {
    let (_, _, h, w) = region.dim();
    if col >= w {
        return Err(param("col", format!("{col} is outside 0..{w}")));
    }
    let order: Vec<_> = (0..h).map(|r| (r, col)).collect();
    planar_image(region, &order)
}

/// The plane along the line through `center = (row, col)` at `angle_deg`
/// (0° = along a row towards increasing columns, 90° = towards decreasing rows),
/// over the whole part of the line inside the region: `(C, L, T)`. The line is
/// sampled once per pixel along its major axis (like a line-drawing algorithm), so
/// every sample falls on a pixel centre in that axis and is interpolated
/// bilinearly in the other; at 45° the samples are exactly the diagonal pixels.
pub fn oblique_slice(
    region: ArrayView4<'_, f32>,
    center: (f64, f64),
    angle_deg: f64,
) -> Result<Array3<f32>> {
    let (t, c, h, w) = region.dim();
    let (cy, cx) = center;
    if !(cy >= 0.0 && cy <= (h as f64 - 1.0) && cx >= 0.0 && cx <= (w as f64 - 1.0)) {
        return Err(param(
            "center",
            format!("({cy}, {cx}) is outside the {h} x {w} region"),
        ));
    }
    let th = angle_deg.to_radians();
    let (cos, sin) = (th.cos(), -th.sin());
    let major = cos.abs().max(sin.abs());
    let (dx, dy) = (cos / major, sin / major);
    let inside = |s: f64| {
        let (y, x) = (cy + s * dy, cx + s * dx);
        y >= -1e-9 && y <= h as f64 - 1.0 + 1e-9 && x >= -1e-9 && x <= w as f64 - 1.0 + 1e-9
    };
    let mut lo = 0i64;
    while inside((lo - 1) as f64) {
        lo -= 1;
    }
    let mut hi = 0i64;
    while inside((hi + 1) as f64) {
        hi += 1;
    }
    let n = (hi - lo + 1) as usize;
    let mut out = Array3::<f32>::zeros((c, n, t));
    for (k, s) in (lo..=hi).enumerate() {
        let y = (cy + s as f64 * dy).clamp(0.0, h as f64 - 1.0);
        let x = (cx + s as f64 * dx).clamp(0.0, w as f64 - 1.0);
        let (y0, x0) = (y.floor() as usize, x.floor() as usize);
        let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
        let (fy, fx) = ((y - y0 as f64) as f32, (x - x0 as f64) as f32);
        for ci in 0..c {
            for ti in 0..t {
                let v = |r: usize, cc: usize| region[[ti, ci, r, cc]];
                let top = v(y0, x0) * (1.0 - fx) + v(y0, x1) * fx;
                let bottom = v(y1, x0) * (1.0 - fx) + v(y1, x1) * fx;
                out[[ci, k, ti]] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    Ok(out)
}

/// Pixels of `walks` random walks of `steps` pixels each from `seed = (row, col)`:
/// every step moves to one of the 4-neighbours inside the region, chosen uniformly.
/// The first pixel of every walk is the seed.
pub fn random_walks(
    h: usize,
    w: usize,
    seed: (usize, usize),
    walks: usize,
    steps: usize,
    rng: &mut dyn rand::RngCore,
) -> Result<Vec<(usize, usize)>> {
    if seed.0 >= h || seed.1 >= w {
        return Err(param(
            "seed",
            format!("{seed:?} is outside the {h} x {w} region"),
        ));
    }
    if steps == 0 || walks == 0 {
        return Err(param("steps", "walks and steps must be at least 1"));
    }
    let mut out = Vec::with_capacity(walks * steps);
    for _ in 0..walks {
        let (mut r, mut c) = seed;
        out.push((r, c));
        for _ in 1..steps {
            let mut options = [(0usize, 0usize); 4];
            let mut n = 0;
            if r > 0 {
                options[n] = (r - 1, c);
                n += 1;
            }
            if r + 1 < h {
                options[n] = (r + 1, c);
                n += 1;
            }
            if c > 0 {
                options[n] = (r, c - 1);
                n += 1;
            }
            if c + 1 < w {
                options[n] = (r, c + 1);
                n += 1;
            }
            if n == 0 {
                // A 1x1 region: stay.
                out.push((r, c));
                continue;
            }
            (r, c) = options[rng.random_range(0..n)];
            out.push((r, c));
        }
    }
    Ok(out)
}

/// Random-walk image `(C, walks·steps, T)` of a region: the stacked series of
/// [`random_walks`] pixels.
pub fn random_walk_image(
    region: ArrayView4<'_, f32>,
    seed: (usize, usize),
    walks: usize,
    steps: usize,
    rng: &mut dyn rand::RngCore,
) -> Result<Array3<f32>> {
    let (_, _, h, w) = region.dim();
    let order = random_walks(h, w, seed, walks, steps, rng)?;
    planar_image(region, &order)
}

/// Non-overlapping `(pn, pt)` patches of a planar image `(C, N, T)` flattened into
/// tokens `(N/pn · T/pt, C·pn·pt)`, in row-major order of the patch grid; each token
/// is laid out as `(C, pn, pt)`. Rows and dates beyond a whole patch are dropped.
/// Returns the tokens and the grid size `(N/pn, T/pt)`.
pub fn local_views(
    image: ArrayView3<'_, f32>,
    pn: usize,
    pt: usize,
) -> Result<(Array2<f32>, (usize, usize))> {
    let (c, n, t) = image.dim();
    if pn == 0 || pt == 0 || pn > n || pt > t {
        return Err(ReprError::Shape {
            what: "planar image for local views".into(),
            expected: format!("at least one {pn} x {pt} patch (pixels x dates)"),
            got: vec![c, n, t],
        });
    }
    let (gn, gt) = (n / pn, t / pt);
    let mut out = Array2::<f32>::zeros((gn * gt, c * pn * pt));
    for i in 0..gn {
        for j in 0..gt {
            let mut row = out.row_mut(i * gt + j);
            let mut k = 0;
            for ci in 0..c {
                for a in 0..pn {
                    for b in 0..pt {
                        row[k] = image[[ci, i * pn + a, j * pt + b]];
                        k += 1;
                    }
                }
            }
        }
    }
    Ok((out, (gn, gt)))
}

/// Planar images of many `size × size` windows of a cube's values `(T, C, H, W)`,
/// one per origin `(row, col)`, in parallel: `(B, C, size², T)`.
pub fn planar_batch(
    values: ArrayView4<'_, f32>,
    origins: &[(usize, usize)],
    size: usize,
    curve: Curve,
) -> Result<Array4<f32>> {
    let (t, c, _, _) = values.dim();
    let mut out = Array4::<f32>::zeros((origins.len(), c, size * size, t));
    planar_batch_into(
        values,
        origins,
        size,
        curve,
        out.as_slice_mut().expect("fresh array is contiguous"),
    )?;
    Ok(out)
}

/// [`planar_batch`] into a caller-owned buffer of `B·C·size²·T` values.
pub fn planar_batch_into(
    values: ArrayView4<'_, f32>,
    origins: &[(usize, usize)],
    size: usize,
    curve: Curve,
    out: &mut [f32],
) -> Result<()> {
    let (t, c, h, w) = values.dim();
    if let Some(o) = origins.iter().find(|o| o.0 + size > h || o.1 + size > w) {
        return Err(param(
            "origins",
            format!("window of {size} at {o:?} does not fit the {h} x {w} cube"),
        ));
    }
    let order = curve_order(curve, size, size);
    let plane = c * order.len() * t;
    if out.len() != origins.len() * plane {
        return Err(ReprError::Shape {
            what: "planar batch output buffer".into(),
            expected: format!("{} x {c} x {} x {t} values", origins.len(), order.len()),
            got: vec![out.len()],
        });
    }
    if plane == 0 {
        return Ok(());
    }
    let std = values.as_standard_layout();
    out.par_chunks_mut(plane)
        .zip(origins.par_iter())
        .for_each(|(dst, &origin)| gather_planar(std.view(), &order, origin, dst));
    Ok(())
}

/// Mean of a planar image over its rows (pixels): `(C, T)`, the region's mean series.
pub fn mean_series(image: ArrayView3<'_, f32>) -> Array2<f32> {
    image
        .mean_axis(Axis(1))
        .unwrap_or_else(|| Array2::zeros((image.dim().0, image.dim().2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classical Hilbert index-to-coordinate conversion, written independently.
    fn d2xy(n: usize, d: usize) -> (usize, usize) {
        let (mut x, mut y, mut t) = (0usize, 0usize, d);
        let mut s = 1;
        while s < n {
            let rx = 1 & (t / 2);
            let ry = 1 & (t ^ rx);
            if ry == 0 {
                if rx == 1 {
                    x = s - 1 - x;
                    y = s - 1 - y;
                }
                std::mem::swap(&mut x, &mut y);
            }
            x += s * rx;
            y += s * ry;
            t /= 4;
            s *= 2;
        }
        (x, y)
    }

    #[test]
    fn power_of_two_squares_give_the_classical_curve() {
        for k in 0..6 {
            let n = 1 << k;
            let ours = curve_order(Curve::Hilbert, n, n);
            let classic: Vec<_> = (0..n * n).map(|d| d2xy(n, d)).collect();
            let as_rc: Vec<_> = classic.iter().map(|&(x, y)| (y, x)).collect();
            let as_cr: Vec<_> = classic.iter().map(|&(x, y)| (x, y)).collect();
            assert!(ours == as_rc || ours == as_cr, "n = {n}");
        }
    }

    #[test]
    fn every_rectangle_is_covered_with_unit_steps() {
        for h in 1..=13 {
            for w in 1..=13 {
                let order = curve_order(Curve::Hilbert, h, w);
                let mut seen = vec![false; h * w];
                for &(r, c) in &order {
                    assert!(r < h && c < w);
                    assert!(!seen[r * w + c], "{h}x{w}: ({r},{c}) twice");
                    seen[r * w + c] = true;
                }
                assert!(seen.iter().all(|&s| s), "{h}x{w}: pixel missed");
                let mut diagonal = 0;
                for p in order.windows(2) {
                    let dr = p[0].0.abs_diff(p[1].0);
                    let dc = p[0].1.abs_diff(p[1].1);
                    assert!(dr <= 1 && dc <= 1 && dr + dc >= 1, "{h}x{w}: jump {:?}", p);
                    diagonal += usize::from(dr + dc == 2);
                }
                // Diagonal steps are rare and only needed for odd-by-even sizes.
                if h % 2 == w % 2 {
                    assert_eq!(diagonal, 0, "{h}x{w}");
                } else {
                    assert!(
                        diagonal <= 1 + h.max(w) / 8,
                        "{h}x{w}: {diagonal} diagonal steps"
                    );
                }
            }
        }
    }

    #[test]
    fn oblique_at_zero_is_the_row() {
        let region = Array4::from_shape_fn((3, 2, 5, 7), |(t, c, r, col)| {
            (t * 1000 + c * 100 + r * 10 + col) as f32
        });
        let a = oblique_slice(region.view(), (2.0, 3.0), 0.0).unwrap();
        let b = xt_slice(region.view(), 2).unwrap();
        assert_eq!(a, b);
        let v = oblique_slice(region.view(), (2.0, 3.0), 90.0).unwrap();
        // 90° goes towards decreasing rows: the column read bottom-up.
        let col = yt_slice(region.view(), 3).unwrap();
        assert_eq!(v.dim(), col.dim());
        for k in 0..5 {
            for t in 0..3 {
                assert!((v[[1, k, t]] - col[[1, 4 - k, t]]).abs() < 1e-3);
            }
        }
        // 45° through the centre of a square is the anti-diagonal, sampled exactly.
        let sq = Array4::from_shape_fn((1, 1, 5, 5), |(_, _, r, c)| (r * 10 + c) as f32);
        let d = oblique_slice(sq.view(), (2.0, 2.0), 45.0).unwrap();
        let want = [40.0, 31.0, 22.0, 13.0, 4.0];
        for (k, w) in want.iter().enumerate() {
            assert!((d[[0, k, 0]] - w).abs() < 1e-3, "{k}: {}", d[[0, k, 0]]);
        }
    }

    #[test]
    fn local_views_layout() {
        let img = Array3::from_shape_fn((2, 4, 6), |(c, n, t)| (c * 100 + n * 10 + t) as f32);
        let (tokens, grid) = local_views(img.view(), 2, 3).unwrap();
        assert_eq!(grid, (2, 2));
        assert_eq!(tokens.dim(), (4, 12));
        // token (1, 1) = rows 2..4, dates 3..6; first element channel 0, row 2, date 3
        assert_eq!(tokens[[3, 0]], 23.0);
        assert_eq!(tokens[[3, 6]], 123.0);
        assert!(local_views(img.view(), 5, 1).is_err());
    }
}
