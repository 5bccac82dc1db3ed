//! Recurrence plots and planar images.
//!
//! ```text
//! cargo bench --bench repr
//! ```
//! The recurrence-plot cases use the sizes of `../shared/peers/bench_rp.py`
//! (100,000 float32 series of length 64, standard normal) so that the two can be
//! compared as ratios in one sitting. The output buffer (1.64 GB) is allocated and
//! pre-faulted once, as in the peer's "preallocated output" and memory-fill cases.
//! `RP_N` changes the number of series.

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{Array2, Array4};
use rand::{Rng, SeedableRng};
use sits::sits_repr::planar::{planar_batch, planar_batch_into, Curve};
use sits::sits_repr::recurrence::{RecurrencePlot, Threshold};

fn normal_series(n: usize, t: usize) -> Array2<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    Array2::from_shape_fn((n, t), |_| {
        // Box-Muller
        let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    })
}

fn recurrence(c: &mut Criterion) {
    let n: usize = std::env::var("RP_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let t = 64;
    let x = normal_series(n, t);
    let mut out = vec![1f32; n * t * t]; // pre-faulted
    let mut g = c.benchmark_group("recurrence_plot");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((n * t * t * 4) as u64));
    g.bench_function(format!("unthresholded_into/N{n}xT{t}"), |b| {
        b.iter(|| {
            RecurrencePlot::default()
                .transform_into(x.view(), &mut out)
                .unwrap()
        })
    });
    let point = RecurrencePlot {
        threshold: Threshold::Point(20.0),
        ..Default::default()
    };
    g.bench_function(format!("point20_into/N{n}xT{t}"), |b| {
        b.iter(|| point.transform_into(x.view(), &mut out).unwrap())
    });
    g.bench_function(format!("memory_fill_floor/N{n}xT{t}"), |b| {
        b.iter(|| {
            use rayon::prelude::*;
            out.par_chunks_mut(1 << 16).for_each(|c| c.fill(2.0));
        })
    });
    g.finish();
}

fn planar(c: &mut Criterion) {
    // 256 regions of 32x32 pixels, 61 dates (PASTIS length), 10 bands.
    let (t, ch, h, w) = (61, 10, 128, 128);
    let cube = Array4::from_shape_fn((t, ch, h, w), |(a, b, y, x)| (a + b + y + x) as f32);
    let origins: Vec<(usize, usize)> = (0..256).map(|k| ((k / 16) * 6, (k % 16) * 6)).collect();
    let mut g = c.benchmark_group("planar");
    g.sample_size(10);
    g.throughput(Throughput::Elements(origins.len() as u64));
    g.bench_function("hilbert_32x32_T61_C10_x256/alloc", |b| {
        b.iter(|| planar_batch(cube.view(), &origins, 32, Curve::Hilbert).unwrap())
    });
    let mut out = vec![1f32; origins.len() * ch * 32 * 32 * t];
    g.bench_function("hilbert_32x32_T61_C10_x256/into", |b| {
        b.iter(|| planar_batch_into(cube.view(), &origins, 32, Curve::Hilbert, &mut out).unwrap())
    });
    g.finish();
}

criterion_group!(benches, recurrence, planar);
criterion_main!(benches);
