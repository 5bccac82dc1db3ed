//! Labelled field points in longitude/latitude, placed on a cube's grid.
//!
//! The sample table of the R package sits and of most field campaigns: one point per
//! row with `longitude`, `latitude` (WGS 84 degrees), `start_date`, `end_date` and
//! `label`, optionally `id` and `split` (`train`, `val` or `test`). Read from a CSV file with a
//! header, or from a GeoJSON FeatureCollection of Point features whose properties
//! hold the same fields (coordinates `[longitude, latitude]`).
//!
//! [`place`] puts each point on a cube through the cube's CRS and geotransform
//! ([`crate::geo`]): the pixel whose area contains the point (GDAL's inverse
//! geotransform), the dates of the cube between `start_date` and `end_date`. A point
//! that cannot be placed (outside the grid, no date of the cube in its range, no
//! valid observation at its pixel in its range) is returned in
//! [`Placement::refused`] with its id and the reason, never dropped silently.

use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::cube::Datacube;
use crate::error::{DataError, Result};
use crate::folder::CubePixelSample;
use crate::geo::Crs;
use crate::samples::Split;

/// One labelled point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Identifier (the `id` field, or the line or feature number).
    pub id: String,
    /// Longitude, WGS 84 degrees.
    pub longitude: f64,
    /// Latitude, WGS 84 degrees.
    pub latitude: f64,
    /// First day the label holds.
    pub start_date: NaiveDate,
    /// Last day the label holds.
    pub end_date: NaiveDate,
    /// Class name.
    pub label: String,
    /// Evaluation split, when given.
    pub split: Option<Split>,
}

/// Points placed on a cube.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The placed points as labelled pixels of the cube, in the order read.
    pub samples: Vec<CubePixelSample>,
    /// Class names, sorted; a sample's label indexes this list.
    pub class_names: Vec<String>,
    /// Points that could not be placed: id and reason.
    pub refused: Vec<(String, String)>,
}

fn parse_date(path: &Path, field: &str, at: &str, text: &str) -> Result<NaiveDate> {
    let t = text.trim();
    NaiveDate::parse_from_str(t.get(..10).unwrap_or(t), "%Y-%m-%d").map_err(|_| {
        DataError::field(
            path,
            field,
            format!("{at}: `{t}` is not a date (YYYY-MM-DD)"),
        )
    })
}

fn parse_split(path: &Path, at: &str, text: &str) -> Result<Option<Split>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Split::parse(text).map(Some).ok_or_else(|| {
        DataError::field(
            path,
            "split",
            format!("{at}: `{}` (write train, val or test)", text.trim()),
        )
    })
}

fn coordinate(path: &Path, field: &str, at: &str, v: f64, limit: f64) -> Result<f64> {
    if v.is_finite() && v.abs() <= limit {
        Ok(v)
    } else {
        Err(DataError::field(
            path,
            field,
            format!("{at}: {v} is not a {field} in degrees (|{field}| <= {limit})"),
        ))
    }
}

