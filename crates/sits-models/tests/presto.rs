//! Presto against the upstream forward pass (`tests/fixtures/make_presto_fixtures.py`
//! runs `single_file_presto.py` of nasaharvest/presto with the published weights on
//! bundled series). The weights are read from `../shared/weights/presto/`.
//!
//! Tolerance 1e-5 relative to the largest reference value (at least 1): both sides
//! compute in f32 and add the same terms in different orders (upstream removes the
//! missing tokens, we leave them out of the attention).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{close, npy_f32};
use sits_core::chrono::NaiveDate;
use sits_models::presto::input::{batch, monthly, BandMap, Sensor};
use sits_models::presto::{
    month_table, position_table, Presto, PrestoConfig, PrestoInput, PUBLISHED_SHA256,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/presto")
}

fn weights() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/weights/presto");
    assert!(
        p.join("default_model.pt").exists(),
        "the published Presto weights are expected in {} (../shared/weights beside the \
         checkout)",
        p.display()
    );
    p
}

fn config() -> PrestoConfig {
    let text = std::fs::read_to_string(weights().join("default.json")).unwrap();
    PrestoConfig::from_json(&text).unwrap()
}

fn load() -> Presto {
    let path = weights().join("default_model.pt");
    Presto::load(&path, &config(), Some(PUBLISHED_SHA256), &Device::Cpu)
        .unwrap()
        .0
}

fn t(case: &str, name: &str) -> Tensor {
    npy_f32(&fixtures().join(format!("{case}_{name}.npy")))
}

const CASES: [&str; 6] = [
    "modis0",
    "modis1_cloudy",
    "slovenia_ndvi",
    "cbers",
    "full24",
    "partial10",
];

/// One fixture case as a batch of one.
fn input(case: &str) -> PrestoInput {
    PrestoInput {
        x: t(case, "x").unsqueeze(0).unwrap(),
        mask: t(case, "mask").unsqueeze(0).unwrap(),
        dynamic_world: t(case, "dw")
            .to_dtype(DType::U32)
            .unwrap()
            .unsqueeze(0)
            .unwrap(),
        latlons: t(case, "latlon").unsqueeze(0).unwrap(),
        months: t(case, "months")
            .to_dtype(DType::U32)
            .unwrap()
            .unsqueeze(0)
            .unwrap(),
    }
}

#[test]
fn the_published_config_is_upstreams_default_json() {
    assert_eq!(config(), PrestoConfig::published());
}

#[test]
fn encoder_and_decoder_match_upstream_on_every_case() {
    let model = load();
    for case in CASES {
        let inp = input(case);
        let emb = model.encoder.forward(&inp).unwrap();
        eprintln!(
            "{case}: embedding max |ours - upstream| = {:.2e}",
            common::max_abs_diff(&emb.squeeze(0).unwrap(), &t(case, "embedding"))
        );
        close(
            &emb.squeeze(0).unwrap(),
            &t(case, "embedding"),
            &format!("{case}: embedding"),
        );
        let (eo, dw) = model.reconstruct(&inp).unwrap();
        close(
            &eo.squeeze(0).unwrap(),
            &t(case, "eo"),
            &format!("{case}: reconstruction"),
        );
        close(
            &dw.squeeze(0).unwrap(),
            &t(case, "dwlogits"),
            &format!("{case}: Dynamic World"),
        );
    }
}

/// Pads a case to `len` timesteps with missing months and unknown classes.
fn padded(case: &str, len: usize) -> PrestoInput {
    let inp = input(case);
    let n = inp.x.dim(1).unwrap();
    let pad = |x: &Tensor, v: f64| {
        if n == len {
            return x.clone();
        }
        let mut dims = x.dims().to_vec();
        dims[1] = len - n;
        let fill = (Tensor::ones(dims, DType::F32, &Device::Cpu).unwrap() * v)
            .unwrap()
            .to_dtype(x.dtype())
            .unwrap();
        Tensor::cat(&[x, &fill], 1).unwrap()
    };
    PrestoInput {
        x: pad(&inp.x, 0.0),
        mask: pad(&inp.mask.to_dtype(DType::F32).unwrap(), 1.0),
        dynamic_world: pad(&inp.dynamic_world, 9.0),
        latlons: inp.latlons,
        months: pad(&inp.months, 0.0),
    }
}

#[test]
fn a_batch_of_series_with_different_masks_and_lengths_gives_each_ones_embedding() {
    let model = load();
    let parts: Vec<PrestoInput> = CASES.iter().map(|c| padded(c, 24)).collect();
    let cat = |f: fn(&PrestoInput) -> &Tensor| {
        Tensor::cat(&parts.iter().map(f).collect::<Vec<_>>(), 0).unwrap()
    };
    let inp = PrestoInput {
        x: cat(|p| &p.x),
        mask: cat(|p| &p.mask),
        dynamic_world: cat(|p| &p.dynamic_world),
        latlons: cat(|p| &p.latlons),
        months: cat(|p| &p.months),
    };
    let emb = model.encoder.forward(&inp).unwrap();
    for (i, case) in CASES.iter().enumerate() {
        close(
            &emb.get(i).unwrap(),
            &t(case, "embedding"),
            &format!("{case} in a batch"),
        );
    }
}

