//! Loaders over the bundled data shared by the integration tests of `sits-ssl`.
// Each test file uses its own subset.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use sits_data::datasets::{self, SloveniaNdvi};
use sits_data::loader::CubePatches;
use sits_data::{Loader, LoaderConfig, SampleSet};

/// The first `n` bundled Mato Grosso series.
pub(crate) fn mato_grosso(n: usize) -> Arc<SampleSet> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(datasets::MATO_GROSSO);
    let set = datasets::mato_grosso(&dir).unwrap();
    Arc::new(set.subset(&(0..n).collect::<Vec<_>>()).unwrap())
}

/// A one-thread loader (batches of `batch_size`, shuffled with `seed`) on the CPU.
pub(crate) fn loader(
    source: Arc<dyn sits_data::loader::SampleSource>,
    batch_size: usize,
    seed: u64,
) -> Loader {
    let cfg = LoaderConfig {
        batch_size,
        seed,
        num_threads: Some(1),
        ..LoaderConfig::default()
    };
    Loader::new(source, cfg, Device::Cpu).unwrap()
}

/// Patches of `size` pixels every `stride` of the first `dates` dates of the bundled
/// Slovenia NDVI cube.
pub(crate) fn slovenia_patches(dates: usize, size: usize, stride: usize) -> Arc<CubePatches> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(datasets::SLOVENIA_NDVI);
    let slo = SloveniaNdvi::load(&dir).unwrap();
    let cube = slo
        .cube
        .select_times(&(0..dates).collect::<Vec<_>>())
        .unwrap();
    Arc::new(CubePatches::new(cube, None, size, stride).unwrap())
}

/// Trains `obj` over `ld` for `epochs` (at `lr`, else the default rate) without a
/// progress bar or checkpoints, and returns every step's record.
pub(crate) fn fit(
    vars: &candle_nn::VarMap,
    buffers: &sits_models::Buffers,
    ld: &Loader,
    obj: &mut dyn sits_core::Objective,
    epochs: usize,
    lr: Option<f64>,
) -> Vec<sits_ssl::train::StepRecord> {
    let defaults = sits_ssl::train::TrainConfig::default();
    let cfg = sits_ssl::train::TrainConfig {
        epochs,
        lr: lr.unwrap_or(defaults.lr),
        progress: false,
        ..defaults
    };
    let mut tr = sits_ssl::train::Trainer::new(cfg, vars, buffers, None).unwrap();
    tr.fit(ld, obj).unwrap();
    tr.history().to_vec()
}

/// A pixel transformer small enough for tests: width 16, 2 heads, feed-forward 32,
/// one layer, 6 bands.
pub(crate) fn tiny_pixel_transformer(dropout: f32) -> sits_models::PixelTransformerConfig {
    sits_models::PixelTransformerConfig {
        d_model: 16,
        heads: 2,
        d_ff: 32,
        layers: 1,
        dropout,
        ..sits_models::PixelTransformerConfig::small(6)
    }
}

/// The largest absolute difference between two tensors of the same shape;
/// infinite when any element of either is NaN or infinite.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    sits_testing::max_abs_diff(a, b)
}
