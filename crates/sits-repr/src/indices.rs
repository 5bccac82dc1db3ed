//! Spectral indices chosen by band name, with explicit reflectance scaling.
//!
//! Bands are found by name, case-insensitively: Sentinel-2 names (`B02`, `B2`, ...,
//! `B12`) and generic names (`blue`, `green`, `red`, `nir`, `swir1`, `swir2`; MODIS
//! `mir` counts as SWIR2). Values are turned into reflectance with the cube's (or the
//! caller's) [`Radiometry`] before the formula: `reflectance = stored * scale + offset`.
//! For Sentinel-2 L2A digital numbers that is `scale = 1e-4`, and from processing
//! baseline 04.00 on `offset = -0.1` (the -1000 DN offset): see
//! [`Radiometry`]'s documentation. NDVI-like ratios do not care about the scale,
//! EVI and SAVI do (their constants assume reflectance in [0, 1]).
//!
//! Where an index is undefined (a denominator `<= 0`, a NaN input, an invalid
//! observation) the value is NaN and the validity mask is false: never a
//! plausible-looking 0.
//!
//! ```
//! use sits_repr::indices::SpectralIndex;
//! let ndvi = SpectralIndex::Ndvi;
//! assert!((ndvi.formula(&[0.0, 0.0, 0.1, 0.5, 0.0, 0.0]) - 0.6667).abs() < 1e-4);
//! assert!(ndvi.formula(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).is_nan()); // 0 / 0 is undefined
//! ```

use candle_core::{DType, Tensor};
use ndarray::{Array2, Array3, Array4, Axis};
use rayon::prelude::*;
use sits_data::{Datacube, Radiometry, SampleSet, Series};

use crate::error::{ReprError, Result};

/// Spectral role of a band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Blue (S2 B02).
    Blue,
    /// Green (S2 B03).
    Green,
    /// Red (S2 B04).
    Red,
    /// Near infrared (S2 B08, else B8A).
    Nir,
    /// Short-wave infrared around 1.6 µm (S2 B11).
    Swir1,
    /// Short-wave infrared around 2.2 µm (S2 B12, MODIS band 7 `mir`).
    Swir2,
}

impl Role {
    const ALL: [Role; 6] = [
        Role::Blue,
        Role::Green,
        Role::Red,
        Role::Nir,
        Role::Swir1,
        Role::Swir2,
    ];

    fn slot(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Role::Blue => "blue",
            Role::Green => "green",
            Role::Red => "red",
            Role::Nir => "nir",
            Role::Swir1 => "swir1",
            Role::Swir2 => "swir2",
        }
    }

    /// Accepted band names, in order of preference.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Role::Blue => &["B02", "B2", "blue"],
            Role::Green => &["B03", "B3", "green"],
            Role::Red => &["B04", "B4", "red"],
            Role::Nir => &["B08", "B8", "nir", "B8A", "nir08"],
            Role::Swir1 => &["B11", "swir1", "swir16"],
            Role::Swir2 => &["B12", "swir2", "swir22", "mir"],
        }
    }

    /// Index of this role's band among `bands`.
    pub fn find(self, bands: &[String]) -> Option<usize> {
        self.aliases()
            .iter()
            .find_map(|a| bands.iter().position(|b| b.eq_ignore_ascii_case(a)))
    }
}

/// A spectral index. The constants of EVI and SAVI are fields so that they can be
/// changed; [`SpectralIndex::evi`] and [`SpectralIndex::savi`] give the usual ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpectralIndex {
    /// `(nir − red) / (nir + red)`.
    Ndvi,
    /// `g (nir − red) / (nir + c1 red − c2 blue + l)`.
    Evi {
        /// Gain (2.5).
        g: f32,
        /// Red aerosol coefficient (6).
        c1: f32,
        /// Blue aerosol coefficient (7.5).
        c2: f32,
        /// Canopy background (1).
        l: f32,
    },
    /// `(1 + l)(nir − red) / (nir + red + l)`.
    Savi {
        /// Soil brightness correction (0.5).
        l: f32,
    },
    /// McFeeters' water index `(green − nir) / (green + nir)`.
    Ndwi,
    /// Moisture index `(nir − swir1) / (nir + swir1)`.
    Ndmi,
    /// Normalised burn ratio `(nir − swir2) / (nir + swir2)`.
    Nbr,
}

impl SpectralIndex {
    /// EVI with G = 2.5, C1 = 6, C2 = 7.5, L = 1.
    pub fn evi() -> Self {
        SpectralIndex::Evi {
            g: 2.5,
            c1: 6.0,
            c2: 7.5,
            l: 1.0,
        }
    }

    /// SAVI with L = 0.5.
    pub fn savi() -> Self {
        SpectralIndex::Savi { l: 0.5 }
    }

