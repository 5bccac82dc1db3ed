//! Published foundation models used like the library's own encoders.
//!
//! A published encoder is named on the command line as `presto:PATH` or
//! `galileo:PATH`:
//! - Presto: `PATH` is upstream's `default_model.pt` as released (its sha256 is
//!   checked against [`sits_models::presto::PUBLISHED_SHA256`]), a folder holding
//!   it, or a `.safetensors` file written by continued pretraining;
//! - Galileo: `PATH` is a folder holding upstream's `encoder.pt`, `config.json` and
//!   `normalization.json` (or the `encoder.pt` in it); the nano model's checksum is
//!   checked against [`sits_models::galileo::NANO_SHA256`].
//!
//! Both read monthly pixel series: the band mapping, units and composites are
//! [`sits_models::presto::input`], Galileo's normalisation
//! [`sits_models::galileo::input`]; this module feeds them sample sets and reports
//! what it read.
//!
//! Where to get the weights (MIT licence): `data/default_model.pt` and
//! `config/default.json` of github.com/nasaharvest/presto at `13173d0`;
//! `data/models/nano/{encoder.pt,config.json}` and `config/normalization.json` of
//! github.com/nasaharvest/galileo at `0f0b5b9`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_nn::VarMap;
use sits_data::SampleSet;
use sits_models::galileo::input::Normalization;
use sits_models::galileo::{GalileoConfig, GalileoEncoder, NANO_SHA256};
use sits_models::presto::input::{batch, monthly, BandMap, MonthlySeries, Sensor};
use sits_models::presto::{Presto, PrestoConfig, PUBLISHED_SHA256};

use crate::error::{Context, Result, TaskError};

/// File name of the published Presto weights.
pub const PRESTO_WEIGHTS: &str = "default_model.pt";
/// File name of upstream's Presto configuration.
pub const PRESTO_CONFIG: &str = "default.json";
/// File names of the published Galileo encoder, its configuration and the
/// normalisation statistics of its pretraining data.
pub const GALILEO_FILES: [&str; 3] = ["encoder.pt", "config.json", "normalization.json"];

/// A published model with what it needs to run.
pub enum PublishedModel {
    /// Presto.
    Presto {
        /// The model (encoder and decoder).
        model: Box<Presto>,
        /// Its variables (for continued pretraining and saving).
        vars: VarMap,
        /// Its configuration.
        config: PrestoConfig,
    },
    /// Galileo's encoder, run on `1 × 1` pixel series (patch size 1).
    Galileo {
        /// The encoder.
        encoder: Box<GalileoEncoder>,
        /// Its input normalisation (`normalization.json`).
        norm: Normalization,
    },
}

impl PublishedModel {
    /// The model's name as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Presto { .. } => "presto",
            Self::Galileo { .. } => "galileo",
        }
    }
}

/// A published encoder and how inputs are mapped to it.
pub struct PublishedEncoder {
    /// The weight file.
    pub path: PathBuf,
    /// The model.
    pub model: PublishedModel,
    /// How numbered bands are read.
    pub sensor: Sensor,
    /// Multiplier from reflectance values to reflectance (`None`: by band names).
    pub scale: Option<f32>,
    /// First month (1 to 12) of the yearly periods a cube is cut into.
    pub start_month: u32,
    /// Only periods with this many dates (complete years); `None`: every period
    /// with at least 2 dates.
    pub dates: Option<usize>,
}

impl std::fmt::Debug for PublishedEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedEncoder")
            .field("model", &self.model.name())
            .field("path", &self.path)
            .field("sensor", &self.sensor)
            .field("scale", &self.scale)
            .finish_non_exhaustive()
    }
}

