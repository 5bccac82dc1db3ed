//! The data layer of `sits`: satellite image time series with real acquisition
//! dates, bands and cloud masks, the readers and writers of the formats they come in,
//! and a deterministic parallel loader that feeds models padded [`SitsBatch`](sits_core::SitsBatch)es.
//!
//! - [`Datacube`]: a 2D+t cube `(T, C, H, W)` with [`Timestamps`](sits_core::dates::Timestamps), band names, a
//!   validity mask, nodata, radiometric scaling and georeferencing.
//! - [`SampleSet`]: pixel series `(T_i, C)` with per-sample dates, labels and splits.
//! - Readers: [`npy`] (NumPy), [`zarr`] (Zarr v3 read/write, v2 read), [`folder`] (cube
//!   folders), [`samples`] (sample tables), [`pastis`] (the PASTIS layout) and
//!   [`datasets`] (the bundled real data by name).
//! - [`norm`]: streaming, mergeable band statistics; [`gapfill`]: interpolation and
//!   resampling along time; [`loader`]: shuffling, collation, prefetching.
//!
//! ```
//! use candle_core::Device;
//! use ndarray::Array4;
//! use sits_core::dates::Timestamps;
//! use sits_data::Datacube;
//!
//! let times = Timestamps::parse(&["2018-09-24", "2018-10-04", "2018-10-14"], "demo").unwrap();
//! let cube = Datacube::new(Array4::ones((3, 2, 8, 8)), times, vec!["B04".into(), "B08".into()]).unwrap();
//! let batch = cube.window(0, 0, 4, 4).unwrap()
//!     .to_batch(sits_core::dates::pastis_reference(), &Device::Cpu).unwrap();
//! assert_eq!(batch.values().dims(), &[1, 3, 2, 4, 4]);
//! assert_eq!(batch.days().to_vec2::<f32>().unwrap(), vec![vec![23.0, 33.0, 43.0]]);
//! ```
//!
//! ## Feature flags
//! - `remote` (off by default): object storage and HTTP(S): Zarr stores, GeoTIFFs
//!   and STAC items at `s3://`, `gs://`, `az://` and `http(s)://` paths, and STAC API
//!   searches (`stac::search`). It brings the `object_store` client with its async
//!   runtime and TLS stack (about 85 more crates to build). Without it every such path is an
//!   error that names the feature; local files work the same either way.
//! - `cuda`, `cudnn`, `mkl`, `metal`: forwarded to candle through `sits-core`. Data
//!   preparation always runs on the CPU; batches are created on the device you pass.
//!
//! ## Re-exports
//! The crates whose types cross this crate's API are re-exported, so a user never
//! matches their versions by hand: [`candle_core`] (devices, batches), [`ndarray`]
//! (cube and series values), [`chrono`] (dates), [`zarrs`] (stores) and
//! [`sits_core`].

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod augment;
pub mod cube;
pub mod datasets;
pub mod error;
pub mod folder;
pub mod gapfill;
pub mod geo;
pub mod geotiff;
pub mod io_util;
pub mod loader;
pub mod norm;
pub mod npy;
pub mod open;
pub mod pastis;
pub mod points;
pub mod rasters;
pub mod samples;
pub mod stac;
pub mod zarr;

pub use cube::{Datacube, GeoInfo, PixelSeries, Radiometry};
pub use error::{DataError, Result};
pub use folder::CubeFolder;
pub use loader::{collate, Label, Loader, LoaderConfig, Sample, SampleSource};
pub use samples::{SampleSet, Series, Split};

pub use {candle_core, chrono, ndarray, sits_core, zarrs};
