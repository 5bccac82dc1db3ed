//! Galileo nano against the upstream forward pass
//! (`tests/fixtures/make_galileo_fixtures.py` runs `single_file_galileo.py` of
//! nasaharvest/galileo with the published weights on bundled inputs). The weights
//! are read from `../shared/weights/galileo_nano/`.
//!
//! Tolerance 1e-5 relative to the largest reference value (at least 1): both sides
//! compute in f32 and add the same terms in different orders (upstream removes the
//! missing tokens, we leave them out of the attention; the resized patch kernels are
//! a pseudo-inverse computed in f32 there and in f64 here).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use common::{close, npy_f32};
use sits_core::chrono::NaiveDate;
use sits_models::galileo::input::{batch, Normalization};
use sits_models::galileo::{
    resize_kernel, GalileoConfig, GalileoEncoder, GalileoInput, NANO_SHA256,
};
use sits_models::presto::input::{monthly, BandMap, Sensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/galileo")
}

fn weights() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/weights/galileo_nano");
    assert!(
        p.join("encoder.pt").exists(),
        "the published Galileo nano weights are expected in {} (../shared/weights beside \
         the checkout)",
        p.display()
    );
    p
}

fn config() -> GalileoConfig {
    let text = std::fs::read_to_string(weights().join("config.json")).unwrap();
    GalileoConfig::from_json(&text).unwrap()
}

fn load() -> GalileoEncoder {
    GalileoEncoder::load(
        &weights().join("encoder.pt"),
        &config(),
        Some(NANO_SHA256),
        &Device::Cpu,
    )
    .unwrap()
}

fn t(case: &str, name: &str) -> Tensor {
    npy_f32(&fixtures().join(format!("{case}_{name}.npy")))
}

fn input(case: &str) -> GalileoInput {
    GalileoInput {
        space_time: t(case, "s_t_x"),
        space_time_mask: t(case, "s_t_m"),
        space: t(case, "sp_x"),
        space_mask: t(case, "sp_m"),
        time: t(case, "t_x"),
        time_mask: t(case, "t_m"),
        static_: t(case, "st_x"),
        static_mask: t(case, "st_m"),
        months: t(case, "months").to_dtype(DType::U32).unwrap(),
    }
}

/// (case, patch size, input resolution in metres, token outputs saved)
const CASES: [(&str, usize, f64, bool); 9] = [
    ("modis0", 1, 10.0, true),
    ("modis1_cloudy", 1, 10.0, true),
    ("slovenia_ndvi", 1, 10.0, true),
    ("cbers", 1, 10.0, true),
    ("cbers_patch1", 1, 64.0, false),
    ("cbers_patch2", 2, 64.0, false),
    ("cbers_patch4", 4, 64.0, true),
    ("cbers_patch8", 8, 64.0, false),
    ("families", 2, 10.0, true),
];

#[test]
fn the_published_config_is_nano() {
    assert_eq!(config(), GalileoConfig::nano());
}

#[test]
fn resized_patch_kernels_match_upstream() {
    let raw = sits_models::io::load_tensors(&weights().join("encoder.pt"), &Device::Cpu).unwrap();
    let w = raw["space_time_embed.S2_RGB.proj.weight"].clone(); // (128, 3, 8, 8)
    for p in 1..8 {
        let q: Vec<f32> = resize_kernel(8, p).iter().map(|&v| v as f32).collect();
        let q = Tensor::from_vec(q, (p, 8), &Device::Cpu).unwrap();
        let ours = q
            .broadcast_matmul(&w.reshape((384, 8, 8)).unwrap())
            .unwrap()
            .broadcast_matmul(&q.t().unwrap())
            .unwrap()
            .reshape((128, 3, p, p))
            .unwrap();
        let want = npy_f32(&fixtures().join(format!("kernel_p{p}.npy")));
        close(&ours, &want, &format!("kernel resized to {p}"));
    }
}

/// The present tokens of `ours` `(B, N, D)` against upstream's four outputs.
fn check_tokens(case: &str, ours: &Tensor, missing: &Tensor) {
    let b = ours.dim(0).unwrap();
    let flat = |name: &str| {
        let r = t(case, name);
        let d = r.dim(r.rank() - 1).unwrap();
        r.reshape((b, r.elem_count() / b / d, d)).unwrap()
    };
    let want = Tensor::cat(
        &[
            flat("s_t_out"),
            flat("sp_out"),
            flat("t_out"),
            flat("st_out"),
        ],
        1,
    )
    .unwrap();
    assert_eq!(ours.dims(), want.dims(), "{case}: token layout");
    let present = (1.0 - missing.to_dtype(DType::F32).unwrap())
        .unwrap()
        .unsqueeze(2)
        .unwrap();
    assert!(
        present.sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0,
        "{case}: no present token"
    );
    close(
        &ours.broadcast_mul(&present).unwrap(),
        &want.broadcast_mul(&present).unwrap(),
        &format!("{case}: tokens"),
    );
}

#[test]
fn encoder_matches_upstream_on_every_case() {
    let enc = load();
    for (case, patch, res, tokens) in CASES {
        let inp = input(case);
        let emb = enc.forward(&inp, patch, res).unwrap();
        close(&emb, &t(case, "embedding"), &format!("{case}: embedding"));
        eprintln!(
            "{case}: largest embedding difference {:.2e}",
            sits_testing::max_abs_diff(&emb, &t(case, "embedding"))
        );
        if tokens {
            let (x, missing) = enc.forward_tokens(&inp, patch, res).unwrap();
            check_tokens(case, &x, &missing);
        }
    }
}

