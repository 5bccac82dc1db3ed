//! Deep-STaR planar images on the bundled dtwSat MODIS cube: the 5 x 5
//! neighbourhood of every labelled pixel-year, its 25 pixels laid out along a
//! Hilbert curve as the rows of a `(6 bands, 25 pixels, 23 dates)` image, and a
//! small CNN trained on those images, against a pixel transformer trained on the
//! centre pixel's series alone and a linear probe on the raw centre series (same
//! train/test split, grouped by pixel). Writes PNGs of a few planar images.
//!
//! ```text
//! cargo run --release --example planar [-- --epochs N --seed S --out DIR]
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use ndarray::{s, Array2};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sits::sits_data::datasets::{self, DtwsatCube};
use sits::sits_data::gapfill::fill_cube;
use sits::sits_data::norm::NormStats;
use sits::sits_data::samples::Series;
use sits::sits_data::{Loader, LoaderConfig, SampleSet, Split};
use sits::sits_models::nn::linear;
use sits::sits_models::nn::seeded_init;
use sits::sits_models::{Ctx, PixelTransformer, PixelTransformerConfig, SmallResNet};
use sits::sits_repr::planar::{curve_order, planar_image, Curve};
use sits::sits_repr::render::{Colormap, RgbImage};
use sits::sits_ssl::embed::{embed, PooledPixelEncoder, Pooling};
use sits::sits_ssl::finetune::Classification;
use sits::sits_ssl::metrics::ConfusionMatrix;
use sits::sits_ssl::optim::AdamW;
use sits::sits_ssl::probe::{features, label_fraction_probes, ProbeConfig};
use sits::sits_ssl::train::{TrainConfig, Trainer};

/// Planar images of labelled neighbourhoods: CNN vs pixel-series models.
#[derive(Parser, Debug)]
struct Args {
    /// Training epochs of both models.
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out/planar")]
    out: PathBuf,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const K: usize = 5;

fn oa(classes: usize, truth: &[usize], pred: &[usize]) -> Res<f64> {
    let t: Vec<i64> = truth.iter().map(|&c| c as i64).collect();
    let p: Vec<i64> = pred.iter().map(|&c| c as i64).collect();
    Ok(ConfusionMatrix::from_labels(classes, &t, &p, None)?.overall_accuracy())
}

fn run() -> Res<()> {
    let args = Args::parse();
    let mut d = DtwsatCube::load(&sits::bundled_data_dir().join(datasets::DTWSAT_CUBE))?;
    fill_cube(&mut d.cube)?;
    NormStats::of_cube(&d.cube, 1e-4)?.apply_cube(&mut d.cube)?;
    let (_, c, h, w) = d.cube.shape();
    let classes = d.class_names.len();
    let order = curve_order(Curve::Hilbert, K, K);

    // planar images and centre series of the labelled pixel-years with 23 dates
    let (mut imgs, mut centre, mut labels, mut split) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for smp in d.samples.iter().filter(|s| s.t_end - s.t_start == 22) {
        let Some(label) = smp.label else { continue };
        let r0 = smp.row.saturating_sub(K / 2).min(h - K);
        let c0 = smp.col.saturating_sub(K / 2).min(w - K);
        let values = d.cube.values();
        let region = values.slice(s![smp.t_start..=smp.t_end, .., r0..r0 + K, c0..c0 + K]);
        imgs.push(planar_image(region, &order)?);
        let px = d.cube.pixel_series(smp.row, smp.col)?;
        let idx: Vec<usize> = (smp.t_start..=smp.t_end).collect();
        centre.push(Series::new(
            px.values.slice(s![smp.t_start..=smp.t_end, ..]).to_owned(),
            px.times.select(&idx),
            None,
        )?);
        labels.push(label);
        split.push(smp.split.unwrap_or(Split::Train));
    }
    let n = imgs.len();
    let (tr, te): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| split[i] == Split::Train);
    println!(
        "{n} labelled pixel-years with 23 dates ({} train, {} test); planar images (C, N, T) = {:?}",
        tr.len(),
        te.len(),
        imgs[0].dim()
    );

    // PNGs: NDVI plane of one example per class
    sits::sits_data::io_util::prepare_run_dir(&args.out)?;
    let ndvi = d.cube.band_index("ndvi")?;
    let mut panels = Vec::new();
    for k in 0..classes {
        if let Some(i) = (0..n).find(|&i| labels[i] == k) {
            let plane: Array2<f32> = imgs[i].index_axis(ndarray::Axis(0), ndvi).to_owned();
            let img = RgbImage::from_array(plane.view(), Colormap::Viridis, None).upscale(8);
            let path = args.out.join(format!("planar_{}.png", d.class_names[k]));
            img.write_png(&path)?;
            panels.push(img);
        }
    }
    let panel = args.out.join("planar_per_class.png");
    RgbImage::hstack(&panels, 8).write_png(&panel)?;
    println!(
        "planar NDVI images (rows: 25 pixels in Hilbert order, columns: 23 dates), one per class: {}",
        panel.display()
    );