#[test]
fn fixed_tables_equal_the_published_files() {
    let tensors =
        sits_models::io::load_tensors(&weights().join("default_model.pt"), &Device::Cpu).unwrap();
    let cfg = config();
    let (dm, _, dp) = cfg.encoder_parts();
    close(
        &position_table(24, dp, &Device::Cpu).unwrap(),
        &tensors["encoder.pos_embed"].squeeze(0).unwrap(),
        "encoder position table",
    );
    close(
        &month_table(dm, &Device::Cpu).unwrap(),
        &tensors["encoder.month_embed.weight"],
        "encoder month table",
    );
    let (dm, _, dp) = cfg.decoder_parts();
    close(
        &position_table(24, dp, &Device::Cpu).unwrap(),
        &tensors["decoder.pos_embed"].squeeze(0).unwrap(),
        "decoder position table",
    );
    close(
        &month_table(dm, &Device::Cpu).unwrap(),
        &tensors["decoder.month_embed.weight"],
        "decoder month table",
    );
}

fn dates(case: &str) -> Vec<NaiveDate> {
    t(case, "dates")
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
        .iter()
        .map(|&d| NaiveDate::from_num_days_from_ce_opt(d as i32).unwrap())
        .collect()
}

/// Our mapping from the raw series against upstream's `construct_single_presto_input`
/// (and, for NDVI-only input, the fixture's own placement).
#[test]
fn band_mapping_and_monthly_composites_match_upstreams_inputs() {
    let modis: Vec<String> = ["blue", "red", "nir", "mir", "evi", "ndvi"]
        .map(String::from)
        .to_vec();
    let cbers: Vec<String> = ["B13", "B14", "B15", "B16"].map(String::from).to_vec();
    for (case, bands, sensor) in [
        ("modis0", modis.clone(), Sensor::Sentinel2),
        ("modis1_cloudy", modis, Sensor::Sentinel2),
        ("slovenia_ndvi", vec!["ndvi".to_string()], Sensor::Sentinel2),
        ("cbers", cbers, Sensor::Cbers4Awfi),
    ] {
        let map = BandMap::new(case, &bands, sensor, None).unwrap();
        let raw = t(case, "raw")
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        map.check_scale(case, &raw, bands.len()).unwrap();
        let valid: Vec<bool> = t(case, "valid")
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|&v| v != 0.0)
            .collect();
        let s = monthly(&map, &raw, bands.len(), &dates(case), Some(&valid)).unwrap();
        let months = t(case, "months").to_vec1::<f32>().unwrap();
        assert_eq!(
            s.months,
            months.iter().map(|&m| m as u32).collect::<Vec<_>>(),
            "{case}: months"
        );
        let mask = t(case, "mask")
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(
            s.mask,
            mask.iter().map(|&m| m as u8).collect::<Vec<_>>(),
            "{case}: mask"
        );
        // present values only: upstream normalises the zeros it puts where a band is
        // missing (Sentinel-1 becomes 1, temperature -7.8), we leave zeros
        let present = (1.0 - t(case, "mask")).unwrap();
        let ours = Tensor::from_vec(s.x.clone(), (s.len(), 17), &Device::Cpu).unwrap();
        sits_testing::assert_close(
            &(ours * &present).unwrap(),
            &(t(case, "x") * &present).unwrap(),
            1e-6,
            &format!("{case}: values"),
        );
        // and the whole path, mapped series to embedding, in one batch call
        let inp = batch(&[s], &[latlon(case)], &Device::Cpu).unwrap();
        let emb = load().encoder.forward(&inp).unwrap();
        close(
            &emb.squeeze(0).unwrap(),
            &t(case, "embedding"),
            &format!("{case}: mapped"),
        );
    }
}

fn latlon(case: &str) -> [f32; 2] {
    let v = t(case, "latlon").to_vec1::<f32>().unwrap();
    [v[0], v[1]]
}

#[test]
fn a_wrong_checksum_is_refused_naming_both() {
    let path = weights().join("default_model.pt");
    let Err(err) = Presto::load(&path, &config(), Some(&"0".repeat(64)), &Device::Cpu) else {
        panic!("a wrong checksum was accepted");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("default_model.pt") && msg.contains(PUBLISHED_SHA256),
        "{msg}"
    );
}

#[test]
fn an_input_without_any_presto_group_is_refused_with_what_presto_reads() {
    let bands: Vec<String> = ["evi", "cloud"].map(String::from).to_vec();
    let msg = BandMap::new("cube.zarr", &bands, Sensor::Sentinel2, None)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("cube.zarr"), "{msg}");
    for want in ["S2_RGB (B2, B3, B4)", "NDVI", "cbers4-awfi"] {
        assert!(msg.contains(want), "{want} missing from: {msg}");
    }
    // CBERS band numbers without the sensor stand for nothing either
    let cbers: Vec<String> = ["B13", "B14", "B15", "B16"].map(String::from).to_vec();
    assert!(BandMap::new("cbers", &cbers, Sensor::Sentinel2, None).is_err());
}

#[test]
fn reflectance_in_the_wrong_units_is_caught() {
    let bands: Vec<String> = ["B4", "B8"].map(String::from).to_vec();
    // numbered Sentinel-2 bands default to digital numbers (x 1e-4)
    let map = BandMap::new("s2", &bands, Sensor::Sentinel2, None).unwrap();
    assert_eq!(map.scale, 1e-4);
    let reflectance = [0.05f32, 0.3, 0.06, 0.28, 0.04, 0.35];
    let msg = map
        .check_scale("s2", &reflectance, 2)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("scale of 1"), "{msg}");
    let dn = reflectance.map(|v| v * 1e4);
    map.check_scale("s2", &dn, 2).unwrap();
    let named: Vec<String> = ["red", "nir"].map(String::from).to_vec();
    let map = BandMap::new("modis", &named, Sensor::Sentinel2, None).unwrap();
    let msg = map.check_scale("modis", &dn, 2).unwrap_err().to_string();
    assert!(msg.contains("1e-4"), "{msg}");
}
