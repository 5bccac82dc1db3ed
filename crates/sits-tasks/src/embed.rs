//! Embeddings of every pixel of a cube in every period, by a saved encoder: as rows
//! in memory (for clustering, change scores, probes) and as a Zarr cube on disk
//! (one date per period, one band per embedding dimension).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use ndarray::Array4;
use sits_core::dates::Timestamps;
use sits_core::io::IfExists;
use sits_data::zarr::{write_cube, CubeChunks};
use sits_data::{Datacube, SampleSet};

use crate::encoder::{EncoderRef, SavedEncoder};
use crate::error::{Result, TaskError};
use crate::experiment::embed_rows_with;
use crate::input::{pixel_periods, select_bands, Grid, Input, PixelPeriod, PixelPeriods};

/// Embeddings of a cube's pixel-periods.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// Where each row sits.
    pub grid: Grid,
    /// One embedding per pixel-period, in the order of `grid.index`.
    pub rows: Vec<Vec<f32>>,
}

/// The series of `set` (bands in the encoder's order, gap-filled) normalised with
/// the encoder's statistics and embedded, one row per series.
pub fn embed_series(enc: &SavedEncoder, set: &SampleSet, device: &Device) -> Result<Vec<Vec<f32>>> {
    let mut set = set.clone();
    enc.card.norm.apply_samples(&mut set)?;
    Ok(embed_rows_with(
        &enc.model,
        enc.projector.as_ref(),
        &Arc::new(set),
        enc.card.pooling,
        device,
    )?)
}

