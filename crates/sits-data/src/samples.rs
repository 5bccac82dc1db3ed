//! [`SampleSet`]: labelled or unlabelled pixel time series with per-sample dates, and
//! the reader of the sample-table folder layout.
//!
//! # Folder layout
//! ```text
//! metadata.json    {"bands": [{"name": ..}, ..] or [".."], "classes": [..] or {"0": ..}}
//! samples.csv      id[,label][,label_index][,split][,...]   one row per sample
//! timeseries.csv   id,t,date,<band columns...>              one row per (sample, date)
//! values.npy       optional (N, T, C) array; when present it gives the values and
//!                  timeseries.csv only the dates
//! ```

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array2, Axis};

use crate::error::{DataError, Result};
use crate::io_util::read_json;
use crate::npy::read_npy;
use sits_core::dates::{parse_timestamp, Timestamps};

/// Which part of an evaluation protocol a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Split {
    /// Training samples.
    Train,
    /// Validation samples.
    Val,
    /// Held-out test samples.
    Test,
}

impl Split {
    /// Parses `train`, `val`/`valid`/`validation` or `test` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Some(Self::Train),
            "val" | "valid" | "validation" => Some(Self::Val),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

/// One pixel time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Values `(T, C)`.
    pub values: Array2<f32>,
    /// One timestamp per row of `values`.
    pub times: Timestamps,
    /// Optional per-date validity (true = usable); `None` means all valid except NaN.
    pub valid: Option<Vec<bool>>,
}

impl Series {
    /// Builds a series, checking that it is not empty, has one timestamp per date and
    /// holds no infinity (NaN is accepted and means a missing observation).
    pub fn new(values: Array2<f32>, times: Timestamps, valid: Option<Vec<bool>>) -> Result<Self> {
        let t = values.nrows();
        if t == 0 {
            return Err(DataError::Empty("series (T = 0)".into()));
        }
        if times.len() != t {
            return Err(DataError::Dates {
                what: "series".into(),
                reason: format!("{} timestamps for T = {t}", times.len()),
            });
        }
        if let Some(((i, c), v)) = values.indexed_iter().find(|(_, v)| v.is_infinite()) {
            return Err(DataError::InvalidValue {
                what: format!("series value at date {i}, band {c}"),
                reason: format!("{v} is not a measurement ({NAN_POLICY})"),
            });
        }
        if let Some(v) = &valid {
            if v.len() != t {
                return Err(DataError::Shape {
                    what: "series validity".into(),
                    expected: format!("({t},)"),
                    got: vec![v.len()],
                });
            }
        }
        Ok(Self {
            values,
            times,
            valid,
        })
    }

    /// Number of dates.
    pub fn len(&self) -> usize {
        self.values.nrows()
    }

    /// Whether the series has no date (never true for a constructed series).
    pub fn is_empty(&self) -> bool {
        self.values.nrows() == 0
    }

    /// Effective validity: the stored flags and no NaN in any band.
    pub fn validity(&self) -> Vec<bool> {
        self.values
            .axis_iter(Axis(0))
            .enumerate()
            .map(|(t, row)| {
                self.valid.as_ref().is_none_or(|v| v[t]) && row.iter().all(|x| !x.is_nan())
            })
            .collect()
    }
}

/// A set of pixel time series, possibly labelled, with band and class names.
///
/// Series may differ in length and dates; [`crate::loader`] pads them into batches.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSet {
    series: Vec<Series>,
    bands: Vec<String>,
    labels: Option<Vec<usize>>,
    class_names: Vec<String>,
    splits: Option<Vec<Split>>,
    ids: Vec<String>,
}

impl SampleSet {
    /// Builds a set, checking bands, labels and splits against the series.
    pub fn new(
        series: Vec<Series>,
        bands: Vec<String>,
        labels: Option<Vec<usize>>,
        class_names: Vec<String>,
        splits: Option<Vec<Split>>,
    ) -> Result<Self> {
        let n = series.len();
        for (i, s) in series.iter().enumerate() {
            if s.values.ncols() != bands.len() {
                return Err(DataError::Shape {
                    what: format!("sample {i}"),
                    expected: format!("(T, {}) for bands {bands:?}", bands.len()),
                    got: s.values.shape().to_vec(),
                });
            }
        }
        if let Some(l) = &labels {
            if l.len() != n {
                return Err(DataError::Shape {
                    what: "labels".into(),
                    expected: format!("({n},)"),
                    got: vec![l.len()],
                });
            }
            if let Some((i, &bad)) = l.iter().enumerate().find(|(_, &c)| c >= class_names.len()) {
                return Err(DataError::InvalidValue {
                    what: format!("label of sample {i}"),
                    reason: format!(
                        "class index {bad} but only {} class names",
                        class_names.len()
                    ),
                });
            }
        }
        if let Some(s) = &splits {
            if s.len() != n {
                return Err(DataError::Shape {
                    what: "splits".into(),
                    expected: format!("({n},)"),
                    got: vec![s.len()],
                });
            }
        }
        let ids = (0..n).map(|i| i.to_string()).collect();
        Ok(Self {
            series,
            bands,
            labels,
            class_names,
            splits,
            ids,
        })
    }

