//! GeoTIFF and Cloud-Optimized GeoTIFF, pure Rust: read windows of any band with the
//! file's georeference, and write georeferenced maps ([`mod@write`]).
//!
//! The TIFF container and its codecs are the `tiff` crate's (image-rs): strips and
//! tiles, no compression, deflate, LZW, zstd and PackBits, the horizontal and
//! floating-point predictors, chunky (pixel-interleaved) and planar
//! (band-interleaved) files, classic TIFF and BigTIFF. This module adds what makes a
//! TIFF a GeoTIFF: the CRS from the GeoKeys (an EPSG code, or a user-defined
//! projection kept as PROJ text), the geotransform from a tie point and pixel scale
//! or from a transformation matrix (`PixelIsPoint` moved by half a pixel as GDAL
//! reads it), GDAL's nodata and per-band scale/offset, and window reads that decode
//! only the tiles or strips the window touches. On object storage
//! (`s3://bucket/file.tif`, see [`crate::zarr::store`]) only those byte ranges are
//! fetched.
//!
//! Values read equal GDAL's exactly (checked on files GDAL wrote, in every sample
//! type, codec, predictor and layout: `tests/geotiff.rs`).
//!
//! ```no_run
//! use sits_data::geotiff::{GeoTiff, Window};
//! let mut tif = GeoTiff::open("scene_B04.tif".as_ref()).unwrap();
//! let info = tif.info().clone();
//! println!("{} x {} pixels, {} band(s), CRS {:?}", info.width, info.height, info.bands,
//!          info.geo.as_ref().map(|g| &g.crs));
//! let block = tif.read_window::<f32>(Window::new(0, 0, 256, 256)).unwrap(); // (bands, rows, cols)
//! ```

mod codec;
pub(crate) mod keys;
mod source;
pub mod write;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ndarray::{Array3, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tiff::decoder::{Decoder, Limits};
use tiff::tags::{CompressionMethod, PlanarConfiguration, SampleFormat, Tag};

use crate::cube::GeoInfo;
use crate::error::{DataError, Result};
use keys::GeoKeys;
use source::Source;

/// The sample type of a raster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleType {
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl SampleType {
    /// Bytes per sample.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

/// A rectangle of pixels: top-left row and column, height and width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First row.
    pub row: usize,
    /// First column.
    pub col: usize,
    /// Number of rows.
    pub height: usize,
    /// Number of columns.
    pub width: usize,
}

impl Window {
    /// The window of `height x width` pixels whose top-left pixel is `(row, col)`.
    pub fn new(row: usize, col: usize, height: usize, width: usize) -> Self {
        Self {
            row,
            col,
            height,
            width,
        }
    }
}

/// What a GeoTIFF holds, read from its first image directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RasterInfo {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bands (samples per pixel).
    pub bands: usize,
    /// Sample type of every band.
    pub sample_type: SampleType,
    /// Whether the bands are stored pixel by pixel (`false`: band by band).
    pub pixel_interleaved: bool,
    /// Whether the image is tiled (`false`: strips).
    pub tiled: bool,
    /// Height and width of a tile, or rows per strip and the width.
    pub block: (usize, usize),
    /// The compression, as the TIFF tag names it.
    pub compression: String,
    /// `GDAL_NODATA`, when the file has one.
    pub nodata: Option<f64>,
    /// Per-band scale (`physical = stored * scale + offset`), 1 when absent.
    pub scales: Vec<f64>,
    /// Per-band offset, 0 when absent.
    pub offsets: Vec<f64>,
    /// CRS and geotransform, when the file is georeferenced.
    pub geo: Option<GeoInfo>,
    /// Whether the file declares its coordinates as pixel centres (the
    /// geotransform in [`geo`](Self::geo) is already moved to the corner).
    pub pixel_is_point: bool,
}

/// A sample type a window can be read into.
pub trait RasterValue: Copy + Default + Send + Sync + 'static {
    /// The value of a stored sample, given as f64 (exact for every TIFF sample type
    /// read here).
    fn from_f64(v: f64) -> Self;
}

