//! Land-cover segmentation of the bundled Sentinel-2 NDVI cube of Slovenia
//! (101 x 100 pixels at 10 m, 68 dates 2015-2017, cloud masks) with a block split
//! (5 test blocks of about 20 x 20 pixels, one per block row and column).
//!
//! Three models, scored on the test blocks with OA and mIoU over forest,
//! grassland, shrubland and artificial surface:
//! 1. **U-BARN, self-supervised.** The U-Net + transformer encoder is pretrained
//!    with masked reconstruction on random patches of the whole cube, every pixel
//!    and date and no label: whole dates of a patch are hidden (replaced by another
//!    date) and their clear pixels are predicted. The encoder is then frozen and a
//!    segmentation head (temporal attention pooling, a 3x3 and a 1x1 convolution)
//!    is trained on the train blocks. The same head on the encoder at its random
//!    initialisation is the control.
//! 2. **U-TAE from scratch**, trained on labelled patches of the train blocks.
//! 3. **A per-pixel linear probe** on the raw NDVI series (clouds filled by linear
//!    interpolation in time).
//!
//! Dates where less than `--min-clear` of the image is cloud-free are dropped.
//! Inputs are NDVI standardised over the clear observations; cloudy
//! observations are zero and flagged invalid.
//!
//! Writes `maps.png` (reference, the three predictions, the split), `loss.png`,
//! `report.md` and `results.json` to `--out`.
//!
//! ```text
//! cargo run --release --example segmentation [-- --epochs N --seed S --out DIR]
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use ndarray::{Array2, Array3, Array4};
use sits::report::{line_chart, markdown_table, write_atomic};
use sits::sits_core::io::IfExists;
use sits::sits_core::Augmentation;
use sits::sits_core::ObjectiveOutput;
use sits::sits_data::augment::{Compose, DateMasking, FlipRotate, ResampleDates};
use sits::sits_data::datasets::{self, SloveniaNdvi};
use sits::sits_data::gapfill::fill_cube;
use sits::sits_data::loader::CubePatches;
use sits::sits_data::loader::Sample;
use sits::sits_data::norm::NormStats;
use sits::sits_data::{Loader, LoaderConfig};
use sits::sits_models::io::{load_weights, save_safetensors};
use sits::sits_models::nn::seeded_init;
use sits::sits_models::nn::{linear, Conv2d, PaddingMode};
use sits::sits_models::utae::Norm;
use sits::sits_models::{Ctx, Ubarn, UbarnConfig, Utae, UtaeConfig};
use sits::sits_repr::render::RgbImage;
use sits::sits_ssl::bert::Corruption;
use sits::sits_ssl::finetune::cross_entropy_ignore;
use sits::sits_ssl::metrics::ConfusionMatrix;
use sits::sits_ssl::optim::AdamW;
use sits::sits_ssl::probe::{features, LinearProbe, ProbeConfig};
use sits::sits_ssl::train::{FnObjective, StepRecord, TrainConfig, Trainer};
use sits::sits_ssl::ubarn::CubeMaskedReconstruction;
use sits::{Datacube, SitsBatch};