    /// NDVI, EVI and SAVI: the three channels of the PIMC recurrence-plot image.
    pub fn pimc() -> [Self; 3] {
        [SpectralIndex::Ndvi, Self::evi(), Self::savi()]
    }

    /// Short upper-case name (`NDVI`, `EVI`, ...), used as the output band name.
    pub fn name(&self) -> &'static str {
        match self {
            SpectralIndex::Ndvi => "NDVI",
            SpectralIndex::Evi { .. } => "EVI",
            SpectralIndex::Savi { .. } => "SAVI",
            SpectralIndex::Ndwi => "NDWI",
            SpectralIndex::Ndmi => "NDMI",
            SpectralIndex::Nbr => "NBR",
        }
    }

    /// Spectral roles the index reads.
    pub fn roles(&self) -> &'static [Role] {
        match self {
            SpectralIndex::Ndvi | SpectralIndex::Savi { .. } => &[Role::Red, Role::Nir],
            SpectralIndex::Evi { .. } => &[Role::Blue, Role::Red, Role::Nir],
            SpectralIndex::Ndwi => &[Role::Green, Role::Nir],
            SpectralIndex::Ndmi => &[Role::Nir, Role::Swir1],
            SpectralIndex::Nbr => &[Role::Nir, Role::Swir2],
        }
    }

    /// The index of one observation from reflectances ordered as blue, green, red,
    /// nir, swir1, swir2 (unused slots are ignored). NaN when undefined.
    pub fn formula(&self, r: &[f32; 6]) -> f32 {
        let [blue, green, red, nir, swir1, swir2] = *r;
        let (num, den) = match *self {
            SpectralIndex::Ndvi => (nir - red, nir + red),
            SpectralIndex::Evi { g, c1, c2, l } => {
                (g * (nir - red), nir + c1 * red - c2 * blue + l)
            }
            SpectralIndex::Savi { l } => ((1.0 + l) * (nir - red), nir + red + l),
            SpectralIndex::Ndwi => (green - nir, green + nir),
            SpectralIndex::Ndmi => (nir - swir1, nir + swir1),
            SpectralIndex::Nbr => (nir - swir2, nir + swir2),
        };
        // A NaN denominator is neither > 0 nor <= 0: test both.
        if den <= 0.0 || den.is_nan() || num.is_nan() {
            f32::NAN
        } else {
            num / den
        }
    }

    /// Band positions of the roles this index needs, in [`Role`] slot order
    /// (`usize::MAX` for unused roles).
    pub fn locate(&self, bands: &[String]) -> Result<[usize; 6]> {
        let mut pos = [usize::MAX; 6];
        for &role in self.roles() {
            pos[role.slot()] = role.find(bands).ok_or_else(|| ReprError::MissingBand {
                index: self.name().into(),
                role: role.name(),
                tried: role.aliases().to_vec(),
                available: bands.to_vec(),
            })?;
        }
        Ok(pos)
    }
}

/// Reflectances of the needed roles from one observation's bands.
fn gather(pos: &[usize; 6], get: impl Fn(usize) -> f32, rad: Radiometry) -> [f32; 6] {
    let mut r = [0f32; 6];
    for role in Role::ALL {
        let p = pos[role.slot()];
        if p != usize::MAX {
            r[role.slot()] = get(p) * rad.scale + rad.offset;
        }
    }
    r
}

/// Indices of a cube: values `(T, K, H, W)` for the `K` indices, and validity
/// `(T, H, W)`: true where the cube's observation is valid and every index is
/// defined.
pub fn cube_indices(
    cube: &Datacube,
    indices: &[SpectralIndex],
) -> Result<(Array4<f32>, Array3<bool>)> {
    let located: Vec<[usize; 6]> = indices
        .iter()
        .map(|i| i.locate(cube.bands()))
        .collect::<Result<_>>()?;
    let (t, _, h, w) = cube.shape();
    let rad = cube.radiometry();
    let values = cube.values();
    let validity = cube.validity();
    let mut out = Array4::<f32>::zeros((t, indices.len(), h, w));
    let mut valid = Array3::from_elem((t, h, w), false);
    let k = indices.len();
    let (out_s, valid_s) = (
        out.as_slice_mut().expect("fresh array is contiguous"),
        valid.as_slice_mut().expect("fresh array is contiguous"),
    );
    out_s
        .par_chunks_mut((k * h * w).max(1))
        .zip(valid_s.par_chunks_mut((h * w).max(1)))
        .enumerate()
        .for_each(|(ti, (o, v))| {
            let frame = values.index_axis(Axis(0), ti);
            for y in 0..h {
                for x in 0..w {
                    let px = y * w + x;
                    let mut ok = validity[[ti, y, x]];
                    for (ki, (index, pos)) in indices.iter().zip(&located).enumerate() {
                        let r = gather(pos, |b| frame[[b, y, x]], rad);
                        let value = if ok { index.formula(&r) } else { f32::NAN };
                        ok &= !value.is_nan();
                        o[ki * h * w + px] = value;
                    }
                    if !ok {
                        for ki in 0..k {
                            o[ki * h * w + px] = f32::NAN;
                        }
                    }
                    v[px] = ok;
                }
            }
        });
    Ok((out, valid))
}

