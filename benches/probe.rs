//! The evaluations every frozen-encoder result line pays for, on CPU: linear probe
//! fitting (five-fold cross-validation over five L2 strengths, then the final fit;
//! truncated Newton to the optimum) and k-means.
//!
//! ```text
//! cargo bench --bench probe
//! ```
//! - `probe_fit/cv5_1500xD_9`: 1,500 labelled rows (about the Mato Grosso training
//!   set), 9 classes, `D` features (64: a pooled encoder; 640: ALISE's 10 x 64).
//!   The peer is `LogisticRegressionCV` in `../shared/peers/bench_probe.py` (same
//!   kind of data, five folds, the same five strengths, L-BFGS).
//! - `kmeans/4995xD_k6_n10`: 4,995 points (the pixel-years of the bundled MODIS
//!   cube), `D` values (64; 1,472: the shipped encoder's embedding), k = 6, the best
//!   of 10 k-means++ seedings, as `sits cluster` runs it. The peer is
//!   `../shared/peers/bench_probe.py` (`sklearn.cluster.KMeans(n_init=10)` on the
//!   same kind of data).
#![allow(clippy::unwrap_used)]

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use sits::sits_ssl::cluster::kmeans_restarts;
use sits::sits_ssl::probe::{LinearProbe, ProbeConfig};

fn probe(c: &mut Criterion) {
    sits::sits_core::memory::reuse_large_allocations();
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("probe_fit");
    g.sample_size(10);
    let (n, classes) = (1500, 9);
    let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
    for d in [64usize, 640] {
        // class means on the first coordinates plus unit noise: a problem that is
        // neither separable nor hopeless
        let noise = Tensor::randn(0f32, 1.0, (n, d), &dev).unwrap();
        let mut shift = vec![0f32; n * d];
        for (i, &c) in labels.iter().enumerate() {
            shift[i * d + c] = 1.5;
        }
        let x = (noise + Tensor::from_vec(shift, (n, d), &dev).unwrap()).unwrap();
        g.bench_function(format!("cv5_{n}x{d}_{classes}"), |b| {
            b.iter(|| LinearProbe::fit(&x, &labels, classes, ProbeConfig::default()).unwrap())
        });
    }
    g.finish();
}

fn kmeans(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("kmeans");
    g.sample_size(10);
    let (n, k) = (4995, 6);
    for d in [64usize, 1472] {
        // six groups: unit noise, the group's coordinate shifted by 1.5 (the peer's data)
        let noise = Tensor::randn(0f32, 1.0, (n, d), &dev)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let points: Vec<Vec<f32>> = noise
            .into_iter()
            .enumerate()
            .map(|(i, mut p)| {
                p[i % k] += 1.5;
                p
            })
            .collect();
        g.bench_function(format!("4995x{d}_k{k}_n10"), |b| {
            b.iter(|| kmeans_restarts(&points, k, 100, 0, 10).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, probe, kmeans);
criterion_main!(benches);