/// A published encoder as named on the command line:
/// `presto:PATH[?sensor=S&scale=X&start-month=M]` or `galileo:PATH[?…]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedSpec {
    /// The model (`presto` or `galileo`).
    pub model: String,
    /// Its weight file or folder.
    pub path: PathBuf,
    /// The options after `?`, `key=value` pairs joined by `&`: `sensor`
    /// (`sentinel2`, `cbers4-awfi`, `landsat-oli`), `scale` (reflectance per unit
    /// of the input's reflectance bands, for instance `1e-4`), `start-month` (1 to
    /// 12, the first month of each yearly period; 1 by default), `dates` (only
    /// periods with this many dates, as a saved encoder's card fixes them).
    pub options: Vec<(String, String)>,
}

/// Parses an encoder argument `presto:PATH[?options]` or `galileo:PATH[?options]`;
/// `None` for a plain path (an encoder folder of this library).
pub fn parse_published(arg: &str) -> Option<PublishedSpec> {
    let (model, rest) = arg.split_once(':')?;
    if model != "presto" && model != "galileo" {
        return None;
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let options = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    Some(PublishedSpec {
        model: model.to_string(),
        path: PathBuf::from(path),
        options,
    })
}

impl PublishedEncoder {
    /// Loads the encoder `spec` names, with its options.
    pub fn from_spec(spec: &PublishedSpec, device: &Device) -> Result<Self> {
        let mut enc = if spec.model == "galileo" {
            Self::galileo(&spec.path, device)?
        } else {
            Self::presto(&spec.path, device)?
        };
        let bad = |k: &str, v: &str, why: String| {
            TaskError::Settings(format!(
                "{}:{}: option {k}={v}: {why} (options: sensor, scale, start-month, dates)",
                spec.model,
                spec.path.display()
            ))
        };
        for (k, v) in &spec.options {
            match k.as_str() {
                "sensor" => enc.sensor = v.parse().map_err(|e: String| bad(k, v, e))?,
                "scale" => {
                    let x: f32 = v.parse().map_err(|e| bad(k, v, format!("{e}")))?;
                    enc.scale = Some(x);
                }
                "dates" => {
                    let n: usize = v.parse().map_err(|e| bad(k, v, format!("{e}")))?;
                    enc.dates = Some(n);
                }
                "start-month" => {
                    let m: u32 = v.parse().map_err(|e| bad(k, v, format!("{e}")))?;
                    if !(1..=12).contains(&m) {
                        return Err(bad(k, v, "a month from 1 to 12".into()));
                    }
                    enc.start_month = m;
                }
                _ => return Err(bad(k, v, "unknown option".into())),
            }
        }
        Ok(enc)
    }

    /// How an input's dates are cut into series: yearly periods from
    /// `start_month`, any number of dates unless `dates` is set (the model
    /// composites by month), invalid
    /// dates left invalid (the model masks them, as upstream does).
    pub fn periods(&self) -> crate::input::Periods {
        crate::input::Periods {
            start_month: self.start_month,
            dates: self.dates,
            any_length: self.dates.is_none(),
            keep_gaps: true,
        }
    }

    /// Checks that `bands` feed at least one of the model's input groups.
    pub fn check_bands(&self, what: &str, bands: &[String]) -> Result<()> {
        BandMap::new(what, bands, self.sensor, self.scale)?;
        Ok(())
    }

    /// Loads Presto from `path`: the published `default_model.pt` (checksum
    /// verified, `default.json` beside it read when present), a folder holding it,
    /// or weights saved by continued pretraining (`.safetensors`, with the
    /// `default.json` beside them).
    pub fn presto(path: &Path, device: &Device) -> Result<Self> {
        let file = if path.is_dir() {
            path.join(PRESTO_WEIGHTS)
        } else {
            path.to_path_buf()
        };
        if !file.is_file() {
            return Err(TaskError::Encoder {
                path: file,
                reason: "no such file: give Presto's default_model.pt as published \
                         (github.com/nasaharvest/presto, data/default_model.pt), or a folder \
                         holding it"
                    .into(),
            });
        }
        let config_path = file.with_file_name(PRESTO_CONFIG);
        let config = if config_path.is_file() {
            let text = std::fs::read_to_string(&config_path)
                .map_err(|e| TaskError::io(&config_path, e))?;
            PrestoConfig::from_json(&text).map_err(|e| TaskError::Encoder {
                path: config_path.clone(),
                reason: format!("not a Presto configuration: {e}"),
            })?
        } else {
            PrestoConfig::published()
        };
        let published = file.extension().is_some_and(|e| e == "pt" || e == "pth");
        let (model, vars) = Presto::load(
            &file,
            &config,
            published.then_some(PUBLISHED_SHA256),
            device,
        )?;
        Ok(Self::with_model(
            file,
            PublishedModel::Presto {
                model: Box::new(model),
                vars,
                config,
            },
        ))
    }

    fn with_model(path: PathBuf, model: PublishedModel) -> Self {
        Self {
            path,
            model,
            sensor: Sensor::default(),
            scale: None,
            start_month: 1,
            dates: None,
        }
    }

    /// Loads Galileo from `path`: a folder holding upstream's `encoder.pt`,
    /// `config.json` and `normalization.json`, or the `encoder.pt` in such a folder.
    /// The nano model's checksum is verified.
    pub fn galileo(path: &Path, device: &Device) -> Result<Self> {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let [weights, config_path, norm_path] = GALILEO_FILES.map(|f| dir.join(f));
        for f in [&weights, &config_path, &norm_path] {
            if !f.is_file() {
                return Err(TaskError::Encoder {
                    path: f.clone(),
                    reason: "no such file: give the folder holding Galileo's encoder.pt and \
                             config.json as published (github.com/nasaharvest/galileo, \
                             data/models/nano/) with config/normalization.json copied beside them"
                        .into(),
                });
            }
        }
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| TaskError::io(p, e));
        let config =
            GalileoConfig::from_json(&read(&config_path)?).map_err(|e| TaskError::Encoder {
                path: config_path.clone(),
                reason: format!("not a Galileo configuration: {e}"),
            })?;
        let norm = Normalization::from_json(&read(&norm_path)?)?;
        let sha = (config == GalileoConfig::nano()).then_some(NANO_SHA256);
        let encoder = GalileoEncoder::load(&weights, &config, sha, device)?;
        Ok(Self::with_model(
            weights,
            PublishedModel::Galileo {
                encoder: Box::new(encoder),
                norm,
            },
        ))
    }

    /// Length of one embedding.
    pub fn embedding_len(&self) -> usize {
        match &self.model {
            PublishedModel::Presto { model, .. } => model.encoder.dim(),
            PublishedModel::Galileo { encoder, .. } => encoder.dim(),
        }
    }

    /// The band map for an input with `bands`, checked against its values
    /// (`(…, C)` rows) for units.
    pub fn band_map(&self, what: &str, bands: &[String], values: &[f32]) -> Result<BandMap> {
        let map = BandMap::new(what, bands, self.sensor, self.scale)?;
        map.check_scale(what, values, bands.len())?;
        Ok(map)
    }

    /// [`Self::band_map`] for a sample set, its units checked on the first 512
    /// series.
    pub fn set_band_map(&self, what: &str, set: &SampleSet) -> Result<BandMap> {
        let sample: Vec<f32> = set
            .series()
            .iter()
            .take(512)
            .flat_map(|s| s.values.iter().copied().collect::<Vec<_>>())
            .collect();
        self.band_map(what, set.bands(), &sample)
    }

    /// The monthly Presto series of every sample of `set`.
    pub fn monthly_series(&self, what: &str, set: &SampleSet) -> Result<Vec<MonthlySeries>> {
        let map = self.set_band_map(what, set)?;
        Self::series_with(&map, what, set)
    }

    /// The monthly Presto series of every sample of `set` through `map`.
    fn series_with(map: &BandMap, what: &str, set: &SampleSet) -> Result<Vec<MonthlySeries>> {
        set.series()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let dates: Vec<_> = s.times.as_slice().iter().map(|t| t.date()).collect();
                let values: Vec<f32> = s.values.iter().copied().collect();
                monthly(map, &values, set.bands().len(), &dates, Some(&s.validity()))
                    .map_err(|e| TaskError::input(what, format!("sample {}: {e}", set.ids()[i])))
            })
            .collect()
    }

    /// Embeds every sample of `set` located at `locations` (`[longitude, latitude]`
    /// degrees, one per sample): `(N, D)` rows, 256 series at a time.
    pub fn embed_samples(
        &self,
        what: &str,
        set: &SampleSet,
        locations: &[[f64; 2]],
        device: &Device,
    ) -> Result<Vec<Vec<f32>>> {
        if locations.len() != set.len() {
            return Err(TaskError::input(
                what,
                format!("{} locations for {} samples", locations.len(), set.len()),
            ));
        }
        let series = self.monthly_series(what, set)?;
        let mut out = Vec::with_capacity(set.len());
        for (chunk, locs) in series.chunks(256).zip(locations.chunks(256)) {
            let latlons: Vec<[f32; 2]> = locs
                .iter()
                .map(|&[lon, lat]| [lat as f32, lon as f32])
                .collect();
            let emb = match &self.model {
                PublishedModel::Presto { model, .. } => {
                    let inp = batch(chunk, &latlons, device).ctx("Presto inputs")?;
                    model.encoder.forward(&inp).ctx("Presto encoder")?
                }
                PublishedModel::Galileo { encoder, norm } => {
                    let inp =
                        sits_models::galileo::input::batch(chunk, Some(&latlons), norm, device)?;
                    encoder.forward(&inp, 1, 10.0).ctx("Galileo encoder")?
                }
            };
            out.extend(emb.to_vec2::<f32>().ctx("embeddings")?);
        }
        Ok(out)
    }
}

