//! Land-cover segmentation of the bundled Sentinel-2 NDVI cube of Slovenia
//! (101 x 100 pixels at 10 m, 68 dates 2015-2017, cloud masks) with a block split
//! (5 test blocks of about 20 x 20 pixels, one per block row and column).
//!
//! Four models, scored on the test blocks with OA and mIoU over forest,
//! grassland, shrubland and artificial surface:
//! 1. **U-BARN, self-supervised.** The U-Net + transformer encoder is pretrained
//!    with masked reconstruction on random patches of the whole cube, every pixel
//!    and date and no label: whole dates of a patch are hidden (replaced by another
//!    date) and their clear pixels are predicted. The encoder is then frozen and a
//!    segmentation head (a 1x1 projection of the concatenated per-date features, a
//!    3x3 and a 1x1 convolution)
//!    is trained on the train blocks. The same head on the encoder at its random
//!    initialisation is the control.
//! 2. **U-BARN, fine-tuned**: the pretrained encoder and the head just trained on
//!    it, trained on together with a small rate on labelled patches of the train
//!    blocks with every date (linear probing, then fine-tuning; `--finetune-epochs`).
//! 3. **U-TAE from scratch**, trained on the same labelled patches.
//! 4. **A per-pixel linear probe** on the raw NDVI series (clouds filled by linear
//!    interpolation in time).
//! 5. With `--published presto:PATH` or `--published galileo:DIR` (repeatable): the
//!    same per-pixel probe on a published encoder's embeddings, each pixel's
//!    calendar-year embeddings side by side.
//!
//! Dates where less than `--min-clear` of the image is cloud-free are dropped.
//! Inputs are NDVI standardised over the clear observations; cloudy
//! observations are zero and flagged invalid.
//!
//! Writes `maps.png` (reference, the U-BARN SSL, fine-tuned, U-TAE and raw
//! predictions, the split), `loss.png`,
//! `report.md`, `results.json` and each model's class map as a Zarr store to `--out`.
//! The job itself is `sits::tasks::segment`; this example maps the Slovenia land-cover
//! ids to the four evaluated classes.
//!
//! ```text
//! cargo run --release --example segmentation [-- --epochs N --seed S --out DIR]
//! ```

use std::path::PathBuf;

use clap::Parser;
use ndarray::Array2;
use sits::sits_data::datasets::{self, SloveniaNdvi};
use sits::sits_data::io_util::prepare_run_dir;
use sits::sits_models::UbarnConfig;
use sits::tasks::segment::{segment_with, table, write_outputs, SegmentConfig, SegmentationInput};