    /// Replaces the sample identifiers (one per sample).
    pub fn with_ids(mut self, ids: Vec<String>) -> Result<Self> {
        if ids.len() != self.series.len() {
            return Err(DataError::Shape {
                what: "ids".into(),
                expected: format!("({},)", self.series.len()),
                got: vec![ids.len()],
            });
        }
        self.ids = ids;
        Ok(self)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// All series.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// Mutable series (for in-place normalisation or gap filling).
    pub fn series_mut(&mut self) -> &mut [Series] {
        &mut self.series
    }

    /// Band names.
    pub fn bands(&self) -> &[String] {
        &self.bands
    }

    /// Class index of each sample, if labelled.
    pub fn labels(&self) -> Option<&[usize]> {
        self.labels.as_deref()
    }

    /// Class names, indexed by label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Split of each sample, if known.
    pub fn splits(&self) -> Option<&[Split]> {
        self.splits.as_deref()
    }

    /// Sample identifiers.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Number of samples of each class (empty if unlabelled).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in self.labels.iter().flatten() {
            counts[l] += 1;
        }
        counts
    }

    /// Longest series length.
    pub fn max_len(&self) -> usize {
        self.series.iter().map(Series::len).max().unwrap_or(0)
    }

    /// The set with only the bands `names`, in that order (every other field kept); a
    /// band the set lacks is an error naming it and the bands it has.
    pub fn select_bands(&self, names: &[&str]) -> Result<Self> {
        let idx: Vec<usize> = names
            .iter()
            .map(|n| {
                self.bands.iter().position(|b| b == n).ok_or_else(|| {
                    DataError::Argument(format!(
                        "no band `{n}` in this sample set (bands: {:?})",
                        self.bands
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let mut out = self.clone();
        for s in &mut out.series {
            s.values = s.values.select(ndarray::Axis(1), &idx);
        }
        out.bands = names.iter().map(|n| n.to_string()).collect();
        Ok(out)
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::OutOfBounds {
                what: format!("sample index {bad}"),
                reason: format!("the set has {} samples", self.len()),
            });
        }
        Ok(Self {
            series: indices.iter().map(|&i| self.series[i].clone()).collect(),
            bands: self.bands.clone(),
            labels: self
                .labels
                .as_ref()
                .map(|l| indices.iter().map(|&i| l[i]).collect()),
            class_names: self.class_names.clone(),
            splits: self
                .splits
                .as_ref()
                .map(|s| indices.iter().map(|&i| s[i]).collect()),
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
        })
    }

    /// The samples of one split (an error if the set has no splits).
    pub fn split(&self, which: Split) -> Result<Self> {
        let splits = self
            .splits
            .as_ref()
            .ok_or_else(|| DataError::Argument("this sample set has no train/test split".into()))?;
        let idx: Vec<usize> = (0..self.len()).filter(|&i| splits[i] == which).collect();
        self.subset(&idx)
    }

    /// Reads a sample-table folder (see the module docs).
    pub fn read_folder(dir: &Path) -> Result<Self> {
        read_sample_folder(dir)
    }
}

/// Band names from `metadata.json` (`bands`: list of names or of `{name: ..}` objects).
pub(crate) fn metadata_bands(path: &Path, meta: &serde_json::Value) -> Result<Vec<String>> {
    let arr = meta
        .get("bands")
        .and_then(|b| b.as_array())
        .ok_or_else(|| DataError::field(path, "bands", "missing or not a list"))?;
    arr.iter()
        .enumerate()
        .map(|(i, b)| {
            b.as_str()
                .or_else(|| b.get("name").and_then(|n| n.as_str()))
                .map(str::to_string)
                .ok_or_else(|| DataError::field(path, &format!("bands[{i}]"), "expected a name"))
        })
        .collect()
}

/// What a non-finite value means in this crate, quoted in error messages.
pub(crate) const NAN_POLICY: &str =
    "NaN means a missing observation and is masked; infinities are refused";

/// Largest number of classes a dataset may declare. Class ids index per-class tables
/// (counts, confusion matrices, one-hot targets), so an id read from a file is bounded
/// before anything is allocated from it.
pub const MAX_CLASSES: usize = 65_536;

/// Class names from `metadata.json` `classes`: a list (index = label) or an object
/// `{"<id>": name}` (ids may be sparse; missing ids get an empty name).
pub(crate) fn metadata_classes(path: &Path, meta: &serde_json::Value) -> Result<Vec<String>> {
    match meta.get("classes") {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.as_str().map(str::to_string).ok_or_else(|| {
                    DataError::field(path, &format!("classes[{i}]"), "expected a string")
                })
            })
            .collect(),
        Some(serde_json::Value::Object(o)) => {
            let mut pairs = o
                .iter()
                .map(|(k, v)| {
                    let id: usize = k.parse().map_err(|_| {
                        DataError::field(path, "classes", format!("key {k:?} is not a class id"))
                    })?;
                    let name = v.as_str().ok_or_else(|| {
                        DataError::field(path, &format!("classes.{k}"), "expected a string")
                    })?;
                    Ok((id, name.to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            pairs.sort();
            if let Some(&(id, _)) = pairs.last().filter(|p| p.0 >= MAX_CLASSES) {
                return Err(DataError::field(
                    path,
                    &format!("classes.{id}"),
                    format!(
                        "class id {id} is too large (ids must be below {MAX_CLASSES}); \
                         number the classes from 0"
                    ),
                ));
            }
            let n = pairs.last().map_or(0, |p| p.0 + 1);
            let mut names = vec![String::new(); n];
            for (id, name) in pairs {
                names[id] = name;
            }
            Ok(names)
        }
        Some(_) => Err(DataError::field(
            path,
            "classes",
            "expected a list or an object",
        )),
    }
}

/// A parsed CSV table: header and rows, with helpers that name the file, line and
/// column in errors.
pub(crate) struct Table {
    pub(crate) path: std::path::PathBuf,
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<csv::StringRecord>,
}

impl Table {
    pub(crate) fn read(path: &Path) -> Result<Self> {
        let csv_err = |source| DataError::Csv {
            path: path.to_path_buf(),
            source,
        };
        crate::io_util::regular_file(path)?;
        let mut r = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Io(_) => match e.into_kind() {
                    csv::ErrorKind::Io(io) => DataError::io(path, io),
                    _ => DataError::Argument("unreachable csv error kind".into()),
                },
                _ => csv_err(e),
            })?;
        let header = r
            .headers()
            .map_err(csv_err)?
            .iter()
            .map(str::to_string)
            .collect();
        let rows = r
            .records()
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(csv_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            header,
            rows,
        })
    }

    pub(crate) fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    pub(crate) fn require(&self, name: &str) -> Result<usize> {
        self.column(name).ok_or_else(|| {
            DataError::field(
                &self.path,
                name,
                format!("column missing; header is {:?}", self.header),
            )
        })
    }

    pub(crate) fn get<'a>(&self, row: &'a csv::StringRecord, col: usize) -> &'a str {
        row.get(col).unwrap_or("")
    }

    /// Parses a cell; `line` is the 0-based data row (reported 1-based, after the header).
    pub(crate) fn parse<T: std::str::FromStr>(
        &self,
        line: usize,
        col: usize,
        what: &str,
    ) -> Result<T> {
        let cell = self.get(&self.rows[line], col);
        cell.parse().map_err(|_| {
            DataError::field(
                &self.path,
                &self.header[col],
                format!("line {}: cannot read {cell:?} as {what}", line + 2),
            )
        })
    }
}