impl RasterValue for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl RasterValue for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// An open GeoTIFF (local or on object storage).
pub struct GeoTiff {
    path: PathBuf,
    decoder: Decoder<Source>,
    info: RasterInfo,
    offsets: Vec<u64>,
    counts: Vec<u64>,
    coding: codec::Coding,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for GeoTiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoTiff")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The error of `path` with a reason.
pub(crate) fn tiff_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Raster {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn tiff_fail(path: &Path, e: tiff::TiffError) -> DataError {
    let reason = match &e {
        tiff::TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("truncated: the file ends before the data its header points at ({e})")
        }
        _ => format!("{e}"),
    };
    tiff_err(path, reason)
}

impl GeoTiff {
    /// Opens a GeoTIFF and reads its header: a local path or an object-storage URL.
    /// Nothing but the header (and the tile index) is read. Errors name the file and
    /// what is wrong: not a TIFF, truncated, an unsupported codec or sample type.
    pub fn open(path: &Path) -> Result<Self> {
        let requests = Arc::new(AtomicU64::new(0));
        let src = Source::open(path, requests.clone())?;
        Self::from_source(path, src, requests)
    }

    /// Opens a GeoTIFF held in memory; `name` names it in errors.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<Self> {
        let src = Source::Memory(std::io::Cursor::new(bytes));
        Self::from_source(name, src, Arc::new(AtomicU64::new(0)))
    }