/// U-BARN (self-supervised) vs U-TAE (from scratch) vs raw per-pixel probe.
#[derive(Parser, Debug)]
struct Args {
    /// U-BARN pretraining epochs (one epoch = every patch of the grid once).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// U-TAE training epochs on the labelled patches. 40 was chosen with
    /// `--utae-validation` (U-TAE's mIoU on validation cells at the end of its
    /// schedule: 0.443 with 12 epochs, 0.426 with 24, 0.465 with 40; seed 0).
    #[arg(long, default_value_t = 40)]
    utae_epochs: usize,
    /// Fine-tuning epochs of the pretrained U-BARN and its frozen-trained head on
    /// labelled patches with every date; 0 skips the fine-tuned model. 1 epoch at
    /// rate 2e-5 was chosen with `--utae-validation` (validation mIoU 0.5787 against
    /// 0.5465 for the head on the frozen encoder; 2 epochs 0.5668, 5 epochs 0.5503;
    /// rate 1e-4 never beat the frozen head; seed 0).
    #[arg(long, default_value_t = 1)]
    finetune_epochs: usize,
    /// Peak learning rate of fine-tuning.
    #[arg(long, default_value_t = 2e-5)]
    finetune_lr: f64,
    /// Full-image steps of the segmentation head on the frozen U-BARN.
    #[arg(long, default_value_t = 150)]
    head_steps: usize,
    /// Patch side of U-BARN pretraining (a multiple of 4).
    #[arg(long, default_value_t = 16)]
    pretrain_patch: usize,
    /// Patch side of U-TAE training (a multiple of 8).
    #[arg(long, default_value_t = 32)]
    patch: usize,
    /// Random subset of dates per patch while training either model (inference
    /// always uses every kept date). Attention cost grows with its square.
    #[arg(long, default_value_t = 16)]
    train_dates: usize,
    /// Keep the dates where at least this fraction of the image is cloud-free.
    #[arg(long, default_value_t = 0.05)]
    min_clear: f64,
    /// Skip pretraining and load the U-BARN weights from this safetensors file (as
    /// written to `ubarn_pretrained.safetensors` in the output folder by a run).
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// Hold out validation cells of the supervised models' training pixels and
    /// print U-TAE's and the fine-tuned U-BARN's validation mIoU after every epoch
    /// and every model's at the end (how `--utae-epochs`, `--finetune-epochs` and
    /// the other settings were chosen; `--utae-epochs 0` skips U-TAE's training).
    #[arg(long)]
    utae_validation: bool,
    /// Weight every supervised model's loss by class ("balanced" weights of the
    /// training pixels): heads, fine-tuning, U-TAE and the raw probe alike.
    #[arg(long)]
    class_balanced: bool,
    /// The U-BARN encoder: `small` (widths 16/32/32, d_model 32, 2 pre-norm
    /// layers: the default, what the result line was measured with) or
    /// `published` (`UbarnConfig::preset`: the sizes of Dumeur et al.'s public
    /// configuration, widths 64/64/64/128, d_model 64, 3 post-norm layers, dropout
    /// 0.1). On the validation cells the published sizes scored below the small
    /// ones (head on the frozen encoder, seeds 0 and 1: 0.5036 / 0.5117 against
    /// 0.5307 / 0.5296) and took about 3 times as long (pretraining and head,
    /// seed 1: 256 s against 80 s).
    #[arg(long, default_value = "small")]
    ubarn: String,
    /// Also a per-pixel probe on the embeddings of this published encoder
    /// (`presto:PATH` or `galileo:DIR`, options after `?` as for `sits embed`;
    /// repeatable): each pixel's calendar-year embeddings side by side.
    #[arg(long)]
    published: Vec<String>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/segmentation")]
    out: PathBuf,
}

