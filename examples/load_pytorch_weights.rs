//! Load a U-TAE exported from the official PyTorch code (`VSainteuf/utae-paps`) and
//! run it on the batch the reference ran on: prints the logits' checksum and how
//! far they are from the reference's own logits.
//!
//! ```text
//! cargo run --release --example load_pytorch_weights
//! cargo run --release --example load_pytorch_weights -- my_utae.pth   # a state_dict (.pth) or .safetensors
//! ```
//!
//! The bundled weights are `crates/sits-models/tests/fixtures/utae/utae_pastis_seed0.safetensors`:
//! a `state_dict` of `UTAE(input_dim=10)` with the PASTIS defaults, saved by the
//! fixture generator. A checkpoint of your own is loaded the same way (the
//! `state_dict` names are ours); with your own weights there is no reference to
//! compare with, so only the checksum is printed.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use sits::sits_data::npy::read_npy;
use sits::sits_models::io::var_builder;
use sits::sits_models::{Ctx, Utae, UtaeConfig};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn npy(path: &std::path::Path) -> Res<Tensor> {
    let a = read_npy(path)?;
    let shape = a.shape().to_vec();
    let v: Vec<f32> = a.to_f32().iter().copied().collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

fn run() -> Res<()> {
    let fixtures =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/sits-models/tests/fixtures/utae");
    let own = std::env::args().nth(1).map(PathBuf::from);
    let weights = own
        .clone()
        .unwrap_or_else(|| fixtures.join("utae_pastis_seed0.safetensors"));
    let device = Device::Cpu;
    let vb = var_builder(&weights, DType::F32, &device)?;
    let model = Utae::new(&Ctx::new(vb), UtaeConfig::pastis())?;
    println!(
        "loaded U-TAE (PASTIS configuration) from {}",
        weights.display()
    );

    // the batch the reference ran on: (B, T, C, H, W) and days since 2018-09-01
    let x = npy(&fixtures.join("utae_x.npy"))?;
    let dates = npy(&fixtures.join("utae_dates.npy"))?;
    println!("input {:?}, dates {:?}", x.dims(), dates.dims());
    let (logits, attention) = model.forward(&x, &dates, false)?;
    let sum = logits.sum_all()?.to_scalar::<f32>()?;
    let abs = logits.abs()?.sum_all()?.to_scalar::<f32>()?;
    println!(
        "logits {:?}: sum {sum:.6}, sum |.| {abs:.6}; attention {:?}",
        logits.dims(),
        attention.dims()
    );
    if own.is_some() {
        return Ok(());
    }
    let reference = npy(&fixtures.join("utae_logits.npy"))?;
    let diff = (&logits - &reference)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    let pred: Vec<u32> = logits.argmax(1)?.flatten_all()?.to_vec1()?;
    let ref_pred: Vec<u32> = reference.argmax(1)?.flatten_all()?.to_vec1()?;
    let same = pred.iter().zip(&ref_pred).filter(|(a, b)| a == b).count();
    let ref_sum = reference.sum_all()?.to_scalar::<f32>()?;
    println!("reference logits (PyTorch): sum {ref_sum:.6}");
    println!(
        "max |ours - PyTorch| = {diff:.2e}; per-pixel class agreement {same}/{}",
        pred.len()
    );
    if diff > 1e-4 {
        return Err(format!("logits differ from the reference by {diff:e} (> 1e-4)").into());
    }
    println!(
        "result: utae_logits_max_abs_diff={diff:.3e} class_agreement={:.4}",
        same as f64 / pred.len() as f64
    );
    Ok(())
}

fn main() {
    sits::sits_core::memory::reuse_large_allocations();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
