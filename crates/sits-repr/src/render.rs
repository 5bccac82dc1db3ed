//! Turning 2D arrays into pictures: colour maps, label palettes, nearest-neighbour
//! up-scaling, side-by-side panels and PNG output.
//!
//! ```no_run
//! use ndarray::Array2;
//! use sits_repr::render::{Colormap, RgbImage};
//! let a = Array2::from_shape_fn((23, 23), |(i, j)| (i as f32 - j as f32).abs());
//! let img = RgbImage::from_array(a.view(), Colormap::Viridis, None).upscale(8);
//! img.write_png(std::path::Path::new("rp.png")).unwrap();
//! ```

use std::path::Path;

use ndarray::ArrayView2;

use crate::error::{ReprError, Result};

/// A continuous colour map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// Perceptually uniform dark-blue → green → yellow (matplotlib's default).
    #[default]
    Viridis,
    /// Black → white.
    Gray,
    /// Blue → white → red, for signed values.
    Diverging,
}

// Nine samples of viridis at 0, 1/8, ..., 1 (from matplotlib's published table).
#[rustfmt::skip]
const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];

impl Colormap {
    /// Colour of `v` in `[0, 1]` (clamped).
    pub fn color(&self, v: f32) -> [u8; 3] {
        let v = v.clamp(0.0, 1.0);
        match self {
            Colormap::Gray => {
                let g = (v * 255.0).round() as u8;
                [g, g, g]
            }
            Colormap::Viridis => {
                let x = v * 8.0;
                let i = (x.floor() as usize).min(7);
                let f = x - i as f32;
                let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
                [0, 1, 2].map(|k| (a[k] as f32 + f * (b[k] as f32 - a[k] as f32)).round() as u8)
            }
            Colormap::Diverging => {
                let (blue, white, red) = (
                    [33f32, 102., 172.],
                    [247f32, 247., 247.],
                    [178f32, 24., 43.],
                );
                let (a, b, f) = if v < 0.5 {
                    (blue, white, v * 2.0)
                } else {
                    (white, red, v * 2.0 - 1.0)
                };
                [0, 1, 2].map(|k| (a[k] + f * (b[k] - a[k])).round() as u8)
            }
        }
    }
}

/// Distinct colours for class labels (Tableau 10, then repeated darker).
pub fn label_color(label: i64) -> [u8; 3] {
    #[rustfmt::skip]
    const TAB10: [[u8; 3]; 10] = [
        [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
        [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
    ];
    if label < 0 {
        return [0, 0, 0];
    }
    let c = TAB10[label as usize % 10];
    let dark = (label as usize / 10) as u32;
    c.map(|v| (v as u32 * 3 / (3 + dark)) as u8)
}

/// An 8-bit RGB image, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height · width · 3` bytes.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// A blank (white) image.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    /// Maps `a` through `cmap` over `range` (default: the min and max of the finite
    /// values). NaN and infinite values are drawn in magenta so that they are
    /// never mistaken for data.
    pub fn from_array(a: ArrayView2<'_, f32>, cmap: Colormap, range: Option<(f32, f32)>) -> Self {
        let (h, w) = a.dim();
        let (lo, hi) = range.unwrap_or_else(|| {
            a.iter()
                .filter(|v| v.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                })
        });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let mut img = Self::new(w, h);
        for ((y, x), &v) in a.indexed_iter() {
            let c = if v.is_finite() {
                cmap.color((v - lo) / span)
            } else {
                [255, 0, 255]
            };
            img.set(x, y, c);
        }
        img
    }

    /// Class labels through [`label_color`] (negative = black).
    pub fn from_labels(a: ArrayView2<'_, i64>) -> Self {
        let (h, w) = a.dim();
        let mut img = Self::new(w, h);
        for ((y, x), &v) in a.indexed_iter() {
            img.set(x, y, label_color(v));
        }
        img
    }

    /// Sets one pixel.
    pub fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        let i = (y * self.width + x) * 3;
        self.pixels[i..i + 3].copy_from_slice(&c);
    }

    /// Each pixel becomes a `k × k` block.
    pub fn upscale(&self, k: usize) -> Self {
        let k = k.max(1);
        let mut out = Self::new(self.width * k, self.height * k);
        for y in 0..out.height {
            for x in 0..out.width {
                let i = ((y / k) * self.width + x / k) * 3;
                let c = [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]];
                out.set(x, y, c);
            }
        }
        out
    }

    /// Images side by side, top-aligned, separated by `gap` white columns.
    pub fn hstack(images: &[RgbImage], gap: usize) -> Self {
        let width =
            images.iter().map(|i| i.width).sum::<usize>() + gap * images.len().saturating_sub(1);
        let height = images.iter().map(|i| i.height).max().unwrap_or(0);
        let mut out = Self::new(width, height);
        let mut x0 = 0;
        for img in images {
            for y in 0..img.height {
                let src = &img.pixels[y * img.width * 3..(y + 1) * img.width * 3];
                let dst = (y * width + x0) * 3;
                out.pixels[dst..dst + src.len()].copy_from_slice(src);
            }
            x0 += img.width + gap;
        }
        out
    }

    /// Encodes the image as PNG bytes.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut buf, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let err = |e: png::EncodingError| ReprError::Image {
                path: "<memory>".into(),
                reason: e.to_string(),
            };
            let mut w = enc.write_header().map_err(err)?;
            w.write_image_data(&self.pixels).map_err(err)?;
        }
        Ok(buf)
    }

    /// Writes a PNG file atomically ([`sits_data::io_util::write_atomic`]).
    pub fn write_png(&self, path: &Path) -> Result<()> {
        let bytes = self.to_png()?;
        sits_data::io_util::write_atomic(path, &bytes).map_err(|e| ReprError::Image {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn colours_and_png_roundtrip() {
        assert_eq!(Colormap::Viridis.color(0.0), VIRIDIS[0]);
        assert_eq!(Colormap::Viridis.color(1.0), VIRIDIS[8]);
        assert_eq!(Colormap::Gray.color(0.5), [128, 128, 128]);
        let img = RgbImage::from_array(
            array![[0.0f32, 1.0], [f32::NAN, 0.5]].view(),
            Colormap::Gray,
            None,
        );
        assert_eq!(&img.pixels[..6], &[0, 0, 0, 255, 255, 255]);
        assert_eq!(&img.pixels[6..9], &[255, 0, 255], "NaN is magenta");
        let big = img.upscale(3);
        assert_eq!((big.width, big.height), (6, 6));
        let png = big.to_png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let dec = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        assert_eq!(dec.info().width, 6);
        let both = RgbImage::hstack(&[img.clone(), img], 1);
        assert_eq!(both.width, 5);
    }
}
