//! The on-disk layout of the PASTIS benchmark (Garnot & Landrieu 2021), as read by
//! `PASTIS_Dataset` in `VSainteuf/utae-paps` (`src/dataset.py`).
//!
//! ```text
//! metadata.geojson          FeatureCollection; per patch: ID_PATCH, Fold (1..5),
//!                           "dates-S2": {"0": 20180924, "1": ...} (yyyymmdd)
//! DATA_S2/S2_<id>.npy       (T, 10, H, W), Sentinel-2 B02 B03 B04 B05 B06 B07 B08 B8A B11 B12
//! ANNOTATIONS/TARGET_<id>.npy  (3, H, W); channel 0 is the semantic class (0..19)
//! NORM_S2_patch.json        {"Fold_1": {"mean": [10], "std": [10]}, ...}
//! ```
//!
//! As in the reference, the normalisation of a set of folds is the average of the
//! per-fold means and of the per-fold standard deviations, and dates become days since
//! 2018-09-01 ([`sits_core::dates::pastis_reference`]). Unlike the reference, which
//! places dates through a sorted lookup table whatever their order in the file,
//! unsorted or duplicate dates are refused here: silently reordering dates but not
//! the images would misalign them.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis, Ix3, Ix4};

use crate::cube::Datacube;
use crate::error::{DataError, Result};
use crate::io_util::read_json;
use crate::loader::{Label, Sample, SampleSource};
use crate::npy::read_npy;
use sits_core::dates::Timestamps;

/// Band names of PASTIS S2 patches, in file order.
pub const S2_BANDS: [&str; 10] = [
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
];

/// Number of semantic classes of PASTIS (0 background .. 18, 19 void label).
pub const NUM_CLASSES: usize = 20;

/// One patch of the metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct PastisPatch {
    /// `ID_PATCH`.
    pub id: u64,
    /// `Fold` (1..=5).
    pub fold: u8,
    /// Acquisition dates of `dates-S2`.
    pub dates: Timestamps,
}

/// A PASTIS-layout folder.
#[derive(Debug, Clone)]
pub struct Pastis {
    root: PathBuf,
    patches: Vec<PastisPatch>,
}