/// Per-sample labels and splits read from a `samples.csv` table.
pub(crate) struct SampleTable {
    pub(crate) ids: Vec<String>,
    pub(crate) labels: Option<Vec<usize>>,
    pub(crate) splits: Option<Vec<Split>>,
    pub(crate) table: Table,
}

pub(crate) fn read_sample_table(path: &Path, class_names: &[String]) -> Result<SampleTable> {
    let table = Table::read(path)?;
    let id_col = table.require("id")?;
    let ids: Vec<String> = table
        .rows
        .iter()
        .map(|r| table.get(r, id_col).to_string())
        .collect();
    let mut first_line: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for (line, id) in ids.iter().enumerate() {
        if id.is_empty() {
            return Err(DataError::field(
                path,
                "id",
                format!("line {}: empty sample id", line + 2),
            ));
        }
        if let Some(first) = first_line.insert(id, line) {
            return Err(DataError::field(
                path,
                "id",
                format!(
                    "line {}: sample id {id:?} already used on line {}; ids must be unique",
                    line + 2,
                    first + 2
                ),
            ));
        }
    }
    let by_name = match table.column("label") {
        None => None,
        Some(c) => {
            let mut out = Vec::with_capacity(table.rows.len());
            for (line, r) in table.rows.iter().enumerate() {
                let name = table.get(r, c);
                let idx = class_names.iter().position(|n| n == name).ok_or_else(|| {
                    DataError::field(
                        path,
                        "label",
                        format!(
                            "line {}: unknown class {name:?}; classes are {class_names:?}",
                            line + 2
                        ),
                    )
                })?;
                out.push(idx);
            }
            Some(out)
        }
    };
    let labels = if let Some(c) = table.column("label_index") {
        if class_names.is_empty() {
            return Err(DataError::field(
                path,
                "label_index",
                "the table has class indices but metadata.json declares no `classes`; \
                 add a `classes` list (index = class id) to metadata.json",
            ));
        }
        let mut out = Vec::with_capacity(table.rows.len());
        for line in 0..table.rows.len() {
            let v: f64 = table.parse(line, c, "a class index")?;
            if !v.is_finite() || v < 0.0 || v.fract() != 0.0 || v >= class_names.len() as f64 {
                return Err(DataError::field(
                    path,
                    "label_index",
                    format!(
                        "line {}: {v} is not a class index (expected 0..{}); a label is required here",
                        line + 2,
                        class_names.len()
                    ),
                ));
            }
            let idx = v as usize;
            if let Some(named) = by_name.as_ref().and_then(|b| b.get(line)) {
                if *named != idx {
                    return Err(DataError::field(
                        path,
                        "label_index",
                        format!(
                            "line {}: label_index {idx} ({:?}) contradicts label {:?} (index \
                             {named}); fix one of the two columns",
                            line + 2,
                            class_names.get(idx).map_or("", String::as_str),
                            class_names.get(*named).map_or("", String::as_str),
                        ),
                    ));
                }
            }
            out.push(idx);
        }
        Some(out)
    } else {
        by_name
    };
    let splits = match table.column("split") {
        None => None,
        Some(c) => Some(
            table
                .rows
                .iter()
                .enumerate()
                .map(|(line, r)| {
                    let s = table.get(r, c);
                    Split::parse(s).ok_or_else(|| {
                        DataError::field(
                            path,
                            "split",
                            format!("line {}: {s:?} is not train/val/test", line + 2),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    Ok(SampleTable {
        ids,
        labels,
        splits,
        table,
    })
}

fn read_sample_folder(dir: &Path) -> Result<SampleSet> {
    let meta_path = dir.join("metadata.json");
    let meta = read_json(&meta_path)?;
    let bands = metadata_bands(&meta_path, &meta)?;
    let class_names = metadata_classes(&meta_path, &meta)?;
    let st = read_sample_table(&dir.join("samples.csv"), &class_names)?;
    let n = st.ids.len();
    if n == 0 {
        return Err(DataError::Empty(format!(
            "{}",
            dir.join("samples.csv").display()
        )));
    }
    let index_of: HashMap<&str, usize> = st
        .ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();

    // long table: dates (and values when there is no values.npy)
    let ts_path = dir.join("timeseries.csv");
    let ts = Table::read(&ts_path)?;
    let (id_c, t_c, date_c) = (ts.require("id")?, ts.require("t")?, ts.require("date")?);
    let band_cols = bands.iter().map(|b| ts.column(b)).collect::<Vec<_>>();
    let npy_path = dir.join("values.npy");
    let dense = if npy_path.exists() {
        let a = read_npy(&npy_path)?.to_f32();
        if a.ndim() != 3 || a.shape()[0] != n || a.shape()[2] != bands.len() {
            return Err(DataError::Shape {
                what: format!("{}", npy_path.display()),
                expected: format!("(N = {n} samples, T, C = {} bands)", bands.len()),
                got: a.shape().to_vec(),
            });
        }
        Some(a)
    } else {
        if let Some(i) = band_cols.iter().position(Option::is_none) {
            return Err(DataError::field(
                &ts_path,
                &bands[i],
                "band column missing and no values.npy",
            ));
        }
        None
    };

    // (t, date, values) per sample
    let mut rows: Vec<Vec<(usize, chrono::NaiveDateTime, usize)>> = vec![Vec::new(); n];
    for (line, r) in ts.rows.iter().enumerate() {
        let id = ts.get(r, id_c);
        let &s = index_of.get(id).ok_or_else(|| {
            DataError::field(
                &ts_path,
                "id",
                format!("line {}: id {id:?} is not in samples.csv", line + 2),
            )
        })?;
        let t: usize = ts.parse(line, t_c, "a time index")?;
        let d = ts.get(r, date_c);
        let date = parse_timestamp(d).ok_or_else(|| {
            DataError::field(
                &ts_path,
                "date",
                format!("line {}: cannot parse {d:?}", line + 2),
            )
        })?;
        rows[s].push((t, date, line));
    }
    for r in rows.iter_mut() {
        r.sort_by_key(|x| x.0);
    }
    if let Some(a) = &dense {
        // values.npy is padded to the longest series: its T must be exactly that, and
        // the padding beyond a series' dates must be NaN, so that no value is dropped
        // or read against the wrong date without a word.
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
        if a.shape()[1] != longest {
            return Err(DataError::Dates {
                what: format!("{}", npy_path.display()),
                reason: format!(
                    "values.npy has T = {} dates but the longest series in {} has {longest}; \
                     the two files must describe the same dates",
                    a.shape()[1],
                    ts_path.display()
                ),
            });
        }
        for (s, r) in rows.iter().enumerate() {
            let pad = a.slice(ndarray::s![s, r.len().., ..]);
            if let Some(((t, c), _)) = pad.indexed_iter().find(|(_, v)| !v.is_nan()) {
                return Err(DataError::InvalidValue {
                    what: format!("{} [{s}, {}, {c}]", npy_path.display(), r.len() + t),
                    reason: format!(
                        "sample id {} has {} dates in {} but values.npy holds a number at \
                         date index {}; padding past a series' last date must be NaN",
                        st.ids[s],
                        r.len(),
                        ts_path.display(),
                        r.len() + t
                    ),
                });
            }
        }
        if let Some((idx, v)) = a.indexed_iter().find(|(_, v)| v.is_infinite()) {
            return Err(DataError::InvalidValue {
                what: format!(
                    "{} {:?}",
                    npy_path.display(),
                    ndarray::Dimension::slice(&idx)
                ),
                reason: format!(
                    "{v} is not a measurement; write missing values as NaN ({})",
                    NAN_POLICY
                ),
            });
        }
    }
    let mut series = Vec::with_capacity(n);
    for (s, r) in rows.into_iter().enumerate() {
        let what = format!("{} sample id {}", ts_path.display(), st.ids[s]);
        if r.is_empty() {
            return Err(DataError::Empty(what));
        }
        if let Some((i, x)) = r.iter().enumerate().find(|(i, x)| x.0 != *i) {
            return Err(DataError::field(
                &ts_path,
                "t",
                format!(
                    "line {}: {what}: t = {} where {i} was expected (time indices must be \
                     0..{} with no gap or repeat)",
                    x.2 + 2,
                    x.0,
                    r.len()
                ),
            ));
        }
        let times = Timestamps::new(r.iter().map(|x| x.1).collect(), &what)?;
        let values = match &dense {
            Some(a) => a.slice(ndarray::s![s, ..r.len(), ..]).to_owned(),
            None => {
                let mut v = Array2::zeros((r.len(), bands.len()));
                for (t, x) in r.iter().enumerate() {
                    for (c, col) in band_cols.iter().enumerate() {
                        let col = col.unwrap_or(0);
                        let value = ts.parse::<f32>(x.2, col, "a number")?;
                        if value.is_infinite() {
                            return Err(DataError::field(
                                &ts_path,
                                &bands[c],
                                format!(
                                    "line {}: {value} is not a measurement; write missing \
                                     values as NaN or leave the cell as `nan` ({NAN_POLICY})",
                                    x.2 + 2
                                ),
                            ));
                        }
                        v[[t, c]] = value;
                    }
                }
                v
            }
        };
        series.push(Series::new(values, times, None)?);
    }
    SampleSet::new(series, bands, st.labels, class_names, st.splits)?.with_ids(st.ids)
}
