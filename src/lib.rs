//! `sits`: self-supervised learning on satellite image time series, in Rust.
//!
//! This facade only re-exports the libraries of the workspace:
//!
//! | crate | what | status |
//! | --- | --- | --- |
//! | [`sits_core`] | [`SitsBatch`] and the shared traits | usable |
//! | [`sits_data`] | datacubes, sample sets, `.npy`/Zarr/PASTIS/CSV readers, loader, augmentations | usable |
//! | [`sits_repr`] | spectral indices, recurrence plots, GAF/MTF, planar images, PNG output | usable |
//! | [`sits_models`] | U-TAE, L-TAE2d, TSViT, pixel transformer, U-BARN, ResNet/ViT, heads | usable |
//! | [`sits_ssl`] | SSL objectives, pretraining loop, probes, metrics, clustering | usable |
//! | [`sits_tasks`] | whole jobs: pretrain, embed, cluster, changes, classification maps, the few-label experiment ([`experiment`]), charts ([`report`]) | usable |
//!
//! ```
//! // needs the repository's data/ folder (a checkout, or SITS_DATA pointing at a copy)
//! let set = sits::sits_data::datasets::mato_grosso(
//!     &sits::bundled_data_dir().unwrap().join(sits::sits_data::datasets::MATO_GROSSO),
//! ).unwrap();
//! assert_eq!(set.len(), 2115);
//! ```
//!
//! ## Feature flags
//! None is on by default; the `sits` command-line tool (crate `sits-cli`) turns all on.
//! - `remote`: object storage (`s3://`, `gs://`, `az://`, `http(s)://`) and STAC API
//!   searches in [`sits_data`] (tokio, reqwest, rustls, object_store).
//! - `plots`: PNG charts in the [`report`]s (plotters and a bundled font).
//! - `progress`: progress bars while pretraining (indicatif).
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle. Pick the device at run time
//!   with [`candle_core::Device`].
//!
//! ## Re-exports
//! Besides the `sits-*` crates, the crates whose types cross their APIs are
//! re-exported so a user never matches versions by hand: [`candle_core`],
//! [`candle_nn`], [`ndarray`], [`chrono`], [`zarrs`]. [`prelude`] gathers the names
//! most programs start from.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use sits_core::{self, SitsBatch};
pub use sits_data::{self, Datacube, SampleSet};
pub use sits_tasks::{self as tasks, bundled_data_dir, experiment, report};
pub use {candle_core, candle_nn, sits_data::chrono, sits_data::ndarray, sits_data::zarrs};
pub use {sits_models, sits_repr, sits_ssl};

/// The names most programs start from: `use sits::prelude::*;`.
///
/// ```
/// use sits::prelude::*;
/// let times = Timestamps::parse(&["2018-09-24", "2018-10-04"], "demo").unwrap();
/// let cube = Datacube::new(ndarray::Array4::ones((2, 1, 4, 4)), times, vec!["NDVI".into()]).unwrap();
/// let batch = cube.to_batch(pastis_reference(), &Device::Cpu).unwrap();
/// assert_eq!(batch.values().dims(), &[1, 2, 1, 4, 4]);
/// ```
pub mod prelude {
    pub use crate::{candle_core, candle_nn, chrono, ndarray};
    pub use candle_core::{DType, Device, Tensor};
    pub use sits_core::dates::{pastis_reference, Timestamps};
    pub use sits_core::{Augmentation, Encoder, Objective, SitsBatch};
    pub use sits_data::datasets::data_dir;
    pub use sits_data::{Datacube, SampleSet, Split};
    pub use sits_tasks::encoder::SavedEncoder;
    pub use sits_tasks::TaskError;
}

/// The guides of `docs/`, one per crate; their snippets run as doctests.
#[doc = include_str!("../docs/README.md")]
pub mod guide {
    #[doc = include_str!("../docs/sits-data.md")]
    pub mod data {}
    #[doc = include_str!("../docs/sits-repr.md")]
    pub mod repr {}
    #[doc = include_str!("../docs/sits-models.md")]
    pub mod models {}
    #[doc = include_str!("../docs/sits-ssl.md")]
    pub mod ssl {}
    #[doc = include_str!("../docs/dates.md")]
    pub mod dates {}
    #[doc = include_str!("../docs/data-formats.md")]
    pub mod formats {}
    #[doc = include_str!("../docs/cli.md")]
    pub mod cli {}
}