fn dates(case: &str) -> Vec<NaiveDate> {
    npy_f32(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/presto/{case}_dates.npy")),
    )
    .to_dtype(DType::F64)
    .unwrap()
    .to_vec1::<f64>()
    .unwrap()
    .iter()
    .map(|&d| NaiveDate::from_num_days_from_ce_opt(d as i32).unwrap())
    .collect()
}

/// `(…, 13)` 1 where the band's group is present, from a `(…, 7)` group mask.
fn band_presence(group_mask: &Tensor) -> Tensor {
    let dims = group_mask.dims().to_vec();
    let m = group_mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut out = Vec::with_capacity(m.len() / 7 * 13);
    for row in m.chunks_exact(7) {
        let mut b = [0f32; 13];
        for (g, (_, idx)) in sits_models::galileo::SPACE_TIME_GROUPS.iter().enumerate() {
            for &i in *idx {
                b[i] = 1.0 - row[g];
            }
        }
        out.extend(b);
    }
    let mut shape = dims[..dims.len() - 1].to_vec();
    shape.push(13);
    Tensor::from_vec(out, shape, &Device::Cpu).unwrap()
}

fn presto_fixture(case: &str, name: &str) -> Tensor {
    npy_f32(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/presto/{case}_{name}.npy")),
    )
}

/// From the raw bundled series through the shared band map and monthly composites
/// to Galileo's normalised inputs, against upstream's `Normalizer` on the same
/// composites, then the whole path to the embedding, the four series in one batch.
#[test]
fn mapped_series_match_upstreams_normalised_inputs() {
    let text = std::fs::read_to_string(weights().join("normalization.json")).unwrap();
    let norm = Normalization::from_json(&text).unwrap();
    let modis: Vec<String> = ["blue", "red", "nir", "mir", "evi", "ndvi"]
        .map(String::from)
        .to_vec();
    let cbers: Vec<String> = ["B13", "B14", "B15", "B16"].map(String::from).to_vec();
    let cases = [
        ("modis0", modis.clone(), Sensor::Sentinel2),
        ("modis1_cloudy", modis, Sensor::Sentinel2),
        ("slovenia_ndvi", vec!["ndvi".to_string()], Sensor::Sentinel2),
        ("cbers", cbers, Sensor::Cbers4Awfi),
    ];
    let mut series = Vec::new();
    let mut latlons = Vec::new();
    for (case, bands, sensor) in &cases {
        let map = BandMap::new(case, bands, *sensor, None).unwrap();
        let raw = presto_fixture(case, "raw")
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let valid: Vec<bool> = presto_fixture(case, "valid")
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|&v| v != 0.0)
            .collect();
        let s = monthly(&map, &raw, bands.len(), &dates(case), Some(&valid)).unwrap();
        let ll = presto_fixture(case, "latlon").to_vec1::<f32>().unwrap();
        let one = batch(
            std::slice::from_ref(&s),
            Some(&[[ll[0], ll[1]]]),
            &norm,
            &Device::Cpu,
        )
        .unwrap();
        let mask = |x: &Tensor| {
            x.to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(
            mask(&one.space_time_mask),
            mask(&t(case, "s_t_m")),
            "{case}: group mask"
        );
        assert_eq!(
            mask(&one.months),
            mask(&t(case, "months")),
            "{case}: months"
        );
        // values of the present groups only: upstream normalises the zeros it puts
        // where a band is missing, we leave zeros; no token reads them
        let present = band_presence(&t(case, "s_t_m"));
        sits_testing::assert_close(
            &(&one.space_time * &present).unwrap(),
            &(t(case, "s_t_x") * &present).unwrap(),
            1e-5,
            &format!("{case}: normalised values"),
        );
        sits_testing::assert_close(
            &one.static_,
            &t(case, "st_x"),
            1e-6,
            &format!("{case}: location"),
        );
        series.push(s);
        latlons.push([ll[0], ll[1]]);
    }
    // all four in one padded batch: each gets upstream's own embedding
    let inp = batch(&series, Some(&latlons), &norm, &Device::Cpu).unwrap();
    let emb = load().forward(&inp, 1, 10.0).unwrap();
    for (i, (case, _, _)) in cases.iter().enumerate() {
        close(
            &emb.i(i).unwrap().unsqueeze(0).unwrap(),
            &t(case, "embedding"),
            &format!("{case}: mapped and batched"),
        );
    }
}

#[test]
fn a_wrong_checksum_is_refused_naming_both() {
    let path = weights().join("encoder.pt");
    let Err(err) = GalileoEncoder::load(&path, &config(), Some(&"0".repeat(64)), &Device::Cpu)
    else {
        panic!("a wrong checksum was accepted");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("encoder.pt") && msg.contains(NANO_SHA256),
        "{msg}"
    );
}

#[test]
fn inputs_that_do_not_cut_into_patches_are_refused() {
    let enc = load();
    let inp = input("cbers_patch2");
    let msg = enc.forward(&inp, 3, 64.0).unwrap_err().to_string();
    assert!(msg.contains("patches of 3"), "{msg}");
    let msg = enc.forward(&inp, 9, 64.0).unwrap_err().to_string();
    assert!(msg.contains("patch size 9"), "{msg}");
}