/// Presto series (see [`sits_ssl::presto`]): one date per month (the 15th; the
/// year only orders the months), the 17 normalised inputs then latitude and
/// longitude; a month without any observation is invalid.
pub fn presto_series_set(series: &[MonthlySeries], latlons: &[[f32; 2]]) -> Result<SampleSet> {
    use sits_data::samples::Series;
    let mut out = Vec::with_capacity(series.len());
    for (s, ll) in series.iter().zip(latlons) {
        let m = s.len();
        let mut values = ndarray::Array2::<f32>::zeros((m, sits_ssl::presto::SERIES_BANDS));
        let mut valid = Vec::with_capacity(m);
        let mut dates = Vec::with_capacity(m);
        let m0 = s.months.first().copied().unwrap_or(0) as i32;
        for k in 0..m {
            for i in 0..17 {
                if s.mask[k * 17 + i] == 0 {
                    values[[k, i]] = s.x[k * 17 + i];
                }
            }
            values[[k, 17]] = ll[0];
            values[[k, 18]] = ll[1];
            valid.push(s.mask[k * 17..(k + 1) * 17].contains(&0));
            let n = m0 + k as i32;
            dates.push(
                sits_data::chrono::NaiveDate::from_ymd_opt(2001 + n / 12, (n % 12) as u32 + 1, 15)
                    .ok_or_else(|| TaskError::Settings(format!("month {n} out of range")))?,
            );
        }
        let times = sits_core::dates::Timestamps::from_dates(&dates, "Presto months")
            .map_err(sits_data::DataError::from)?;
        out.push(Series::new(values, times, Some(valid))?);
    }
    let mut bands: Vec<String> = sits_models::presto::BANDS
        .iter()
        .map(|b| b.to_string())
        .collect();
    bands.extend(["latitude".to_string(), "longitude".to_string()]);
    Ok(SampleSet::new(out, bands, None, Vec::new(), None)?)
}

