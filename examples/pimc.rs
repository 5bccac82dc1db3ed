//! PIMC-style multimodal contrastive pretraining on the bundled Mato Grosso series:
//! a small ResNet encodes the unthresholded recurrence plots of each pixel's NDVI,
//! EVI and SAVI (3 channels, computed on the batch), a pixel transformer encodes the
//! pixel's series, and a symmetric InfoNCE (learnable temperature) pulls the two
//! views of the same pixel together. No label is used for pretraining.
//!
//! Downstream, as in PIMC:
//! - classification: linear probes on each frozen encoder (all training labels),
//!   evaluated on the held-out split;
//! - forecasting: ridge regression from the embedding of the first 19 dates to the
//!   NDVI of the last 4 dates, against the same regression on the raw 19 dates
//!   (RMSE on the held-out split, NDVI units).
//!
//! ```text
//! cargo run --release --example pimc [-- --epochs N --seed S]
//! ```

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::Parser;
use ndarray::s;
use sits::experiment::{embed_rows, raw_rows};
use sits::sits_data::samples::Series;
use sits::sits_data::{datasets, Loader, LoaderConfig, Radiometry, SampleSet, Split};
use sits::sits_models::nn::seeded_init;
use sits::sits_models::{Ctx, PixelTransformer, PixelTransformerConfig, SmallResNet};
use sits::sits_ssl::embed::{PooledPixelEncoder, Pooling};
use sits::sits_ssl::pimc::Pimc;
use sits::sits_ssl::probe::{features, label_fraction_probes, rmse, ProbeConfig, Ridge};
use sits::sits_ssl::train::{TrainConfig, Trainer};

/// PIMC pretraining and its two downstream tasks.
#[derive(Parser, Debug)]
struct Args {
    /// Pretraining epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn loader(set: &Arc<SampleSet>, shuffle: bool, seed: u64) -> Res<Loader> {
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle,
        seed,
        ..LoaderConfig::default()
    };
    Ok(Loader::new(set.clone(), cfg, Device::Cpu)?)
}