/// A new cube whose bands are the indices (named `NDVI`, `EVI`, ...), with the same
/// timestamps and georeferencing, identity radiometry and the combined validity.
pub fn index_cube(cube: &Datacube, indices: &[SpectralIndex]) -> Result<Datacube> {
    let (values, valid) = cube_indices(cube, indices)?;
    let names = indices.iter().map(|i| i.name().to_string()).collect();
    Ok(Datacube::new(values, cube.times().clone(), names)?
        .with_valid(valid)?
        .with_geo(cube.geo().cloned()))
}

/// Indices of one series `(T, C)` → `(T, K)` with the validity of each date.
pub fn series_indices(
    series: &Series,
    bands: &[String],
    radiometry: Radiometry,
    indices: &[SpectralIndex],
) -> Result<(Array2<f32>, Vec<bool>)> {
    let located: Vec<[usize; 6]> = indices
        .iter()
        .map(|i| i.locate(bands))
        .collect::<Result<_>>()?;
    Ok(series_with(series, &located, radiometry, indices))
}

fn series_with(
    series: &Series,
    located: &[[usize; 6]],
    rad: Radiometry,
    indices: &[SpectralIndex],
) -> (Array2<f32>, Vec<bool>) {
    let t = series.len();
    let mut valid = series.validity();
    let mut out = Array2::from_elem((t, indices.len()), f32::NAN);
    for ti in 0..t {
        if !valid[ti] {
            continue;
        }
        let row = series.values.row(ti);
        for (k, (index, pos)) in indices.iter().zip(located).enumerate() {
            out[[ti, k]] = index.formula(&gather(pos, |b| row[b], rad));
        }
        if out.row(ti).iter().any(|v| v.is_nan()) {
            valid[ti] = false;
            out.row_mut(ti).fill(f32::NAN);
        }
    }
    (out, valid)
}

/// A sample set whose bands are the indices, with labels, classes, splits and ids
/// kept and each date's validity updated. `radiometry` says how the stored values
/// map to reflectance (sample tables carry no scaling of their own).
pub fn sample_indices(
    set: &SampleSet,
    radiometry: Radiometry,
    indices: &[SpectralIndex],
) -> Result<SampleSet> {
    let located: Vec<[usize; 6]> = indices
        .iter()
        .map(|i| i.locate(set.bands()))
        .collect::<Result<_>>()?;
    let series: Vec<Series> = set
        .series()
        .par_iter()
        .map(|s| {
            let (values, valid) = series_with(s, &located, radiometry, indices);
            Series::new(values, s.times.clone(), Some(valid))
        })
        .collect::<std::result::Result<_, _>>()?;
    let names = indices.iter().map(|i| i.name().to_string()).collect();
    Ok(SampleSet::new(
        series,
        names,
        set.labels().map(<[usize]>::to_vec),
        set.class_names().to_vec(),
        set.splits().map(<[sits_data::Split]>::to_vec),
    )?
    .with_ids(set.ids().to_vec())?)
}

