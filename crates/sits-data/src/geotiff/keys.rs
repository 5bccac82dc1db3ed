//! GeoTIFF georeferencing: the GeoKey directory to a CRS text, the model tags to a
//! GDAL geotransform, and back (for the writer).
//!
//! The CRS comes out as `EPSG:<code>` when the file names an EPSG coordinate system,
//! and otherwise as a PROJ string built from the user-defined projection's parameters
//! (`+proj=aea +lat_1=... +ellps=GRS80 ...`), which [`crate::geo`] turns into a
//! projection. Key numbers and projection codes are those of the OGC GeoTIFF 1.1
//! standard (section 7 and Annex B); the half-pixel shift of `PixelIsPoint` files
//! follows GDAL's default reading.

use std::collections::BTreeMap;

/// A GeoKey's value: a short, doubles or text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyValue {
    Short(u16),
    Doubles(Vec<f64>),
    Ascii(String),
}

/// The parsed GeoKey directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GeoKeys(pub(crate) BTreeMap<u16, KeyValue>);

// GeoKey ids (OGC GeoTIFF 1.1, Annex B).
pub(crate) const MODEL_TYPE: u16 = 1024;
pub(crate) const RASTER_TYPE: u16 = 1025;
pub(crate) const CITATION: u16 = 1026;
pub(crate) const GEOGRAPHIC_TYPE: u16 = 2048;
pub(crate) const GEOG_DATUM: u16 = 2050;
pub(crate) const GEOG_ANGULAR_UNITS: u16 = 2054;
pub(crate) const GEOG_ELLIPSOID: u16 = 2056;
pub(crate) const GEOG_SEMI_MAJOR: u16 = 2057;
pub(crate) const GEOG_SEMI_MINOR: u16 = 2058;
pub(crate) const GEOG_INV_FLATTENING: u16 = 2059;
pub(crate) const PROJECTED_TYPE: u16 = 3072;
pub(crate) const PROJECTION: u16 = 3074;
pub(crate) const PROJ_COORD_TRANS: u16 = 3075;
pub(crate) const PROJ_LINEAR_UNITS: u16 = 3076;
pub(crate) const STD_PARALLEL_1: u16 = 3078;
pub(crate) const STD_PARALLEL_2: u16 = 3079;
pub(crate) const NAT_ORIGIN_LONG: u16 = 3080;
pub(crate) const NAT_ORIGIN_LAT: u16 = 3081;
pub(crate) const FALSE_EASTING: u16 = 3082;
pub(crate) const FALSE_NORTHING: u16 = 3083;
const FALSE_ORIGIN_LONG: u16 = 3084;
const FALSE_ORIGIN_LAT: u16 = 3085;
const FALSE_ORIGIN_EASTING: u16 = 3086;
const FALSE_ORIGIN_NORTHING: u16 = 3087;
pub(crate) const CENTER_LONG: u16 = 3088;
pub(crate) const CENTER_LAT: u16 = 3089;
const CENTER_EASTING: u16 = 3090;
const CENTER_NORTHING: u16 = 3091;
pub(crate) const SCALE_AT_NAT_ORIGIN: u16 = 3092;
const SCALE_AT_CENTER: u16 = 3093;
const STRAIGHT_VERT_POLE_LONG: u16 = 3095;

/// "User-defined" in every code-valued key.
pub(crate) const USER_DEFINED: u16 = 32767;