/// The longitude and latitude (WGS 84 degrees) of the centre of every pixel of
/// `grid`'s rows; `None` when the grid has no georeference.
pub fn grid_locations(grid: &Grid) -> Result<Option<Vec<[f64; 2]>>> {
    let Some(geo) = &grid.geo else {
        return Ok(None);
    };
    let crs = sits_data::geo::Crs::parse(&geo.crs)?;
    grid.index
        .iter()
        .map(|p| {
            let (x, y) = geo.coords_of(p.row as f64 + 0.5, p.col as f64 + 0.5);
            let (lon, lat) = crs.to_lonlat(x, y)?;
            Ok([lon, lat])
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// The embeddings of the pixel-periods `pp` (with their locations when the encoder
/// reads them).
fn embed_grid(
    enc: EncoderRef<'_>,
    what: &str,
    pp: &PixelPeriods,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let locations = match enc {
        EncoderRef::Saved(_) => None,
        EncoderRef::Published(_) => grid_locations(&pp.grid)?,
    };
    enc.embed_series(what, &pp.set, locations.as_deref(), device)
}

/// Embeds every pixel of the cube `input` (named `what` in errors) in every period
/// of the encoder's calendar. Bands are matched by name; a missing band or no
/// period of the encoder's length is a [`TaskError::Mismatch`].
pub fn embed_cube<'a>(
    enc: impl Into<EncoderRef<'a>>,
    input: &Input,
    what: &str,
    device: &Device,
) -> Result<(Embeddings, PixelPeriods)> {
    let Input::Cube {
        cube,
        labels,
        class_names,
    } = input
    else {
        return Err(TaskError::input(
            what,
            "this is a sample set; embedding maps needs a cube (use embed_series for series)",
        ));
    };
    let enc = enc.into();
    enc.check_input(what, cube.bands(), Some(cube.times()))?;
    let cube = select_bands(cube, &enc.bands_for(cube.bands()), what, enc.path())?;
    let mut pp = pixel_periods(&cube, labels, class_names, enc.input_periods(), what)?;
    let rows = embed_grid(enc, what, &pp, device)?;
    if let Some(saved) = enc.saved() {
        saved.card.norm.apply_samples(&mut pp.set)?;
    }
    Ok((
        Embeddings {
            grid: pp.grid.clone(),
            rows,
        },
        pp,
    ))
}

/// The embeddings as a cube `(periods, dims, height, width)`: the date of a period
/// is its first date, band `e{i}` is dimension `i`, a pixel left out of a period is
/// NaN.
pub fn embeddings_cube(e: &Embeddings) -> Result<Datacube> {
    let (h, w) = e.grid.size;
    let d = e.rows.first().map_or(0, Vec::len);
    let np = e.grid.periods.len();
    let mut values = Array4::<f32>::from_elem((np, d, h, w), f32::NAN);
    for (p, row) in e.grid.index.iter().zip(&e.rows) {
        let Some(t) = e.grid.period_index(p.period) else {
            continue;
        };
        for (j, &v) in row.iter().enumerate() {
            values[[t, j, p.row, p.col]] = v;
        }
    }
    let times = Timestamps::parse(&e.grid.period_starts, "period starts")
        .map_err(sits_data::DataError::from)?;
    let bands = (0..d).map(|i| format!("e{i}")).collect();
    Ok(Datacube::new(values, times, bands)?.with_geo(e.grid.geo.clone()))
}

/// Writes the embeddings as a Zarr cube at `path` (see [`embeddings_cube`]), one
/// chunk per period and 64 x 64 pixels.
pub fn write_embeddings(e: &Embeddings, path: &Path, if_exists: IfExists) -> Result<()> {
    let cube = embeddings_cube(e)?;
    let (_, c, h, w) = cube.shape();
    let chunks = CubeChunks {
        t: 1,
        c: c.max(1),
        y: h.clamp(1, 64),
        x: w.clamp(1, 64),
    };
    Ok(write_cube(&cube, path, chunks, if_exists)?)
}

/// Writes each period of the embeddings store `zarr` as a Cloud-Optimized GeoTIFF
/// `embeddings_<period start>.tif` in `dir` (a band per dimension, `e0`, `e1`...,
/// on the store's grid, NaN nodata), one period in memory at a time. Returns the
/// paths written.
pub fn embeddings_geotiffs(zarr: &Path, dir: &Path, if_exists: IfExists) -> Result<Vec<PathBuf>> {
    let z = sits_data::zarr::ZarrCube::open_path(zarr)?;
    let [t, _, h, w] = z.shape();
    let geo = z.geo();
    let iso = z.times().to_iso();
    let mut written = Vec::with_capacity(t);
    for (i, day) in iso.iter().enumerate() {
        let cube = z.read(i..i + 1, 0..h, 0..w)?;
        let values = cube.values().index_axis(ndarray::Axis(0), 0).to_owned();
        let path = dir.join(format!("embeddings_{}.tif", &day[..day.len().min(10)]));
        sits_data::io_util::check_file_output(&path, if_exists)?;
        let options = sits_data::geotiff::write::WriteOptions {
            tile: 256,
            cog: true,
            band_names: cube.bands().to_vec(),
        };
        sits_data::geotiff::write::write_geotiff(
            &path,
            values.view(),
            geo.as_ref(),
            Some(f64::NAN),
            &options,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Reads embeddings written by [`write_embeddings`] (or any cube: one row per pixel
/// and date whose values are all finite; the period of a date is its year).
pub fn read_embeddings(path: &Path) -> Result<Embeddings> {
    let what = path.display().to_string();
    let Input::Cube { cube, .. } = crate::input::read_cube(path, None)? else {
        return Err(TaskError::input(&what, "not a cube"));
    };
    let (t, c, h, w) = cube.shape();
    let v = cube.values();
    let times = cube.times();
    let periods: Vec<i32> = times
        .as_slice()
        .iter()
        .map(chrono::Datelike::year)
        .collect();
    if periods.windows(2).any(|p| p[1] <= p[0]) {
        return Err(TaskError::input(
            &what,
            "two dates fall in one year; embeddings hold one date per period",
        ));
    }
    let mut index = Vec::new();
    let mut rows = Vec::new();
    for (ti, &period) in periods.iter().enumerate() {
        for row in 0..h {
            for col in 0..w {
                let r: Vec<f32> = (0..c).map(|ci| v[[ti, ci, row, col]]).collect();
                if r.iter().all(|x| x.is_finite()) {
                    index.push(PixelPeriod {
                        row,
                        col,
                        period,
                        label: None,
                        split: None,
                    });
                    rows.push(r);
                }
            }
        }
    }
    if rows.is_empty() {
        return Err(TaskError::input(
            &what,
            format!("no pixel has finite values in any of the {t} dates"),
        ));
    }
    Ok(Embeddings {
        grid: Grid {
            index,
            size: (h, w),
            periods,
            period_starts: times.to_iso(),
            class_names: Vec::new(),
            geo: cube.geo().cloned(),
        },
        rows,
    })
}

/// Colours for embeddings: their first three principal components as red, green
/// and blue, each stretched between its 2nd and 98th percentiles over the rows it
/// was fitted on.
#[derive(Debug, Clone)]
pub struct RgbProjector {
    mean: Vec<f64>,
    axes: Vec<Vec<f64>>,
    lo: [f64; 3],
    hi: [f64; 3],
}

impl RgbProjector {
    /// Fits the axes and the stretch on at most 2,000 of `rows`, spread over them.
    pub fn fit(rows: &[Vec<f32>]) -> Self {
        let step = rows.len().div_ceil(2000).max(1);
        let sample: Vec<Vec<f32>> = rows.iter().step_by(step).cloned().collect();
        let (mean, axes) = sits_ssl::cluster::principal_axes(&sample, 3, 200);
        let mut me = Self {
            mean,
            axes,
            lo: [0.0; 3],
            hi: [1.0; 3],
        };
        let proj: Vec<[f64; 3]> = sample.iter().map(|r| me.components(r)).collect();
        for c in 0..3 {
            let mut v: Vec<f64> = proj.iter().map(|p| p[c]).collect();
            v.sort_by(f64::total_cmp);
            if let (Some(&a), Some(&b)) = (v.get(v.len() * 2 / 100), v.get(v.len() * 98 / 100)) {
                me.lo[c] = a;
                me.hi[c] = if b > a { b } else { a + 1.0 };
            }
        }
        me
    }

    fn components(&self, r: &[f32]) -> [f64; 3] {
        let mut p = [0.0; 3];
        for (pc, ax) in p.iter_mut().zip(&self.axes) {
            *pc = r
                .iter()
                .zip(&self.mean)
                .zip(ax)
                .map(|((&v, m), a)| (v as f64 - m) * a)
                .sum();
        }
        p
    }

    /// The colour of one embedding.
    pub fn color(&self, r: &[f32]) -> [u8; 3] {
        let q = self.components(r);
        let mut rgb = [0u8; 3];
        for c in 0..3 {
            rgb[c] = (255.0 * ((q[c] - self.lo[c]) / (self.hi[c] - self.lo[c])).clamp(0.0, 1.0))
                .round() as u8;
        }
        rgb
    }
}

/// One RGB image per period (see [`RgbProjector`], fitted on all rows); black
/// where a pixel has no embedding.
pub fn rgb_maps(e: &Embeddings) -> Vec<sits_repr::render::RgbImage> {
    let (h, w) = e.grid.size;
    let proj = RgbProjector::fit(&e.rows);
    let mut images: Vec<sits_repr::render::RgbImage> = e
        .grid
        .periods
        .iter()
        .map(|_| sits_repr::render::RgbImage::new(w, h))
        .collect();
    for (p, r) in e.grid.index.iter().zip(&e.rows) {
        if let Some(t) = e.grid.period_index(p.period) {
            images[t].set(p.col, p.row, proj.color(r));
        }
    }
    images
}

/// Writes the embeddings of `e` into `dir`: `embeddings.zarr` (see
/// [`write_embeddings`]) and the PNGs of [`write_embedding_pngs`]. Returns the paths
/// written.
pub fn write_embedding_outputs(
    e: &Embeddings,
    dir: &Path,
    if_exists: IfExists,
) -> Result<Vec<std::path::PathBuf>> {
    let zarr = dir.join("embeddings.zarr");
    write_embeddings(e, &zarr, if_exists)?;
    let mut written = vec![zarr];
    written.extend(write_embedding_pngs(e, dir, if_exists)?);
    Ok(written)
}

/// Writes `embeddings_{period}.png` and the panel `embeddings.png` (see
/// [`rgb_maps`]) into `dir`. Returns the paths written.
pub fn write_embedding_pngs(
    e: &Embeddings,
    dir: &Path,
    if_exists: IfExists,
) -> Result<Vec<std::path::PathBuf>> {
    write_rgb_pngs(&rgb_maps(e), &e.grid.periods, dir, if_exists)
}

/// Writes one image per period as `embeddings_{period}.png` and the panel
/// `embeddings.png` into `dir`, magnified for small cubes. Returns the paths.
pub fn write_rgb_pngs(
    images: &[sits_repr::render::RgbImage],
    periods: &[i32],
    dir: &Path,
    if_exists: IfExists,
) -> Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    let (w, h) = images.first().map_or((1, 1), |i| (i.width, i.height));
    let scale = crate::maps::png_scale(h, w);
    let images: Vec<_> = images.iter().map(|i| i.upscale(scale)).collect();
    for (img, period) in images.iter().zip(periods) {
        let p = dir.join(format!("embeddings_{period}.png"));
        sits_data::io_util::check_file_output(&p, if_exists)?;
        img.write_png(&p)?;
        written.push(p);
    }
    let panel = dir.join("embeddings.png");
    sits_data::io_util::check_file_output(&panel, if_exists)?;
    sits_repr::render::RgbImage::hstack(&images, 6).write_png(&panel)?;
    written.push(panel);
    Ok(written)
}

/// A cube that can be read a window at a time: a cube in memory or a Zarr store.
pub enum CubeSource<'a> {
    /// A cube in memory.
    Memory(&'a Datacube),
    /// A Zarr cube store, read a window at a time (only the chunks it touches).
    Zarr(&'a sits_data::zarr::ZarrCube<sits_data::zarr::DynStore>),
    /// A folder of GeoTIFFs, read a window at a time (only the tiles it touches).
    Rasters(&'a sits_data::rasters::RasterFolder),
}

impl CubeSource<'_> {
    fn shape(&self) -> [usize; 4] {
        match self {
            CubeSource::Memory(c) => {
                let (t, b, h, w) = c.shape();
                [t, b, h, w]
            }
            CubeSource::Zarr(z) => z.shape(),
            CubeSource::Rasters(r) => {
                let (t, b, h, w) = r.shape();
                [t, b, h, w]
            }
        }
    }

    fn geo(&self) -> Option<sits_data::GeoInfo> {
        match self {
            CubeSource::Memory(c) => c.geo().cloned(),
            CubeSource::Zarr(z) => z.geo(),
            CubeSource::Rasters(r) => r.geo().cloned(),
        }
    }

    fn times(&self) -> &Timestamps {
        match self {
            CubeSource::Memory(c) => c.times(),
            CubeSource::Zarr(z) => z.times(),
            CubeSource::Rasters(r) => r.times(),
        }
    }

    fn bands(&self) -> &[String] {
        match self {
            CubeSource::Memory(c) => c.bands(),
            CubeSource::Zarr(z) => z.bands(),
            CubeSource::Rasters(r) => r.bands(),
        }
    }

    fn window(&self, row: usize, col: usize, h: usize, w: usize) -> Result<Datacube> {
        Ok(match self {
            CubeSource::Memory(c) => c.window(row, col, h, w)?,
            CubeSource::Zarr(z) => {
                let t = z.shape()[0];
                z.read(0..t, row..row + h, col..col + w)?
            }
            CubeSource::Rasters(r) => r.read_window(row, col, h, w)?,
        })
    }
}

/// How [`embed_to_zarr`] works through a cube.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Pixels per side of a block (memory is bounded by one block).
    pub block: usize,
    /// Whether an existing output store may be replaced.
    pub if_exists: IfExists,
    /// Also draw one RGB image per period (colours fitted on the first block with
    /// data, see [`RgbProjector`]), when the images hold at most this many pixels
    /// in all (0: never; never for a shard).
    pub rgb_max_pixels: usize,
    /// Write only this shard's blocks into a store shared by every worker (see
    /// [`sits_data::zarr::SharedCubeWriter`]): blocks already done are skipped, so a
    /// rerun finishes an interrupted shard. `None`: one process writes a new store.
    pub shard: Option<crate::shard::Shard>,
}

/// What [`embed_to_zarr`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Streamed {
    /// Pixel-periods embedded.
    pub pixel_periods: usize,
    /// Pixel-periods left out (no valid observation).
    pub skipped: usize,
    /// The periods, in order.
    pub periods: Vec<i32>,
    /// Length of one embedding.
    pub dims: usize,
    /// Blocks processed.
    pub blocks: usize,
    /// Blocks of this shard found done and skipped (a rerun).
    pub blocks_done_before: usize,
    /// One RGB image per period, when asked for and small enough.
    pub rgb: Option<Vec<sits_repr::render::RgbImage>>,
}

// one writer per run, so the size of the larger variant does not matter
#[allow(clippy::large_enum_variant)]
enum Writer {
    Whole(sits_data::zarr::CubeWriter),
    Shared(sits_data::zarr::SharedCubeWriter),
}

/// Embeds every pixel of `source` in every period of the encoder's calendar into
/// the Zarr cube `path` (the layout of [`write_embeddings`]), `block` x `block`
/// pixels at a time: memory is bounded by one block of input and output, not by the
/// cube. `opts.block` sets the block side. `on_block` is called after each block (a progress bar, say). Bands are
/// matched by name; a mismatch is refused before any block is read.
pub fn embed_to_zarr<'a>(
    enc: impl Into<EncoderRef<'a>>,
    source: &CubeSource<'_>,
    what: &str,
    path: &Path,
    opts: StreamOptions,
    device: &Device,
    on_block: &mut dyn FnMut(usize, usize),
) -> Result<Streamed> {
    let StreamOptions {
        block,
        if_exists,
        rgb_max_pixels,
        shard,
    } = opts;
    let enc = enc.into();
    let rgb_max_pixels = if shard.is_some() { 0 } else { rgb_max_pixels };
    if block == 0 {
        return Err(TaskError::Settings(
            "the block side must be at least 1".into(),
        ));
    }
    enc.check_input(what, source.bands(), Some(source.times()))?;
    let [_, _, h, w] = source.shape();
    // the periods the encoder will read, found from the dates alone
    let probe = Datacube::new(
        Array4::<f32>::zeros((source.times().len(), source.bands().len(), 1, 1)),
        source.times().clone(),
        source.bands().to_vec(),
    )?;
    let probe = select_bands(&probe, &enc.bands_for(source.bands()), what, enc.path())?;
    let layout = pixel_periods(&probe, &[], &[], enc.input_periods(), what)?;
    let periods = layout.grid.periods.clone();
    let dims = enc.embedding_len();
    let times = Timestamps::parse(&layout.grid.period_starts, "period starts")
        .map_err(sits_data::DataError::from)?;
    let bands: Vec<String> = (0..dims).map(|i| format!("e{i}")).collect();
    // one chunk per block holds every period: a block is written in one piece
    let chunks = CubeChunks {
        t: periods.len().max(1),
        c: dims.max(1),
        y: block.min(h).max(1),
        x: block.min(w).max(1),
    };
    // on object storage the shared writer's done markers make every run resumable
    let shard = match shard {
        None if sits_data::zarr::is_remote(path) => Some(crate::shard::Shard::new(0, 1)?),
        s => s,
    };
    let writer = match shard {
        None => Writer::Whole(sits_data::zarr::CubeWriter::create(
            path,
            &times,
            bands,
            [h, w],
            chunks,
            source.geo().as_ref(),
            if_exists,
        )?),
        Some(_) => Writer::Shared(sits_data::zarr::SharedCubeWriter::create_or_open(
            path,
            &times,
            bands,
            [h, w],
            chunks,
            source.geo().as_ref(),
        )?),
    };
    let origins: Vec<(usize, usize)> = (0..h)
        .step_by(block)
        .flat_map(|r| (0..w).step_by(block).map(move |c| (r, c)))
        .collect();
    let (mut n, mut skipped) = (0usize, 0usize);
    let mut rgb: Option<Vec<sits_repr::render::RgbImage>> =
        (periods.len().saturating_mul(h).saturating_mul(w) <= rgb_max_pixels).then(|| {
            periods
                .iter()
                .map(|_| sits_repr::render::RgbImage::new(w, h))
                .collect()
        });
    let mut colors: Option<RgbProjector> = None;
    let mut done_before = 0usize;
    for (i, &(r, c)) in origins.iter().enumerate() {
        if let (Some(s), Writer::Shared(wr)) = (shard, &writer) {
            if !s.owns(i) {
                continue;
            }
            if wr.is_done(r, c) {
                done_before += 1;
                on_block(i + 1, origins.len());
                continue;
            }
        }
        let (bh, bw) = (block.min(h - r), block.min(w - c));
        let win = select_bands(
            &source.window(r, c, bh, bw)?,
            &enc.bands_for(source.bands()),
            what,
            enc.path(),
        )?;
        let mut out = Array4::<f32>::from_elem((periods.len(), dims, bh, bw), f32::NAN);
        match pixel_periods(&win, &[], &[], enc.input_periods(), what) {
            Ok(pp) => {
                let rows = embed_grid(enc, what, &pp, device)?;
                if rgb.is_some() && colors.is_none() && rows.len() >= 2 {
                    colors = Some(RgbProjector::fit(&rows));
                }
                for (p, row) in pp.grid.index.iter().zip(&rows) {
                    if let Some(t) = periods.iter().position(|&y| y == p.period) {
                        for (j, &v) in row.iter().enumerate() {
                            out[[t, j, p.row, p.col]] = v;
                        }
                        if let (Some(images), Some(proj)) = (rgb.as_mut(), colors.as_ref()) {
                            images[t].set(c + p.col, r + p.row, proj.color(row));
                        }
                    }
                }
                n += rows.len();
                skipped += pp.skipped;
            }
            // a block where no pixel has a valid observation stays NaN
            Err(TaskError::Input { .. }) => skipped += periods.len() * bh * bw,
            Err(e) => return Err(e),
        }
        match &writer {
            Writer::Whole(wr) => wr.write_window(r, c, out.view())?,
            Writer::Shared(wr) => wr.write_block(r, c, out.view())?,
        }
        on_block(i + 1, origins.len());
    }
    if let Writer::Whole(wr) = writer {
        wr.finish()?;
    }
    Ok(Streamed {
        pixel_periods: n,
        skipped,
        periods,
        dims,
        blocks: origins.len(),
        blocks_done_before: done_before,
        rgb,
    })
}
