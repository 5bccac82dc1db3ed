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
//! let set = sits::sits_data::datasets::mato_grosso(
//!     &sits::bundled_data_dir().join(sits::sits_data::datasets::MATO_GROSSO),
//! ).unwrap();
//! assert_eq!(set.len(), 2115);
//! ```
//!
//! ## Feature flags
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle. Pick the device at run time
//!   with [`candle_core::Device`].

pub use sits_core::{self, SitsBatch};
pub use sits_data::{self, Datacube, SampleSet};
pub use sits_tasks::{self as tasks, bundled_data_dir, experiment, report};
pub use {sits_models, sits_repr, sits_ssl};

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
