//! The command line: every subcommand and its arguments (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sits_data::rasters::{CloudMask, RasterFolderOptions};
use sits_tasks::experiment::Method;
use sits_tasks::pretrain::PoolingChoice;

use crate::Res;

/// Self-supervised learning on satellite image time series.
#[derive(Parser, Debug)]
#[command(name = "sits", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// cpu, or cuda / metal when built with that feature.
    #[arg(long, global = true, default_value = "cpu")]
    pub(crate) device: String,
    /// No progress bars.
    #[arg(long, global = true)]
    pub(crate) quiet: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// What a dataset holds: kind, shape, dates, bands, classes.
    Inspect {
        /// A sample-table folder, cube folder, PASTIS folder, Zarr store or folder of
        /// GeoTIFFs.
        input: PathBuf,
        #[command(flatten)]
        rasters: RasterArgs,
    },
    /// Converts a sample-table or cube folder (or a PASTIS patch) to a Zarr store, or
    /// a cube Zarr store to a cube folder.
    Convert {
        /// The input.
        input: PathBuf,
        /// The output (must not exist unless --overwrite).
        output: PathBuf,
        /// The patch of a PASTIS folder.
        #[arg(long)]
        patch: Option<u64>,
        /// Replace an output written by sits before.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        rasters: RasterArgs,
    },
    /// Pretrains a pixel encoder without labels and saves it with its card.
    Pretrain(PretrainArgs),
    /// Embeds every pixel of a cube in every period: a Zarr cube and PNGs.
    Embed {
        #[command(flatten)]
        io: MapIo,
        /// The encoder folder (from `sits pretrain`, or a shipped one in data/encoders),
        /// or a published model: `presto:PATH` (Presto's `default_model.pt`) or
        /// `galileo:DIR` (the folder of Galileo's `encoder.pt`, `config.json` and
        /// `normalization.json`); options after `?`: `sensor=`, `scale=`,
        /// `start-month=`, `dates=`.
        #[arg(long)]
        encoder: PathBuf,
        /// Pixels per side of a processing block (memory is bounded by one block).
        #[arg(long, default_value_t = 64)]
        block: usize,
        /// Write only shard i of n (0-based) into a store shared by every worker;
        /// without it, SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX with
        /// SITS_SHARD_COUNT pick the shard when set. Done blocks are skipped.
        #[arg(long)]
        shard: Option<String>,
    },
    /// Searches a STAC API and saves the items found as an ItemCollection, which
    /// every command then reads as a cube.
    Search {
        /// The API root (or its /search endpoint).
        api: String,
        /// Collections, comma-separated.
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
        /// lon_min,lat_min,lon_max,lat_max (WGS 84 degrees).
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        bbox: Option<Vec<f64>>,
        /// An interval, 2020-01-01/2020-12-31.
        #[arg(long)]
        datetime: Option<String>,
        /// Leave out items above this eo:cloud_cover (percent).
        #[arg(long)]
        max_cloud_cover: Option<f64>,
        /// Refuse a search that finds more items.
        #[arg(long, default_value_t = 10_000)]
        max_items: usize,
        /// The ItemCollection to write (.json).
        #[arg(long)]
        out: PathBuf,
        /// Replace a file written before.
        #[arg(long)]
        overwrite: bool,
    },
    /// Checks a store written by sharded workers: the blocks not done yet, and the
    /// done blocks whose chunks are missing.
    Verify {
        /// The shared store (for example OUT/embeddings.zarr).
        store: PathBuf,
    },
    /// K-means on pixel-period embeddings and on trajectories: maps as PNG and Zarr.
    Cluster {
        #[command(flatten)]
        io: MapIo,
        /// Embed INPUT with this encoder first (a folder, `presto:PATH` or `galileo:DIR` as for
        /// `embed`); without it INPUT is an embeddings store written by `sits embed`.
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// Number of clusters.
        #[arg(long, default_value_t = 6)]
        k: usize,
        /// Seed of k-means (of its first run; run r uses seed + r).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// k-means runs from different seedings; the one of lowest inertia is kept.
        #[arg(long, default_value_t = 10)]
        restarts: usize,
        /// Fit the centroids once on a sample of the embeddings store INPUT and save
        /// them as OUT/cluster_model.json, for the shards to assign with.
        #[arg(long)]
        fit: bool,
        /// Pixel-periods in the sample of --fit.
        #[arg(long, default_value_t = 50_000)]
        sample: usize,
        /// Assign shard i of n (0-based) of the embeddings store INPUT to the
        /// centroids of OUT/cluster_model.json, into OUT/clusters.zarr shared by every
        /// worker; without it, SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX with
        /// SITS_SHARD_COUNT pick the shard when set.
        #[arg(long)]
        shard: Option<String>,
    },
    /// Change scores between consecutive periods: maps as PNG and Zarr.
    Changes {
        #[command(flatten)]
        io: MapIo,
        /// Embed INPUT with this encoder first (a folder, `presto:PATH` or `galileo:DIR` as for
        /// `embed`); without it INPUT is an embeddings store written by `sits embed`.
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// Score shard i of n (0-based) of the embeddings store INPUT into
        /// OUT/changes.zarr shared by every worker; without it, the scheduler's
        /// variables pick the shard when set (as for `embed`).
        #[arg(long)]
        shard: Option<String>,
    },
    /// Class maps from a linear probe trained on labelled points.
    Classify {
        #[command(flatten)]
        io: MapIo,
        /// The encoder folder, `presto:PATH` or `galileo:DIR` as for `embed` (not needed by a shard:
        /// the probe is in OUT/probe_model.json).
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// Labelled points: a table in longitude/latitude (.csv or .geojson with
        /// longitude, latitude, start_date, end_date, label and optionally id and
        /// split), placed on the cube through its CRS, or a labelled sample set (its
        /// `split` column marks test points); without it,
        /// the labelled pixels of the cube folder's samples.csv.
        #[arg(long)]
        points: Option<PathBuf>,
        /// Train the probe once on --points (embedded with --encoder) and save it as
        /// OUT/probe_model.json, for the shards to predict with; INPUT is the
        /// embeddings store the shards will read.
        #[arg(long)]
        fit: bool,
        /// Predict shard i of n (0-based) of the embeddings store INPUT with
        /// OUT/probe_model.json, into OUT/classes.zarr shared by every worker;
        /// without it, the scheduler's variables pick the shard when set.
        #[arg(long)]
        shard: Option<String>,
    },
    /// Segmentation of a cube folder with a per-pixel label layer and a split layer:
    /// self-supervised U-BARN + head, its random-init control, U-TAE from scratch and
    /// a raw per-pixel probe, scored on the test pixels.
    Segment(SegmentArgs),
    /// The few-label experiment: pretrain, probe at 1/5/10/100 % of the labels
    /// against raw series and a random encoder, fine-tune.
    Experiment {
        /// A labelled sample set with a split column (default: the bundled Mato
        /// Grosso series), or a cube labelled by --points.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Labelled points in longitude/latitude (.csv or .geojson, with a split
        /// column marking test points) placed on the cube --data: the series of each
        /// point's pixel over its dates.
        #[arg(long)]
        points: Option<PathBuf>,
        /// bert, simclr, dino or alise.
        #[arg(long, default_value = "bert")]
        method: Method,
        /// Pretraining epochs.
        #[arg(long, default_value_t = 60)]
        epochs: usize,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Report folder.
        #[arg(long, default_value = "out/experiment")]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
pub(crate) struct SegmentArgs {
    /// A cube folder holding the label and split layers (`.npy`, height x width).
    pub(crate) input: PathBuf,
    /// The output folder.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// The layer of per-pixel class ids (for example `lulc` for lulc.npy).
    #[arg(long)]
    pub(crate) labels: String,
    /// The layer of per-pixel splits: 1 train, 2 test, anything else unused.
    #[arg(long)]
    pub(crate) split: String,
    /// The class ids to evaluate, in class order (comma-separated); other ids are
    /// ignored. Default: every id >= 0, named from metadata.json.
    #[arg(long, value_delimiter = ',')]
    pub(crate) classes: Option<Vec<i64>>,
    /// U-BARN pretraining epochs.
    #[arg(long, default_value_t = 10)]
    pub(crate) epochs: usize,
    /// U-TAE training epochs.
    #[arg(long, default_value_t = 12)]
    pub(crate) utae_epochs: usize,
    /// Fine-tuning epochs of the pretrained U-BARN and its head (0: no fine-tuned
    /// model).
    #[arg(long, default_value_t = 1)]
    pub(crate) finetune_epochs: usize,
    /// Keep the dates where at least this fraction of the image is cloud-free.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) min_clear: f64,
    /// Weight every supervised model's loss by class ("balanced" weights of the
    /// training pixels), for rare classes that the mIoU counts as much as common ones.
    #[arg(long)]
    pub(crate) class_balanced: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

/// Input and output of the map commands.
#[derive(Args, Debug)]
pub(crate) struct MapIo {
    /// The input.
    pub(crate) input: PathBuf,
    /// The output folder (created; an existing one must be empty or made by sits).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// The patch of a PASTIS folder.
    #[arg(long)]
    pub(crate) patch: Option<u64>,
    /// Replace outputs written by sits before.
    #[arg(long)]
    pub(crate) overwrite: bool,
    #[command(flatten)]
    pub(crate) rasters: RasterArgs,
}

/// How a folder of GeoTIFFs is read (one file per band and date).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct RasterArgs {
    /// File-name pattern of a folder of GeoTIFFs, without the extension, with {band}
    /// and {date} fields (default: the R sits naming
    /// {satellite}_{sensor}_{tile}_{band}_{date}).
    #[arg(long)]
    pub(crate) pattern: Option<String>,
    /// Bands of a folder of GeoTIFFs to use, comma-separated, in this order
    /// (default: every band but the cloud layer).
    #[arg(long, value_delimiter = ',')]
    pub(crate) bands: Option<Vec<String>>,
    /// The cloud layer of a folder of GeoTIFFs (default: a layer named CMASK or SCL,
    /// with its preset values; `none` turns masking off).
    #[arg(long)]
    pub(crate) cloud_band: Option<String>,
    /// Values of --cloud-band that mark an unusable observation, comma-separated
    /// (default: the preset of CMASK or SCL).
    #[arg(long, value_delimiter = ',')]
    pub(crate) cloud_values: Option<Vec<f64>>,
    /// STAC input: the target CRS (EPSG:<code> or a PROJ string; default: the first
    /// item's).
    #[arg(long)]
    pub(crate) crs: Option<String>,
    /// STAC input: the pixel size in target units (default: the finest band's).
    #[arg(long)]
    pub(crate) resolution: Option<f64>,
    /// STAC input: the area, lon_min,lat_min,lon_max,lat_max in WGS 84 degrees
    /// (default: every item's footprint).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub(crate) bbox: Option<Vec<f64>>,
    /// STAC input: leave out items above this eo:cloud_cover (percent).
    #[arg(long)]
    pub(crate) max_cloud_cover: Option<f64>,
    /// STAC input: regular time steps of this many days, each the median of its
    /// clear observations (default: one date per day with an item).
    #[arg(long)]
    pub(crate) step_days: Option<u32>,
    /// STAC input: bilinear, average (for a coarser grid) or nearest; the cloud
    /// layer is always nearest.
    #[arg(long, default_value = "bilinear", value_parser = parse_resampling)]
    pub(crate) resampling: sits_data::stac::Resampling,
}

pub(crate) fn parse_resampling(s: &str) -> Result<sits_data::stac::Resampling, String> {
    use sits_data::stac::Resampling;
    match s {
        "bilinear" => Ok(Resampling::Bilinear),
        "average" => Ok(Resampling::Average),
        "nearest" => Ok(Resampling::Nearest),
        o => Err(format!("{o:?}: expected bilinear, average or nearest")),
    }
}

impl RasterArgs {
    pub(crate) fn options(&self) -> Res<RasterFolderOptions> {
        let cloud = match (&self.cloud_band, &self.cloud_values) {
            (None, None) => None,
            (Some(b), _) if b.eq_ignore_ascii_case("none") => Some(CloudMask {
                band: String::new(),
                invalid: Vec::new(),
            }),
            (Some(b), Some(v)) => Some(CloudMask {
                band: b.clone(),
                invalid: v.clone(),
            }),
            (Some(b), None) => Some(CloudMask::preset(b).ok_or_else(|| {
                format!("--cloud-band {b}: no preset for this layer; give its --cloud-values")
            })?),
            (None, Some(_)) => return Err("--cloud-values needs --cloud-band".into()),
        };
        let bbox = match self.bbox.as_deref() {
            None => None,
            Some(&[a, b, c, d]) => Some([a, b, c, d]),
            Some(v) => return Err(format!("--bbox takes 4 numbers, got {}", v.len()).into()),
        };
        Ok(RasterFolderOptions {
            pattern: self.pattern.clone(),
            bands: self.bands.clone(),
            cloud,
            stac: sits_data::stac::StacGrid {
                crs: self.crs.clone(),
                resolution: self.resolution,
                bounds: None,
                bbox,
                max_cloud_cover: self.max_cloud_cover,
                step_days: self.step_days,
                resampling: self.resampling,
            },
        })
    }
}

#[derive(Args, Debug)]
pub(crate) struct PretrainArgs {
    /// The input: a cube (cut into periods) or a sample set.
    pub(crate) input: PathBuf,
    #[command(flatten)]
    pub(crate) rasters: RasterArgs,
    /// The encoder folder to write.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// The patch of a PASTIS folder.
    #[arg(long)]
    pub(crate) patch: Option<u64>,
    /// bert (masked reconstruction), simclr, dino or alise (aligned vectors).
    #[arg(long, default_value = "bert")]
    pub(crate) method: Method,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    pub(crate) epochs: usize,
    /// Seed of weights, batches and masks.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Month (1-12) on whose first day each period starts (9: September).
    #[arg(long, default_value_t = 1)]
    pub(crate) start_month: u32,
    /// Dates per period (default: the most common number).
    #[arg(long)]
    pub(crate) dates: Option<usize>,
    /// Keep periods of any number of dates (irregular acquisitions; needs
    /// `--pooling mean`).
    #[arg(long)]
    pub(crate) any_length: bool,
    /// flatten (per-date outputs side by side) or mean.
    #[arg(long, default_value = "flatten", value_parser = parse_pooling)]
    pub(crate) pooling: PoolingChoice,
    /// Encoder width.
    #[arg(long, default_value_t = 64)]
    pub(crate) d_model: usize,
    /// Encoder layers.
    #[arg(long, default_value_t = 2)]
    pub(crate) layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub(crate) heads: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) lr: f64,
    /// Pretrain on at most this many series, spread over the input.
    #[arg(long)]
    pub(crate) max_series: Option<usize>,
    /// Replace an encoder saved in OUT before.
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Continue the pretraining of Presto instead (`presto:PATH`, see
    /// `sits embed`): its own masked reconstruction on INPUT's pixels, written to
    /// OUT as presto.safetensors (use it as `presto:OUT/presto.safetensors`). The
    /// model's options set the bands and periods; --method and the width options
    /// do not apply. A learning rate of about 1e-4 suits it.
    #[arg(long)]
    pub(crate) from: Option<PathBuf>,
    /// With --from: resume from the last checkpoint in OUT.
    #[arg(long)]
    pub(crate) resume: bool,
}

pub(crate) fn parse_pooling(s: &str) -> Result<PoolingChoice, String> {
    match s {
        "flatten" => Ok(PoolingChoice::Flatten),
        "mean" => Ok(PoolingChoice::Mean),
        o => Err(format!("{o:?}: expected flatten or mean")),
    }
}