    let dev = Device::Cpu;
    let (k_, t) = (imgs[0].dim().1, imgs[0].dim().2);
    let stack = |idx: &[usize]| -> Res<Tensor> {
        let mut v = Vec::with_capacity(idx.len() * c * k_ * t);
        for &i in idx {
            v.extend(imgs[i].iter().copied());
        }
        Ok(Tensor::from_vec(v, (idx.len(), c, k_, t), &dev)?)
    };

    // 1. small CNN on planar images
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let ctx = Ctx::new(vb.pp("cnn"));
    let cnn = SmallResNet::new(&ctx, c, 16)?;
    let head = linear(cnn.output_dim(), classes, vb.pp("head"))?;
    seeded_init(&vm, 1000 + args.seed)?;
    let mut opt = AdamW::from_varmap(&vm, 0.01)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let start = std::time::Instant::now();
    for _ in 0..args.epochs {
        let mut order_tr = tr.clone();
        order_tr.shuffle(&mut rng);
        for chunk in order_tr.chunks(32) {
            let x = stack(chunk)?;
            let y = Tensor::from_vec(
                chunk.iter().map(|&i| labels[i] as u32).collect::<Vec<_>>(),
                chunk.len(),
                &dev,
            )?;
            let logits = head.forward(&cnn.forward(&x, true)?)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            opt.backward_step(&loss, 1e-3)?;
        }
    }
    let logits = head.forward(&cnn.forward(&stack(&te)?, false)?)?;
    let pred: Vec<usize> = logits
        .argmax(1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let truth: Vec<usize> = te.iter().map(|&i| labels[i]).collect();
    let cnn_oa = oa(classes, &truth, &pred)?;
    println!(
        "planar CNN: {} epochs in {:.0} s, test OA {cnn_oa:.3}",
        args.epochs,
        start.elapsed().as_secs_f64()
    );

    // 2. pixel transformer on the centre series, trained from scratch
    let bands = d.cube.bands().to_vec();
    let subset = |idx: &[usize]| -> Res<Arc<SampleSet>> {
        Ok(Arc::new(SampleSet::new(
            idx.iter().map(|&i| centre[i].clone()).collect(),
            bands.clone(),
            Some(idx.iter().map(|&i| labels[i]).collect()),
            d.class_names.clone(),
            None,
        )?))
    };
    let (str_, ste) = (subset(&tr)?, subset(&te)?);
    let pvm = VarMap::new();
    let pvb = VarBuilder::from_varmap(&pvm, DType::F32, &dev);
    let cfg = PixelTransformerConfig {
        d_model: 64,
        heads: 4,
        d_ff: 128,
        layers: 2,
        dropout: 0.0,
        ..PixelTransformerConfig::small(c)
    };
    let model = PixelTransformer::new(&Ctx::new(pvb.pp("encoder")), cfg)?;
    let enc = PooledPixelEncoder::new(&model, Pooling::Flatten { dates: t });
    let phead = linear(t * 64, classes, pvb.pp("classifier"))?;
    seeded_init(&pvm, 2000 + args.seed)?;
    let ld = |set: &Arc<SampleSet>, shuffle: bool| -> Res<Loader> {
        let cfg = LoaderConfig {
            batch_size: 32,
            shuffle,
            seed: args.seed,
            ..LoaderConfig::default()
        };
        Ok(Loader::new(set.clone(), cfg, dev.clone())?)
    };
    let mut trainer = Trainer::new(
        TrainConfig {
            epochs: args.epochs,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 10,
            seed: args.seed,
            checkpoint_every: 0,
            ..TrainConfig::default()
        },
        &pvm,
        &sits::sits_models::Buffers::new(),
        None,
    )?;
    let start = std::time::Instant::now();
    trainer.fit(&ld(&str_, true)?, &mut Classification::new(&enc, &phead))?;
    let z = embed(&enc, &ld(&ste, false)?)?;
    let pred: Vec<usize> = phead
        .forward(&z)?
        .argmax(1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let series_oa = oa(classes, &truth, &pred)?;
    println!(
        "pixel transformer on the centre series: {} epochs in {:.0} s, test OA {series_oa:.3}",
        args.epochs,
        start.elapsed().as_secs_f64()
    );

    // 3. linear probe on the raw centre series
    let raw = |set: &SampleSet| -> Vec<Vec<f32>> {
        set.series()
            .iter()
            .map(|s| s.values.iter().copied().collect())
            .collect()
    };
    let ytr: Vec<usize> = tr.iter().map(|&i| labels[i]).collect();
    let probe = label_fraction_probes(
        &features(&raw(&str_), &dev)?,
        &ytr,
        &features(&raw(&ste), &dev)?,
        &truth,
        classes,
        &[1.0],
        args.seed,
        ProbeConfig::default(),
    )?;
    let raw_oa = probe[0].oa;
    println!("linear probe on the raw centre series: test OA {raw_oa:.3}");
    println!("outputs: {}", args.out.display());
    println!("result: planar_cnn_oa={cnn_oa:.4} pixel_transformer_oa={series_oa:.4} raw_probe_oa={raw_oa:.4}");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
