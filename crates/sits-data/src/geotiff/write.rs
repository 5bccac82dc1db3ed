//! Writing georeferenced maps as GeoTIFF, tiled and deflate-compressed, optionally
//! Cloud-Optimized (every image directory first, then the overviews' tiles from the
//! coarsest, then the full-resolution tiles, as the COG specification lays them
//! out).
//!
//! The CRS is written as GeoKeys: an EPSG code as such (also the code a WKT names in
//! its last `AUTHORITY`), a PROJ string of the projections `utm`, `tmerc`, `aea`,
//! `laea`, `sinu` and `longlat` as user-defined keys (the way GDAL writes the Brazil
//! Data Cube Albers grid); another CRS is an error naming it. Bands are stored band by band
//! (`PlanarConfiguration = 2`), so a GIS reading one band of an embedding map reads
//! only that band. GDAL opens the files with the same CRS, geotransform and nodata
//! (`crates/sits-data/tests/geotiff_write.rs`).

use std::io::Write;
use std::path::Path;

use ndarray::{s, Array3, ArrayView3};
use rayon::prelude::*;

use super::keys::keys_for_crs;
use super::tiff_err;
use crate::cube::GeoInfo;
use crate::error::{DataError, Result};

/// A sample type the writer stores.
pub trait MapSample: Copy + Send + Sync + PartialEq + 'static {
    /// `BitsPerSample`.
    const BITS: u16;
    /// `SampleFormat` (1 unsigned, 2 signed, 3 float).
    const FORMAT: u16;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// As f64, for averaging overviews.
    fn to_f64(self) -> f64;
    /// From f64, for averaging overviews.
    fn from_f64(v: f64) -> Self;
    /// Whether overviews take the nearest value (classes) instead of the mean.
    const NEAREST: bool;
}

impl MapSample for f32 {
    const BITS: u16 = 32;
    const FORMAT: u16 = 3;
    const NEAREST: bool = false;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl MapSample for u8 {
    const BITS: u16 = 8;
    const FORMAT: u16 = 1;
    const NEAREST: bool = true;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self);
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as u8
    }
}

impl MapSample for u16 {
    const BITS: u16 = 16;
    const FORMAT: u16 = 1;
    const NEAREST: bool = true;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f64(v: f64) -> Self {
        v as u16
    }
}

/// How a map is written.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Tile size in pixels (a multiple of 16, as TIFF requires).
    pub tile: usize,
    /// Cloud-Optimized layout with overviews (halving until the image fits a tile).
    pub cog: bool,
    /// Band names, written as GDAL band descriptions.
    pub band_names: Vec<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            tile: 256,
            cog: false,
            band_names: Vec::new(),
        }
    }
}

struct Level {
    width: usize,
    height: usize,
    tiles: Vec<Vec<u8>>, // compressed, band-major then row-major
}

/// Writes `values` `(bands, rows, cols)` to `path` (atomically: a temporary file in
/// the same folder, renamed at the end) with the georeference `geo` and `nodata`.
/// The caller checks beforehand that `path` may be written
/// ([`crate::io_util::check_file_output`]).
pub fn write_geotiff<T: MapSample>(
    path: &Path,
    values: ArrayView3<'_, T>,
    geo: Option<&GeoInfo>,
    nodata: Option<f64>,
    options: &WriteOptions,
) -> Result<()> {
    let (bands, height, width) = values.dim();
    if bands == 0 || height == 0 || width == 0 {
        return Err(DataError::Empty(format!(
            "{}: a map of shape {:?}",
            path.display(),
            values.dim()
        )));
    }
    let tile = options.tile;
    if tile == 0 || !tile.is_multiple_of(16) {
        return Err(DataError::Argument(format!(
            "GeoTIFF tile size {tile}: a positive multiple of 16"
        )));
    }
    if bands > usize::from(u16::MAX) {
        return Err(DataError::Argument(format!(
            "{bands} bands: at most 65535 in a TIFF"
        )));
    }
    let geokeys = match geo {
        Some(g) if !g.crs.trim().is_empty() => Some(
            keys_for_crs(&g.crs)
                .map_err(|r| tiff_err(path, format!("cannot write the CRS `{}`: {r}", g.crs)))?,
        ),
        _ => None,
    };
    // the full image and its overviews
    let mut images: Vec<Array3<T>> = Vec::new();
    if options.cog {
        let mut cur = values.to_owned();
        while cur.dim().1 > tile || cur.dim().2 > tile {
            let next = halve(cur.view(), nodata);
            images.push(cur);
            cur = next;
        }
        images.push(cur);
    } else {
        images.push(values.to_owned());
    }
    let levels: Vec<Level> = images
        .iter()
        .map(|img| compress_tiles(img.view(), tile))
        .collect::<std::io::Result<_>>()
        .map_err(|e| DataError::io(path, e))?;
    let layout = Layout {
        tile,
        bands,
        bits: T::BITS,
        format: T::FORMAT,
    };
    let bytes =
        assemble(&levels, &layout, geo, geokeys, nodata, options).map_err(|r| tiff_err(path, r))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    }
    sits_core::io::write_atomic(path, &bytes).map_err(|e| DataError::io(path, e))
}