/// Indices of a tensor whose dimension `band_dim` holds the bands named `bands`
/// (for instance a batch `(B, T, C)` or `(B, T, C, H, W)` with `band_dim = 2`).
/// Returns the indices stacked on `band_dim` and a `u8` validity mask of the same
/// shape with size 1 on `band_dim` (1 = every index defined). Runs on the tensor's
/// device.
pub fn tensor_indices(
    x: &Tensor,
    bands: &[String],
    band_dim: usize,
    radiometry: Radiometry,
    indices: &[SpectralIndex],
) -> Result<(Tensor, Tensor)> {
    let dims = x.dims();
    if band_dim >= dims.len() || dims[band_dim] != bands.len() {
        return Err(ReprError::Shape {
            what: "tensor for spectral indices".into(),
            expected: format!("{} bands on dimension {band_dim}", bands.len()),
            got: dims.to_vec(),
        });
    }
    let x = x.to_dtype(DType::F32)?;
    let band = |p: usize| -> Result<Tensor> {
        Ok(x.narrow(band_dim, p, 1)?
            .affine(radiometry.scale as f64, radiometry.offset as f64)?)
    };
    let mut outs = Vec::with_capacity(indices.len());
    for index in indices {
        let pos = index.locate(bands)?;
        let get = |role: Role| band(pos[role.slot()]);
        let (num, den) = match *index {
            SpectralIndex::Ndvi => {
                let (n, r) = (get(Role::Nir)?, get(Role::Red)?);
                ((&n - &r)?, (&n + &r)?)
            }
            SpectralIndex::Evi { g, c1, c2, l } => {
                let (n, r, b) = (get(Role::Nir)?, get(Role::Red)?, get(Role::Blue)?);
                let den =
                    ((&n + r.affine(c1 as f64, 0.0)?)? - b.affine(c2 as f64, -(l as f64))?)?;
                ((&n - &r)?.affine(g as f64, 0.0)?, den)
            }
            SpectralIndex::Savi { l } => {
                let (n, r) = (get(Role::Nir)?, get(Role::Red)?);
                (
                    (&n - &r)?.affine(1.0 + l as f64, 0.0)?,
                    (&n + &r)?.affine(1.0, l as f64)?,
                )
            }
            SpectralIndex::Ndwi => {
                let (gr, n) = (get(Role::Green)?, get(Role::Nir)?);
                ((&gr - &n)?, (&gr + &n)?)
            }
            SpectralIndex::Ndmi | SpectralIndex::Nbr => {
                let swir = if *index == SpectralIndex::Ndmi {
                    Role::Swir1
                } else {
                    Role::Swir2
                };
                let (n, s) = (get(Role::Nir)?, get(swir)?);
                ((&n - &s)?, (&n + &s)?)
            }
        };
        // Undefined where den <= 0 or anything is NaN (den > 0 is false for NaN).
        let defined = den.gt(0f64)?.mul(&num.eq(&num)?)?;
        let nan = Tensor::full(f32::NAN, num.shape(), num.device())?;
        let safe_den = defined.where_cond(&den, &Tensor::ones_like(&den)?)?;
        outs.push(defined.where_cond(&(num / safe_den)?, &nan)?);
    }
    let out = Tensor::cat(&outs, band_dim)?;
    let valid = out.eq(&out)?.min_keepdim(band_dim)?;
    Ok((out, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refl(blue: f32, green: f32, red: f32, nir: f32, swir1: f32, swir2: f32) -> [f32; 6] {
        [blue, green, red, nir, swir1, swir2]
    }

    #[test]
    fn formulas_by_hand() {
        let r = refl(0.05, 0.08, 0.1, 0.5, 0.3, 0.2);
        assert!((SpectralIndex::Ndvi.formula(&r) - 0.4 / 0.6).abs() < 1e-6);
        // EVI = 2.5 * 0.4 / (0.5 + 0.6 - 0.375 + 1) = 1 / 1.725
        assert!((SpectralIndex::evi().formula(&r) - 1.0 / 1.725).abs() < 1e-6);
        // SAVI = 1.5 * 0.4 / (0.6 + 0.5)
        assert!((SpectralIndex::savi().formula(&r) - 0.6 / 1.1).abs() < 1e-6);
        assert!((SpectralIndex::Ndwi.formula(&r) - (-0.42 / 0.58)).abs() < 1e-6);
        assert!((SpectralIndex::Ndmi.formula(&r) - 0.2 / 0.8).abs() < 1e-6);
        assert!((SpectralIndex::Nbr.formula(&r) - 0.3 / 0.7).abs() < 1e-6);
    }

    #[test]
    fn undefined_is_nan() {
        assert!(SpectralIndex::Ndvi
            .formula(&refl(0.0, 0.0, -0.2, 0.1, 0.0, 0.0))
            .is_nan());
        assert!(SpectralIndex::Ndvi
            .formula(&refl(0.0, 0.0, f32::NAN, 0.1, 0.0, 0.0))
            .is_nan());
        // EVI denominator 0.1 + 0.6 - 7.5 + 1 < 0
        assert!(SpectralIndex::evi()
            .formula(&refl(1.0, 0.0, 0.1, 0.1, 0.0, 0.0))
            .is_nan());
    }

    #[test]
    fn band_names() {
        let s2: Vec<String> = ["B02", "B03", "B04", "B08", "B11", "B12"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            SpectralIndex::Nbr.locate(&s2).unwrap()[Role::Swir2.slot()],
            5
        );
        let modis: Vec<String> = ["blue", "red", "nir", "mir"].map(String::from).to_vec();
        assert_eq!(
            SpectralIndex::Nbr.locate(&modis).unwrap()[Role::Swir2.slot()],
            3
        );
        let e = SpectralIndex::Ndwi.locate(&modis).unwrap_err().to_string();
        assert!(e.contains("green") && e.contains("NDWI"), "{e}");
    }
}
