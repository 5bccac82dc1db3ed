//! An encoder saved with everything needed to use it on another input: the model
//! configuration, the band names it reads (in order), the normalisation statistics
//! of its training data, how dates were cut into periods and encoded, and how its
//! per-date outputs are pooled.
//!
//! On disk an encoder is a folder holding `encoder.safetensors` (the weights, named
//! as the model builds them) and `encoder.json` (an [`EncoderCard`]). Loading it
//! checks that the weights match the card; [`SavedEncoder::check_input`] compares
//! the card with an input and names what differs.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use sits_core::io::IfExists;
use sits_data::norm::NormStats;
use sits_data::SampleSet;
use sits_models::alise::{AliseConfig, TemporalProjector};
use sits_models::transformer::DateEncoding;
use sits_models::{Buffers, Ctx, PixelTransformer, PixelTransformerConfig};
use sits_ssl::embed::Pooling;

use crate::error::{Context, Result, TaskError};
use crate::input::Periods;

/// Version of the [`EncoderCard`] format written by this library.
pub const CARD_FORMAT: u32 = 1;
/// File name of the weights in an encoder folder.
pub const WEIGHTS_FILE: &str = "encoder.safetensors";
/// File name of the card in an encoder folder.
pub const CARD_FILE: &str = "encoder.json";

/// The description saved beside an encoder's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderCard {
    /// [`CARD_FORMAT`] of the library that wrote it.
    pub format: u32,
    /// The architecture: `"pixel_transformer"` (the only one so far).
    pub architecture: String,
    /// The model configuration.
    pub model: PixelTransformerConfig,
    /// The bands it reads, in order (matched by name on other inputs).
    pub bands: Vec<String>,
    /// Normalisation statistics of the training data, applied to every input.
    pub norm: NormStats,
    /// How cube dates were cut into series; `dates` is always set.
    pub periods: Periods,
    /// Pooling of the per-date outputs into one vector per series (unused when
    /// `aligner` is set).
    pub pooling: Pooling,
    /// ALISE's temporal projector, when the encoder was pretrained with ALISE: the
    /// embedding is then its `n_q x d` aligned vectors, flattened.
    #[serde(default)]
    pub aligner: Option<AliseConfig>,
    /// The pretraining objective (`"bert"`, `"simclr"`, `"dino"`).
    pub objective: String,
    /// Pretraining epochs.
    pub epochs: usize,
    /// Seed of pretraining.
    pub seed: u64,
    /// What it was trained on (the input as given, its kind and size).
    pub trained_on: String,
    /// The command or call that made it, to remake it.
    pub made_by: String,
}

impl EncoderCard {
    /// Dates per series the encoder was trained on.
    pub fn dates(&self) -> usize {
        self.periods.dates.unwrap_or(0)
    }

    /// Length of one embedding.
    pub fn embedding_len(&self) -> usize {
        if let Some(a) = &self.aligner {
            return a.repr_dim();
        }
        match self.pooling {
            Pooling::Mean => self.model.d_model,
            Pooling::Flatten { dates } => dates * self.model.d_model,
        }
    }

    /// The date convention, in words.
    pub fn date_convention(&self) -> String {
        let enc = match self.model.dates {
            DateEncoding::DayOfYear => "day of year",
            DateEncoding::DaysSinceReference => "days since 2018-09-01",
        };
        format!(
            "{} dates per period, periods starting on the first of month {}, dates encoded as {enc}",
            self.dates(),
            self.periods.start_month
        )
    }
}

/// An encoder loaded from (or about to be saved to) a folder.
pub struct SavedEncoder {
    /// Its folder.
    pub dir: PathBuf,
    /// Its card.
    pub card: EncoderCard,
    /// Its variables (under `encoder.`).
    pub vars: VarMap,
    /// The model.
    pub model: PixelTransformer,
    /// ALISE's temporal projector, when the card has one.
    pub projector: Option<TemporalProjector>,
}

