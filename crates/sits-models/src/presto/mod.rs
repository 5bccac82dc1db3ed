//! Presto (Tseng et al., "Lightweight, Pre-trained Transformers for Remote Sensing
//! Timeseries", 2023): a pixel time-series transformer pretrained by masked
//! reconstruction on global monthly Sentinel-1/-2, ERA5 and SRTM composites.
//!
//! The model is rebuilt from the published description and checked against the
//! upstream forward pass (`single_file_presto.py` in `nasaharvest/presto` at
//! `13173d0`) on real inputs, encoder output and decoder reconstruction, within
//! 1e-5 (`tests/presto.rs`). Parameter names are upstream's, so the published
//! `default_model.pt` loads as it is ([`Presto::load`]).
//!
//! # Inputs
//! Every timestep carries the 17 values of [`BANDS`] (normalised as upstream, see
//! [`input`]) and a mask of the same shape (1 = missing). Values are embedded per
//! band group ([`GROUPS`]): one token per group and timestep, except the static
//! SRTM group (one token) and a Dynamic World class token per timestep, plus one
//! token for the location. A group is missing at a timestep when any of its bands
//! is; missing tokens are left out of the attention, which gives the same numbers
//! as upstream's removal of them. Months are per timestep (0 = January), so real
//! calendars with gaps are represented as they are.
//!
//! [`input`] maps sensor bands by name to these inputs (Sentinel-2 by band name,
//! MODIS and other sensors by wavelength) and is where the normalisation lives.

pub mod input;
mod model;

pub use model::{Presto, PrestoDecoder, PrestoEncoder, PrestoInput, PrestoOutput};

use std::path::Path;

use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// The 17 inputs of a timestep, in order (upstream's `NORMED_BANDS`): Sentinel-1
/// VV and VH (dB), Sentinel-2 L1C bands, ERA5 2 m temperature (K) and total
/// precipitation (m), SRTM elevation (m) and slope (degrees), NDVI.
pub const BANDS: [&str; 17] = [
    "VV",
    "VH",
    "B2",
    "B3",
    "B4",
    "B5",
    "B6",
    "B7",
    "B8",
    "B8A",
    "B11",
    "B12",
    "temperature_2m",
    "total_precipitation",
    "elevation",
    "slope",
    "NDVI",
];

/// The band groups, each embedded into one token per timestep, with the indices of
/// their bands in [`BANDS`] (upstream's `BANDS_GROUPS_IDX`, in its order).
pub const GROUPS: [(&str, &[usize]); 9] = [
    ("S1", &[0, 1]),
    ("S2_RGB", &[2, 3, 4]),
    ("S2_Red_Edge", &[5, 6, 7]),
    ("S2_NIR_10m", &[8]),
    ("S2_NIR_20m", &[9]),
    ("S2_SWIR", &[10, 11]),
    ("ERA5", &[12, 13]),
    ("SRTM", &[14, 15]),
    ("NDVI", &[16]),
];

/// Index of the static SRTM group in [`GROUPS`] (one token, not one per timestep).
pub const SRTM_GROUP: usize = 7;

/// Dynamic World land-cover classes; the class index equal to this number means
/// "no class" and masks the token.
pub const DW_CLASSES: usize = 9;

/// sha256 of the published `default_model.pt` (nasaharvest/presto at `13173d0`,
/// `data/default_model.pt`).
pub const PUBLISHED_SHA256: &str =
    "559c9d76f525bdf2dd3774da8b1e7f1510769b73baacac12e9e4d8d5c67fbe65";

/// Presto's hyper-parameters, as in upstream's `config/default.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrestoConfig {
    /// Token width of the encoder.
    pub encoder_embedding_size: usize,
    /// Share of the token width given to the band-group embedding.
    pub channel_embed_ratio: f64,
    /// Share of the token width given to the month embedding.
    pub month_embed_ratio: f64,
    /// Encoder blocks.
    pub encoder_depth: usize,
    /// MLP width over token width.
    pub mlp_ratio: f64,
    /// Encoder attention heads.
    pub encoder_num_heads: usize,
    /// Token width of the decoder.
    pub decoder_embedding_size: usize,
    /// Decoder blocks.
    pub decoder_depth: usize,
    /// Decoder attention heads.
    pub decoder_num_heads: usize,
    /// Longest series (timesteps) the position table covers.
    #[serde(default = "default_max_len")]
    pub max_sequence_length: usize,
}

fn default_max_len() -> usize {
    24
}

impl PrestoConfig {
    /// The published model's configuration (`config/default.json`).
    pub fn published() -> Self {
        Self {
            encoder_embedding_size: 128,
            channel_embed_ratio: 0.25,
            month_embed_ratio: 0.25,
            encoder_depth: 2,
            mlp_ratio: 4.0,
            encoder_num_heads: 8,
            decoder_embedding_size: 128,
            decoder_depth: 2,
            decoder_num_heads: 8,
            max_sequence_length: 24,
        }
    }

    /// Reads a configuration in upstream's JSON form (missing fields are an error,
    /// except `max_sequence_length`, 24 upstream).
    pub fn from_json(text: &str) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Widths of the (month, channel, position) parts of an encoder token, as
    /// upstream rounds them (truncation).
    pub fn encoder_parts(&self) -> (usize, usize, usize) {
        let d = self.encoder_embedding_size as f64;
        let pos = (d * (1.0 - (self.channel_embed_ratio + self.month_embed_ratio))) as usize;
        let channel = (d * self.channel_embed_ratio) as usize;
        let month = (d * self.month_embed_ratio) as usize;
        (month, channel, pos)
    }

    /// Widths of the (month, channel, position) parts of a decoder token: the
    /// channel part is the encoder's (shared), the rest split in two.
    pub fn decoder_parts(&self) -> (usize, usize, usize) {
        let (_, channel, _) = self.encoder_parts();
        let half = self.decoder_embedding_size.saturating_sub(channel) / 2;
        (half, channel, half)
    }
}

/// Upstream's month table: row `m` (0 = January) is `sin(2πm/12)` on the first
/// half of `d` and `cos(2πm/12)` on the second. `(12, d)`.
pub fn month_table(d: usize, device: &Device) -> Result<Tensor> {
    let half = d / 2;
    let mut v = Vec::with_capacity(12 * d);
    for m in 0..12 {
        let a = m as f64 * 2.0 * std::f64::consts::PI / 12.0;
        v.extend(std::iter::repeat_n(a.sin() as f32, half));
        v.extend(std::iter::repeat_n(a.cos() as f32, half));
    }
    Tensor::from_vec(v, (12, 2 * half), device)
}

/// Upstream's position table: `sin(t / 1000^(2⌊j/2⌋/d))` on even `j`, `cos` on odd.
/// `(len, d)`.
pub fn position_table(len: usize, d: usize, device: &Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(len * d);
    for t in 0..len {
        for j in 0..d {
            let a = t as f64 / 1000f64.powf((2 * (j / 2)) as f64 / d as f64);
            v.push(if j % 2 == 0 { a.sin() } else { a.cos() } as f32);
        }
    }
    Tensor::from_vec(v, (len, d), device)
}

/// The sha256 of a file, in lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}
