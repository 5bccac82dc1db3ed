//! Writes the seed corpus of every fuzz target from the bundled datasets, cut down to
//! a few samples, dates and pixels so that each seed is a few kB:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! Seeds go to `fuzz/seeds/<target>/`; `fuzz/run.sh` copies them into the working
//! corpus before fuzzing.

use std::path::{Path, PathBuf};

use ndarray::{s, ArrayD, Axis, IxDyn};
use serde_json::{json, Value};
use sits_core::io::IfExists;
use sits_data::npy::{encode_npy, read_npy, NpyArray};
use sits_fuzz::join;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn data(name: &str) -> PathBuf {
    root().join("data").join(name)
}

fn seed(target: &str, name: &str, bytes: &[u8]) -> Res<()> {
    let dir = root().join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn npy_f32(a: &ArrayD<f32>) -> Vec<u8> {
    encode_npy(&a.view())
}

fn npy_u8(a: &ArrayD<u8>) -> Vec<u8> {
    encode_npy(&a.view())
}

fn read_json(p: &Path) -> Res<Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?)
}

/// The first `n` samples of the Mato Grosso set, with and without values.npy.
fn sample_folder() -> Res<()> {
    let dir = data("mato_grosso_mod13q1");
    let meta = std::fs::read(dir.join("metadata.json"))?;
    let samples = std::fs::read_to_string(dir.join("samples.csv"))?;
    let n = 4;
    let samples: String = samples
        .lines()
        .take(n + 1)
        .map(|l| format!("{l}\n"))
        .collect();
    let ids: Vec<String> = samples
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or("").to_string())
        .collect();
    let ts = std::fs::read_to_string(dir.join("timeseries.csv"))?;
    let ts: String = ts
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || ids.iter().any(|id| l.starts_with(&format!("{id},"))))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let values = read_npy(&dir.join("values.npy"))?.to_f32();
    let values = values.slice_axis(Axis(0), (0..n).into()).to_owned();
    let npy = npy_f32(&values);
    seed(
        "sample_folder",
        "mato_grosso_npy",
        &join(&[&meta, samples.as_bytes(), ts.as_bytes(), &npy]),
    )?;
    seed(
        "sample_folder",
        "mato_grosso_csv",
        &join(&[&meta, samples.as_bytes(), ts.as_bytes(), b""]),
    )?;
    seed("npy", "mato_grosso_values", &npy)?;
    Ok(())
}

