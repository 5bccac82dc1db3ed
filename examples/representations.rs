//! Writes pictures of the representations of `sits-repr` computed on the bundled
//! real data, and prints their paths.
//!
//! ```text
//! cargo run --release --example representations [-- --out DIR]
//! ```
//!
//! - `rp_<class>_<k>.png`: recurrence plots of NDVI, EVI and SAVI (left to right,
//!   unthresholded, the PIMC input) of two labelled Mato Grosso MODIS series per
//!   class;
//! - `gasf_mtf_<class>.png`: Gramian angular summation field and Markov transition
//!   field of the same NDVI series;
//! - `hilbert_dtwsat.png`, `hilbert_slovenia.png`: Deep-STaR planar images (pixels of
//!   a 16x16 region along a Hilbert curve × dates) of the MODIS NDVI cube and
//!   of the Sentinel-2 NDVI cube (cloudy observations in magenta);
//! - `xt_dtwsat.png`, `oblique_dtwsat.png`, `walks_dtwsat.png`: an x-t slice through a
//!   row, a 30° oblique slice and 8 random walks of 16 pixels.

use std::path::PathBuf;

use ndarray::{s, Array2, Axis};
use rand::SeedableRng;
use sits::sits_data::datasets::{self, DtwsatCube, SloveniaNdvi};
use sits::sits_data::Radiometry;
use sits::sits_repr::fields::{GramianAngularField, MarkovTransitionField};
use sits::sits_repr::indices::index_cube;
use sits::sits_repr::inputs::index_recurrence_images;
use sits::sits_repr::planar::{
    curve_order, oblique_slice, planar_image, planar_mask, random_walk_image, xt_slice, Curve,
};
use sits::sits_repr::recurrence::RecurrencePlot;
use sits::sits_repr::render::{Colormap, RgbImage};
use sits::sits_repr::SpectralIndex;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn out_dir() -> Res<PathBuf> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = PathBuf::from("out/representations");
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--out" => {
                out = PathBuf::from(args.get(i + 1).ok_or("--out needs a folder")?);
                i += 2;
            }
            "-h" | "--help" => {
                println!("usage: representations [--out DIR]   (default out/representations)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)").into()),
        }
    }
    sits::sits_data::io_util::prepare_run_dir(&out)?;
    Ok(out)
}

fn save(img: &RgbImage, dir: &std::path::Path, name: &str, written: &mut Vec<PathBuf>) -> Res<()> {
    let path = dir.join(name);
    img.write_png(&path)?;
    written.push(path);
    Ok(())
}

