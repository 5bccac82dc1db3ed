//! Whole jobs on satellite image time series, each a function with a serde
//! configuration and a typed result: the layer between the libraries (`sits-data`,
//! `sits-models`, `sits-ssl`) and the programs (the `sits` command-line tool, the
//! examples).
//!
//! | module | job |
//! | --- | --- |
//! | [`experiment`] | the few-label experiment (pretrain, probe at label fractions, fine-tune) |
//! | [`few_label`] | that experiment as a job on a labelled sample set: checks, table, report, result line |
//! | [`inspect`], [`convert`] | what a dataset holds; conversions between layouts |
//! | [`input`] | any input (sample set, cube folder, PASTIS folder, Zarr store) as pixel series cut into periods |
//! | [`encoder`] | an encoder saved with its configuration, bands, normalisation and date convention |
//! | [`pretrain`] | self-supervised pretraining of a pixel encoder on any input |
//! | [`embed`] | per-pixel, per-period embeddings of a cube, as rows or as a Zarr cube |
//! | [`cluster`] | k-means on one period's or all periods' embeddings, and on trajectories over periods |
//! | [`changes`] | change scores between consecutive periods |
//! | [`classify`] | a linear probe trained on labelled points, applied to every pixel-period |
//! | [`blockwise`] | cluster, change and class maps of an embeddings store a block at a time, by shards, with models fitted once beside the output |
//! | [`shard`] | which shard of a job this process does (`--shard i/n`, SLURM, Kubernetes) |
//! | [`segment`] | segmentation with per-pixel labels: self-supervised U-BARN + head, U-TAE, raw probe |
//! | [`maps`] | every map written as a PNG and as a Zarr cube |
//! | [`report`] | PNG charts and Markdown tables |
//! | [`synthetic`] | a small two-band cube with known types and changes, for tests and trials |
//!
//! Errors: [`TaskError`] for the jobs above (the experiment keeps its own
//! [`experiment::ExperimentError`], the charts [`report::ReportError`]).
//!
//! ## Feature flags
//! - `plots` (off by default): PNG charts in the reports ([`report`]; plotters and a
//!   bundled font). Without it the report writers keep their tables, JSON and maps
//!   and say in `report.md` that charts were not drawn.
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle.
//!
//! ## Re-exports
//! The crates whose types cross this crate's API: [`candle_core`], [`candle_nn`],
//! [`chrono`], [`ndarray`] and the `sits-*` crates below this one.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod blockwise;
pub mod changes;
pub mod classify;
pub mod cluster;
pub mod convert;
pub mod embed;
pub mod encoder;
mod error;
pub mod experiment;
pub mod few_label;
pub mod input;
pub mod inspect;
pub mod maps;
pub mod pimc;
pub mod planar;
pub mod pretrain;
pub mod published;
pub mod report;
pub mod segment;
pub mod shard;
pub mod synthetic;

pub use error::{Result, TaskError};
pub use {
    candle_core, candle_nn, chrono, ndarray, sits_core, sits_data, sits_models, sits_repr, sits_ssl,
};

/// The device named `name`: `cpu`, or `cuda` / `metal` when candle is built with
/// that feature (the error says so otherwise).
pub fn device(name: &str) -> Result<candle_core::Device> {
    use candle_core::Device;
    let err = |what: &str, e: candle_core::Error| {
        TaskError::Settings(format!("device {name}: {e} ({what})"))
    };
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0)
            .map_err(|e| err("build with `--features cuda` on a machine with CUDA", e)),
        "metal" => {
            Device::new_metal(0).map_err(|e| err("build with `--features metal` on macOS", e))
        }
        d => Err(TaskError::Settings(format!(
            "device {d:?}: expected cpu, cuda or metal"
        ))),
    }
}

/// The folder of the bundled real datasets and shipped encoders (the repository's
/// `data/`): [`sits_data::datasets::data_dir`] with no explicit path, so the
/// `SITS_DATA` environment variable, else the checkout these crates were built
/// from. The published crates do not ship the data; the error says where it looked.
pub fn bundled_data_dir() -> Result<std::path::PathBuf> {
    Ok(sits_data::datasets::data_dir(None)?)
}