/// A 4-date, 6 x 6 corner of the Slovenia cube, and a corner of the dtwSat cube with
/// its labelled pixels inside the corner.
fn cube_folder() -> Res<()> {
    let dir = data("eolearn_slovenia_s2_ndvi");
    let (t, hw) = (4usize, 6usize);
    let mut meta = read_json(&dir.join("metadata.json"))?;
    meta["dates"] = json!(meta["dates"].as_array().map(|d| d[..t].to_vec()));
    meta["shape"] = json!({"time": t, "band": 1, "height": hw, "width": hw});
    meta["files"] = json!({
        "cube.npy": {"shape": [t, 1, hw, hw]},
        "cloud_mask.npy": {"shape": [t, hw, hw]},
        "lulc.npy": {"shape": [hw, hw]},
    });
    for k in [
        "cloud_fraction_per_date",
        "class_counts",
        "source",
        "licence",
    ] {
        meta.as_object_mut().map(|m| m.remove(k));
    }
    let ndvi = read_npy(&dir.join("ndvi.npy"))?.to_f32();
    let ndvi = ndvi
        .slice(s![..t, .., 40..40 + hw, 40..40 + hw])
        .to_owned()
        .into_dyn();
    let NpyArray::U8(cloud) = read_npy(&dir.join("cloud_mask.npy"))? else {
        return Err("cloud_mask.npy is not u1".into());
    };
    let cloud = cloud
        .slice(s![..t, 40..40 + hw, 40..40 + hw])
        .to_owned()
        .into_dyn();
    let NpyArray::U8(lulc) = read_npy(&dir.join("lulc.npy"))? else {
        return Err("lulc.npy is not u1".into());
    };
    let lulc = lulc
        .slice(s![40..40 + hw, 40..40 + hw])
        .to_owned()
        .into_dyn();
    seed(
        "cube_folder",
        "slovenia_corner",
        &join(&[
            serde_json::to_string(&meta)?.as_bytes(),
            &npy_f32(&ndvi),
            &npy_u8(&cloud),
            &npy_u8(&lulc),
            b"",
        ]),
    )?;
    seed("npy", "slovenia_cloud", &npy_u8(&cloud))?;

    let dir = data("dtwsat_mato_grosso_mod13q1_cube");
    let (t, h, w) = (24usize, 5usize, 5usize);
    let mut meta = read_json(&dir.join("metadata.json"))?;
    meta["dates"] = json!(meta["dates"].as_array().map(|d| d[..t].to_vec()));
    meta["shape"] = json!({"time": t, "band": 6, "height": h, "width": w});
    meta["files"] = json!({"cube.npy": {"shape": [t, 6, h, w]}});
    for k in ["class_counts", "source", "licence", "dates_note"] {
        meta.as_object_mut().map(|m| m.remove(k));
    }
    let cube = read_npy(&dir.join("cube.npy"))?.to_f32();
    let cube = cube.slice(s![..t, .., ..h, ..w]).to_owned().into_dyn();
    let header = "id,label,label_index,row,col,t_start,t_end,split\n";
    let rows = "0,Forest,1,0,0,0,22,train\n1,Soybean-cotton,2,4,4,1,23,test\n";
    seed(
        "cube_folder",
        "dtwsat_corner",
        &join(&[
            serde_json::to_string(&meta)?.as_bytes(),
            &npy_f32(&cube),
            b"",
            b"",
            format!("{header}{rows}").as_bytes(),
        ]),
    )?;
    Ok(())
}

/// Key/value parts of a store written by sits (all files under `dir`).
fn store_parts(dir: &Path) -> Res<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let key = p.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                out.push((key, std::fs::read(&p)?));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn zarr_store() -> Res<()> {
    let tmp = std::env::temp_dir().join(format!("sits-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let set = sits_data::SampleSet::read_folder(&data("mato_grosso_mod13q1"))?;
    let set = set.subset(&[0, 1, 2, 3, 4])?;
    let samples = tmp.join("samples.zarr");
    sits_data::zarr::write_samples(&set, &samples, IfExists::Replace)?;
    let slo = sits_data::datasets::SloveniaNdvi::load(&data("eolearn_slovenia_s2_ndvi"))?;
    let window = {
        let c = &slo.cube;
        let v = c.values().slice(s![..3, .., ..4, ..4]).to_owned();
        let valid = c
            .valid_mask()
            .map(|m| m.slice(s![..3, ..4, ..4]).to_owned());
        let mut w = sits_data::Datacube::new(v, c.times().select(&[0, 1, 2]), c.bands().to_vec())?;
        if let Some(m) = valid {
            w = w.with_valid(m)?;
        }
        w
    };
    let cube = tmp.join("cube.zarr");
    sits_data::zarr::write_cube(
        &window,
        &cube,
        sits_data::zarr::CubeChunks {
            t: 2,
            c: 1,
            y: 2,
            x: 4,
        },
        IfExists::Replace,
    )?;
    for (name, dir) in [("samples_store", &samples), ("cube_store", &cube)] {
        let parts = store_parts(dir)?;
        let flat: Vec<&[u8]> = parts
            .iter()
            .flat_map(|(k, v)| [k.as_bytes(), v.as_slice()])
            .collect();
        seed("zarr_store", name, &join(&flat))?;
    }
    std::fs::remove_dir_all(&tmp)?;
    Ok(())
}

fn pastis() -> Res<()> {
    let dir = root().join("crates/sits-data/tests/fixtures/pastis");
    let gj = read_json(&dir.join("metadata.geojson"))?;
    let mut first = gj["features"][0].clone();
    let id = first["properties"]["ID_PATCH"].as_u64().ok_or("ID_PATCH")?;
    first["properties"]["ID_PATCH"] = json!(1);
    let meta = json!({"type": "FeatureCollection", "features": [first]});
    let norm = std::fs::read(dir.join("NORM_S2_patch.json"))?;
    let s2 = std::fs::read(dir.join(format!("DATA_S2/S2_{id}.npy")))?;
    let target = std::fs::read(dir.join(format!("ANNOTATIONS/TARGET_{id}.npy")))?;
    seed(
        "pastis",
        "fixture_patch",
        &join(&[
            serde_json::to_string(&meta)?.as_bytes(),
            &norm,
            &s2,
            &target,
        ]),
    )?;
    seed("npy", "pastis_target", &target)?;
    Ok(())
}

fn npy_fixtures() -> Res<()> {
    let dir = root().join("crates/sits-data/tests/fixtures/npy");
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "npy") {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            seed("npy", &format!("fixture_{name}"), &std::fs::read(&p)?)?;
        }
    }
    let scalar = ArrayD::from_shape_vec(IxDyn(&[]), vec![7i64])?;
    seed("npy", "scalar_i8", &encode_npy(&scalar.view()))?;
    Ok(())
}