/// The longitude and latitude (WGS 84 degrees) of each sample of a sample-table
/// folder, from the `longitude` and `latitude` columns of its `samples.csv`, in the
/// order of `ids` (a [`crate::SampleSet`]'s [`ids`](crate::SampleSet::ids), so a
/// subset or split keeps its own order). `None` when the table has no such
/// columns; an unknown id or a coordinate that is not a number in range is an
/// error naming the line.
pub fn sample_locations(dir: &Path, ids: &[String]) -> Result<Option<Vec<[f64; 2]>>> {
    let path = dir.join("samples.csv");
    let table = crate::samples::Table::read(&path)?;
    let (Some(lon_c), Some(lat_c)) = (table.column("longitude"), table.column("latitude")) else {
        return Ok(None);
    };
    let id_c = table.require("id")?;
    let mut at = std::collections::HashMap::with_capacity(table.rows.len());
    for (line, r) in table.rows.iter().enumerate() {
        at.insert(table.get(r, id_c).to_string(), line);
    }
    ids.iter()
        .map(|id| {
            let &line = at.get(id).ok_or_else(|| {
                DataError::field(&path, "id", format!("no row for sample {id:?}"))
            })?;
            let where_ = format!("line {}", line + 2);
            let lon = coordinate(
                &path,
                "longitude",
                &where_,
                table.parse(line, lon_c, "a longitude")?,
                180.0,
            )?;
            let lat = coordinate(
                &path,
                "latitude",
                &where_,
                table.parse(line, lat_c, "a latitude")?,
                90.0,
            )?;
            Ok([lon, lat])
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Reads a point table: `.csv`, or `.geojson`/`.json` (see the module docs).
pub fn read_points(path: &Path) -> Result<Vec<GeoPoint>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let points = match ext.as_deref() {
        Some("csv") => read_csv(path)?,
        Some("geojson" | "json") => read_geojson(path)?,
        _ => {
            return Err(DataError::field(
                path,
                "format",
                "a point table is a .csv file or a .geojson FeatureCollection",
            ))
        }
    };
    if points.is_empty() {
        return Err(DataError::Empty(format!("{}: point table", path.display())));
    }
    for (i, p) in points.iter().enumerate() {
        if points[..i].iter().any(|q| q.id == p.id) {
            return Err(DataError::field(
                path,
                "id",
                format!("`{}` appears twice", p.id),
            ));
        }
    }
    Ok(points)
}

fn read_csv(path: &Path) -> Result<Vec<GeoPoint>> {
    crate::io_util::regular_file(path)?;
    let mut rd = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| DataError::Csv {
            path: path.to_path_buf(),
            source: e,
        })?;
    let headers = rd
        .headers()
        .map_err(|e| DataError::Csv {
            path: path.to_path_buf(),
            source: e,
        })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            DataError::field(
                path,
                name,
                format!(
                    "no `{name}` column (a point table has longitude, latitude, start_date, \
                     end_date and label; columns found: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let (lon, lat, start, end, label) = (
        need("longitude")?,
        need("latitude")?,
        need("start_date")?,
        need("end_date")?,
        need("label")?,
    );
    let (id, split) = (col("id"), col("split"));
    let mut out = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| DataError::Csv {
            path: path.to_path_buf(),
            source: e,
        })?;
        let at = format!("line {}", i + 2);
        let get = |c: usize| rec.get(c).unwrap_or_default();
        let num = |c: usize, field: &str, limit: f64| -> Result<f64> {
            let v: f64 = get(c).parse().map_err(|_| {
                DataError::field(path, field, format!("{at}: `{}` is not a number", get(c)))
            })?;
            coordinate(path, field, &at, v, limit)
        };
        let p = GeoPoint {
            id: id
                .map(|c| get(c).to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| (i + 1).to_string()),
            longitude: num(lon, "longitude", 180.0)?,
            latitude: num(lat, "latitude", 90.0)?,
            start_date: parse_date(path, "start_date", &at, get(start))?,
            end_date: parse_date(path, "end_date", &at, get(end))?,
            label: get(label).to_string(),
            split: split
                .map(|c| parse_split(path, &at, get(c)))
                .transpose()?
                .flatten(),
        };
        check_point(path, &at, &p)?;
        out.push(p);
    }
    Ok(out)
}

fn check_point(path: &Path, at: &str, p: &GeoPoint) -> Result<()> {
    if p.label.is_empty() {
        return Err(DataError::field(
            path,
            "label",
            format!("{at}: empty label"),
        ));
    }
    if p.end_date < p.start_date {
        return Err(DataError::field(
            path,
            "end_date",
            format!("{at}: {} is before start_date {}", p.end_date, p.start_date),
        ));
    }
    Ok(())
}