/// U-BARN (self-supervised) vs U-TAE (from scratch) vs raw per-pixel probe.
#[derive(Parser, Debug)]
struct Args {
    /// U-BARN pretraining epochs (one epoch = every patch of the grid once).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// U-TAE training epochs on the labelled patches.
    #[arg(long, default_value_t = 12)]
    utae_epochs: usize,
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
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/segmentation")]
    out: PathBuf,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The evaluated land-cover ids of the dataset, in class-index order.
const CLASS_IDS: [i64; 4] = [2, 3, 4, 8];
const NAMES: [&str; 4] = ["forest", "grassland", "shrubland", "artificial"];

/// Class index of a land-cover id, -1 for unlabelled and unevaluated classes.
fn class_of(lulc: i64) -> i64 {
    CLASS_IDS
        .iter()
        .position(|&c| c == lulc)
        .map_or(-1, |i| i as i64)
}

fn class_color(c: i64) -> [u8; 3] {
    match c {
        0 => [27, 94, 32],    // forest
        1 => [174, 213, 129], // grassland
        2 => [191, 144, 0],   // shrubland
        3 => [211, 47, 47],   // artificial
        _ => [0, 0, 0],
    }
}

fn label_image(map: &Array2<i64>) -> RgbImage {
    let (h, w) = map.dim();
    let mut img = RgbImage::new(w, h);
    for ((y, x), &c) in map.indexed_iter() {
        img.set(x, y, class_color(c));
    }
    img.upscale(3)
}

/// The cube with rows and columns repeated at the bottom and right edges up to
/// `hp x wp` (the models need sides divisible by their down-sampling factor).
fn pad_edges(cube: &Datacube, hp: usize, wp: usize) -> Res<Datacube> {
    let (t, c, h, w) = cube.shape();
    let v = cube.values();
    let values = Array4::from_shape_fn((t, c, hp, wp), |(a, b, y, x)| {
        v[[a, b, y.min(h - 1), x.min(w - 1)]]
    });
    let valid = cube.validity();
    let valid = Array3::from_shape_fn((t, hp, wp), |(a, y, x)| {
        valid[[a, y.min(h - 1), x.min(w - 1)]]
    });
    Ok(Datacube::new(values, cube.times().clone(), cube.bands().to_vec())?.with_valid(valid)?)
}

/// Argmax over classes of logits `(1, K, Hp, Wp)`, cropped to `h x w`.
fn argmax_map(logits: &Tensor, h: usize, w: usize) -> Res<Array2<i64>> {
    let (_, _, hp, wp) = logits.dims4()?;
    let am: Vec<u32> = logits.argmax(1)?.flatten_all()?.to_vec1()?;
    Ok(Array2::from_shape_fn((h, w), |(y, x)| {
        am[y * wp + x] as i64
    }))
    .and_then(|m| {
        if h <= hp && w <= wp {
            Ok(m)
        } else {
            Err(format!("logits {hp} x {wp} smaller than the image {h} x {w}").into())
        }
    })
}

/// Scores of one prediction map on the test pixels.
struct Scores {
    cm: ConfusionMatrix,
    seconds: f64,
}

fn score(pred: &Array2<i64>, test_truth: &Array2<i64>, seconds: f64) -> Res<Scores> {
    let t: Vec<i64> = test_truth.iter().copied().collect();
    let p: Vec<i64> = pred.iter().copied().collect();
    Ok(Scores {
        cm: ConfusionMatrix::from_labels(CLASS_IDS.len(), &t, &p, Some(-1))?,
        seconds,
    })
}

/// A segmentation head on frozen per-date U-BARN maps `(1, T, d, H, W)`: the `T`
/// per-date representations of a pixel are concatenated (a mean over dates would
/// wash out the timing of the phenology), projected to 64 channels by a 1x1
/// convolution (run as one matmul), then a 3x3 convolution with ReLU and a 1x1
/// convolution to the classes, without batch normalisation (every step sees the
/// same single image). Trained with full-image steps on the train labels; returns
/// the logits of the whole image and the loss per step.
fn train_head(
    per_date: &Tensor,
    train_labels: &Tensor,
    steps: usize,
    seed: u64,
) -> Res<(Tensor, Vec<f64>)> {
    let dev = per_date.device();
    let (b, t, d, h, w) = per_date.dims5()?;
    // (B, T, d, H, W) -> rows (B·H·W, T·d): the 1x1 projection as one matmul.
    let rows = per_date
        .permute((0, 3, 4, 1, 2))?
        .reshape((b * h * w, t * d))?
        .contiguous()?;
    let vm = VarMap::new();
    let ctx = Ctx::new(VarBuilder::from_varmap(&vm, DType::F32, dev));
    let proj = linear(t * d, 64, ctx.vb.pp("proj"))?;
    let conv = Conv2d::new(ctx.vb.pp("conv"), 64, 32, 3, 1, 1, PaddingMode::Reflect)?;
    let out = Conv2d::new(
        ctx.vb.pp("out"),
        32,
        CLASS_IDS.len(),
        1,
        1,
        0,
        PaddingMode::Zeros,
    )?;
    seeded_init(&vm, seed)?;
    let mut opt = AdamW::from_varmap(&vm, 1e-2)?;
    let forward = || -> candle_core::Result<Tensor> {
        let maps = proj
            .forward(&rows)?
            .relu()?
            .reshape((b, h, w, 64))?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        out.forward(&conv.forward(&maps)?.relu()?)
    };
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let (loss, _) = cross_entropy_ignore(&forward()?, train_labels)?;
        opt.backward_step(&loss, 3e-3)?;
        losses.push(loss.to_scalar::<f32>()? as f64);
    }
    Ok((forward()?, losses))
}