/// Settings of [`PublishedEncoder::continue_pretraining`].
#[derive(Debug, Clone)]
pub struct ContinuedPretraining {
    /// The training loop (epochs, learning rate, seed, checkpoints).
    pub train: sits_ssl::train::TrainConfig,
    /// Share of each series' present tokens hidden.
    pub mask_ratio: f64,
    /// Series per batch.
    pub batch_size: usize,
    /// Resume from the last checkpoint in the output folder.
    pub resume: bool,
    /// Whether weights written before in the output folder may be replaced.
    pub if_exists: sits_core::io::IfExists,
}

impl Default for ContinuedPretraining {
    fn default() -> Self {
        Self {
            train: sits_ssl::train::TrainConfig {
                epochs: 10,
                lr: 1e-4,
                min_lr: 1e-6,
                progress: false,
                ..sits_ssl::train::TrainConfig::default()
            },
            mask_ratio: 0.75,
            batch_size: 128,
            resume: false,
            if_exists: sits_core::io::IfExists::Refuse,
        }
    }
}

/// File name of the weights written by [`PublishedEncoder::continue_pretraining`] (loadable as
/// `presto:OUT/presto.safetensors`, with `default.json` beside it).
pub const CONTINUED_WEIGHTS: &str = "presto.safetensors";

