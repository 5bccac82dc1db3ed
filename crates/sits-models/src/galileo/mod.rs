//! Galileo (Tseng et al., "Galileo: Learning Global & Local Features of Many Remote
//! Sensing Modalities", 2025): a transformer over space-time patches of many
//! remote-sensing inputs, pretrained on global monthly composites.
//!
//! The encoder is rebuilt from the published description and checked against the
//! upstream forward pass (`single_file_galileo.py` in `nasaharvest/galileo` at
//! `0f0b5b9`) on real inputs within 1e-5 (`tests/galileo.rs`). Parameter names are
//! upstream's, so the published `encoder.pt` (with its `config.json`) loads as it is
//! ([`GalileoEncoder::load`]).
//!
//! # Tokens
//! Inputs come in four families, each split into band groups ([`SPACE_TIME_GROUPS`],
//! [`SPACE_GROUPS`], [`TIME_GROUPS`], [`STATIC_GROUPS`]):
//! - space-time (Sentinel-1, Sentinel-2, NDVI): one token per group, patch and
//!   timestep;
//! - space (SRTM, Dynamic World, WorldCereal): one token per group and patch;
//! - time (ERA5, TerraClimate, VIIRS): one token per group and timestep;
//! - static (LandScan, location, static Dynamic World and WorldCereal): one token
//!   per group.
//!
//! Spatial groups are embedded by patches of `p × p` pixels: the published kernels
//! are 8 × 8 and are resized to `p` as upstream does (the pseudo-inverse of the
//! antialiased bicubic resize, [`resize_kernel`]); a pixel series is `1 × 1` with
//! `p = 1`. Every token carries four quarter-width encodings side by side: its
//! group, its timestep position, its month and its 2-D position scaled by the
//! ground distance a token covers. A group is masked per token (1 = missing); masked
//! tokens take no part in the attention, which gives the same numbers as upstream's
//! removal of them.
//!
//! [`input`] turns monthly series (the band mapping shared with
//! [`crate::presto::input`]) into Galileo's inputs, with upstream's normalisation
//! from `normalization.json`.

pub mod input;
mod model;

pub use model::{resize_kernel, GalileoEncoder, GalileoInput};

use serde::{Deserialize, Serialize};

/// The 13 space-time bands, in order: Sentinel-1 VV and VH (dB), the ten
/// Sentinel-2 L1C bands (digital numbers, reflectance × 10⁴), NDVI.
pub const SPACE_TIME_BANDS: [&str; 13] = [
    "VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12", "NDVI",
];

/// Space-time band groups with their band indices in [`SPACE_TIME_BANDS`].
pub const SPACE_TIME_GROUPS: [(&str, &[usize]); 7] = [
    ("S1", &[0, 1]),
    ("S2_RGB", &[2, 3, 4]),
    ("S2_Red_Edge", &[5, 6, 7]),
    ("S2_NIR_10m", &[8]),
    ("S2_NIR_20m", &[9]),
    ("S2_SWIR", &[10, 11]),
    ("NDVI", &[12]),
];

/// Number of space bands: SRTM elevation and slope, 9 Dynamic World and 5
/// WorldCereal probabilities.
pub const SPACE_BANDS: usize = 16;
/// Space band groups with their band indices.
pub const SPACE_GROUPS: [(&str, &[usize]); 3] = [
    ("SRTM", &[0, 1]),
    ("DW", &[2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ("WC", &[11, 12, 13, 14, 15]),
];

/// Number of time bands: ERA5 temperature and precipitation, TerraClimate
/// `def`, `soil`, `aet`, VIIRS night lights.
pub const TIME_BANDS: usize = 6;
/// Time band groups with their band indices.
pub const TIME_GROUPS: [(&str, &[usize]); 3] =
    [("ERA5", &[0, 1]), ("TC", &[2, 3, 4]), ("VIIRS", &[5])];

/// Number of static bands: LandScan population, location (x, y, z on the unit
/// sphere), static Dynamic World and WorldCereal.
pub const STATIC_BANDS: usize = 18;
/// Static band groups with their band indices.
pub const STATIC_GROUPS: [(&str, &[usize]); 4] = [
    ("LS", &[0]),
    ("location", &[1, 2, 3]),
    ("DW_static", &[4, 5, 6, 7, 8, 9, 10, 11, 12]),
    ("WC_static", &[13, 14, 15, 16, 17]),
];

/// Ground sampling distance (m) the 2-D position encoding is relative to.
pub const BASE_GSD: f64 = 10.0;

/// sha256 of the published Galileo nano `encoder.pt` (nasaharvest/galileo at
/// `0f0b5b9`, `data/models/nano/encoder.pt`).
pub const NANO_SHA256: &str = "eab6acacf527886a508a555bc24efe4b4a2cf91b162e84cd1c4a1807e942180c";

/// The encoder's hyper-parameters (upstream `config.json`, `model.encoder`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalileoConfig {
    /// Token width.
    pub embedding_size: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// MLP width over token width.
    pub mlp_ratio: f64,
    /// Longest series the position table covers.
    pub max_sequence_length: usize,
    /// Side of the stored patch kernels.
    pub max_patch_size: usize,
}

impl GalileoConfig {
    /// Galileo nano as published.
    pub fn nano() -> Self {
        Self {
            embedding_size: 128,
            depth: 4,
            num_heads: 8,
            mlp_ratio: 4.0,
            max_sequence_length: 24,
            max_patch_size: 8,
        }
    }

    /// Reads upstream's `config.json` (the `model.encoder` object; other fields
    /// are ignored).
    pub fn from_json(text: &str) -> std::result::Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Model {
            encoder: GalileoConfig,
        }
        #[derive(Deserialize)]
        struct File {
            model: Model,
        }
        Ok(serde_json::from_str::<File>(text)?.model.encoder)
    }
}
