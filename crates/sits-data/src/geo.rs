//! Coordinate reference systems and pixel grids: the one place where map coordinates,
//! longitude/latitude and pixel positions are converted.
//!
//! A CRS travels as text in [`GeoInfo::crs`]: `EPSG:<code>` or a PROJ string
//! (`+proj=aea +lat_0=-12 ... +ellps=GRS80 +units=m +no_defs`), the two forms the
//! GeoTIFF reader produces and the writer and Zarr attributes take. [`Crs`] parses
//! either into a projection (the `proj4rs` crate, a pure-Rust port of PROJ.4: UTM
//! and transverse Mercator, Albers, Lambert, sinusoidal, Mercator, geographic and
//! more; EPSG codes through its table of EPSG definitions). A datum shift is applied
//! only where both sides name datums with known parameters, as PROJ.4 did; between
//! WGS 84 and GRS 80 grids (SIRGAS 2000, NAD83, ETRS89) this is the identity, which
//! agrees with GDAL/PROJ's ballpark transformation to below a millimetre.
//!
//! Pixel positions follow GDAL: the geotransform `[x0, dx, rx, y0, ry, dy]` maps
//! pixel corner `(col, row)` to `(x0 + col dx + row rx, y0 + col ry + row dy)`, and a
//! point lies in the pixel whose corner is the floor of its inverse image.
//!
//! ```
//! use sits_data::geo::Crs;
//! let utm = Crs::parse("EPSG:32722").unwrap();
//! let (x, y) = utm.from_lonlat(-51.0, -12.5).unwrap();
//! let (lon, lat) = utm.to_lonlat(x, y).unwrap();
//! assert!((lon + 51.0).abs() < 1e-9 && (lat + 12.5).abs() < 1e-9);
//! ```

use proj4rs::proj::Proj;
use proj4rs::transform::transform;

use crate::cube::GeoInfo;
use crate::error::{DataError, Result};

/// The EPSG code of a text that starts with `EPSG:<code>` (any case; what follows
/// the code, such as a name in brackets, is ignored).
pub fn epsg_code(text: &str) -> Option<u32> {
    let t = text.trim();
    let rest = t.get(..5).filter(|p| p.eq_ignore_ascii_case("EPSG:"))?;
    let _ = rest;
    let digits: String = t[5..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The `+key=value` items of a PROJ string.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjParams(Vec<(String, Option<String>)>);

impl ProjParams {
    /// Parses `+proj=... +key=value +flag ...`; anything else is an error naming the
    /// item.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut items = Vec::new();
        for t in text.split_whitespace() {
            let Some(t) = t.strip_prefix('+') else {
                return Err(format!(
                    "`{t}` in `{text}` is not a +key=value item of a PROJ string"
                ));
            };
            items.push(match t.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (t.to_string(), None),
            });
        }
        if !items.iter().any(|(k, _)| k == "proj") {
            return Err(format!("`{text}` has no +proj= item"));
        }
        Ok(Self(items))
    }

    /// The text of `+key=value`.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The number of `+key=value`.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.text(key).and_then(|v| v.parse().ok())
    }

    /// Whether `+key` (a flag such as `+south`) is there.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

/// A coordinate reference system that points can be projected into and out of.
pub struct Crs {
    text: String,
    proj: Proj,
    wgs84: Proj,
}

impl std::fmt::Debug for Crs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Crs").field(&self.text).finish()
    }
}

fn crs_err(text: &str, reason: impl std::fmt::Display) -> DataError {
    DataError::Argument(format!(
        "CRS `{text}`: {reason} (give `EPSG:<code>` or a PROJ string such as \
         `+proj=utm +zone=33 +datum=WGS84 +units=m +no_defs`)"
    ))
}