fn ubarn_config() -> UbarnConfig {
    UbarnConfig {
        input_dim: 1,
        encoder_widths: vec![16, 32, 32],
        decoder_widths: vec![16, 32, 32],
        d_model: 32,
        layers: 2,
        heads: 4,
        d_ff: 64,
        dropout: 0.0,
        period: 1000.0,
        pool_heads: 4,
    }
}

/// Shuffled patches with random flips and rotations and, with `dates`, a random
/// subset of that many dates per patch.
fn loader(
    source: CubePatches,
    batch_size: usize,
    dates: Option<usize>,
    args: &Args,
    cube: &Datacube,
) -> Res<Loader> {
    let cfg = LoaderConfig {
        batch_size,
        shuffle: true,
        seed: args.seed,
        reference: cube.times().as_slice()[0].date(),
        ..LoaderConfig::default()
    };
    let augment: Arc<dyn Augmentation<Sample>> = match dates {
        Some(len) => Arc::new(Compose::new(vec![
            Arc::new(ResampleDates { len }),
            Arc::new(FlipRotate),
        ])),
        None => Arc::new(FlipRotate),
    };
    Ok(Loader::new(Arc::new(source), cfg, Device::Cpu)?.with_augmentation(augment))
}

fn epoch_means(history: &[StepRecord], per_epoch: usize) -> Vec<(f64, f64)> {
    history
        .chunks(per_epoch.max(1))
        .enumerate()
        .map(|(e, c)| {
            (
                (e + 1) as f64,
                c.iter().map(|r| r.loss).sum::<f64>() / c.len() as f64,
            )
        })
        .collect()
}