impl std::fmt::Debug for SavedEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedEncoder")
            .field("dir", &self.dir)
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

fn card_err(path: &Path, reason: impl Into<String>) -> TaskError {
    TaskError::Encoder {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl SavedEncoder {
    /// Loads the encoder folder `dir` onto `device`. A missing file, a card of an
    /// unknown format or architecture, or weights that do not fit the card's model
    /// are errors naming the file.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let card_path = dir.join(CARD_FILE);
        let text = std::fs::read_to_string(&card_path).map_err(|e| {
            card_err(
                &card_path,
                format!("{e} (an encoder folder holds {CARD_FILE} and {WEIGHTS_FILE}, as written by `sits pretrain`)"),
            )
        })?;
        let card: EncoderCard = serde_json::from_str(&text)
            .map_err(|e| card_err(&card_path, format!("not an encoder card: {e}")))?;
        if card.format != CARD_FORMAT {
            return Err(card_err(
                &card_path,
                format!(
                    "card format {} (this library reads format {CARD_FORMAT})",
                    card.format
                ),
            ));
        }
        if card.architecture != "pixel_transformer" {
            return Err(card_err(
                &card_path,
                format!(
                    "architecture `{}` (this library loads `pixel_transformer`)",
                    card.architecture
                ),
            ));
        }
        if card.model.in_bands != card.bands.len() || card.norm.bands != card.bands {
            return Err(card_err(
                &card_path,
                format!(
                    "the model reads {} bands, the card names {:?} and the statistics {:?}",
                    card.model.in_bands, card.bands, card.norm.bands
                ),
            ));
        }
        match (card.periods.dates, card.pooling) {
            (Some(d), Pooling::Flatten { dates }) if d != dates => {
                return Err(card_err(
                    &card_path,
                    format!("periods of {d} dates but a pooling over {dates}"),
                ))
            }
            (None, _) => return Err(card_err(&card_path, "periods.dates is not set")),
            _ => {}
        }
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
        let model = PixelTransformer::new(&Ctx::new(vb.pp("encoder")), card.model.clone())
            .ctx("building the encoder of the card")?;
        let projector = match &card.aligner {
            Some(a) => {
                if a.d_model != card.model.d_model {
                    return Err(card_err(
                        &card_path,
                        format!(
                            "the aligner reads {}-wide vectors, the model gives {}",
                            a.d_model, card.model.d_model
                        ),
                    ));
                }
                Some(
                    TemporalProjector::new(vb.pp("encoder").pp("aligner"), a.clone())
                        .ctx("building the aligner of the card")?,
                )
            }
            None => None,
        };
        let weights = dir.join(WEIGHTS_FILE);
        let n = sits_models::io::load_weights(&weights, &vars, &Buffers::new())?;
        if n == 0 {
            return Err(card_err(&weights, "holds none of the encoder's weights"));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            card,
            vars,
            model,
            projector,
        })
    }

    /// Writes `card` and the variables of `vars` under `encoder.` into the folder
    /// `dir` (created if missing). Existing files there are refused unless
    /// `if_exists` is [`IfExists::Replace`]; the card is written last, so a folder
    /// with a card always has its weights.
    pub fn save(dir: &Path, card: &EncoderCard, vars: &VarMap, if_exists: IfExists) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| TaskError::io(dir, e))?;
        let card_path = dir.join(CARD_FILE);
        if if_exists != IfExists::Replace && card_path.exists() {
            return Err(sits_data::DataError::Exists {
                path: card_path,
                reason: "an encoder is already saved here; choose another folder or ask \
                         to replace it (--overwrite)"
                    .into(),
            }
            .into());
        }
        let only = VarMap::new();
        {
            let src = vars
                .data()
                .lock()
                .map_err(|_| card_err(dir, "the variables' lock is poisoned"))?;
            let mut dst = only
                .data()
                .lock()
                .map_err(|_| card_err(dir, "the variables' lock is poisoned"))?;
            for (k, v) in src.iter().filter(|(k, _)| k.starts_with("encoder.")) {
                dst.insert(k.clone(), v.clone());
            }
        }
        sits_models::io::save_safetensors(
            &dir.join(WEIGHTS_FILE),
            &only,
            &Buffers::new(),
            if_exists,
        )?;
        let json =
            serde_json::to_string_pretty(card).map_err(|e| card_err(&card_path, e.to_string()))?;
        sits_core::io::write_atomic(&card_path, json.as_bytes())
            .map_err(|e| TaskError::io(&card_path, e))?;
        Ok(())
    }

    /// How an input's dates are cut into series for this encoder: the card's
    /// periods, and with ALISE's aligner every period of at least 2 dates whatever
    /// its length (the aligned vectors do not depend on the calendar).
    pub fn input_periods(&self) -> Periods {
        Periods {
            any_length: self.card.periods.any_length || self.card.aligner.is_some(),
            ..self.card.periods
        }
    }

    /// Checks that an input with `bands` and `times` can be read by this encoder:
    /// every band of the card is present (by name; extra bands are ignored) and the
    /// input has at least one period of the card's length. The error names the
    /// input, the encoder and what differs.
    pub fn check_input(
        &self,
        what: &str,
        bands: &[String],
        times: Option<&sits_core::dates::Timestamps>,
    ) -> Result<()> {
        let mismatch = |w: String| TaskError::Mismatch {
            input: what.to_string(),
            encoder: self.dir.clone(),
            what: w,
        };
        let missing: Vec<&String> = self
            .card
            .bands
            .iter()
            .filter(|b| !bands.contains(b))
            .collect();
        if !missing.is_empty() {
            return Err(mismatch(format!(
                "the encoder reads bands {:?}; the input has {bands:?} and lacks {missing:?} \
                 (bands are matched by name: rename them in the input's metadata, or \
                 pretrain an encoder on these bands)",
                self.card.bands
            )));
        }
        // ALISE's aligned vectors read periods of any length; the flatten pooling
        // needs the card's
        let fixed_length = self.card.aligner.is_none();
        if let (true, Some(times), Pooling::Flatten { .. }) =
            (fixed_length, times, self.card.pooling)
        {
            let want = self.card.dates();
            let lengths = crate::input::period_lengths(times, self.card.periods.start_month);
            if !lengths.iter().any(|&(_, n)| n == want) {
                let got = lengths
                    .iter()
                    .map(|(y, n)| format!("{y}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(mismatch(format!(
                    "the encoder was trained on {}; no period of the input has {want} dates \
                     (dates per period: {got}). Pretrain an encoder on this input, or \
                     resample it to the encoder's calendar",
                    self.card.date_convention()
                )));
            }
        }
        Ok(())
    }
}