impl GeoKeys {
    /// Parses the directory (tag 34735) with its double (34736) and ASCII (34737)
    /// parameter tags. Every index is checked against the arrays it points into.
    pub(crate) fn parse(dir: &[u16], doubles: &[f64], ascii: &str) -> Result<Self, String> {
        if dir.len() < 4 {
            return Err(format!(
                "GeoKeyDirectory has {} values, fewer than its 4-value header",
                dir.len()
            ));
        }
        let n = dir[3] as usize;
        if dir.len() < 4 + 4 * n {
            return Err(format!(
                "GeoKeyDirectory announces {n} keys but holds {} values (needs {})",
                dir.len(),
                4 + 4 * n
            ));
        }
        let mut keys = BTreeMap::new();
        for k in 0..n {
            let e = &dir[4 + 4 * k..8 + 4 * k];
            let (id, loc, count, off) = (e[0], e[1], e[2] as usize, e[3] as usize);
            let value = match loc {
                0 => KeyValue::Short(e[3]),
                34736 => {
                    let v = doubles.get(off..off + count).ok_or_else(|| {
                        format!(
                            "GeoKey {id} points at doubles {off}..{} of {}",
                            off + count,
                            doubles.len()
                        )
                    })?;
                    KeyValue::Doubles(v.to_vec())
                }
                34737 => {
                    let v = ascii.get(off..off + count).ok_or_else(|| {
                        format!(
                            "GeoKey {id} points at characters {off}..{} of {}",
                            off + count,
                            ascii.len()
                        )
                    })?;
                    KeyValue::Ascii(v.trim_end_matches(['|', '\0']).to_string())
                }
                // a key stored in another tag (not used by GeoTIFF 1.1 writers): skip it
                _ => continue,
            };
            keys.insert(id, value);
        }
        Ok(Self(keys))
    }

    pub(crate) fn short(&self, id: u16) -> Option<u16> {
        match self.0.get(&id) {
            Some(KeyValue::Short(v)) => Some(*v),
            _ => None,
        }
    }

    pub(crate) fn double(&self, id: u16) -> Option<f64> {
        match self.0.get(&id) {
            Some(KeyValue::Doubles(v)) => v.first().copied(),
            // a few writers store small integer parameters as shorts
            Some(KeyValue::Short(v)) => Some(f64::from(*v)),
            _ => None,
        }
    }

    fn first(&self, ids: &[u16]) -> Option<f64> {
        ids.iter().find_map(|&id| self.double(id))
    }

    /// Whether the file says its coordinates are pixel centres (`PixelIsPoint`).
    pub(crate) fn pixel_is_point(&self) -> bool {
        self.short(RASTER_TYPE) == Some(2)
    }

    /// The CRS as `EPSG:<code>` or a PROJ string; `None` when the file has no CRS
    /// keys at all. An error names the key that cannot be understood.
    pub(crate) fn crs(&self) -> Result<Option<String>, String> {
        let model = self.short(MODEL_TYPE);
        if let Some(code) = self
            .short(PROJECTED_TYPE)
            .filter(|&c| c != USER_DEFINED && c != 0)
        {
            return Ok(Some(format!("EPSG:{code}")));
        }
        match model {
            None if self.0.is_empty() => Ok(None),
            Some(2) => {
                if let Some(code) = self
                    .short(GEOGRAPHIC_TYPE)
                    .filter(|&c| c != USER_DEFINED && c != 0)
                {
                    return Ok(Some(format!("EPSG:{code}")));
                }
                Ok(Some(format!(
                    "+proj=longlat {} +no_defs",
                    self.ellipsoid()?
                )))
            }
            Some(1) => self.user_projection().map(Some),
            Some(3) => Err("GTModelTypeGeoKey 3 (geocentric) is not a map grid".into()),
            None => Ok(None),
            Some(other) => Err(format!("GTModelTypeGeoKey {other} is not defined")),
        }
    }

