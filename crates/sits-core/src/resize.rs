//! Bilinear resizing, written once for the data side (augmentations of ndarray
//! samples and of collated batches) and the models (U-TAE's upsampling).
//!
//! The rule is PyTorch's `F.interpolate(..., mode="bilinear", align_corners=False)`:
//! output index `i` reads the source at `(i + 0.5) · in / out − 0.5`, clamped at 0,
//! between its two neighbours (the last one repeated at the edge).

use candle_core::{Device, Result, Tensor};

/// The two source indices and the weight of the second for every output index of
/// an axis resized from `n_in` to `n_out` (`n_in >= 1`): output `i` is
/// `(1 − w) · x[i0] + w · x[i1]`.
pub fn bilinear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|i| {
            let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(n_in.saturating_sub(1));
            let i1 = (i0 + 1).min(n_in.saturating_sub(1));
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

/// The interpolation matrix `(n_out, n_in)` of [`bilinear_taps`].
pub fn bilinear_matrix(n_in: usize, n_out: usize, device: &Device) -> Result<Tensor> {
    let mut m = vec![0f32; n_out * n_in];
    for (i, (i0, i1, w)) in bilinear_taps(n_in, n_out).into_iter().enumerate() {
        m[i * n_in + i0] += 1.0 - w;
        m[i * n_in + i1] += w;
    }
    Tensor::from_vec(m, (n_out, n_in), device)
}

/// Bilinear resize of the last two dimensions of `x` to `(h, w)`, as two matrix
/// products so that it has a gradient (candle's `upsample_bilinear2d` has none).
///
/// A NaN reaches every output of its row and column (it is multiplied by zero
/// weights too): fill missing values before resizing.
///
/// # Shapes
/// `(..., H_in, W_in)` to `(..., h, w)`.
pub fn resize_bilinear(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let r = dims.len();
    if r < 2 {
        candle_core::bail!("resize_bilinear: expected at least 2 dimensions, got {dims:?}");
    }
    let (hi, wi) = (dims[r - 2], dims[r - 1]);
    if (hi, wi) == (h, w) {
        return Ok(x.clone());
    }
    if hi == 0 || wi == 0 || h == 0 || w == 0 {
        candle_core::bail!("resize_bilinear: cannot resize {dims:?} to ({h}, {w})");
    }
    let lead: usize = dims[..r - 2].iter().product();
    let ry = bilinear_matrix(hi, h, x.device())?.to_dtype(x.dtype())?;
    let rw = bilinear_matrix(wi, w, x.device())?.to_dtype(x.dtype())?;
    let x3 = x.reshape((lead, hi, wi))?;
    let y = x3.broadcast_matmul(&rw.t()?)?; // (lead, hi, w)
    let y = ry.broadcast_left(lead)?.matmul(&y)?; // (lead, h, w)
    let mut out = dims;
    out[r - 2] = h;
    out[r - 1] = w;
    y.reshape(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_resize_matches_pytorch() {
        // F.interpolate(tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4), mode="bilinear",
        // align_corners=False)[0, 0, 0] == [0.0, 0.25, 0.75, 1.0]
        let x = Tensor::new(&[[[[0f32, 1.0], [2.0, 3.0]]]], &Device::Cpu).unwrap();
        let y = resize_bilinear(&x, 4, 4).unwrap();
        let rows: Vec<Vec<f32>> = y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(rows[0], vec![0.0, 0.25, 0.75, 1.0]);
        assert_eq!(rows[1], vec![0.5, 0.75, 1.25, 1.5]);
        assert_eq!(rows[3], vec![2.0, 2.25, 2.75, 3.0]);
        // candle's own kernel agrees in the forward direction
        let z = x.upsample_bilinear2d(4, 4, false).unwrap();
        let d: f32 = (y - z)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-6);
    }

    #[test]
    fn taps_stay_inside_and_weights_sum_to_one() {
        for (n_in, n_out) in [(1, 5), (5, 1), (3, 7), (7, 3), (4, 4)] {
            let m = bilinear_matrix(n_in, n_out, &Device::Cpu).unwrap();
            let sums: Vec<f32> = m.sum(1).unwrap().to_vec1().unwrap();
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6), "{sums:?}");
            for (i0, i1, w) in bilinear_taps(n_in, n_out) {
                assert!(i0 <= i1 && i1 < n_in && (0.0..=1.0).contains(&w) || i0 == i1);
            }
        }
        assert!(resize_bilinear(
            &Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
            2,
            2
        )
        .is_err());
    }
}
