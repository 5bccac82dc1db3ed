//! What a dataset holds, told without a model: kind, shape, dates, bands, the share
//! of valid observations, classes. The `sits inspect` command.

use std::path::Path;

use sits_core::dates::Timestamps;
use sits_data::folder::layer_value_counts;
use sits_data::open::{open_with, Opened};
use sits_data::rasters::RasterFolderOptions;
use sits_data::SampleSet;

use crate::error::Result;

fn dates(t: &Timestamps) -> String {
    let iso = t.to_iso();
    format!(
        "{} .. {} ({} dates)",
        iso.first().map_or("-", String::as_str),
        iso.last().map_or("-", String::as_str),
        t.len()
    )
}

fn print_classes(out: &mut Vec<String>, names: &[String], counts: &[usize]) {
    for (i, (name, n)) in names.iter().zip(counts).enumerate() {
        if !name.is_empty() || *n > 0 {
            out.push(format!("  class {i:>2} {name:<22} {n:>6}"));
        }
    }
}

fn print_samples(out: &mut Vec<String>, set: &SampleSet) {
    let first = set.series().iter().filter_map(|s| s.times.first()).min();
    let last = set.series().iter().filter_map(|s| s.times.last()).max();
    let min_len = set.series().iter().map(|s| s.len()).min().unwrap_or(0);
    out.push("kind:   pixel sample set".to_string());
    out.push(format!(
        "shape:  {} series x {}..{} dates x {} bands",
        set.len(),
        min_len,
        set.max_len(),
        set.bands().len()
    ));
    if let (Some(a), Some(b)) = (first, last) {
        out.push(format!("dates:  {a} .. {b}"));
    }
    out.push(format!("bands:  {:?}", set.bands()));
    if set.labels().is_some() {
        print_classes(out, set.class_names(), &set.class_counts());
    } else {
        out.push("labels: none".to_string());
    }
}

/// What `path` holds (kind, shape, dates, bands, classes), as lines of text.
pub fn describe(path: &Path) -> Result<Vec<String>> {
    describe_with(path, &RasterFolderOptions::default())
}

/// [`describe`], with the naming, bands and cloud layer of a folder of GeoTIFFs.
pub fn describe_with(path: &Path, rasters: &RasterFolderOptions) -> Result<Vec<String>> {
    let mut out = Vec::new();
    out.push(format!("path:   {}", path.display()));
    match open_with(path, rasters)? {
        Opened::Samples(set) => print_samples(&mut out, &set),
        Opened::Cube(f) => {
            let (t, c, h, w) = f.cube.shape();
            out.push("kind:   datacube folder".to_string());
            out.push(format!(
                "shape:  {t} dates x {c} bands x {h} x {w} (T, C, H, W)"
            ));
            out.push(format!("dates:  {}", dates(f.cube.times())));
            out.push(format!("bands:  {:?}", f.cube.bands()));
            let valid = f.cube.validity();
            let clear = valid.iter().filter(|v| **v).count();
            out.push(format!(
                "valid:  {:.1} % of pixel-dates",
                100.0 * clear as f64 / valid.len().max(1) as f64
            ));
            out.push(format!("layers: {:?}", f.layers.keys().collect::<Vec<_>>()));
            if !f.samples.is_empty() {
                let mut counts = vec![0; f.class_names.len()];
                f.samples
                    .iter()
                    .filter_map(|s| s.label)
                    .for_each(|l| counts[l] += 1);
                out.push(format!("labelled pixels: {}", f.samples.len()));
                print_classes(&mut out, &f.class_names, &counts);
            } else if let Some(layer) = ["lulc", "labels", "label", "target"]
                .into_iter()
                .find(|n| f.layers.contains_key(*n))
            {
                let (by_id, unlabelled) = layer_value_counts(&f, layer)?;
                out.push("pixel labels:".to_string());
                for (id, n) in &by_id {
                    let name = usize::try_from(*id)
                        .ok()
                        .and_then(|i| f.class_names.get(i))
                        .map_or("(no name in metadata.json)", String::as_str);
                    out.push(format!("  class {id:>2} {name:<22} {n:>6}"));
                }
                if unlabelled > 0 {
                    out.push(format!("  negative or nodata      {unlabelled:>6}"));
                }
            }
        }
        Opened::ZarrCube(z) => {
            let [t, c, h, w] = z.shape();
            out.push("kind:   datacube Zarr store".to_string());
            out.push(format!(
                "shape:  {t} dates x {c} bands x {h} x {w} (T, C, H, W), chunks {:?}",
                z.chunk_shape()?
            ));
            out.push(format!("dates:  {}", dates(z.times())));
            out.push(format!("bands:  {:?}", z.bands()));
        }
        Opened::Rasters(r) => {
            let (t, c, h, w) = r.shape();
            out.push("kind:   folder of GeoTIFF rasters (one file per band and date)".to_string());
            out.push(format!(
                "shape:  {t} dates x {c} bands x {h} x {w} (T, C, H, W)"
            ));
            let times =
                Timestamps::from_dates(r.dates(), "dates").map_err(sits_data::DataError::from)?;
            out.push(format!("dates:  {}", dates(&times)));
            out.push(format!("bands:  {:?}", r.bands()));
            match r.cloud() {
                Some(c) => out.push(format!(
                    "clouds: layer {} (values {:?} masked)",
                    c.band, c.invalid
                )),
                None => out.push("clouds: no cloud layer (validity from nodata only)".into()),
            }
            match r.geo() {
                Some(g) => {
                    out.push(format!("crs:    {}", g.crs));
                    out.push(format!("transform: {:?} (GDAL order)", g.transform));
                }
                None => out.push("crs:    none (the files are not georeferenced)".into()),
            }
        }
        Opened::Stac(cube) => {
            let (t, c, h, w) = cube.shape();
            out.push("kind:   STAC ItemCollection (read onto one grid)".to_string());
            out.push(format!(
                "shape:  {t} dates x {c} bands x {h} x {w} (T, C, H, W)"
            ));
            out.push(format!("dates:  {}", dates(cube.times())));
            out.push(format!("bands:  {:?}", cube.bands()));
            let valid = cube.validity();
            let clear = valid.iter().filter(|v| **v).count();
            out.push(format!(
                "valid:  {:.1} % of pixel-dates",
                100.0 * clear as f64 / valid.len().max(1) as f64
            ));
            if let Some(g) = cube.geo() {
                out.push(format!("crs:    {}", g.crs));
                out.push(format!("transform: {:?} (GDAL order)", g.transform));
            }
        }
        Opened::Pastis(p) => {
            out.push("kind:   PASTIS folder".to_string());
            out.push(format!("patches: {}", p.patches().len()));
            for fold in 1..=5u8 {
                out.push(format!(
                    "  fold {fold}: {} patches",
                    p.patches_in_folds(&[fold]).len()
                ));
            }
            if let (Some(a), Some(b)) = (
                p.patches().iter().filter_map(|x| x.dates.first()).min(),
                p.patches().iter().filter_map(|x| x.dates.last()).max(),
            ) {
                out.push(format!("dates:  {a} .. {b}"));
            }
            out.push(format!("bands:  {:?}", sits_data::pastis::S2_BANDS));
        }
    }
    Ok(out)
}