fn run() -> Res<()> {
    let args = Args::parse();
    if args.patch == 0 || !args.patch.is_multiple_of(8) {
        return Err(format!("--patch {} must be a positive multiple of 8", args.patch).into());
    }
    if args.pretrain_patch == 0 || !args.pretrain_patch.is_multiple_of(4) {
        return Err(format!(
            "--pretrain-patch {} must be a positive multiple of 4",
            args.pretrain_patch
        )
        .into());
    }
    let dev = Device::Cpu;
    let total = Instant::now();
    let dir = sits::bundled_data_dir().join(datasets::SLOVENIA_NDVI);
    let slo = SloveniaNdvi::load(&dir)?;
    let (t_all, _, h, w) = slo.cube.shape();
    let validity = slo.cube.validity();
    let keep: Vec<usize> = (0..t_all)
        .filter(|&t| {
            let clear = validity
                .index_axis(ndarray::Axis(0), t)
                .iter()
                .filter(|&&v| v)
                .count();
            clear as f64 >= args.min_clear * (h * w) as f64
        })
        .collect();
    if keep.is_empty() {
        return Err(format!("no date is at least {} cloud-free", args.min_clear).into());
    }
    let mut cube = slo.cube.select_times(&keep)?;
    NormStats::of_cube(&cube, 1e-4)?.apply_cube(&mut cube)?;
    let t = keep.len();

    // Label maps in class indices: train pixels, test pixels, and every labelled one.
    let lab = slo.lulc.mapv(class_of);
    let only = |which: i64| {
        Array2::from_shape_fn((h, w), |(y, x)| {
            if slo.split[[y, x]] == which {
                lab[[y, x]]
            } else {
                -1
            }
        })
    };
    let (train_map, test_map) = (only(1), only(2));
    let count = |m: &Array2<i64>| m.iter().filter(|&&c| c >= 0).count();
    println!(
        "slovenia: {h} x {w} pixels, {t} of {t_all} dates kept (>= {:.0} % clear), {} train and {} test pixels",
        100.0 * args.min_clear,
        count(&train_map),
        count(&test_map)
    );
    sits::sits_data::io_util::prepare_run_dir(&args.out)?;

    // The whole image, padded to sides divisible by 8, for inference and the head.
    let (hp, wp) = (h.div_ceil(8) * 8, w.div_ceil(8) * 8);
    let reference = cube.times().as_slice()[0].date();
    let full = pad_edges(&cube, hp, wp)?.to_batch(reference, &dev)?;
    let padded_labels = |m: &Array2<i64>| -> Res<Tensor> {
        let v: Vec<i64> = (0..hp * wp)
            .map(|k| {
                let (y, x) = (k / wp, k % wp);
                if y < h && x < w {
                    m[[y, x]]
                } else {
                    -1
                }
            })
            .collect();
        Ok(Tensor::from_vec(v, (1, hp, wp), &dev)?)
    };
    let train_full = padded_labels(&train_map)?;

    // 1. U-BARN: masked-reconstruction pretraining on every pixel, no label.
    let build_ubarn = |vm: &VarMap| -> Res<(Ubarn, Ctx<'static>)> {
        let ctx = Ctx::new(VarBuilder::from_varmap(vm, DType::F32, &dev));
        let model = Ubarn::new(&ctx.pp("encoder"), ubarn_config())?;
        Ok((model, ctx))
    };
    let masking = DateMasking {
        ratio: 0.3,
        contiguous: false,
    };
    let vm = VarMap::new();
    let (ubarn, ctx) = build_ubarn(&vm)?;
    let mut obj =
        CubeMaskedReconstruction::new(&ubarn, ctx.vb.pp("pretext"), masking, Corruption::Permute)?;
    seeded_init(&vm, args.seed)?;
    let pre_patches = CubePatches::new(
        cube.clone(),
        None,
        args.pretrain_patch,
        args.pretrain_patch / 2,
    )?;
    let n_pre = pre_patches.origins().len();
    let pre_ld = loader(pre_patches, 8, Some(args.train_dates), &args, &cube)?;
    println!(
        "U-BARN pretraining: {n_pre} patches of {p} x {p} pixels x {} random dates, {} epochs",
        args.train_dates,
        args.epochs,
        p = args.pretrain_patch
    );
    let start = Instant::now();
    let mut pre_curve = Vec::new();
    if let Some(path) = &args.encoder {
        // Variables and BatchNorm statistics (of the U-Net decoder) alike.
        load_weights(path, &vm, &ctx.buffers).map_err(|e| format!("--encoder: {e}"))?;
        println!("  weights loaded from {}", path.display());
    } else {
        let mut tr = Trainer::new(
            TrainConfig {
                epochs: args.epochs,
                lr: 2e-3,
                min_lr: 1e-5,
                warmup_steps: 10,
                seed: args.seed,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
            &vm,
            &ctx.buffers,
            None,
        )?;
        tr.fit(&pre_ld, &mut obj)?;
        pre_curve = epoch_means(tr.history(), pre_ld.num_batches());
        let saved = args.out.join("ubarn_pretrained.safetensors");
        save_safetensors(&saved, &vm, &ctx.buffers, IfExists::Replace)?;
        println!(
            "  {:.0} s, reconstruction MSE {:.4} -> {:.4} (epoch means), weights in {}",
            start.elapsed().as_secs_f64(),
            pre_curve[0].1,
            pre_curve[pre_curve.len() - 1].1,
            saved.display()
        );
    }
    let pretrain_s = start.elapsed().as_secs_f64();

    let ubarn_map = |model: &Ubarn, seed: u64| -> Res<(Array2<i64>, Vec<f64>, f64)> {
        let start = Instant::now();
        // In chunks of 8 dates (U-Net) and 1,024 pixels (transformer), without a
        // graph: a whole-image `forward` keeps every activation (about 12 GB here).
        let out = model.infer(full.values(), &full.doy()?, full.pad_mask(), 8, 1024)?;
        let (logits, losses) = train_head(&out.per_date, &train_full, args.head_steps, seed)?;
        Ok((
            argmax_map(&logits, h, w)?,
            losses,
            start.elapsed().as_secs_f64(),
        ))
    };
    let (ubarn_pred, head_losses, head_s) = ubarn_map(&ubarn, args.seed + 10)?;
    let ubarn_scores = score(&ubarn_pred, &test_map, pretrain_s + head_s)?;
    println!(
        "  head: {} full-image steps in {head_s:.0} s, test mIoU {:.4}",
        args.head_steps,
        ubarn_scores.cm.miou()
    );

    // Control: the same head on the same encoder at its (seeded) initialisation.
    let vm0 = VarMap::new();
    let (ubarn0, ctx0) = build_ubarn(&vm0)?;
    let _decoder0 = CubeMaskedReconstruction::new(
        &ubarn0,
        ctx0.vb.pp("pretext"),
        masking,
        Corruption::Permute,
    )?;
    seeded_init(&vm0, args.seed)?;
    let (random_pred, _, random_s) = ubarn_map(&ubarn0, args.seed + 10)?;
    let random_scores = score(&random_pred, &test_map, random_s)?;
    println!(
        "U-BARN at random init + the same head: {random_s:.0} s, test mIoU {:.4}",
        random_scores.cm.miou()
    );

    // 2. U-TAE from scratch on labelled patches of the train blocks.
    let uvm = VarMap::new();
    let uctx = Ctx::new(VarBuilder::from_varmap(&uvm, DType::F32, &dev));
    let utae = Utae::new(
        &uctx.pp("utae"),
        UtaeConfig {
            input_dim: 1,
            encoder_widths: vec![16, 32, 32, 64],
            decoder_widths: vec![16, 32, 32, 64],
            out_conv: vec![32, CLASS_IDS.len()],
            encoder_norm: Norm::Group,
            n_head: 8,
            d_model: 64,
            d_k: 4,
            ..UtaeConfig::pastis()
        },
    )?;
    seeded_init(&uvm, args.seed + 20)?;
    let seg_ld = loader(
        CubePatches::new(
            cube.clone(),
            Some(train_map.clone()),
            args.patch,
            args.patch / 4,
        )?,
        4,
        Some(args.train_dates),
        &args,
        &cube,
    )?;
    let start = Instant::now();
    let mut utr = Trainer::new(
        TrainConfig {
            epochs: args.utae_epochs,
            lr: 2e-3,
            min_lr: 1e-5,
            warmup_steps: 10,
            seed: args.seed,
            checkpoint_every: 0,
            ..TrainConfig::default()
        },
        &uvm,
        &uctx.buffers,
        None,
    )?;
    // U-TAE's forward gives class logits directly (its own head): a loss written in place
    let mut seg = FnObjective::new("utae-segmentation", |b: &SitsBatch, step, _rng| {
        let labels = b
            .labels()
            .ok_or_else(|| candle_core::Error::Msg("unlabelled patch batch".into()))?;
        let (logits, _) = utae.forward(b.values(), b.days(), step.train)?;
        let (loss, accuracy) = cross_entropy_ignore(&logits, labels)?;
        Ok(ObjectiveOutput {
            loss,
            metrics: vec![("accuracy".into(), accuracy)],
        })
    });
    utr.fit(&seg_ld, &mut seg)?;
    let (logits, _) = utae.forward(full.values(), full.days(), false)?;
    let utae_pred = argmax_map(&logits, h, w)?;
    let utae_s = start.elapsed().as_secs_f64();
    let utae_scores = score(&utae_pred, &test_map, utae_s)?;
    let utae_curve = epoch_means(utr.history(), seg_ld.num_batches());
    println!(
        "U-TAE from scratch: {} epochs in {utae_s:.0} s, test mIoU {:.4}",
        args.utae_epochs,
        utae_scores.cm.miou()
    );

    // 3. Linear probe on each pixel's raw (gap-filled) series.
    let start = Instant::now();
    let mut filled = cube.clone();
    let report = fill_cube(&mut filled)?;
    let v = filled.values();
    let rows: Vec<Vec<f32>> = (0..h * w)
        .map(|k| (0..t).map(|ti| v[[ti, 0, k / w, k % w]]).collect())
        .collect();
    let train_idx: Vec<usize> = (0..h * w)
        .filter(|&k| train_map[[k / w, k % w]] >= 0)
        .collect();
    let xtr = features(
        &train_idx
            .iter()
            .map(|&k| rows[k].clone())
            .collect::<Vec<_>>(),
        &dev,
    )?;
    let ytr: Vec<usize> = train_idx
        .iter()
        .map(|&k| train_map[[k / w, k % w]] as usize)
        .collect();
    let probe = LinearProbe::fit(&xtr, &ytr, CLASS_IDS.len(), ProbeConfig::default())?;
    let all = probe.predict(&features(&rows, &dev)?)?;
    let raw_pred = Array2::from_shape_fn((h, w), |(y, x)| all[y * w + x] as i64);
    let raw_s = start.elapsed().as_secs_f64();
    let raw_scores = score(&raw_pred, &test_map, raw_s)?;
    println!(
        "raw per-pixel probe: {} pixel-dates filled, {raw_s:.1} s, test mIoU {:.4}",
        report.filled,
        raw_scores.cm.miou()
    );

    // Outputs.
    let rows_tbl: Vec<(&str, &Scores)> = vec![
        ("U-BARN SSL + head", &ubarn_scores),
        ("U-BARN random init + head", &random_scores),
        ("U-TAE from scratch", &utae_scores),
        ("raw per-pixel probe", &raw_scores),
    ];
    let mut header = vec!["model", "test OA", "test mIoU"];
    header.extend(NAMES.iter().copied());
    header.push("seconds");
    let table: Vec<Vec<String>> = rows_tbl
        .iter()
        .map(|(name, s)| {
            let mut r = vec![
                name.to_string(),
                format!("{:.4}", s.cm.overall_accuracy()),
                format!("{:.4}", s.cm.miou()),
            ];
            r.extend(s.cm.iou_per_class().iter().map(|v| format!("{v:.4}")));
            r.push(format!("{:.0}", s.seconds));
            r
        })
        .collect();
    let table = markdown_table(&header, &table);
    println!("\ntest blocks (IoU per class):\n{table}");

    let split_img = Array2::from_shape_fn((h, w), |(y, x)| match slo.split[[y, x]] {
        1 => 1, // train: light green
        2 => 3, // test: red
        _ => -1,
    });
    let reference_map = Array2::from_shape_fn((h, w), |(y, x)| {
        if slo.split[[y, x]] == 0 {
            -1
        } else {
            lab[[y, x]]
        }
    });
    let maps = out(&args.out, "maps.png");
    RgbImage::hstack(
        &[
            label_image(&reference_map),
            label_image(&ubarn_pred),
            label_image(&utae_pred),
            label_image(&raw_pred),
            label_image(&split_img),
        ],
        6,
    )
    .write_png(&maps)?;
    let loss_png = out(&args.out, "loss.png");
    let head_curve: Vec<(f64, f64)> = head_losses
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            (
                (i + 1) as f64 * args.epochs as f64 / args.head_steps.max(1) as f64,
                l,
            )
        })
        .collect();
    line_chart(
        &loss_png,
        "training losses (head steps scaled to epochs)",
        "epoch",
        "loss",
        &[
            ("U-BARN masked reconstruction (MSE)", &pre_curve),
            ("U-TAE cross-entropy", &utae_curve),
            ("U-BARN head cross-entropy", &head_curve),
        ],
    )?;
    let results = serde_json::json!({
        "dates_kept": t,
        "train_pixels": count(&train_map),
        "test_pixels": count(&test_map),
        "args": format!("{args:?}"),
        "models": rows_tbl.iter().map(|(name, s)| serde_json::json!({
            "model": name,
            "oa": s.cm.overall_accuracy(),
            "miou": s.cm.miou(),
            "iou": NAMES.iter().zip(s.cm.iou_per_class()).map(|(n, v)| (n.to_string(), v)).collect::<std::collections::BTreeMap<_, _>>(),
            "confusion": s.cm.rows(),
            "seconds": s.seconds,
        })).collect::<Vec<_>>(),
        "total_seconds": total.elapsed().as_secs_f64(),
    });
    write_atomic(
        &out(&args.out, "results.json"),
        serde_json::to_string_pretty(&results)?.as_bytes(),
    )?;
    let md = format!(
        "# Segmentation of the Slovenia NDVI cube\n\n{t} dates, {} train and {} test pixels (test blocks).\n\n{table}\n\n![maps](maps.png)\n\nPanels: reference, U-BARN SSL, U-TAE, raw probe, split (green train, red test).\nColours: forest dark green, grassland light green, shrubland ochre, artificial red, black unlabelled.\n\n![loss](loss.png)\n\nArguments: `{args:?}`\n",
        count(&train_map),
        count(&test_map),
    );
    write_atomic(&out(&args.out, "report.md"), md.as_bytes())?;
    println!(
        "outputs in {}: maps.png (reference | U-BARN | U-TAE | raw | split), loss.png, report.md, results.json ({:.0} s in all)",
        args.out.display(),
        total.elapsed().as_secs_f64()
    );
    println!(
        "result: ubarn_miou={:.4} utae_miou={:.4} raw_miou={:.4}",
        ubarn_scores.cm.miou(),
        utae_scores.cm.miou(),
        raw_scores.cm.miou()
    );
    Ok(())
}

fn out(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