impl Crs {
    /// Parses `EPSG:<code>` or a PROJ string. A WKT text or an unknown code is an
    /// error that names it.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let proj = if let Some(code) = epsg_code(t) {
            let code16 = u16::try_from(code).map_err(|_| crs_err(t, "EPSG code out of range"))?;
            Proj::from_epsg_code(code16).map_err(|e| crs_err(t, format!("{e}")))?
        } else if t.starts_with('+') {
            Proj::from_proj_string(t).map_err(|e| crs_err(t, format!("{e}")))?
        } else {
            return Err(crs_err(t, "neither an EPSG code nor a PROJ string"));
        };
        let wgs84 = Proj::from_proj_string("+proj=longlat +datum=WGS84 +no_defs")
            .map_err(|e| crs_err(t, format!("{e}")))?;
        Ok(Self {
            text: t.to_string(),
            proj,
            wgs84,
        })
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether coordinates are longitude/latitude in degrees.
    pub fn is_geographic(&self) -> bool {
        self.proj.is_latlong()
    }

    /// Map coordinates of a WGS 84 longitude/latitude (degrees).
    pub fn from_lonlat(&self, lon: f64, lat: f64) -> Result<(f64, f64)> {
        let mut p = (lon.to_radians(), lat.to_radians(), 0.0);
        transform(&self.wgs84, &self.proj, &mut p)
            .map_err(|e| crs_err(&self.text, format!("longitude {lon}, latitude {lat}: {e}")))?;
        Ok(if self.is_geographic() {
            (p.0.to_degrees(), p.1.to_degrees())
        } else {
            (p.0, p.1)
        })
    }

    /// WGS 84 longitude/latitude (degrees) of map coordinates.
    pub fn to_lonlat(&self, x: f64, y: f64) -> Result<(f64, f64)> {
        let mut p = if self.is_geographic() {
            (x.to_radians(), y.to_radians(), 0.0)
        } else {
            (x, y, 0.0)
        };
        transform(&self.proj, &self.wgs84, &mut p)
            .map_err(|e| crs_err(&self.text, format!("x {x}, y {y}: {e}")))?;
        Ok((p.0.to_degrees(), p.1.to_degrees()))
    }
}

impl GeoInfo {
    /// Map coordinates of pixel position `(row, col)` (fractional: `(0.5, 0.5)` is
    /// the centre of the top-left pixel).
    pub fn coords_of(&self, row: f64, col: f64) -> (f64, f64) {
        let [x0, dx, rx, y0, ry, dy] = self.transform;
        (x0 + col * dx + row * rx, y0 + col * ry + row * dy)
    }

    /// Fractional pixel position `(row, col)` of map coordinates `(x, y)`: the
    /// inverse of the geotransform. `None` when the transform cannot be inverted.
    pub fn position_of(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let [x0, dx, rx, y0, ry, dy] = self.transform;
        let det = dx * dy - rx * ry;
        if det == 0.0 || !det.is_finite() {
            return None;
        }
        let (u, v) = (x - x0, y - y0);
        let col = (dy * u - rx * v) / det;
        let row = (-ry * u + dx * v) / det;
        Some((row, col))
    }

    /// The pixel `(row, col)` that contains map point `(x, y)` in a grid of
    /// `height x width` pixels, or `None` outside it.
    pub fn pixel_of(&self, x: f64, y: f64, height: usize, width: usize) -> Option<(usize, usize)> {
        let (r, c) = self.position_of(x, y)?;
        let (r, c) = (r.floor(), c.floor());
        (r >= 0.0 && c >= 0.0 && r < height as f64 && c < width as f64)
            .then_some((r as usize, c as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsg_codes_are_read_with_or_without_a_name() {
        assert_eq!(epsg_code("EPSG:32633 (WGS 84 / UTM zone 33N)"), Some(32633));
        assert_eq!(epsg_code("epsg:4326"), Some(4326));
        assert_eq!(epsg_code("+proj=utm"), None);
        assert_eq!(epsg_code("EPSG:"), None);
    }

    #[test]
    fn the_geotransform_inverts() {
        let g = GeoInfo {
            crs: String::new(),
            transform: [600000.0, 10.0, 2.0, 8600000.0, 1.5, -10.0],
        };
        let (x, y) = g.coords_of(7.25, 3.5);
        let (r, c) = g.position_of(x, y).unwrap();
        assert!((r - 7.25).abs() < 1e-9 && (c - 3.5).abs() < 1e-9);
        assert_eq!(g.pixel_of(x, y, 50, 50), Some((7, 3)));
        assert_eq!(g.pixel_of(x, y, 5, 50), None);
    }

    #[test]
    fn wkt_is_refused_by_name() {
        let e = Crs::parse("PROJCS[\"unnamed\"]").unwrap_err().to_string();
        assert!(e.contains("PROJCS") && e.contains("PROJ string"), "{e}");
    }
}