/// Band `band` of a planar image `(C, N, T)` as NDVI colours in [0, 1], 3x.
fn ndvi_picture(img: &ndarray::Array3<f32>, band: usize) -> RgbImage {
    RgbImage::from_array(
        img.index_axis(Axis(0), band),
        Colormap::Viridis,
        Some((0.0, 1.0)),
    )
    .upscale(3)
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn run() -> Res<()> {
    let out = out_dir()?;
    let data = sits::bundled_data_dir()?;
    let mut written = Vec::new();

    // Recurrence plots of NDVI/EVI/SAVI, two series per class.
    let set = datasets::mato_grosso(&data.join(datasets::MATO_GROSSO))?;
    let labels = set
        .labels()
        .ok_or("Mato Grosso samples have labels")?
        .to_vec();
    let mut picked = Vec::new();
    for (c, _) in set.class_names().iter().enumerate() {
        picked.extend(
            labels
                .iter()
                .enumerate()
                .filter(|(_, &l)| l == c)
                .take(2)
                .map(|(i, _)| i),
        );
    }
    let sub = set.subset(&picked)?;
    let rps = index_recurrence_images(
        &sub,
        Radiometry::default(),
        &SpectralIndex::pimc(),
        &RecurrencePlot::default(),
    )?;
    let gaf = GramianAngularField::default();
    let mtf = MarkovTransitionField::default();
    for (k, &i) in picked.iter().enumerate() {
        let class = &set.class_names()[labels[i]];
        let panels: Vec<RgbImage> = (0..3)
            .map(|c| {
                RgbImage::from_array(rps.slice(s![k, c, .., ..]), Colormap::Viridis, None)
                    .upscale(8)
            })
            .collect();
        save(
            &RgbImage::hstack(&panels, 8),
            &out,
            &format!("rp_{}_{}.png", safe(class), k % 2),
            &mut written,
        )?;
        if k % 2 == 0 {
            // NDVI series of this sample, gap-free in this dataset.
            let s = &sub.series()[k];
            let (red, nir) = (
                sub.bands().iter().position(|b| b == "red"),
                sub.bands().iter().position(|b| b == "nir"),
            );
            let (red, nir) = (red.ok_or("red band")?, nir.ok_or("nir band")?);
            let series = Array2::from_shape_fn((1, s.len()), |(_, t)| {
                let (r, n) = (s.values[[t, red]], s.values[[t, nir]]);
                (n - r) / (n + r)
            });
            let g = gaf.transform(series.view())?;
            let m = mtf.transform(series.view())?;
            let panels = [
                RgbImage::from_array(
                    g.index_axis(Axis(0), 0),
                    Colormap::Diverging,
                    Some((-1.0, 1.0)),
                )
                .upscale(8),
                RgbImage::from_array(
                    m.index_axis(Axis(0), 0),
                    Colormap::Viridis,
                    Some((0.0, 1.0)),
                )
                .upscale(8),
            ];
            save(
                &RgbImage::hstack(&panels, 8),
                &out,
                &format!("gasf_mtf_{}.png", safe(class)),
                &mut written,
            )?;
        }
    }

    // Deep-STaR planar images.
    let dtw = DtwsatCube::load(&data.join(datasets::DTWSAT_CUBE))?;
    let ndvi_band = dtw.cube.band_index("ndvi")?;
    let region = dtw.cube.window(4, 10, 16, 16)?;
    let order = curve_order(Curve::Hilbert, 16, 16);
    let img = planar_image(region.values(), &order)?;
    save(
        &ndvi_picture(&img, ndvi_band),
        &out,
        "hilbert_dtwsat.png",
        &mut written,
    )?;

    let slo = SloveniaNdvi::load(&data.join(datasets::SLOVENIA_NDVI))?;
    let region = slo.cube.window(40, 40, 16, 16)?;
    let order = curve_order(Curve::Hilbert, 16, 16);
    let mut img = planar_image(region.values(), &order)?
        .index_axis(Axis(0), 0)
        .to_owned();
    let mask = planar_mask(region.validity().view(), &order)?;
    ndarray::Zip::from(&mut img).and(&mask).for_each(|v, &ok| {
        if !ok {
            *v = f32::NAN
        }
    });
    save(
        &RgbImage::from_array(img.view(), Colormap::Viridis, Some((-0.2, 1.0))).upscale(3),
        &out,
        "hilbert_slovenia.png",
        &mut written,
    )?;

    // Slices and walks through the MODIS NDVI cube (EVI/SAVI from the reflectances
    // would work the same way: see index_cube).
    let values = dtw.cube.values();
    let xt = xt_slice(values, 13)?;
    save(
        &ndvi_picture(&xt, ndvi_band),
        &out,
        "xt_dtwsat.png",
        &mut written,
    )?;
    let ob = oblique_slice(values, (13.0, 18.0), 30.0)?;
    save(
        &ndvi_picture(&ob, ndvi_band),
        &out,
        "oblique_dtwsat.png",
        &mut written,
    )?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let walks = random_walk_image(values, (13, 18), 8, 16, &mut rng)?;
    save(
        &ndvi_picture(&walks, ndvi_band),
        &out,
        "walks_dtwsat.png",
        &mut written,
    )?;
    // Index cube from the reflectances, as a check that the cube path works end to end.
    let idx = index_cube(&dtw.cube, &SpectralIndex::pimc())?;
    let valid = idx
        .valid_mask()
        .map_or(0, |m| m.iter().filter(|&&v| v).count());

    println!("wrote {} images to {}:", written.len(), out.display());
    for p in &written {
        println!("  {}", p.display());
    }
    println!(
        "NDVI/EVI/SAVI cube of the MODIS data: {:?}, {} of {} pixel-dates valid",
        idx.shape(),
        valid,
        idx.shape().0 * idx.shape().2 * idx.shape().3
    );
    Ok(())
}

fn main() {
    sits::sits_core::memory::reuse_large_allocations();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
