//! From a sensor's bands and dates to Presto's inputs.
//!
//! Presto reads monthly composites of Sentinel-2 L1C reflectance (plus Sentinel-1,
//! ERA5, SRTM and NDVI); anything it is not given is masked, as upstream's
//! `construct_single_presto_input` does. This module decides which input band
//! stands for which Presto band, converts units and normalises as upstream, and
//! composites the series by calendar month.
//!
//! # Band mapping
//! Matched by name, case-insensitively ([`presto_band`]):
//!
//! | input name | Presto band | why |
//! | --- | --- | --- |
//! | `B2`…`B12`, `B8A` (also `B02`…) | the same Sentinel-2 band | same sensor |
//! | `blue`, `green`, `red` | `B2`, `B3`, `B4` | visible bands overlap |
//! | `nir` (MODIS band 2, 841–876 nm) | `B8` and `B8A` | both lie in 785–900 nm |
//! | `nir08`, `nir_narrow` | `B8A` | 855–875 nm |
//! | `rededge1`…`rededge3` | `B5`…`B7` | |
//! | `swir16`, `swir1` | `B11` | 1.6 µm |
//! | `mir` (MODIS band 7, 2105–2155 nm), `swir22`, `swir2` | `B12` | 2.1–2.3 µm |
//! | `ndvi` | `NDVI` | used when `B4` and `B8` are not both present |
//! | `VV`, `VH` | Sentinel-1 (dB) | |
//! | `temperature_2m` (K), `total_precipitation` (m) | ERA5 | |
//! | `elevation` (m), `slope` (degrees) | SRTM | |
//!
//! Other sensors' numbered bands are renamed by [`Sensor`] first (CBERS-4 AWFI
//! `B13`…`B16`, Landsat 8/9 OLI `B2`…`B7`). Bands with no counterpart (MODIS `evi`,
//! a cloud mask) are ignored and listed in [`BandMap::ignored`]. A group of Presto
//! (for instance `S2_RGB`: `B2`, `B3`, `B4`) is read only when every band of it is
//! present: upstream masks a group with any missing band. MODIS blue, red, NIR
//! and MIR therefore give the `S2_NIR_10m`, `S2_NIR_20m` and `NDVI` tokens; RGB and
//! SWIR need green and `B11`, which MODIS MOD13Q1 does not carry.
//!
//! # Units and normalisation
//! Reflectance bands are multiplied by [`BandMap::scale`] (1e-4 for digital numbers
//! of reflectance × 10⁴, 1 for reflectance) and then read as upstream's
//! `value / 10⁴` of digital numbers, that is as reflectance. The scale is checked
//! against the data ([`BandMap::check_scale`]). NDVI is recomputed from `B8` and `B4`
//! when both are present, as upstream does. Sentinel-1 is `(dB + 25) / 25`, ERA5
//! temperature `(K − 272.15) / 35` and precipitation `m / 0.03`, SRTM elevation
//! `m / 2000` and slope `degrees / 50`.
//!
//! # Months
//! Presto was pretrained on monthly composites with one month number per timestep.
//! [`monthly`] averages the valid observations of each calendar month band by band
//! (a month with none is masked) from the first date's month to the last's, at
//! most 24 months, and computes NDVI from the composite's `B8` and `B4`.

use candle_core::{Device, Tensor};
use sits_core::chrono::{Datelike, NaiveDate};

use super::{PrestoInput, BANDS, DW_CLASSES, GROUPS};
use crate::error::ModelError;

/// Where numbered bands come from, for names that differ between sensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sensor {
    /// Sentinel-2 MSI band names (`B2`, `B8A`, …), and named bands (`red`, `nir`).
    #[default]
    Sentinel2,
    /// CBERS-4 AWFI: `B13` blue, `B14` green, `B15` red, `B16` near infrared
    /// (770–890 nm, read as `B8`).
    Cbers4Awfi,
    /// Landsat 8/9 OLI: `B2` blue, `B3` green, `B4` red, `B5` NIR (851–879 nm, read
    /// as `B8A`), `B6` SWIR 1.6 µm, `B7` SWIR 2.2 µm.
    LandsatOli,
}

