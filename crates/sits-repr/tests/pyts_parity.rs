//! Parity with pyts 0.14.1: every case of `fixtures/pyts/cases.json` (made by
//! `fixtures/make_pyts_fixtures.py`) is replayed and compared.
//!
//! Tolerance: 1e-6 absolute on distances and fields. pyts computes in float64 and we
//! return float32, whose rounding alone is up to 6e-8 on values of order 1; binary
//! recurrence plots and bin indices must match exactly (the thresholds are compared
//! in float64, as in pyts).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, Ix2};
use serde_json::Value;
use sits_data::npy::{read_npy, NpyArray};
use sits_repr::fields::{BinStrategy, GafMethod, GramianAngularField, MarkovTransitionField};
use sits_repr::recurrence::{RecurrencePlot, Threshold};
use sits_repr::Size;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pyts")
}

fn input(name: &str) -> Array2<f32> {
    read_npy(&dir().join(format!("input_{name}.npy")))
        .unwrap()
        .to_f32()
        .into_dimensionality::<Ix2>()
        .unwrap()
}

fn expected(name: &str) -> ArrayD<f64> {
    match read_npy(&dir().join(format!("{name}.npy"))).unwrap() {
        NpyArray::F64(a) => a,
        other => panic!("{name}: expected float64, got {:?}", other.dtype()),
    }
}

fn size(v: Option<&Value>, default: Size) -> Size {
    match v {
        None => default,
        Some(v) if v.is_u64() => Size::Count(v.as_u64().unwrap() as usize),
        Some(v) => Size::Fraction(v.as_f64().unwrap()),
    }
}

#[test]
fn every_pyts_case_matches() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("cases.json")).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 60,
        "fixture list is incomplete: {}",
        cases.len()
    );
    let mut by_kind = std::collections::BTreeMap::new();
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let kind = c["kind"].as_str().unwrap();
        let p = &c["params"];
        let x = input(c["input"].as_str().unwrap());
        let want = expected(name);
        let (got, binary) = match kind {
            "rp" => {
                let threshold = match &p["threshold"] {
                    Value::Null => Threshold::None,
                    Value::String(s) if s == "point" => {
                        Threshold::Point(p["percentage"].as_f64().unwrap())
                    }
                    Value::String(s) if s == "distance" => {
                        Threshold::Distance(p["percentage"].as_f64().unwrap())
                    }
                    v => Threshold::Value(v.as_f64().unwrap()),
                };
                let rp = RecurrencePlot {
                    dimension: size(p.get("dimension"), Size::Count(1)),
                    time_delay: size(p.get("time_delay"), Size::Count(1)),
                    threshold,
                };
                (
                    rp.transform(x.view()).unwrap(),
                    threshold != Threshold::None,
                )
            }
            "gaf" => {
                let g = GramianAngularField {
                    image_size: size(p.get("image_size"), Size::Fraction(1.0)),
                    sample_range: p
                        .get("sample_range")
                        .map(|r| (r[0].as_f64().unwrap(), r[1].as_f64().unwrap()))
                        .or(Some((-1.0, 1.0))),
                    method: match p.get("method").and_then(Value::as_str) {
                        Some("difference") => GafMethod::Difference,
                        _ => GafMethod::Summation,
                    },
                    overlapping: p
                        .get("overlapping")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                };
                (g.transform(x.view()).unwrap(), false)
            }
            "mtf" => {
                let m = MarkovTransitionField {
                    image_size: size(p.get("image_size"), Size::Fraction(1.0)),
                    n_bins: p.get("n_bins").map_or(8, |v| v.as_u64().unwrap() as usize),
                    strategy: match p.get("strategy").and_then(Value::as_str) {
                        Some("uniform") => BinStrategy::Uniform,
                        _ => BinStrategy::Quantile,
                    },
                    overlapping: p
                        .get("overlapping")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                };
                (m.transform(x.view()).unwrap(), false)
            }
            k => panic!("unknown kind {k}"),
        };
        assert_eq!(got.shape(), want.shape(), "{name}: shape");
        let mut worst = 0f64;
        for (g, w) in got.iter().zip(want.iter()) {
            let err = (*g as f64 - w).abs();
            if binary {
                assert_eq!(*g as f64, *w, "{name}: binary plot differs");
            }
            worst = worst.max(err);
        }
        assert!(worst <= 1e-6, "{name}: max abs error {worst:e} > 1e-6");
        *by_kind.entry(kind.to_string()).or_insert(0) += 1;
    }
    // All three families are covered.
    assert_eq!(by_kind.len(), 3, "{by_kind:?}");
}