    fn ellipsoid(&self) -> Result<String, String> {
        if let Some(units) = self.short(GEOG_ANGULAR_UNITS) {
            if units != 9102 && units != USER_DEFINED {
                return Err(format!(
                    "GeogAngularUnitsGeoKey {units}: only degrees (9102) are read"
                ));
            }
        }
        // an EPSG ellipsoid, or the ellipsoid of an EPSG datum or geographic CRS
        let by_code = |code: u16| -> Option<&'static str> {
            Some(match code {
                7030 | 6326 | 4326 => "+ellps=WGS84",
                7019 | 6269 | 4269 | 6674 | 4674 | 6258 | 4258 | 6283 | 4283 => "+ellps=GRS80",
                7043 | 6322 | 4322 => "+ellps=WGS72",
                7022 | 6230 | 4230 => "+ellps=intl",
                7008 | 6267 | 4267 => "+ellps=clrk66",
                7004 | 6314 | 4314 => "+ellps=bessel",
                7012 | 6275 | 4275 => "+ellps=clrk80ign",
                _ => return None,
            })
        };
        for id in [GEOG_ELLIPSOID, GEOG_DATUM, GEOGRAPHIC_TYPE] {
            if let Some(e) = self.short(id).and_then(by_code) {
                return Ok(e.to_string());
            }
        }
        let a = self.double(GEOG_SEMI_MAJOR);
        let rf = self.double(GEOG_INV_FLATTENING);
        let b = self.double(GEOG_SEMI_MINOR);
        match (a, rf, b) {
            // the two ellipsoids of nearly every grid, given by their parameters
            (Some(6378137.0), Some(rf), _) if (rf - 298.257223563).abs() < 1e-9 => {
                Ok("+ellps=WGS84".into())
            }
            (Some(6378137.0), Some(rf), _) if (rf - 298.257222101).abs() < 1e-9 => {
                Ok("+ellps=GRS80".into())
            }
            (Some(a), Some(0.0), _) => Ok(format!("+R={a}")),
            (Some(a), Some(rf), _) => Ok(format!("+a={a} +rf={rf}")),
            (Some(a), None, Some(b)) if a == b => Ok(format!("+R={a}")),
            (Some(a), None, Some(b)) => Ok(format!("+a={a} +b={b}")),
            _ => Err(format!(
                "no ellipsoid: GeogEllipsoidGeoKey {:?}, GeogGeodeticDatumGeoKey {:?} and \
                 GeographicTypeGeoKey {:?} are not codes this reader knows, and no \
                 semi-major axis with an inverse flattening is given",
                self.short(GEOG_ELLIPSOID),
                self.short(GEOG_DATUM),
                self.short(GEOGRAPHIC_TYPE)
            )),
        }
    }

    fn user_projection(&self) -> Result<String, String> {
        let ellps = self.ellipsoid()?;
        let units = match self.short(PROJ_LINEAR_UNITS) {
            None | Some(9001) => "+units=m",
            Some(9002) => "+units=ft",
            Some(9003) => "+units=us-ft",
            Some(u) => return Err(format!("ProjLinearUnitsGeoKey {u}: unit not read")),
        };
        // ProjectionGeoKey: the EPSG codes of UTM zones (16001-16060 north,
        // 16101-16160 south)
        if let Some(p) = self.short(PROJECTION) {
            if (16001..=16060).contains(&p) {
                return Ok(format!(
                    "+proj=utm +zone={} {ellps} {units} +no_defs",
                    p - 16000
                ));
            }
            if (16101..=16160).contains(&p) {
                return Ok(format!(
                    "+proj=utm +zone={} +south {ellps} {units} +no_defs",
                    p - 16100
                ));
            }
        }
        let Some(method) = self.short(PROJ_COORD_TRANS) else {
            return Err(format!(
                "a user-defined projected CRS without ProjCoordTransGeoKey (ProjectionGeoKey \
                 {:?} is not a code this reader knows)",
                self.short(PROJECTION)
            ));
        };
        let lat0 = self
            .first(&[NAT_ORIGIN_LAT, FALSE_ORIGIN_LAT, CENTER_LAT])
            .unwrap_or(0.0);
        let lon0 = self
            .first(&[NAT_ORIGIN_LONG, FALSE_ORIGIN_LONG, CENTER_LONG])
            .unwrap_or(0.0);
        let x0 = self
            .first(&[FALSE_EASTING, FALSE_ORIGIN_EASTING, CENTER_EASTING])
            .unwrap_or(0.0);
        let y0 = self
            .first(&[FALSE_NORTHING, FALSE_ORIGIN_NORTHING, CENTER_NORTHING])
            .unwrap_or(0.0);
        let k = self
            .first(&[SCALE_AT_NAT_ORIGIN, SCALE_AT_CENTER])
            .unwrap_or(1.0);
        let sp1 = self.double(STD_PARALLEL_1);
        let sp2 = self.double(STD_PARALLEL_2);
        let need = |v: Option<f64>, what: &str| {
            v.ok_or_else(|| format!("projection {method} needs {what}, which the file lacks"))
        };
        let body = match method {
            1 => format!("+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k={k} +x_0={x0} +y_0={y0}"),
            7 => match sp1 {
                Some(ts) => format!("+proj=merc +lat_ts={ts} +lon_0={lon0} +x_0={x0} +y_0={y0}"),
                None => format!("+proj=merc +lon_0={lon0} +k={k} +x_0={x0} +y_0={y0}"),
            },
            8 => format!(
                "+proj=lcc +lat_1={} +lat_2={} +lat_0={lat0} +lon_0={lon0} +x_0={x0} +y_0={y0}",
                need(sp1, "ProjStdParallel1GeoKey")?,
                need(sp2, "ProjStdParallel2GeoKey")?
            ),
            9 => format!(
                "+proj=lcc +lat_1={lat0} +lat_0={lat0} +lon_0={lon0} +k_0={k} +x_0={x0} +y_0={y0}"
            ),
            10 => format!("+proj=laea +lat_0={lat0} +lon_0={lon0} +x_0={x0} +y_0={y0}"),
            11 => format!(
                "+proj=aea +lat_0={lat0} +lon_0={lon0} +lat_1={} +lat_2={} +x_0={x0} +y_0={y0}",
                need(sp1, "ProjStdParallel1GeoKey")?,
                need(sp2, "ProjStdParallel2GeoKey")?
            ),
            15 => {
                let pole = if lat0 < 0.0 { -90.0 } else { 90.0 };
                let lon = self.double(STRAIGHT_VERT_POLE_LONG).unwrap_or(lon0);
                format!("+proj=stere +lat_0={pole} +lat_ts={lat0} +lon_0={lon} +k={k} +x_0={x0} +y_0={y0}")
            }
            17 => format!(
                "+proj=eqc +lat_ts={} +lon_0={lon0} +x_0={x0} +y_0={y0}",
                sp1.unwrap_or(lat0)
            ),
            24 => format!("+proj=sinu +lon_0={lon0} +x_0={x0} +y_0={y0}"),
            other => {
                return Err(format!(
                    "ProjCoordTransGeoKey {other}: this projection method is not read \
                     (read: transverse Mercator 1, Mercator 7, Lambert conformal conic 8 \
                     and 9, Lambert azimuthal equal-area 10, Albers 11, polar \
                     stereographic 15, equirectangular 17, sinusoidal 24)"
                ))
            }
        };
        Ok(format!("{body} {ellps} {units} +no_defs"))
    }
}

