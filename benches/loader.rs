//! Loader throughput: pixel series/s (Mato Grosso, 2115 x 23 x 6, batches of 256)
//! and cube patches/s (Slovenia, 32 x 32 patches every 8 pixels, 68 dates, batches of
//! 16), with 1 and 2 preparation threads, including an augmentation that drops dates.
//!
//! `cargo bench --bench loader`

use std::sync::Arc;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::RngCore;
use sits::sits_data::datasets::{self, SloveniaNdvi};
use sits::sits_data::loader::CubePatches;
use sits::sits_data::{Loader, LoaderConfig, Sample, SampleSource};

struct DropDates;

impl sits::sits_core::Augmentation<Sample> for DropDates {
    fn apply(&self, s: &Sample, rng: &mut dyn RngCore) -> candle_core::Result<Sample> {
        let mut keep: Vec<usize> = (0..s.len()).filter(|_| rng.next_u32() % 10 >= 2).collect();
        if keep.is_empty() {
            keep.push(0);
        }
        Ok(Sample {
            values: s.values.select(ndarray::Axis(0), &keep),
            times: s.times.select(&keep),
            valid: s.valid.as_ref().map(|v| v.select(ndarray::Axis(0), &keep)),
            label: s.label.clone(),
        })
    }
}

fn run_epoch(
    source: Arc<dyn SampleSource>,
    batch_size: usize,
    threads: usize,
    augment: bool,
) -> usize {
    let cfg = LoaderConfig {
        batch_size,
        num_threads: Some(threads),
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(source, cfg, Device::Cpu).expect("loader");
    if augment {
        loader = loader.with_augmentation(Arc::new(DropDates));
    }
    loader
        .epoch(0)
        .map(|b| b.expect("batch").batch_size())
        .sum()
}

fn bench(c: &mut Criterion) {
    let root = sits::bundled_data_dir().expect("the bundled data (SITS_DATA or the checkout)");
    let series: Arc<dyn SampleSource> =
        Arc::new(datasets::mato_grosso(&root.join(datasets::MATO_GROSSO)).expect("bundled data"));
    let slo = SloveniaNdvi::load(&root.join(datasets::SLOVENIA_NDVI)).expect("bundled data");
    let patches: Arc<dyn SampleSource> =
        Arc::new(CubePatches::new(slo.cube, Some(slo.lulc), 32, 8).expect("patches"));

    let mut g = c.benchmark_group("loader_series");
    g.throughput(Throughput::Elements(series.len() as u64));
    for threads in [1, 2] {
        for augment in [false, true] {
            let id = format!("threads{threads}_augment{augment}");
            g.bench_with_input(BenchmarkId::from_parameter(id), &(), |b, _| {
                b.iter(|| run_epoch(series.clone(), 256, threads, augment))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("loader_cube_patches");
    g.throughput(Throughput::Elements(patches.len() as u64));
    for threads in [1, 2] {
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("threads{threads}")),
            &(),
            |b, _| b.iter(|| run_epoch(patches.clone(), 16, threads, false)),
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
