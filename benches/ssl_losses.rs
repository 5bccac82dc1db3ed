//! SSL losses on CPU at the sizes of `../shared/peers/bench_ssl_losses.py`.
//!
//! ```text
//! cargo bench --bench ssl_losses
//! ```
//! - `ntxent_fwd_bwd/2x512x128`: NT-Xent, N = 512 pairs, dim 128, tau 0.5, gradient
//!   to both views.
//! - `dino_fwd_bwd/B256xK65536_2+6`: DINO loss, batch 256, 65,536 prototypes, 2
//!   global + 6 local crops, gradient to the student, centre update included.
#![allow(clippy::unwrap_used)]

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use sits::sits_ssl::dino::DinoLoss;
use sits::sits_ssl::simclr::{nt_xent, NtXentReduction};

fn losses(c: &mut Criterion) {
    sits::sits_core::memory::reuse_large_allocations();
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("ssl_losses");
    g.sample_size(10);
    let z1 = Var::from_tensor(&Tensor::randn(0f32, 1.0, (512, 128), &dev).unwrap()).unwrap();
    let z2 = Var::from_tensor(&Tensor::randn(0f32, 1.0, (512, 128), &dev).unwrap()).unwrap();
    g.bench_function("ntxent_fwd_bwd/2x512x128", |b| {
        b.iter(|| {
            let l = nt_xent(
                z1.as_tensor(),
                z2.as_tensor(),
                0.5,
                NtXentReduction::MeanOverAnchors,
            )
            .unwrap();
            l.backward().unwrap()
        })
    });
    let (bs, k, ng, nl) = (256, 65536, 2, 6);
    let student =
        Var::from_tensor(&Tensor::randn(0f32, 1.0, ((ng + nl) * bs, k), &dev).unwrap()).unwrap();
    let teacher = Tensor::randn(0f32, 1.0, (ng * bs, k), &dev).unwrap();
    let mut dino = DinoLoss::new(k, &dev).unwrap();
    g.bench_function("dino_fwd_bwd/B256xK65536_2+6", |b| {
        b.iter(|| {
            let (l, _) = dino.forward(student.as_tensor(), &teacher, 0.04).unwrap();
            l.backward().unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, losses);
criterion_main!(benches);