/// The GDAL geotransform `[x0, dx, rx, y0, ry, dy]` from a 4 x 4 model
/// transformation matrix (row-major, tag 34264).
pub(crate) fn transform_from_matrix(m: &[f64]) -> Result<[f64; 6], String> {
    if m.len() != 16 {
        return Err(format!(
            "ModelTransformationTag has {} values, not 16",
            m.len()
        ));
    }
    Ok([m[3], m[0], m[1], m[7], m[4], m[5]])
}

/// The geotransform from the first tie point `(I, J, K, X, Y, Z)` and the pixel
/// scale `(Sx, Sy, Sz)`: raster point `(I, J)` is model point `(X, Y)`.
pub(crate) fn transform_from_tiepoint(tie: &[f64], scale: &[f64]) -> Result<[f64; 6], String> {
    if tie.len() < 6 || scale.len() < 2 {
        return Err(format!(
            "ModelTiepointTag has {} values and ModelPixelScaleTag {} (need 6 and 3)",
            tie.len(),
            scale.len()
        ));
    }
    let (i, j, x, y) = (tie[0], tie[1], tie[3], tie[4]);
    let (sx, sy) = (scale[0], scale[1]);
    Ok([x - i * sx, sx, 0.0, y + j * sy, 0.0, -sy])
}