/// The encoder a task runs: one saved by this library (a folder) or a published
/// foundation model ([`crate::published`]). The tasks take any
/// `impl Into<`[`EncoderRef`]`>`: a `&SavedEncoder`, a `&PublishedEncoder` or a
/// `&TaskEncoder`.
#[derive(Debug)]
pub enum TaskEncoder {
    /// An encoder folder written by `sits pretrain`.
    Saved(Box<SavedEncoder>),
    /// A published model (`presto:PATH`, `galileo:PATH`).
    Published(Box<crate::published::PublishedEncoder>),
}

impl TaskEncoder {
    /// Loads `arg`: `presto:PATH` or `galileo:PATH` (see [`crate::published::parse_published`]) or an
    /// encoder folder.
    pub fn load(arg: &Path, device: &Device) -> Result<Self> {
        let text = arg.to_string_lossy();
        match crate::published::parse_published(&text) {
            Some(spec) => Ok(Self::Published(Box::new(
                crate::published::PublishedEncoder::from_spec(&spec, device)?,
            ))),
            None => Ok(Self::Saved(Box::new(SavedEncoder::load(arg, device)?))),
        }
    }

    /// The borrowed view the tasks work with.
    pub fn view(&self) -> EncoderRef<'_> {
        self.into()
    }
}