impl PublishedEncoder {
    /// Continues pretraining the model (encoder and decoder) with Presto's masked
    /// reconstruction on the unlabelled series of `set` located at `locations`
    /// (`[longitude, latitude]`), checkpointing into `out` (created) and writing
    /// the result there as [`CONTINUED_WEIGHTS`] and [`PRESTO_CONFIG`]. The model is
    /// updated in place. Returns the logged steps.
    pub fn continue_pretraining(
        &self,
        what: &str,
        set: &SampleSet,
        locations: &[[f64; 2]],
        cfg: &ContinuedPretraining,
        out: &Path,
        device: &Device,
    ) -> Result<Vec<sits_ssl::train::StepRecord>> {
        let PublishedModel::Presto {
            model,
            vars,
            config,
        } = &self.model
        else {
            return Err(TaskError::Settings(format!(
                "{}: continued pretraining is available for Presto only (its masked \
                 reconstruction); {} is used frozen",
                self.path.display(),
                self.model.name()
            )));
        };
        let weights = out.join(CONTINUED_WEIGHTS);
        if cfg.if_exists != sits_core::io::IfExists::Replace && weights.exists() && !cfg.resume {
            return Err(sits_data::DataError::Exists {
                path: weights,
                reason: "continued pretraining already wrote here; choose another folder, \
                         resume, or ask to replace it"
                    .into(),
            }
            .into());
        }
        let map = self.set_band_map(what, set)?;
        let series = Self::series_with(&map, what, set)?;
        let latlons: Vec<[f32; 2]> = locations
            .iter()
            .map(|&[lon, lat]| [lat as f32, lon as f32])
            .collect();
        let pset = std::sync::Arc::new(presto_series_set(&series, &latlons)?);
        let loader = sits_data::loader::Loader::new(
            pset,
            sits_data::loader::LoaderConfig {
                batch_size: cfg.batch_size,
                shuffle: true,
                seed: cfg.train.seed,
                ..sits_data::loader::LoaderConfig::default()
            },
            device.clone(),
        )?;
        let mut obj =
            sits_ssl::presto::PrestoReconstruction::new(model, map.present(), cfg.mask_ratio)
                .ctx("Presto pretext")?;
        let mut trainer = sits_ssl::train::Trainer::new(
            cfg.train.clone(),
            vars,
            &sits_models::Buffers::new(),
            Some(out),
        )
        .ctx("continued pretraining")?;
        if cfg.resume {
            trainer.resume(&mut obj).ctx("resuming")?;
        }
        trainer
            .fit(&loader, &mut obj)
            .ctx("continued pretraining")?;
        sits_models::io::save_safetensors(
            &weights,
            vars,
            &sits_models::Buffers::new(),
            sits_core::io::IfExists::Replace,
        )?;
        let config =
            serde_json::to_string_pretty(config).map_err(|e| TaskError::Settings(e.to_string()))?;
        let config_path = out.join(PRESTO_CONFIG);
        sits_core::io::write_atomic(&config_path, config.as_bytes())
            .map_err(|e| TaskError::io(&config_path, e))?;
        Ok(trainer.history().to_vec())
    }
}