impl std::str::FromStr for Sensor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sentinel2" | "sentinel-2" | "s2" => Ok(Self::Sentinel2),
            "cbers4-awfi" | "cbers-4-awfi" | "cbers4_awfi" => Ok(Self::Cbers4Awfi),
            "landsat-oli" | "landsat" | "landsat8" | "landsat9" => Ok(Self::LandsatOli),
            _ => Err(format!(
                "unknown sensor `{s}` (known: sentinel2, cbers4-awfi, landsat-oli)"
            )),
        }
    }
}

/// `B` followed by a digit (`B4`, `B8A`, `B13`): a band number, as the sensors
/// name their digital-number products.
fn is_numbered(name: &str) -> bool {
    let n = name.trim().as_bytes();
    n.len() > 1 && n[0].eq_ignore_ascii_case(&b'b') && n[1].is_ascii_digit()
}

fn band_index(name: &str) -> Option<usize> {
    BANDS.iter().position(|b| b.eq_ignore_ascii_case(name))
}

/// The Presto bands (indices into [`BANDS`]) an input band named `name` stands for.
pub fn presto_band(name: &str, sensor: Sensor) -> Vec<usize> {
    let lower = name.trim().to_ascii_lowercase();
    let renamed = match (sensor, lower.as_str()) {
        (Sensor::Cbers4Awfi, "b13") => "blue",
        (Sensor::Cbers4Awfi, "b14") => "green",
        (Sensor::Cbers4Awfi, "b15") => "red",
        (Sensor::Cbers4Awfi, "b16") => "b8",
        (Sensor::LandsatOli, "b2") => "blue",
        (Sensor::LandsatOli, "b3") => "green",
        (Sensor::LandsatOli, "b4") => "red",
        (Sensor::LandsatOli, "b5") => "b8a",
        (Sensor::LandsatOli, "b6") => "b11",
        (Sensor::LandsatOli, "b7") => "b12",
        (Sensor::LandsatOli, _) if is_numbered(&lower) => return vec![],
        (_, other) => other,
    };
    let named: &[&str] = match renamed {
        "blue" => &["B2"],
        "green" => &["B3"],
        "red" => &["B4"],
        "nir" => &["B8", "B8A"],
        "nir08" | "nir_narrow" => &["B8A"],
        "rededge1" => &["B5"],
        "rededge2" => &["B6"],
        "rededge3" => &["B7"],
        "swir16" | "swir1" => &["B11"],
        "mir" | "swir22" | "swir2" => &["B12"],
        _ => &[],
    };
    if !named.is_empty() {
        return named.iter().filter_map(|b| band_index(b)).collect();
    }
    // B02 -> B2
    let unpadded = match renamed.strip_prefix('b') {
        Some(rest) if rest.starts_with('0') && rest.len() > 1 => format!("b{}", &rest[1..]),
        _ => renamed.to_string(),
    };
    band_index(&unpadded).into_iter().collect()
}

/// Upstream's normalisation `(value + shift) / div` of Presto band `i`, with
/// reflectance bands given as reflectance.
fn shift_div(i: usize) -> (f32, f32) {
    match BANDS[i] {
        "VV" | "VH" => (25.0, 25.0),
        "temperature_2m" => (-272.15, 35.0),
        "total_precipitation" => (0.0, 0.03),
        "elevation" => (0.0, 2000.0),
        "slope" => (0.0, 50.0),
        _ => (0.0, 1.0),
    }
}

/// The physical value of Presto input `i` from its normalised value `x` (the
/// inverse of the normalisation): dB for Sentinel-1, reflectance for Sentinel-2,
/// K, m, m and degrees for ERA5 and SRTM, NDVI as it is. Other published models
/// that read the same bands start from here.
pub fn physical(i: usize, x: f32) -> f32 {
    let (shift, div) = shift_div(i);
    x * div - shift
}

fn is_reflectance(i: usize) -> bool {
    (2..=11).contains(&i)
}

const NDVI: usize = 16;
const B4: usize = 4;
const B8: usize = 8;