fn read_geojson(path: &Path) -> Result<Vec<GeoPoint>> {
    let v = crate::io_util::read_json(path)?;
    let features = v
        .get("features")
        .and_then(|f| f.as_array())
        .ok_or_else(|| DataError::field(path, "features", "not a GeoJSON FeatureCollection"))?;
    let mut out = Vec::with_capacity(features.len());
    for (i, f) in features.iter().enumerate() {
        let at = format!("feature {i}");
        let geom = &f["geometry"];
        if geom["type"] != "Point" {
            return Err(DataError::field(
                path,
                "geometry",
                format!("{at}: a {} (points only)", geom["type"]),
            ));
        }
        let c = geom["coordinates"]
            .as_array()
            .filter(|c| c.len() >= 2)
            .ok_or_else(|| {
                DataError::field(
                    path,
                    "coordinates",
                    format!("{at}: not [longitude, latitude]"),
                )
            })?;
        let num = |k: usize, field: &str, limit: f64| -> Result<f64> {
            let v = c[k].as_f64().ok_or_else(|| {
                DataError::field(path, field, format!("{at}: `{}` is not a number", c[k]))
            })?;
            coordinate(path, field, &at, v, limit)
        };
        let props = &f["properties"];
        let text = |k: &str| -> Result<String> {
            match &props[k] {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                serde_json::Value::Null => Err(DataError::field(
                    path,
                    k,
                    format!("{at}: no `{k}` property"),
                )),
                other => Err(DataError::field(
                    path,
                    k,
                    format!("{at}: `{other}` is not text"),
                )),
            }
        };
        let p = GeoPoint {
            id: text("id").unwrap_or_else(|_| (i + 1).to_string()),
            longitude: num(0, "longitude", 180.0)?,
            latitude: num(1, "latitude", 90.0)?,
            start_date: parse_date(path, "start_date", &at, &text("start_date")?)?,
            end_date: parse_date(path, "end_date", &at, &text("end_date")?)?,
            label: text("label")?,
            split: match props.get("split").and_then(|s| s.as_str()) {
                Some(s) => parse_split(path, &at, s)?,
                None => None,
            },
        };
        check_point(path, &at, &p)?;
        out.push(p);
    }
    Ok(out)
}

/// Places `points` on `cube` (see the module docs). The cube must be
/// georeferenced with a CRS [`Crs::parse`] reads; `what` names it in errors.
pub fn place(points: &[GeoPoint], cube: &Datacube, what: &str) -> Result<Placement> {
    let geo = cube.geo().ok_or_else(|| {
        DataError::Argument(format!(
            "{what} has no georeference: points in longitude/latitude cannot be placed on it"
        ))
    })?;
    let crs = Crs::parse(&geo.crs)?;
    let (t, _, h, w) = cube.shape();
    let dates: Vec<NaiveDate> = cube.times().as_slice().iter().map(|d| d.date()).collect();
    let valid = cube.validity();
    let mut class_names: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
    class_names.sort();
    class_names.dedup();
    let mut samples = Vec::new();
    let mut refused = Vec::new();
    for p in points {
        let (x, y) = match crs.from_lonlat(p.longitude, p.latitude) {
            Ok(xy) => xy,
            Err(e) => {
                refused.push((p.id.clone(), format!("cannot be projected: {e}")));
                continue;
            }
        };
        let Some((row, col)) = geo.pixel_of(x, y, h, w) else {
            let pos = geo
                .position_of(x, y)
                .map_or("?".into(), |(r, c)| format!("row {r:.1}, column {c:.1}"));
            refused.push((
                p.id.clone(),
                format!("outside the cube ({pos} of a {h} x {w} grid)"),
            ));
            continue;
        };
        let in_range: Vec<usize> = (0..t)
            .filter(|&i| dates[i] >= p.start_date && dates[i] <= p.end_date)
            .collect();
        let (Some(&t_start), Some(&t_end)) = (in_range.first(), in_range.last()) else {
            refused.push((
                p.id.clone(),
                format!(
                    "no date of the cube between {} and {} (the cube has {} .. {})",
                    p.start_date,
                    p.end_date,
                    dates.first().map_or("-".into(), NaiveDate::to_string),
                    dates.last().map_or("-".into(), NaiveDate::to_string)
                ),
            ));
            continue;
        };
        if !in_range.iter().any(|&i| valid[[i, row, col]]) {
            refused.push((
                p.id.clone(),
                format!(
                    "pixel (row {row}, column {col}) has no valid observation between {} and {} \
                     (nodata or clouds)",
                    p.start_date, p.end_date
                ),
            ));
            continue;
        }
        samples.push(CubePixelSample {
            id: p.id.clone(),
            row,
            col,
            t_start,
            t_end,
            label: class_names.iter().position(|c| *c == p.label),
            split: p.split,
        });
    }
    Ok(Placement {
        samples,
        class_names,
        refused,
    })
}