/// GDAL's reading of a `PixelIsPoint` file: the geotransform is moved by half a pixel
/// so that it gives the corner of pixel (0, 0), as for `PixelIsArea`.
pub(crate) fn point_to_area(t: [f64; 6]) -> [f64; 6] {
    let [x0, dx, rx, y0, ry, dy] = t;
    [x0 - 0.5 * (dx + rx), dx, rx, y0 - 0.5 * (ry + dy), ry, dy]
}

/// The EPSG code of a WKT whose outermost object ends with `AUTHORITY["EPSG","n"]`.
fn wkt_epsg(wkt: &str) -> Option<u32> {
    let body = wkt.trim().strip_suffix(']')?;
    let tail = body.rsplit_once("AUTHORITY[")?.1;
    let code = tail.strip_prefix("\"EPSG\",\"")?.strip_suffix("\"]")?;
    code.parse().ok()
}

/// The GeoKey directory, double and ASCII parameters that describe `crs` (an
/// `EPSG:<code>` text, or a PROJ string of a projection [`GeoKeys::crs`] reads), for
/// the writer. Coordinates are pixel areas (`PixelIsArea`).
pub(crate) fn keys_for_crs(crs: &str) -> Result<(Vec<u16>, Vec<f64>, String), String> {
    let mut shorts: Vec<(u16, u16)> = vec![(RASTER_TYPE, 1)];
    let mut doubles: Vec<(u16, f64)> = Vec::new();
    let crs = crs.trim();
    if let Some(code) = crate::geo::epsg_code(crs).or_else(|| wkt_epsg(crs)) {
        let code =
            u16::try_from(code).map_err(|_| format!("EPSG code {code} does not fit a GeoKey"))?;
        if (4000..5000).contains(&code) {
            shorts.extend([
                (MODEL_TYPE, 2),
                (GEOGRAPHIC_TYPE, code),
                (GEOG_ANGULAR_UNITS, 9102),
            ]);
        } else {
            shorts.extend([
                (MODEL_TYPE, 1),
                (PROJECTED_TYPE, code),
                (PROJ_LINEAR_UNITS, 9001),
            ]);
        }
    } else {
        let p = crate::geo::ProjParams::parse(crs)?;
        // the ellipsoid
        match p.text("ellps") {
            Some("WGS84") => shorts.push((GEOG_ELLIPSOID, 7030)),
            Some("GRS80") => shorts.push((GEOG_ELLIPSOID, 7019)),
            Some(other) => return Err(format!("+ellps={other}: write WGS84, GRS80 or +a/+rf")),
            None => {
                if let Some(r) = p.num("R") {
                    doubles.extend([(GEOG_SEMI_MAJOR, r), (GEOG_INV_FLATTENING, 0.0)]);
                } else if let (Some(a), Some(rf)) = (p.num("a"), p.num("rf")) {
                    doubles.extend([(GEOG_SEMI_MAJOR, a), (GEOG_INV_FLATTENING, rf)]);
                } else if p.text("datum") == Some("WGS84") {
                    shorts.push((GEOG_ELLIPSOID, 7030));
                } else {
                    return Err("no ellipsoid (+ellps, +R or +a with +rf)".into());
                }
            }
        }
        shorts.extend([(GEOGRAPHIC_TYPE, USER_DEFINED), (GEOG_ANGULAR_UNITS, 9102)]);
        let proj = p.text("proj").unwrap_or_default();
        if proj == "longlat" || proj == "latlong" {
            shorts.push((MODEL_TYPE, 2));
        } else {
            let n = |k: &str| p.num(k).unwrap_or(0.0);
            let (method, params): (u16, Vec<(u16, f64)>) = match proj {
                "utm" => {
                    let zone = p.num("zone").ok_or("+proj=utm without +zone")?;
                    let south = p.has("south");
                    (
                        1,
                        vec![
                            (NAT_ORIGIN_LAT, 0.0),
                            (NAT_ORIGIN_LONG, zone * 6.0 - 183.0),
                            (SCALE_AT_NAT_ORIGIN, 0.9996),
                            (FALSE_EASTING, 500_000.0),
                            (FALSE_NORTHING, if south { 10_000_000.0 } else { 0.0 }),
                        ],
                    )
                }
                "tmerc" => (
                    1,
                    vec![
                        (NAT_ORIGIN_LAT, n("lat_0")),
                        (NAT_ORIGIN_LONG, n("lon_0")),
                        (
                            SCALE_AT_NAT_ORIGIN,
                            p.num("k").or(p.num("k_0")).unwrap_or(1.0),
                        ),
                        (FALSE_EASTING, n("x_0")),
                        (FALSE_NORTHING, n("y_0")),
                    ],
                ),
                "aea" => (
                    11,
                    vec![
                        (STD_PARALLEL_1, n("lat_1")),
                        (STD_PARALLEL_2, n("lat_2")),
                        (NAT_ORIGIN_LAT, n("lat_0")),
                        (NAT_ORIGIN_LONG, n("lon_0")),
                        (FALSE_EASTING, n("x_0")),
                        (FALSE_NORTHING, n("y_0")),
                    ],
                ),
                "laea" => (
                    10,
                    vec![
                        (CENTER_LAT, n("lat_0")),
                        (CENTER_LONG, n("lon_0")),
                        (FALSE_EASTING, n("x_0")),
                        (FALSE_NORTHING, n("y_0")),
                    ],
                ),
                "sinu" => (
                    24,
                    vec![
                        (CENTER_LONG, n("lon_0")),
                        (FALSE_EASTING, n("x_0")),
                        (FALSE_NORTHING, n("y_0")),
                    ],
                ),
                other => {
                    return Err(format!(
                        "+proj={other}: the GeoTIFF writer writes EPSG codes and the \
                         projections utm, tmerc, aea, laea, sinu and longlat"
                    ))
                }
            };
            shorts.extend([
                (MODEL_TYPE, 1),
                (PROJECTED_TYPE, USER_DEFINED),
                (PROJECTION, USER_DEFINED),
                (PROJ_COORD_TRANS, method),
                (PROJ_LINEAR_UNITS, 9001),
            ]);
            doubles.extend(params);
        }
    }
    let citation = format!("{crs}|");
    let mut entries: Vec<[u16; 4]> = shorts.iter().map(|&(k, v)| [k, 0, 1, v]).collect();
    let mut dbl = Vec::new();
    for (k, v) in doubles {
        entries.push([k, 34736, 1, dbl.len() as u16]);
        dbl.push(v);
    }
    entries.push([CITATION, 34737, citation.len() as u16, 0]);
    entries.sort_by_key(|e| e[0]);
    let mut dir = vec![1, 1, 0, entries.len() as u16];
    dir.extend(entries.into_iter().flatten());
    Ok((dir, dbl, citation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_bounds_are_checked() {
        // header says 2 keys, only one present
        assert!(GeoKeys::parse(&[1, 1, 0, 2, 1024, 0, 1, 1], &[], "").is_err());
        // a double key pointing past the doubles
        let e = GeoKeys::parse(&[1, 1, 0, 1, 3078, 34736, 1, 5], &[1.0], "").unwrap_err();
        assert!(e.contains("3078"), "{e}");
    }

    #[test]
    fn tiepoint_and_matrix_give_the_same_transform() {
        let t = transform_from_tiepoint(&[0.0, 0.0, 0.0, 100.0, 200.0, 0.0], &[10.0, 5.0, 0.0])
            .unwrap();
        assert_eq!(t, [100.0, 10.0, 0.0, 200.0, 0.0, -5.0]);
        let m = [
            10.0, 0.0, 0.0, 100.0, 0.0, -5.0, 0.0, 200.0, 0., 0., 0., 0., 0., 0., 0., 1.,
        ];
        assert_eq!(transform_from_matrix(&m).unwrap(), t);
        assert_eq!(point_to_area(t), [95.0, 10.0, 0.0, 202.5, 0.0, -5.0]);
    }
}