/// The evaluated land-cover ids of the dataset, in class-index order.
const CLASS_IDS: [i64; 4] = [2, 3, 4, 8];
const NAMES: [&str; 4] = ["forest", "grassland", "shrubland", "artificial"];
const COLORS: [[u8; 3]; 4] = [[27, 94, 32], [174, 213, 129], [191, 144, 0], [211, 47, 47]];

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let cfg = SegmentConfig {
        epochs: args.epochs,
        utae_epochs: args.utae_epochs,
        finetune_epochs: args.finetune_epochs,
        finetune_lr: args.finetune_lr,
        head_steps: args.head_steps,
        pretrain_patch: args.pretrain_patch,
        patch: args.patch,
        train_dates: args.train_dates,
        min_clear: args.min_clear,
        encoder: args.encoder.clone(),
        save_encoder: Some(args.out.join("ubarn_pretrained.safetensors")),
        seed: args.seed,
        utae_validation: args.utae_validation,
        class_balanced: args.class_balanced,
        ..SegmentConfig::default()
    };
    let cfg = match args.ubarn.as_str() {
        "small" => cfg,
        "published" => SegmentConfig {
            ubarn: UbarnConfig::preset(1),
            ..cfg
        },
        other => {
            return Err(format!("--ubarn {other}: expected `small` or `published`").into());
        }
    };
    let dir = sits::bundled_data_dir()?.join(datasets::SLOVENIA_NDVI);
    let slo = SloveniaNdvi::load(&dir)?;
    // class index of a land-cover id; -1 for unlabelled and unevaluated classes
    let labels = slo.lulc.mapv(|id| {
        CLASS_IDS
            .iter()
            .position(|&c| c == id)
            .map_or(-1, |i| i as i64)
    });
    let split: Array2<u8> = slo.split.mapv(|s| u8::try_from(s).unwrap_or(0));
    let input = SegmentationInput {
        cube: slo.cube.clone(),
        labels,
        split,
        class_names: NAMES.iter().map(|s| s.to_string()).collect(),
        colors: COLORS.to_vec(),
    };
    prepare_run_dir(&args.out)?;
    println!(
        "slovenia: U-BARN pretraining on patches of {p} x {p} x {} random dates for {} epochs, \
         U-TAE for {} epochs, raw probe",
        args.train_dates,
        args.epochs,
        args.utae_epochs,
        p = args.pretrain_patch
    );
    let dev = candle_core::Device::Cpu;
    let mut extra = Vec::new();
    for arg in &args.published {
        extra.push(published_rows(arg, &slo.cube, &dev)?);
    }
    let s = segment_with(&input, &cfg, &extra, &dev)?;
    println!(
        "{} of {} dates kept (>= {:.0} % clear), {} train and {} test pixels",
        s.dates_kept.0,
        s.dates_kept.1,
        100.0 * args.min_clear,
        s.pixels.0,
        s.pixels.1
    );
    for (epoch, miou) in &s.utae_val_curve {
        println!("utae_validation: epoch {epoch:.0} miou {miou:.4}");
    }
    for (epoch, miou) in &s.finetune_val_curve {
        println!("finetune_validation: epoch {epoch:.0} miou {miou:.4}");
    }
    for (model, miou) in &s.validation {
        println!("validation: {model}: miou {miou:.4}");
    }
    println!(
        "\ntest blocks (IoU per class):\n{}",
        table(&s, &input.class_names)
    );
    write_outputs(
        &args.out,
        &input,
        &cfg,
        &s,
        "Colours: forest dark green, grassland light green, shrubland ochre, artificial red, black unlabelled.",
    )?;
    println!(
        "outputs in {}: maps.png (reference | U-BARN | U-BARN fine-tuned | U-TAE | raw | split), loss.png, report.md, results.json, <model>.zarr ({:.0} s in all)",
        args.out.display(),
        s.seconds
    );
    println!("{}", s.result_line());
    Ok(())
}

/// A name and one feature row per pixel.
type PixelFeatures = (String, Vec<Vec<f32>>);

/// A published encoder's per-pixel features on `cube`: each pixel's embeddings of
/// the cube's calendar years side by side (zeros for a year without any), named
/// after the model.
fn published_rows(
    arg: &str,
    cube: &sits::sits_data::Datacube,
    dev: &candle_core::Device,
) -> Result<PixelFeatures, Box<dyn std::error::Error>> {
    use sits::tasks::embed::embed_cube;
    use sits::tasks::encoder::TaskEncoder;
    use sits::tasks::input::Input;
    let t0 = std::time::Instant::now();
    let enc = TaskEncoder::load(std::path::Path::new(arg), dev)?;
    let (_, _, h, w) = cube.shape();
    let input = Input::Cube {
        cube: Box::new(cube.clone()),
        labels: Vec::new(),
        class_names: Vec::new(),
    };
    let (e, _) = embed_cube(&enc, &input, "slovenia cube", dev)?;
    let mut periods: Vec<_> = e.grid.index.iter().map(|p| p.period).collect();
    periods.sort_unstable();
    periods.dedup();
    let d = enc.view().embedding_len();
    let mut rows = vec![vec![0f32; periods.len() * d]; h * w];
    for (p, row) in e.grid.index.iter().zip(&e.rows) {
        let k = periods.binary_search(&p.period).unwrap_or(0);
        rows[p.row * w + p.col][k * d..(k + 1) * d].copy_from_slice(row);
    }
    let name = format!("{} per-pixel probe", arg.split(':').next().unwrap_or(arg));
    println!(
        "{name}: {} pixel-periods of {} years embedded in {:.1} s",
        e.rows.len(),
        periods.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok((name, rows))
}

fn main() {
    sits::sits_core::memory::reuse_large_allocations();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