/// Which input band feeds which Presto band, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct BandMap {
    /// `(Presto band, input band)` pairs, Presto order.
    pub sources: Vec<(usize, usize)>,
    /// Multiplier from the input's reflectance values to reflectance.
    pub scale: f32,
    /// NDVI computed from `B8` and `B4` (true) or read from an `ndvi` band.
    pub ndvi_from_bands: bool,
    /// Input bands with no counterpart.
    pub ignored: Vec<String>,
    /// The band groups that will be read (upstream names).
    pub groups: Vec<&'static str>,
}

fn input_err(what: &str, reason: String) -> ModelError {
    ModelError::Input {
        what: what.to_string(),
        reason,
    }
}

impl BandMap {
    /// Maps `bands` (the input's names, in order) for `sensor`. `scale` converts
    /// reflectance bands to reflectance: 1e-4 for reflectance × 10⁴ (`None` picks
    /// 1e-4 for numbered band names and 1 for named ones such as `red`). `what`
    /// names the input in errors. An input that feeds no group is refused with the
    /// list of what Presto reads.
    pub fn new(
        what: &str,
        bands: &[String],
        sensor: Sensor,
        scale: Option<f32>,
    ) -> Result<Self, ModelError> {
        let mut sources = Vec::new();
        let mut ignored = Vec::new();
        let mut numbered = false;
        for (j, name) in bands.iter().enumerate() {
            let to = presto_band(name, sensor);
            if to.is_empty() {
                ignored.push(name.clone());
            }
            for i in to {
                if sources.iter().any(|&(k, _)| k == i) {
                    return Err(input_err(
                        what,
                        format!(
                            "bands {:?} and `{name}` both stand for Presto's {}; keep one",
                            bands[sources.iter().find(|&&(k, _)| k == i).map_or(0, |p| p.1)],
                            BANDS[i]
                        ),
                    ));
                }
                if is_reflectance(i) {
                    numbered |= is_numbered(name);
                }
                sources.push((i, j));
            }
        }
        sources.sort_unstable();
        let ndvi_from_bands = [B4, B8]
            .iter()
            .all(|&i| sources.iter().any(|&(k, _)| k == i));
        if ndvi_from_bands {
            // upstream recomputes NDVI from B8 and B4; an NDVI band goes unused
            if let Some(&(_, j)) = sources.iter().find(|&&(k, _)| k == NDVI) {
                ignored.push(bands[j].clone());
            }
            sources.retain(|&(k, _)| k != NDVI);
        }
        let has = |i: usize| sources.iter().any(|&(k, _)| k == i);
        let groups: Vec<&'static str> = GROUPS
            .iter()
            .filter(|(name, idx)| {
                idx.iter().all(|&i| has(i)) || (*name == "NDVI" && ndvi_from_bands)
            })
            .map(|(name, _)| *name)
            .collect();
        if groups.is_empty() {
            return Err(input_err(
                what,
                format!(
                    "none of the bands {bands:?} gives Presto a complete input group. Presto reads \
                     {}; bands are matched by name (Sentinel-2 `B2`..`B12`/`B8A`, or `blue`, \
                     `green`, `red`, `nir`, `swir16`, `mir`, `ndvi`, `VV`, `VH`, …), other \
                     sensors' numbers through the sensor option (cbers4-awfi, landsat-oli)",
                    GROUPS
                        .iter()
                        .map(|(g, idx)| format!(
                            "{g} ({})",
                            idx.iter().map(|&i| BANDS[i]).collect::<Vec<_>>().join(", ")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ));
        }
        let scale = scale.unwrap_or(if numbered { 1e-4 } else { 1.0 });
        if !(scale.is_finite() && scale > 0.0) {
            return Err(input_err(
                what,
                format!("reflectance scale {scale} (must be > 0)"),
            ));
        }
        Ok(Self {
            sources,
            scale,
            ndvi_from_bands,
            ignored,
            groups,
        })
    }

    /// Checks the scale against reflectance `values` of the input (`(…, C)` rows in
    /// the input's band order, NaN for missing): once scaled, the median present
    /// reflectance must lie between 0.002 and 1.5. Catches reflectance × 10⁴ read as
    /// reflectance and the reverse, naming the fix.
    pub fn check_scale(
        &self,
        what: &str,
        values: &[f32],
        n_bands: usize,
    ) -> Result<(), ModelError> {
        let cols: Vec<usize> = self
            .sources
            .iter()
            .filter(|&&(i, _)| is_reflectance(i))
            .map(|&(_, j)| j)
            .collect();
        if cols.is_empty() || n_bands == 0 {
            return Ok(());
        }
        let mut v: Vec<f32> = values
            .chunks_exact(n_bands)
            .flat_map(|row| cols.iter().map(move |&j| row[j]))
            .filter(|x| x.is_finite())
            .map(|x| x * self.scale)
            .collect();
        if v.is_empty() {
            return Ok(());
        }
        let mid = v.len() / 2;
        let median = *v.select_nth_unstable_by(mid, f32::total_cmp).1;
        if median > 1.5 {
            return Err(input_err(
                what,
                format!(
                    "reflectance bands scaled by {} have a median of {median}: they look like \
                     reflectance × 10⁴; use a scale of 1e-4",
                    self.scale
                ),
            ));
        }
        if median < 0.002 {
            return Err(input_err(
                what,
                format!(
                    "reflectance bands scaled by {} have a median of {median}: they look like \
                     reflectance already; use a scale of 1",
                    self.scale
                ),
            ));
        }
        Ok(())
    }

    /// The normalised 17 Presto values and their mask (1 = missing) for one
    /// observation `row` (the input's bands, NaN for missing).
    pub fn normalise(&self, row: &[f32]) -> ([f32; 17], [u8; 17]) {
        let (mut x, mut m) = self.normalise_bands(row);
        self.finish_ndvi(&mut x, &mut m);
        (x, m)
    }

    /// Which of the 17 Presto inputs this map ever fills (NDVI included when it
    /// is computed from `B8` and `B4`).
    pub fn present(&self) -> [bool; 17] {
        let mut p = [false; 17];
        for &(i, _) in &self.sources {
            p[i] = true;
        }
        p[NDVI] |= self.ndvi_from_bands;
        p
    }

    /// [`Self::normalise`] without the NDVI computed from `B8` and `B4`.
    fn normalise_bands(&self, row: &[f32]) -> ([f32; 17], [u8; 17]) {
        let mut x = [0f32; 17];
        let mut m = [1u8; 17];
        for &(i, j) in &self.sources {
            let v = row[j];
            if !v.is_finite() {
                continue;
            }
            let v = if is_reflectance(i) { v * self.scale } else { v };
            let (shift, div) = shift_div(i);
            x[i] = (v + shift) / div;
            m[i] = 0;
        }
        (x, m)
    }

    /// Upstream's NDVI from normalised `B8` and `B4` (0 where their sum is not
    /// positive), when this map computes it and both are present.
    fn finish_ndvi(&self, x: &mut [f32], m: &mut [u8]) {
        if self.ndvi_from_bands && m[B4] == 0 && m[B8] == 0 {
            let (b8, b4) = (x[B8], x[B4]);
            x[NDVI] = if b8 + b4 > 0.0 {
                (b8 - b4) / (b8 + b4)
            } else {
                0.0
            };
            m[NDVI] = 0;
        }
    }
}

/// One series as Presto reads it: monthly timesteps.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthlySeries {
    /// `(M, 17)` normalised values (0 where missing).
    pub x: Vec<f32>,
    /// `(M, 17)` 1 = missing.
    pub mask: Vec<u8>,
    /// `M` months, 0 = January.
    pub months: Vec<u32>,
}

impl MonthlySeries {
    /// Timesteps (months).
    pub fn len(&self) -> usize {
        self.months.len()
    }

    /// Whether it has no timestep.
    pub fn is_empty(&self) -> bool {
        self.months.is_empty()
    }
}

/// The longest series Presto's position table covers.
pub const MAX_MONTHS: usize = 24;

/// Composites one series by calendar month: `values` `(T, C)` in the input's band
/// order at `dates` (`T`, ascending), `valid` `(T)` when some dates are cloudy or
/// missing. Each month's values are the means of its valid normalised
/// observations, band by band; a month without any is masked. Spans of more than
/// [`MAX_MONTHS`] months are refused.
pub fn monthly(
    map: &BandMap,
    values: &[f32],
    n_bands: usize,
    dates: &[NaiveDate],
    valid: Option<&[bool]>,
) -> Result<MonthlySeries, ModelError> {
    let t = dates.len();
    if values.len() != t * n_bands || valid.is_some_and(|v| v.len() != t) {
        return Err(input_err(
            "series",
            format!(
                "{} values and {} validity flags for {t} dates of {n_bands} bands",
                values.len(),
                valid.map_or(t, <[bool]>::len)
            ),
        ));
    }
    let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
        return Ok(MonthlySeries {
            x: vec![],
            mask: vec![],
            months: vec![],
        });
    };
    let index = |d: &NaiveDate| d.year() as i64 * 12 + d.month0() as i64;
    let (start, end) = (index(first), index(last));
    if end < start {
        return Err(input_err(
            "series",
            "dates are not in ascending order".into(),
        ));
    }
    let m = (end - start + 1) as usize;
    if m > MAX_MONTHS {
        return Err(input_err(
            "series",
            format!(
                "{first} to {last} spans {m} months; Presto reads at most {MAX_MONTHS}: \
                 cut the series into periods (years) first"
            ),
        ));
    }
    let mut sum = vec![0f64; m * 17];
    let mut count = vec![0u32; m * 17];
    for (k, d) in dates.iter().enumerate() {
        if valid.is_some_and(|v| !v[k]) {
            continue;
        }
        let slot = (index(d) - start) as usize;
        let (x, mk) = map.normalise_bands(&values[k * n_bands..(k + 1) * n_bands]);
        for i in 0..17 {
            if mk[i] == 0 {
                sum[slot * 17 + i] += x[i] as f64;
                count[slot * 17 + i] += 1;
            }
        }
    }
    let mut x: Vec<f32> = sum
        .iter()
        .zip(&count)
        .map(|(&s, &c)| if c > 0 { (s / c as f64) as f32 } else { 0.0 })
        .collect();
    let mut mask: Vec<u8> = count.iter().map(|&c| u8::from(c == 0)).collect();
    // NDVI of the composite, as in the monthly composites Presto was trained on
    for (xs, ms) in x.chunks_exact_mut(17).zip(mask.chunks_exact_mut(17)) {
        map.finish_ndvi(xs, ms);
    }
    let months = (0..m).map(|k| ((start + k as i64) % 12) as u32).collect();
    Ok(MonthlySeries { x, mask, months })
}

/// A batch of monthly series with their locations (`[lat, lon]` degrees) as a
/// [`PrestoInput`] on `device`. Shorter series are padded with masked months
/// (which no token attends to); Dynamic World is unknown everywhere.
pub fn batch(
    series: &[MonthlySeries],
    latlons: &[[f32; 2]],
    device: &Device,
) -> candle_core::Result<PrestoInput> {
    if series.len() != latlons.len() {
        candle_core::bail!("{} series and {} locations", series.len(), latlons.len());
    }
    let b = series.len();
    let t = series
        .iter()
        .map(MonthlySeries::len)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut x = vec![0f32; b * t * 17];
    let mut mask = vec![1u8; b * t * 17];
    let mut months = vec![0u32; b * t];
    for (s, ser) in series.iter().enumerate() {
        let n = ser.len();
        x[s * t * 17..(s * t + n) * 17].copy_from_slice(&ser.x);
        mask[s * t * 17..(s * t + n) * 17].copy_from_slice(&ser.mask);
        for k in 0..t {
            months[s * t + k] = match ser.months.first() {
                Some(&m0) => (m0 + k as u32) % 12,
                None => 0,
            };
        }
    }
    let ll: Vec<f32> = latlons.iter().flatten().copied().collect();
    Ok(PrestoInput {
        x: Tensor::from_vec(x, (b, t, 17), device)?,
        mask: Tensor::from_vec(mask, (b, t, 17), device)?,
        dynamic_world: Tensor::full(DW_CLASSES as u32, (b, t), device)?,
        latlons: Tensor::from_vec(ll, (b, 2), device)?,
        months: Tensor::from_vec(months, (b, t), device)?,
    })
}