/// Each 2 x 2 block to one pixel: the mean of its valid values (not NaN, not nodata)
/// for continuous maps, the top-left value for class maps.
fn halve<T: MapSample>(img: ArrayView3<'_, T>, nodata: Option<f64>) -> Array3<T> {
    let (b, h, w) = img.dim();
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let fill = T::from_f64(nodata.unwrap_or(f64::NAN));
    Array3::from_shape_fn((b, h2, w2), |(k, r, c)| {
        if T::NEAREST {
            return img[[k, 2 * r, 2 * c]];
        }
        let (mut sum, mut n) = (0.0, 0usize);
        for y in 2 * r..(2 * r + 2).min(h) {
            for x in 2 * c..(2 * c + 2).min(w) {
                let v = img[[k, y, x]].to_f64();
                if v.is_nan() || Some(v) == nodata {
                    continue;
                }
                sum += v;
                n += 1;
            }
        }
        if n == 0 {
            fill
        } else {
            T::from_f64(sum / n as f64)
        }
    })
}

fn compress_tiles<T: MapSample>(img: ArrayView3<'_, T>, tile: usize) -> std::io::Result<Level> {
    let (bands, height, width) = img.dim();
    let (down, across) = (height.div_ceil(tile), width.div_ceil(tile));
    let ids: Vec<(usize, usize, usize)> = (0..bands)
        .flat_map(|b| (0..down).flat_map(move |r| (0..across).map(move |c| (b, r, c))))
        .collect();
    let tiles = ids
        .par_iter()
        .map(|&(b, r, c)| {
            // a full tile, padded with zeros past the image edge, as TIFF stores it
            let mut raw = Vec::with_capacity(tile * tile * usize::from(T::BITS / 8));
            let (y0, x0) = (r * tile, c * tile);
            let view = img.slice(s![
                b,
                y0..(y0 + tile).min(height),
                x0..(x0 + tile).min(width)
            ]);
            let zero = T::from_f64(0.0);
            for y in 0..tile {
                for x in 0..tile {
                    view.get((y, x)).copied().unwrap_or(zero).put(&mut raw);
                }
            }
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            enc.write_all(&raw)?;
            enc.finish()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(Level {
        width,
        height,
        tiles,
    })
}

/// One TIFF tag entry: id, type, count and the little-endian bytes of its values.
struct Entry {
    tag: u16,
    typ: u16,
    count: u32,
    data: Vec<u8>,
}

fn shorts(tag: u16, v: &[u16]) -> Entry {
    Entry {
        tag,
        typ: 3,
        count: v.len() as u32,
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn longs(tag: u16, v: &[u32]) -> Entry {
    Entry {
        tag,
        typ: 4,
        count: v.len() as u32,
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn doubles(tag: u16, v: &[f64]) -> Entry {
    Entry {
        tag,
        typ: 12,
        count: v.len() as u32,
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn ascii(tag: u16, s: &str) -> Entry {
    let mut data = s.as_bytes().to_vec();
    data.push(0);
    Entry {
        tag,
        typ: 2,
        count: data.len() as u32,
        data,
    }
}

fn gdal_metadata(names: &[String]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut xml = String::from("<GDALMetadata>\n");
    for (i, n) in names.iter().enumerate() {
        xml.push_str(&format!(
            "  <Item name=\"DESCRIPTION\" sample=\"{i}\" role=\"description\">{}</Item>\n",
            esc(n)
        ));
    }
    xml.push_str("</GDALMetadata>");
    Some(xml)
}

/// Lays out the file: header, every IFD (with its out-of-line values) first, then
/// the tiles of the coarsest level first.
#[derive(Clone, Copy)]
struct Layout {
    tile: usize,
    bands: usize,
    bits: u16,
    format: u16,
}

fn assemble(
    levels: &[Level],
    layout: &Layout,
    geo: Option<&GeoInfo>,
    geokeys: Option<(Vec<u16>, Vec<f64>, String)>,
    nodata: Option<f64>,
    options: &WriteOptions,
) -> std::result::Result<Vec<u8>, String> {
    let Layout {
        tile,
        bands,
        bits,
        format,
    } = *layout;
    // the IFD entries of each level, with placeholder offsets filled in below
    let mut ifds: Vec<Vec<Entry>> = Vec::new();
    for (i, l) in levels.iter().enumerate() {
        let n = l.tiles.len();
        let mut e = Vec::new();
        if i > 0 {
            e.push(longs(254, &[1])); // NewSubfileType: reduced-resolution image
        }
        e.push(longs(256, &[l.width as u32]));
        e.push(longs(257, &[l.height as u32]));
        e.push(shorts(258, &vec![bits; bands]));
        e.push(shorts(259, &[8])); // deflate
        e.push(shorts(262, &[1])); // min-is-black
        e.push(shorts(277, &[bands as u16]));
        e.push(shorts(284, &[2])); // planar: band by band
        e.push(shorts(322, &[tile as u16]));
        e.push(shorts(323, &[tile as u16]));
        e.push(longs(324, &vec![0; n])); // TileOffsets, filled in later
        e.push(longs(
            325,
            &l.tiles.iter().map(|t| t.len() as u32).collect::<Vec<_>>(),
        ));
        e.push(shorts(339, &vec![format; bands]));
        if i == 0 {
            if let Some(g) = geo {
                let [x0, dx, rx, y0, ry, dy] = g.transform;
                if rx == 0.0 && ry == 0.0 {
                    e.push(doubles(33550, &[dx, -dy, 0.0]));
                    e.push(doubles(33922, &[0.0, 0.0, 0.0, x0, y0, 0.0]));
                } else {
                    e.push(doubles(
                        34264,
                        &[
                            dx, rx, 0.0, x0, ry, dy, 0.0, y0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                            1.0,
                        ],
                    ));
                }
                if let Some((dir, dbl, asc)) = &geokeys {
                    e.push(shorts(34735, dir));
                    if !dbl.is_empty() {
                        e.push(doubles(34736, dbl));
                    }
                    e.push(ascii(34737, asc));
                }
            }
            if let Some(xml) = gdal_metadata(&options.band_names) {
                e.push(ascii(42112, &xml));
            }
        }
        if let Some(nd) = nodata {
            let text = if nd.is_nan() {
                "nan".to_string()
            } else {
                format!("{nd}")
            };
            e.push(ascii(42113, &text));
        }
        e.sort_by_key(|x| x.tag);
        ifds.push(e);
    }
    // sizes: each IFD is 2 + 12 n + 4 bytes, then its values longer than 4 bytes
    let ifd_size = |e: &[Entry]| -> usize {
        2 + 12 * e.len()
            + 4
            + e.iter()
                .filter(|x| x.data.len() > 4)
                .map(|x| x.data.len().div_ceil(2) * 2)
                .sum::<usize>()
    };
    let header_end = 8 + ifds.iter().map(|e| ifd_size(e)).sum::<usize>();
    // tile data: coarsest level first
    let mut pos = header_end;
    let mut tile_offsets: Vec<Vec<u32>> = vec![Vec::new(); levels.len()];
    for (i, l) in levels.iter().enumerate().rev() {
        for t in &l.tiles {
            tile_offsets[i].push(u32::try_from(pos).map_err(|_| too_big())?);
            pos += t.len();
        }
    }
    u32::try_from(pos).map_err(|_| too_big())?;
    let mut out = Vec::with_capacity(pos);
    out.extend_from_slice(b"II");
    out.extend_from_slice(&42u16.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    let mut ifd_pos = 8usize;
    for (i, e) in ifds.iter_mut().enumerate() {
        if let Some(off) = e.iter_mut().find(|x| x.tag == 324) {
            off.data = tile_offsets[i]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
        }
        let size = ifd_size(e);
        let next = if i + 1 < levels.len() {
            ifd_pos + size
        } else {
            0
        };
        let mut values_pos = ifd_pos + 2 + 12 * e.len() + 4;
        let mut values = Vec::new();
        out.extend_from_slice(&(e.len() as u16).to_le_bytes());
        for x in e.iter() {
            out.extend_from_slice(&x.tag.to_le_bytes());
            out.extend_from_slice(&x.typ.to_le_bytes());
            out.extend_from_slice(&x.count.to_le_bytes());
            if x.data.len() <= 4 {
                let mut inline = x.data.clone();
                inline.resize(4, 0);
                out.extend_from_slice(&inline);
            } else {
                out.extend_from_slice(&(values_pos as u32).to_le_bytes());
                let mut d = x.data.clone();
                if d.len() % 2 == 1 {
                    d.push(0); // values start on a word boundary
                }
                values_pos += d.len();
                values.extend_from_slice(&d);
            }
        }
        out.extend_from_slice(&(next as u32).to_le_bytes());
        out.extend_from_slice(&values);
        ifd_pos += size;
    }
    debug_assert_eq!(out.len(), header_end);
    for l in levels.iter().rev() {
        for t in &l.tiles {
            out.extend_from_slice(t);
        }
    }
    Ok(out)
}

fn too_big() -> String {
    "the map is larger than 4 GiB, beyond classic TIFF; write it in parts or as Zarr".into()
}