/// A borrowed encoder of either kind: what the tasks ask of an encoder (which
/// bands and periods of an input it reads, embeddings), whatever the kind.
#[derive(Debug, Clone, Copy)]
pub enum EncoderRef<'a> {
    /// An encoder folder written by `sits pretrain`.
    Saved(&'a SavedEncoder),
    /// A published model.
    Published(&'a crate::published::PublishedEncoder),
}

impl<'a> From<&'a SavedEncoder> for EncoderRef<'a> {
    fn from(e: &'a SavedEncoder) -> Self {
        Self::Saved(e)
    }
}

impl<'a> From<&'a crate::published::PublishedEncoder> for EncoderRef<'a> {
    fn from(e: &'a crate::published::PublishedEncoder) -> Self {
        Self::Published(e)
    }
}

impl<'a> From<&'a TaskEncoder> for EncoderRef<'a> {
    fn from(e: &'a TaskEncoder) -> Self {
        match e {
            TaskEncoder::Saved(s) => Self::Saved(s),
            TaskEncoder::Published(p) => Self::Published(p),
        }
    }
}

impl<'a> EncoderRef<'a> {
    /// The encoder's folder or weight file, for messages.
    pub fn path(self) -> &'a Path {
        match self {
            Self::Saved(e) => &e.dir,
            Self::Published(p) => &p.path,
        }
    }

    /// The saved encoder, when it is one.
    pub fn saved(self) -> Option<&'a SavedEncoder> {
        match self {
            Self::Saved(e) => Some(e),
            Self::Published(_) => None,
        }
    }

    /// Length of one embedding.
    pub fn embedding_len(self) -> usize {
        match self {
            Self::Saved(e) => e.card.embedding_len(),
            Self::Published(p) => p.embedding_len(),
        }
    }

    /// The bands of an input with `bands` that the encoder reads, in its order: the
    /// card's for a saved encoder, every band for a published one (its own input
    /// mapping picks).
    pub fn bands_for(self, bands: &[String]) -> Vec<String> {
        match self {
            Self::Saved(e) => e.card.bands.clone(),
            Self::Published(_) => bands.to_vec(),
        }
    }

    /// How an input's dates are cut into series (see
    /// [`SavedEncoder::input_periods`]); a published encoder reads periods of any
    /// length from its start month.
    pub fn input_periods(self) -> Periods {
        match self {
            Self::Saved(e) => e.input_periods(),
            Self::Published(p) => p.periods(),
        }
    }

    /// Checks before any long work that an input with `bands` and `times` can be
    /// read (see [`SavedEncoder::check_input`]; for a published encoder, that its
    /// bands feed the model).
    pub fn check_input(
        &self,
        what: &str,
        bands: &[String],
        times: Option<&sits_core::dates::Timestamps>,
    ) -> Result<()> {
        match self {
            Self::Saved(e) => e.check_input(what, bands, times),
            Self::Published(p) => p.check_bands(what, bands),
        }
    }

    /// Embeds the series of `set` (bands as [`Self::bands_for`] gives, not
    /// normalised), one row per series; `locations` (`[longitude, latitude]` per
    /// series) are needed by published models that read the location.
    pub fn embed_series(
        &self,
        what: &str,
        set: &SampleSet,
        locations: Option<&[[f64; 2]]>,
        device: &Device,
    ) -> Result<Vec<Vec<f32>>> {
        match self {
            Self::Saved(e) => crate::embed::embed_series(e, set, device),
            Self::Published(p) => {
                let locations = locations.ok_or_else(|| {
                    TaskError::input(
                        what,
                        "published models read each series' location: the input needs a CRS and a \
                         geotransform (a cube) or longitude/latitude columns (samples.csv)",
                    )
                })?;
                p.embed_samples(what, set, locations, device)
            }
        }
    }
}