/// The first `t` dates of every series.
fn first_dates(set: &SampleSet, t: usize) -> Res<SampleSet> {
    let series = set
        .series()
        .iter()
        .map(|s| {
            let idx: Vec<usize> = (0..t).collect();
            let valid = s.valid.as_ref().map(|v| v[..t].to_vec());
            Series::new(
                s.values.slice(s![..t, ..]).to_owned(),
                s.times.select(&idx),
                valid,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SampleSet::new(
        series,
        set.bands().to_vec(),
        set.labels().map(<[usize]>::to_vec),
        set.class_names().to_vec(),
        None,
    )?)
}

/// Image-encoder features of the recurrence plots of every series.
fn rp_rows(pimc: &Pimc, images: &SmallResNet, set: &Arc<SampleSet>) -> Res<Vec<Vec<f32>>> {
    let mut parts = Vec::new();
    for b in loader(set, false, 0)?.epoch(0) {
        let b = b?;
        parts.push(
            images
                .forward(&pimc.recurrence_images(&b)?, false)?
                .detach(),
        );
    }
    Ok(Tensor::cat(&parts, 0)?.to_vec2()?)
}

fn run() -> Res<()> {
    let args = Args::parse();
    let set = datasets::mato_grosso(&sits::bundled_data_dir().join(datasets::MATO_GROSSO))?;
    // values are reflectances and indices already near [0, 1]: the recurrence plots
    // need the physical values, so the series are not standardised here
    let (train, test) = (
        Arc::new(set.split(Split::Train)?),
        Arc::new(set.split(Split::Test)?),
    );
    let bands = set.bands().to_vec();
    let dates = train.series()[0].len();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = PixelTransformerConfig {
        d_model: 64,
        heads: 4,
        d_ff: 128,
        layers: 2,
        dropout: 0.0,
        ..PixelTransformerConfig::small(bands.len())
    };
    let series = PixelTransformer::new(&Ctx::new(vb.pp("series")), cfg)?;
    let series_enc = PooledPixelEncoder::new(&series, Pooling::Flatten { dates });
    let ctx = Ctx::new(vb.pp("images"));
    let images = SmallResNet::new(&ctx, 3, 16)?;
    let mut pimc = Pimc::new(
        &series_enc,
        &images,
        vb.pp("pimc"),
        64,
        bands.clone(),
        Radiometry::default(),
        0.1,
        true,
    )?;
    seeded_init(&vm, 1000 + args.seed)?;
    let tcfg = TrainConfig {
        epochs: args.epochs,
        lr: 1e-3,
        min_lr: 1e-5,
        warmup_steps: 20,
        seed: args.seed,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let mut tr = Trainer::new(tcfg, &vm, &ctx.buffers, None)?;
    let start = std::time::Instant::now();
    tr.fit(&loader(&train, true, args.seed)?, &mut pimc)?;
    let h = tr.history();
    let mean = |r: &[sits::sits_ssl::train::StepRecord]| {
        r.iter().map(|s| s.loss).sum::<f64>() / r.len().max(1) as f64
    };
    let per_epoch = h.len() / args.epochs.max(1);
    println!(
        "PIMC pretraining: {} epochs in {:.0} s, InfoNCE {:.3} (first epoch) -> {:.3} (last)",
        args.epochs,
        start.elapsed().as_secs_f64(),
        mean(&h[..per_epoch.min(h.len())]),
        mean(&h[h.len().saturating_sub(per_epoch)..])
    );

    // classification: linear probes on each frozen encoder
    let dev = Device::Cpu;
    let (ytr, yte) = (
        train.labels().ok_or("labels")?.to_vec(),
        test.labels().ok_or("labels")?.to_vec(),
    );
    let classes = set.class_names().len();
    let probe = |xtr: Vec<Vec<f32>>, xte: Vec<Vec<f32>>| -> Res<f64> {
        let r = label_fraction_probes(
            &features(&xtr, &dev)?,
            &ytr,
            &features(&xte, &dev)?,
            &yte,
            classes,
            &[1.0],
            args.seed,
            ProbeConfig::default(),
        )?;
        Ok(r[0].oa)
    };
    let rp_oa = probe(
        rp_rows(&pimc, &images, &train)?,
        rp_rows(&pimc, &images, &test)?,
    )?;
    let series_oa = probe(
        embed_rows(&series, &train, Pooling::Flatten { dates }, &dev)?,
        embed_rows(&series, &test, Pooling::Flatten { dates }, &dev)?,
    )?;
    let raw_oa = probe(raw_rows(&train), raw_rows(&test))?;
    println!(
        "linear probes (100 % labels, test OA): recurrence-plot encoder {rp_oa:.3}, series encoder {series_oa:.3}, raw series {raw_oa:.3}"
    );

    // forecasting the last 4 NDVI dates from the first 19
    let (past, horizon) = (19, 4);
    if dates != past + horizon {
        return Err(format!("the forecasting task expects 23 dates, the data have {dates}").into());
    }
    let ndvi = bands
        .iter()
        .position(|b| b.eq_ignore_ascii_case("ndvi"))
        .ok_or("no ndvi band")?;
    let target = |s: &SampleSet| -> Vec<Vec<f32>> {
        s.series()
            .iter()
            .map(|x| (past..dates).map(|t| x.values[[t, ndvi]]).collect())
            .collect()
    };
    let (ptr, pte) = (
        Arc::new(first_dates(&train, past)?),
        Arc::new(first_dates(&test, past)?),
    );
    let lambda = 1e-2;
    let forecast = |xtr: Vec<Vec<f32>>, xte: Vec<Vec<f32>>| -> Res<f64> {
        let m = Ridge::fit(&xtr, &target(&train), lambda)?;
        Ok(rmse(&m.predict(&xte), &target(&test)))
    };
    let rp_rmse = forecast(
        rp_rows(&pimc, &images, &ptr)?,
        rp_rows(&pimc, &images, &pte)?,
    )?;
    let raw_rmse = forecast(raw_rows(&ptr), raw_rows(&pte))?;
    let last = |s: &SampleSet| -> Vec<Vec<f32>> {
        s.series()
            .iter()
            .map(|x| vec![x.values[[past - 1, ndvi]]; horizon])
            .collect()
    };
    let persistence = rmse(&last(&test), &target(&test));
    println!(
        "NDVI forecast of dates 20-23 from dates 1-19 (ridge, λ = {lambda}), test RMSE: recurrence-plot embedding {rp_rmse:.4}, raw series {raw_rmse:.4}, persistence of date 19 {persistence:.4}"
    );
    println!(
        "result: rp_probe_oa={rp_oa:.4} series_probe_oa={series_oa:.4} rp_forecast_rmse={rp_rmse:.4} raw_forecast_rmse={raw_rmse:.4}"
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