    fn from_source(path: &Path, mut src: Source, requests: Arc<AtomicU64>) -> Result<Self> {
        let file_len = src.len(path)?;
        let mut decoder = Decoder::new(src)
            .map_err(|e| tiff_fail(path, e))?
            .with_limits(limits());
        let (info, predictor, compression) = read_info(path, &mut decoder)?;
        let coding = codec::Coding {
            compression,
            predictor,
            big_endian: decoder.byte_order() == tiff::tags::ByteOrder::BigEndian,
            sample_type: info.sample_type,
            spp: if info.pixel_interleaved {
                info.bands
            } else {
                1
            },
        };
        let tag = |d: &mut Decoder<Source>, t: Tag| -> Result<Vec<u64>> {
            d.get_tag_u64_vec(t).map_err(|e| tiff_fail(path, e))
        };
        let (offsets, counts) = if info.tiled {
            (
                tag(&mut decoder, Tag::TileOffsets)?,
                tag(&mut decoder, Tag::TileByteCounts)?,
            )
        } else {
            (
                tag(&mut decoder, Tag::StripOffsets)?,
                tag(&mut decoder, Tag::StripByteCounts)?,
            )
        };
        let planes = if info.pixel_interleaved {
            1
        } else {
            info.bands
        };
        let (bh, bw) = info.block;
        let expected = info.height.div_ceil(bh) * info.width.div_ceil(bw) * planes;
        if offsets.len() != expected || counts.len() != expected {
            return Err(tiff_err(
                path,
                format!(
                    "{} offsets and {} byte counts for {expected} {} (image {} x {}, blocks \
                     {bh} x {bw}, {planes} plane(s))",
                    offsets.len(),
                    counts.len(),
                    if info.tiled { "tiles" } else { "strips" },
                    info.height,
                    info.width
                ),
            ));
        }
        let spp = if info.pixel_interleaved {
            info.bands
        } else {
            1
        };
        let block_bytes = [bh, bw, spp, info.sample_type.size()]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        if block_bytes.is_none_or(|b| b > MAX_BLOCK_BYTES) {
            return Err(tiff_err(
                path,
                format!(
                    "blocks of {bh} x {bw} pixels x {spp} samples x {} bytes are larger than \
                     {} MiB; rewrite the file with smaller tiles (`gdal_translate -co \
                     TILED=YES`)",
                    info.sample_type.size(),
                    MAX_BLOCK_BYTES >> 20
                ),
            ));
        }
        if let Some((i, c)) = counts
            .iter()
            .enumerate()
            .find(|(_, c)| **c > MAX_BLOCK_BYTES as u64)
        {
            return Err(tiff_err(
                path,
                format!(
                    "block {i} claims {c} stored bytes, more than the {} MiB a block may hold",
                    MAX_BLOCK_BYTES >> 20
                ),
            ));
        }
        if let Some((i, (o, c))) = offsets
            .iter()
            .zip(&counts)
            .enumerate()
            .find(|(_, (o, c))| o.checked_add(**c).is_none_or(|end| end > file_len))
        {
            return Err(tiff_err(
                path,
                format!(
                    "truncated: block {i} spans bytes {o}..{} but the file has {file_len} bytes",
                    o.saturating_add(*c)
                ),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            decoder,
            info,
            offsets,
            counts,
            coding,
            requests,
        })
    }

    /// What the file holds.
    pub fn info(&self) -> &RasterInfo {
        &self.info
    }

    /// The file's path or URL.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Requests made to object storage so far (0 for a local file).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Reads `window` of every band: values `(bands, rows, cols)` as stored (no
    /// scale, offset or nodata applied). Only the tiles or strips that intersect the
    /// window are fetched and decoded. A window outside the image is an error that
    /// gives the image size.
    pub fn read_window<T: RasterValue>(&mut self, window: Window) -> Result<Array3<T>> {
        let info = &self.info;
        let Window {
            row,
            col,
            height,
            width,
        } = window;
        let fits = |start: usize, len: usize, size: usize| {
            start.checked_add(len).is_some_and(|end| end <= size) && len > 0
        };
        if !fits(row, height, info.height) || !fits(col, width, info.width) {
            return Err(DataError::OutOfBounds {
                what: format!(
                    "{}: window rows {row}..{} x columns {col}..{}",
                    self.path.display(),
                    row.saturating_add(height),
                    col.saturating_add(width)
                ),
                reason: format!(
                    "the image has {} rows and {} columns (and a window is not empty)",
                    info.height, info.width
                ),
            });
        }
        crate::io_util::check_read_size(
            &self.path.display().to_string(),
            &[info.bands as u64, height as u64, width as u64],
            std::mem::size_of::<T>() as u64,
        )?;
        let mut out = Array3::<T>::default((info.bands, height, width));
        let (bh, bw) = info.block;
        let across = info.width.div_ceil(bw);
        let per_plane = info.height.div_ceil(bh) * across;
        let (planes, spp) = if info.pixel_interleaved {
            (1, info.bands)
        } else {
            (info.bands, 1)
        };
        let (r0, r1) = (row / bh, (row + height - 1) / bh);
        let (c0, c1) = (col / bw, (col + width - 1) / bw);
        let mut chunks = Vec::new();
        for p in 0..planes {
            for tr in r0..=r1 {
                for tc in c0..=c1 {
                    chunks.push((p, tr, tc, p * per_plane + tr * across + tc));
                }
            }
        }
        let mut ranges: Vec<(u64, u64)> = chunks
            .iter()
            .map(|c| (self.offsets[c.3], self.counts[c.3]))
            .collect();
        let src = self.decoder.inner();
        src.prefetch(&mut ranges)?;
        // the stored bytes of each block (bounded: every range was checked against
        // the file's size at open)
        let mut raws = Vec::with_capacity(chunks.len());
        for c in &chunks {
            let (off, len) = (self.offsets[c.3], self.counts[c.3]);
            let mut raw = vec![0u8; len as usize];
            src.seek(SeekFrom::Start(off))
                .and_then(|_| src.read_exact(&mut raw))
                .map_err(|e| tiff_err(&self.path, format!("block {}: {e}", c.3)))?;
            raws.push(raw);
        }
        let coding = self.coding;
        let (height_all, width_all) = (info.height, info.width);
        let (tiled, sample_type) = (info.tiled, info.sample_type);
        let path = &self.path;
        // the output cut into one band of rows per tile row (disjoint views), each
        // decoded and filled by one task
        let mut groups: Vec<(usize, ndarray::ArrayViewMut3<'_, T>)> = Vec::new();
        let mut rest = out.view_mut();
        let mut y = row;
        for tr in r0..=r1 {
            let end = ((tr + 1) * bh).min(row + height);
            let (head, tail) = rest.split_at(Axis(1), end - y);
            groups.push((tr, head));
            rest = tail;
            y = end;
        }
        let raws_of = |tr: usize| chunks.iter().zip(&raws).filter(move |(c, _)| c.1 == tr);
        groups
            .into_par_iter()
            .try_for_each(|(tr, mut view)| -> Result<()> {
                let y0 = tr * bh;
                let top = y0.max(row); // first image row of this view
                for (&(p, _, tc, idx), raw) in raws_of(tr) {
                    // stored size: full tiles, or the rows of this strip
                    let rows = if tiled { bh } else { bh.min(height_all - y0) };
                    let stride = if tiled { bw } else { width_all };
                    let block = coding
                        .decode(raw, rows, stride)
                        .map_err(|r| tiff_err(path, format!("block {idx}: {r}")))?;
                    let x0 = tc * bw;
                    let xs = x0.max(col)..(x0 + bw).min(col + width);
                    macro_rules! copy {
                        ($t:ty) => {{
                            const N: usize = std::mem::size_of::<$t>();
                            for yy in top..top + view.dim().1 {
                                let src = &block.bytes
                                    [((yy - y0) * stride + (xs.start - x0)) * spp * N..];
                                for s in 0..spp {
                                    let mut dst = view.slice_mut(ndarray::s![
                                        p + s,
                                        yy - top,
                                        xs.start - col..xs.end - col
                                    ]);
                                    // sample s of each pixel of the window's part of the row
                                    if spp == 1 {
                                        let samples = src.chunks_exact(N);
                                        for (d, b) in dst.iter_mut().zip(samples) {
                                            let mut a = [0u8; N];
                                            a.copy_from_slice(b);
                                            *d = T::from_f64(<$t>::from_ne_bytes(a) as f64);
                                        }
                                    } else {
                                        for (k, d) in dst.iter_mut().enumerate() {
                                            let i = (k * spp + s) * N;
                                            let mut a = [0u8; N];
                                            a.copy_from_slice(&src[i..i + N]);
                                            *d = T::from_f64(<$t>::from_ne_bytes(a) as f64);
                                        }
                                    }
                                }
                            }
                        }};
                    }
                    match sample_type {
                        SampleType::U8 => copy!(u8),
                        SampleType::I8 => copy!(i8),
                        SampleType::U16 => copy!(u16),
                        SampleType::I16 => copy!(i16),
                        SampleType::U32 => copy!(u32),
                        SampleType::I32 => copy!(i32),
                        SampleType::F32 => copy!(f32),
                        SampleType::F64 => copy!(f64),
                    }
                }
                Ok(())
            })?;
        Ok(out)
    }

    /// Reads every band whole: `(bands, rows, cols)`.
    pub fn read_all<T: RasterValue>(&mut self) -> Result<Array3<T>> {
        let (h, w) = (self.info.height, self.info.width);
        self.read_window(Window::new(0, 0, h, w))
    }
}

/// The largest block (tile or strip) read, decoded or stored: 256 MiB.
const MAX_BLOCK_BYTES: usize = 256 << 20;

/// Limits on what a file's numbers can make the decoder allocate: one decoded block
/// at most 256 MiB (a 4096 x 4096 tile of f64 x 2), tag arrays at most 64 MiB.
fn limits() -> Limits {
    let mut l = Limits::default();
    l.ifd_value_size = 64 << 20;
    l
}

fn read_info(path: &Path, d: &mut Decoder<Source>) -> Result<(RasterInfo, u16, u16)> {
    let fail = |e| tiff_fail(path, e);
    let (w, h) = d.dimensions().map_err(fail)?;
    let bands: u16 = d
        .find_tag_unsigned(Tag::SamplesPerPixel)
        .map_err(fail)?
        .unwrap_or(1);
    let bits = d
        .find_tag_unsigned_vec::<u16>(Tag::BitsPerSample)
        .map_err(fail)?
        .unwrap_or_else(|| vec![1]);
    let formats = d
        .find_tag_unsigned_vec::<u16>(Tag::SampleFormat)
        .map_err(fail)?
        .unwrap_or_else(|| vec![1]);
    if bits.iter().any(|b| *b != bits[0]) || formats.iter().any(|f| *f != formats[0]) {
        return Err(tiff_err(
            path,
            format!(
                "bands of different sample types (bits {bits:?}, formats {formats:?}) are not read"
            ),
        ));
    }
    let sample_type = match (SampleFormat::from_u16(formats[0]), bits[0]) {
        (Some(SampleFormat::Uint), 8) => SampleType::U8,
        (Some(SampleFormat::Int), 8) => SampleType::I8,
        (Some(SampleFormat::Uint), 16) => SampleType::U16,
        (Some(SampleFormat::Int), 16) => SampleType::I16,
        (Some(SampleFormat::Uint), 32) => SampleType::U32,
        (Some(SampleFormat::Int), 32) => SampleType::I32,
        (Some(SampleFormat::IEEEFP), 32) => SampleType::F32,
        (Some(SampleFormat::IEEEFP), 64) => SampleType::F64,
        (f, b) => {
            return Err(tiff_err(
                path,
                format!(
                    "{b}-bit samples of format {f:?} are not read (read: u8, i8, u16, i16, \
                     u32, i32, f32, f64)"
                ),
            ))
        }
    };
    let compression_code: u16 = d
        .find_tag_unsigned(Tag::Compression)
        .map_err(fail)?
        .unwrap_or(1);
    let compression = match CompressionMethod::from_u16(compression_code) {
        Some(
            c @ (CompressionMethod::None
            | CompressionMethod::LZW
            | CompressionMethod::Deflate
            | CompressionMethod::OldDeflate
            | CompressionMethod::PackBits
            | CompressionMethod::ZSTD),
        ) => format!("{c:?}"),
        other => {
            return Err(tiff_err(
                path,
                format!(
                    "compression {compression_code} ({other:?}) is not read (read: none, \
                     deflate, LZW, zstd, PackBits); convert with `gdal_translate -co \
                     COMPRESS=DEFLATE`"
                ),
            ))
        }
    };
    let planar: u16 = d
        .find_tag_unsigned(Tag::PlanarConfiguration)
        .map_err(fail)?
        .unwrap_or(1);
    let pixel_interleaved = bands == 1 || planar == PlanarConfiguration::Chunky.to_u16();
    let tiled = d.find_tag(Tag::TileWidth).map_err(fail)?.is_some();
    let block = if tiled {
        let tw: u32 = d.get_tag_unsigned(Tag::TileWidth).map_err(fail)?;
        let th: u32 = d.get_tag_unsigned(Tag::TileLength).map_err(fail)?;
        (th as usize, tw as usize)
    } else {
        let rps: u64 = d
            .find_tag_unsigned(Tag::RowsPerStrip)
            .map_err(fail)?
            .unwrap_or(u64::from(h));
        (rps.clamp(1, u64::from(h.max(1))) as usize, w as usize)
    };
    if w == 0 || h == 0 || bands == 0 || block.0 == 0 || block.1 == 0 {
        return Err(tiff_err(
            path,
            format!("empty image: {w} x {h} pixels, {bands} band(s), blocks {block:?}"),
        ));
    }
    let nodata = match d.find_tag(Tag::GdalNodata).map_err(fail)? {
        Some(v) => {
            let s = v.into_string().map_err(fail)?;
            let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
            Some(
                parse_f64(s)
                    .ok_or_else(|| tiff_err(path, format!("GDAL_NODATA `{s}` is not a number")))?,
            )
        }
        None => None,
    };
    let (mut scales, mut offsets) = (vec![1.0; bands as usize], vec![0.0; bands as usize]);
    if let Some(v) = d.find_tag(Tag::Unknown(42112)).map_err(fail)? {
        let xml = v.into_string().map_err(fail)?;
        gdal_metadata_scales(&xml, &mut scales, &mut offsets);
    }
    let geo_keys = match d.find_tag(Tag::GeoKeyDirectoryTag).map_err(fail)? {
        Some(v) => {
            let dir = v.into_u16_vec().map_err(fail)?;
            let doubles = match d.find_tag(Tag::GeoDoubleParamsTag).map_err(fail)? {
                Some(v) => v.into_f64_vec().map_err(fail)?,
                None => Vec::new(),
            };
            let ascii = match d.find_tag(Tag::GeoAsciiParamsTag).map_err(fail)? {
                Some(v) => v.into_string().map_err(fail)?,
                None => String::new(),
            };
            GeoKeys::parse(&dir, &doubles, &ascii).map_err(|r| tiff_err(path, r))?
        }
        None => GeoKeys::default(),
    };
    let f64s = |d: &mut Decoder<Source>, t: Tag| -> Result<Option<Vec<f64>>> {
        match d.find_tag(t).map_err(fail)? {
            Some(v) => Ok(Some(v.into_f64_vec().map_err(fail)?)),
            None => Ok(None),
        }
    };
    let matrix = f64s(d, Tag::ModelTransformationTag)?;
    let tie = f64s(d, Tag::ModelTiepointTag)?;
    let scale = f64s(d, Tag::ModelPixelScaleTag)?;
    let transform = match (matrix, tie, scale) {
        (Some(m), _, _) => Some(keys::transform_from_matrix(&m)),
        (None, Some(t), Some(s)) => Some(keys::transform_from_tiepoint(&t, &s)),
        _ => None,
    }
    .transpose()
    .map_err(|r| tiff_err(path, r))?;
    let pixel_is_point = geo_keys.pixel_is_point();
    let crs = geo_keys
        .crs()
        .map_err(|r| tiff_err(path, format!("CRS: {r}")))?;
    let geo = transform.map(|t| GeoInfo {
        crs: crs.unwrap_or_default(),
        transform: if pixel_is_point {
            keys::point_to_area(t)
        } else {
            t
        },
    });
    let predictor: u16 = d
        .find_tag_unsigned(Tag::Predictor)
        .map_err(fail)?
        .unwrap_or(1);
    if !matches!(predictor, 1..=3) {
        return Err(tiff_err(
            path,
            format!("predictor {predictor} is not read (read: 1, 2, 3)"),
        ));
    }
    let info = RasterInfo {
        width: w as usize,
        height: h as usize,
        bands: bands as usize,
        sample_type,
        pixel_interleaved,
        tiled,
        block,
        compression,
        nodata,
        scales,
        offsets,
        geo,
        pixel_is_point,
    };
    Ok((info, predictor, compression_code))
}

fn parse_f64(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" | "-nan" => Some(f64::NAN),
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// Reads the `SCALE` and `OFFSET` items of GDAL's metadata XML (tag 42112):
/// `<Item name="SCALE" sample="0" role="scale">0.0001</Item>`.
fn gdal_metadata_scales(xml: &str, scales: &mut [f64], offsets: &mut [f64]) {
    for item in xml.split("<Item").skip(1) {
        let Some((attrs, rest)) = item.split_once('>') else {
            continue;
        };
        let Some((text, _)) = rest.split_once("</Item>") else {
            continue;
        };
        let attr = |name: &str| {
            let key = format!("{name}=\"");
            attrs
                .split_once(&key)
                .and_then(|(_, v)| v.split_once('"'))
                .map(|(v, _)| v.to_string())
        };
        let (Some(role), Some(sample)) = (attr("role"), attr("sample")) else {
            continue;
        };
        let (Ok(band), Some(value)) = (sample.parse::<usize>(), parse_f64(text.trim())) else {
            continue;
        };
        match role.as_str() {
            "scale" if band < scales.len() => scales[band] = value,
            "offset" if band < offsets.len() => offsets[band] = value,
            _ => {}
        }
    }
}