impl Pastis {
    /// Reads `metadata.geojson` of a PASTIS folder (patch files are read on demand).
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join("metadata.geojson");
        let gj = read_json(&path)?;
        let features = gj
            .get("features")
            .and_then(|f| f.as_array())
            .ok_or_else(|| DataError::field(&path, "features", "missing or not a list"))?;
        let mut patches = Vec::with_capacity(features.len());
        for (i, f) in features.iter().enumerate() {
            let props = f.get("properties").ok_or_else(|| {
                DataError::field(&path, &format!("features[{i}].properties"), "missing")
            })?;
            let field = |k: &str| format!("features[{i}].properties.{k}");
            let id = match props.get("ID_PATCH") {
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                DataError::field(&path, &field("ID_PATCH"), "missing or not an integer")
            })?;
            let fold = props
                .get("Fold")
                .and_then(|v| v.as_u64())
                .filter(|f| (1..=5).contains(f))
                .ok_or_else(|| DataError::field(&path, &field("Fold"), "missing or not in 1..=5"))?
                as u8;
            let dates = props
                .get("dates-S2")
                .and_then(|d| d.as_object())
                .ok_or_else(|| {
                    DataError::field(&path, &field("dates-S2"), "missing or not an object")
                })?;
            let mut entries = dates
                .iter()
                .map(|(k, v)| {
                    let pos: usize = k.parse().map_err(|_| {
                        DataError::field(
                            &path,
                            &field("dates-S2"),
                            format!("key {k:?} is not an index"),
                        )
                    })?;
                    let text = match v {
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::String(s) => s.clone(),
                        _ => String::new(),
                    };
                    Ok((pos, text))
                })
                .collect::<Result<Vec<_>>>()?;
            entries.sort();
            if entries.iter().enumerate().any(|(j, e)| e.0 != j) {
                return Err(DataError::field(
                    &path,
                    &field("dates-S2"),
                    "keys are not 0..T",
                ));
            }
            let texts: Vec<String> = entries.into_iter().map(|e| e.1).collect();
            let dates = Timestamps::parse(&texts, &format!("{} patch {id}", path.display()))?;
            patches.push(PastisPatch { id, fold, dates });
        }
        patches.sort_by_key(|p| p.id);
        if let Some(w) = patches.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(DataError::field(
                &path,
                "ID_PATCH",
                format!("patch id {} appears twice; ids must be unique", w[0].id),
            ));
        }
        Ok(Self {
            root: root.to_path_buf(),
            patches,
        })
    }

    /// All patches, sorted by id.
    pub fn patches(&self) -> &[PastisPatch] {
        &self.patches
    }

    /// The patches of the given folds.
    pub fn patches_in_folds(&self, folds: &[u8]) -> Vec<&PastisPatch> {
        self.patches
            .iter()
            .filter(|p| folds.contains(&p.fold))
            .collect()
    }

    fn patch(&self, id: u64) -> Result<&PastisPatch> {
        self.patches
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| DataError::OutOfBounds {
                what: format!("PASTIS patch {id}"),
                reason: format!("not in {}", self.root.join("metadata.geojson").display()),
            })
    }

    /// Mean and standard deviation per band for a set of folds, from
    /// `NORM_S2_patch.json` (averaged over the folds, as in the reference).
    pub fn norm(&self, folds: &[u8]) -> Result<(Vec<f32>, Vec<f32>)> {
        let path = self.root.join("NORM_S2_patch.json");
        let j = read_json(&path)?;
        if folds.is_empty() {
            return Err(DataError::Argument("norm: no fold given".into()));
        }
        let mut mean = vec![0f64; 10];
        let mut std = vec![0f64; 10];
        for f in folds {
            let key = format!("Fold_{f}");
            for (name, acc) in [("mean", &mut mean), ("std", &mut std)] {
                let v = j
                    .get(&key)
                    .and_then(|x| x.get(name))
                    .and_then(|x| x.as_array())
                    .filter(|a| a.len() == 10)
                    .ok_or_else(|| {
                        DataError::field(
                            &path,
                            &format!("{key}.{name}"),
                            "missing or not 10 numbers",
                        )
                    })?;
                for (a, x) in acc.iter_mut().zip(v) {
                    let x = x.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                        DataError::field(&path, &format!("{key}.{name}"), "not a finite number")
                    })?;
                    if name == "std" && x <= 0.0 {
                        return Err(DataError::field(
                            &path,
                            &format!("{key}.{name}"),
                            format!("{x} is not a positive standard deviation"),
                        ));
                    }
                    *a += x;
                }
            }
        }
        let n = folds.len() as f64;
        Ok((
            mean.iter().map(|m| (m / n) as f32).collect(),
            std.iter().map(|s| (s / n) as f32).collect(),
        ))
    }

    /// Reads the S2 time series of a patch as a cube `(T, 10, H, W)` of raw values.
    pub fn read_patch(&self, id: u64) -> Result<Datacube> {
        let p = self.patch(id)?;
        let path = self.root.join("DATA_S2").join(format!("S2_{id}.npy"));
        let a = read_npy(&path)?.to_f32();
        let sh = a.shape().to_vec();
        let a = a
            .into_dimensionality::<Ix4>()
            .map_err(|_| DataError::Shape {
                what: path.display().to_string(),
                expected: "(T, 10, H, W)".into(),
                got: sh.clone(),
            })?;
        if a.dim().1 != 10 {
            return Err(DataError::Shape {
                what: path.display().to_string(),
                expected: "(T, 10, H, W)".into(),
                got: sh,
            });
        }
        if a.dim().0 != p.dates.len() {
            return Err(DataError::Dates {
                what: path.display().to_string(),
                reason: format!(
                    "{} dates in metadata.geojson but T = {}",
                    p.dates.len(),
                    a.dim().0
                ),
            });
        }
        Datacube::new(
            a,
            p.dates.clone(),
            S2_BANDS.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Reads the semantic target of a patch (channel 0 of `TARGET_<id>.npy`), `(H, W)`;
    /// every value must be a class id in `0..NUM_CLASSES`.
    pub fn read_target(&self, id: u64) -> Result<Array2<i64>> {
        self.patch(id)?;
        let path = self
            .root
            .join("ANNOTATIONS")
            .join(format!("TARGET_{id}.npy"));
        let a = read_npy(&path)?.to_f32();
        let sh = a.shape().to_vec();
        let a = a
            .into_dimensionality::<Ix3>()
            .map_err(|_| DataError::Shape {
                what: path.display().to_string(),
                expected: "(3, H, W)".into(),
                got: sh,
            })?;
        let target = a.index_axis(Axis(0), 0);
        if let Some(((y, x), v)) = target
            .indexed_iter()
            .find(|(_, v)| !(v.fract() == 0.0 && (0.0..NUM_CLASSES as f32).contains(*v)))
        {
            return Err(DataError::InvalidValue {
                what: format!("{} at (0, {y}, {x})", path.display()),
                reason: format!("{v} is not a PASTIS class id (0..{NUM_CLASSES})"),
            });
        }
        Ok(target.mapv(|v| v as i64))
    }

    /// A [`SampleSource`] over the patches of `folds`, normalised with the folds'
    /// statistics when `normalise` is true, with semantic labels.
    pub fn source(&self, folds: &[u8], normalise: bool) -> Result<PastisSource> {
        let ids: Vec<u64> = self.patches_in_folds(folds).iter().map(|p| p.id).collect();
        if ids.is_empty() {
            return Err(DataError::Empty(format!("PASTIS folds {folds:?}")));
        }
        let norm = if normalise {
            Some(self.norm(folds)?)
        } else {
            None
        };
        Ok(PastisSource {
            pastis: self.clone(),
            ids,
            norm,
        })
    }
}

/// PASTIS patches as loader samples.
#[derive(Debug, Clone)]
pub struct PastisSource {
    pastis: Pastis,
    ids: Vec<u64>,
    norm: Option<(Vec<f32>, Vec<f32>)>,
}

impl PastisSource {
    /// Patch ids in sample order.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }
}

impl SampleSource for PastisSource {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let id = *self.ids.get(index).ok_or_else(|| DataError::OutOfBounds {
            what: format!("PASTIS sample {index}"),
            reason: format!("{} patches", self.ids.len()),
        })?;
        let mut cube = self.pastis.read_patch(id)?;
        if let Some((m, s)) = &self.norm {
            for (c, mut band) in cube.values_mut().axis_iter_mut(Axis(1)).enumerate() {
                band.mapv_inplace(|x| (x - m[c]) / s[c]);
            }
        }
        let target = self.pastis.read_target(id)?;
        let (_, _, h, w) = cube.shape();
        if target.dim() != (h, w) {
            return Err(DataError::Shape {
                what: format!("TARGET_{id}.npy"),
                expected: format!("(3, {h}, {w}) like S2_{id}.npy"),
                got: target.shape().to_vec(),
            });
        }
        Ok(Sample {
            times: cube.times().clone(),
            valid: None,
            values: cube.into_values().into_dyn(),
            label: Some(Label::Map(target)),
        })
    }
}