/// Reads every folder seed back the way its fuzz target does: a seed the reader
/// refuses would only exercise the error paths.
fn check_seeds() -> Res<()> {
    use sits_fuzz::{folder, CUBE_FOLDER, PASTIS_FOLDER, SAMPLE_FOLDER};
    let seeds = root().join("fuzz/seeds");
    let files = |t: &str| -> Res<Vec<Vec<u8>>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(seeds.join(t))? {
            v.push(std::fs::read(e?.path())?);
        }
        Ok(v)
    };
    for b in files("sample_folder")? {
        sits_data::SampleSet::read_folder(&folder("samples", SAMPLE_FOLDER, &b))?;
    }
    for b in files("cube_folder")? {
        sits_data::CubeFolder::read(&folder("cube", CUBE_FOLDER, &b))?;
    }
    for b in files("pastis")? {
        let ps = sits_data::pastis::Pastis::open(&folder("pastis", PASTIS_FOLDER, &b))?;
        ps.read_patch(1)?;
        ps.read_target(1)?;
    }
    let _ = std::fs::remove_dir_all(sits_fuzz::scratch());
    Ok(())
}

/// GeoTIFF seeds: a few of the files GDAL wrote for sits-data's tests (strips and
/// tiles, LZW, deflate with the float predictor, PackBits, BigTIFF, a user-defined
/// CRS), each read whole as the target reads it.
fn geotiff() -> Res<()> {
    let fixtures = root().join("crates/sits-data/tests/fixtures/geotiff");
    for name in [
        "codec_lzw_strips_pixel",
        "dtype_float32",
        "crs_albers_user_defined",
        "bigtiff_deflate",
        "codec_packbits_tiles_band",
    ] {
        let bytes = std::fs::read(fixtures.join(format!("{name}.tif")))?;
        sits_data::geotiff::GeoTiff::from_bytes(Path::new(name), bytes.clone())?
            .read_all::<f32>()?;
        seed("geotiff", &format!("{name}.tif"), &bytes)?;
    }
    Ok(())
}

fn main() -> Res<()> {
    geotiff()?;
    sample_folder()?;
    cube_folder()?;
    zarr_store()?;
    pastis()?;
    npy_fixtures()?;
    check_seeds()?;
    println!("seeds written to {}", root().join("fuzz/seeds").display());
    Ok(())
}
