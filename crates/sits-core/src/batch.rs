//! [`SitsBatch`]: a batch of satellite image time series on a candle device.

use candle_core::{bail, DType, Device, Result, Tensor};
use chrono::{Days, NaiveDate};

use crate::dates::{day_of_year, days_since};

/// Whether a batch holds pixel series or image patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchLayout {
    /// Values `(B, T, C)`: one series per item.
    Pixel,
    /// Values `(B, T, C, H, W)`: one image time series per item.
    Patch,
}

/// A batch of satellite image time series, padded to a common length `T`.
///
/// | field | shape | dtype | meaning |
/// | --- | --- | --- | --- |
/// | values | `(B,T,C)` or `(B,T,C,H,W)` | f32 | observations; padded dates hold zeros |
/// | days | `(B,T)` | f32 | whole days since [`SitsBatch::reference`]; 0 on padded dates |
/// | doy | `(B,T)` | f32 | day of year 1..=366; 0 on padded dates |
/// | pad mask | `(B,T)` | u8 | 1 where the date is padding, 0 where it is real |
/// | valid | `(B,T)` or `(B,T,H,W)` | u8 | optional; 1 where the observation is usable (not cloudy, not nodata) |
/// | labels | `(B)` or `(B,H,W)` | i64 | optional; class index per item or per pixel |
///
/// Every constructor checks these shapes and dtypes and says which one is wrong.
#[derive(Debug, Clone)]
pub struct SitsBatch {
    values: Tensor,
    days: Tensor,
    doy: Tensor,
    pad_mask: Tensor,
    reference: NaiveDate,
    valid: Option<Tensor>,
    labels: Option<Tensor>,
}

fn check_dtype(name: &str, t: &Tensor, dtype: DType) -> Result<()> {
    if t.dtype() != dtype {
        bail!("SitsBatch: {name} must be {dtype:?}, got {:?}", t.dtype())
    }
    Ok(())
}

impl SitsBatch {
    /// Builds a batch from tensors, checking every shape and dtype.
    ///
    /// # Shapes
    /// - `values`: `(B,T,C)` or `(B,T,C,H,W)`, f32
    /// - `days`, `doy`: `(B,T)`, f32
    /// - `pad_mask`: `(B,T)`, u8 (1 = padded)
    pub fn new(
        values: Tensor,
        days: Tensor,
        doy: Tensor,
        pad_mask: Tensor,
        reference: NaiveDate,
    ) -> Result<Self> {
        let dims = values.dims().to_vec();
        if dims.len() != 3 && dims.len() != 5 {
            bail!("SitsBatch: values must be (B,T,C) or (B,T,C,H,W), got shape {dims:?}")
        }
        check_dtype("values", &values, DType::F32)?;
        let bt = (dims[0], dims[1]);
        for (name, t, dtype) in [
            ("days", &days, DType::F32),
            ("doy", &doy, DType::F32),
            ("pad_mask", &pad_mask, DType::U8),
        ] {
            if t.dims() != [bt.0, bt.1] {
                bail!(
                    "SitsBatch: {name} must be (B,T) = {bt:?} to match values {dims:?}, got {:?}",
                    t.dims()
                )
            }
            check_dtype(name, t, dtype)?;
        }
        Ok(Self {
            values,
            days,
            doy,
            pad_mask,
            reference,
            valid: None,
            labels: None,
        })
    }

    /// Builds a batch from integer day offsets (days since `reference`) and a
    /// padding flag per date; the day of year is derived from the calendar.
    ///
    /// `days[b]` and `pad[b]` must each have `T` entries.
    pub fn from_days<D: AsRef<[i64]>, P: AsRef<[bool]>>(
        values: Tensor,
        days: &[D],
        pad: &[P],
        reference: NaiveDate,
        device: &Device,
    ) -> Result<Self> {
        let dims = values.dims();
        if dims.len() < 2 {
            bail!("SitsBatch: values must be (B,T,C) or (B,T,C,H,W), got shape {dims:?}")
        }
        let (b, t) = (dims[0], dims[1]);
        if days.len() != b || pad.len() != b {
            bail!(
                "SitsBatch: expected {b} date rows and pad rows, got {} and {}",
                days.len(),
                pad.len()
            )
        }
        let mut d = Vec::with_capacity(b * t);
        let mut y = Vec::with_capacity(b * t);
        let mut m = Vec::with_capacity(b * t);
        for (i, (row, prow)) in days.iter().zip(pad).enumerate() {
            let (row, prow) = (row.as_ref(), prow.as_ref());
            if row.len() != t || prow.len() != t {
                bail!(
                    "SitsBatch: item {i} has {} dates and {} pad flags, expected T = {t}",
                    row.len(),
                    prow.len()
                )
            }
            for (&day, &p) in row.iter().zip(prow) {
                if p {
                    d.push(0f32);
                    y.push(0f32);
                    m.push(1u8);
                } else {
                    d.push(day as f32);
                    y.push(doy_of_offset(reference, day)? as f32);
                    m.push(0u8);
                }
            }
        }
        let days = Tensor::from_vec(d, (b, t), device)?;
        let doy = Tensor::from_vec(y, (b, t), device)?;
        let pad_mask = Tensor::from_vec(m, (b, t), device)?;
        Self::new(values.to_device(device)?, days, doy, pad_mask, reference)
    }

    /// Adds a validity mask, `(B,T)` for pixel batches or `(B,T,H,W)` for patches, u8.
    pub fn with_valid(mut self, valid: Tensor) -> Result<Self> {
        let d = self.values.dims();
        let expected: Vec<usize> = match self.layout() {
            BatchLayout::Pixel => vec![d[0], d[1]],
            BatchLayout::Patch => vec![d[0], d[1], d[3], d[4]],
        };
        if valid.dims() != expected.as_slice() {
            bail!(
                "SitsBatch: valid mask must have shape {expected:?}, got {:?}",
                valid.dims()
            )
        }
        check_dtype("valid", &valid, DType::U8)?;
        self.valid = Some(valid);
        Ok(self)
    }

    /// The same batch with every date that has no valid observation in its sample
    /// (no valid pixel of a patch, or an invalid date of a pixel series) also
    /// flagged as padding; a sample none of whose dates is valid keeps its own pad
    /// flags (a model needs at least one date per sample). Without a validity mask
    /// the batch is returned as it is.
    ///
    /// For models that normalise each date's image (U-BARN's per-date U-Net with
    /// GroupNorm): an empty date is a constant image (collated to zeros), whose
    /// normalisation divides by `sqrt(eps)` and multiplies the gradient by about
    /// 300 at every normalisation layer; stacked, the gradient of the biases
    /// before them overflows. U-TAE skips such dates itself (all values equal to its
    /// pad value); padded dates skip U-BARN's U-Net.
    pub fn with_empty_dates_as_padding(mut self) -> Result<Self> {
        let Some(valid) = &self.valid else {
            return Ok(self);
        };
        let (b, t) = (self.values.dims()[0], self.values.dims()[1]);
        let any_valid: Vec<u8> = valid
            .reshape((b, t, ()))?
            .max(2)?
            .flatten_all()?
            .to_vec1()?;
        let mut pad: Vec<u8> = self.pad_mask.flatten_all()?.to_vec1()?;
        let mut changed = false;
        for i in 0..b {
            let row = i * t..(i + 1) * t;
            if any_valid[row.clone()].iter().all(|&v| v == 0) {
                continue;
            }
            for k in row {
                if any_valid[k] == 0 && pad[k] == 0 {
                    pad[k] = 1;
                    changed = true;
                }
            }
        }
        if changed {
            self.pad_mask = Tensor::from_vec(pad, (b, t), self.pad_mask.device())?;
        }
        Ok(self)
    }

    /// Adds labels, `(B)` (one class per item) or `(B,H,W)` (one per pixel), i64.
    pub fn with_labels(mut self, labels: Tensor) -> Result<Self> {
        let d = self.values.dims();
        let ok = match labels.dims() {
            [b] => *b == d[0],
            [b, h, w] => self.layout() == BatchLayout::Patch && [*b, *h, *w] == [d[0], d[3], d[4]],
            _ => false,
        };
        if !ok {
            bail!(
                "SitsBatch: labels must be (B) or (B,H,W) matching values {d:?}, got {:?}",
                labels.dims()
            )
        }
        check_dtype("labels", &labels, DType::I64)?;
        self.labels = Some(labels);
        Ok(self)
    }

    /// Pixel series or image patches.
    pub fn layout(&self) -> BatchLayout {
        if self.values.rank() == 3 {
            BatchLayout::Pixel
        } else {
            BatchLayout::Patch
        }
    }

    /// Number of items `B`.
    pub fn batch_size(&self) -> usize {
        self.values.dims()[0]
    }

    /// Padded series length `T`.
    pub fn seq_len(&self) -> usize {
        self.values.dims()[1]
    }

    /// Number of bands `C`.
    pub fn channels(&self) -> usize {
        self.values.dims()[2]
    }

    /// Observations, `(B,T,C)` or `(B,T,C,H,W)`.
    pub fn values(&self) -> &Tensor {
        &self.values
    }

    /// Whole days since [`Self::reference`], `(B,T)` f32.
    pub fn days(&self) -> &Tensor {
        &self.days
    }

    /// Day offsets against another reference date (for instance
    /// [`crate::dates::pastis_reference`] for U-TAE), `(B,T)` f32. Padded dates stay 0.
    pub fn days_since(&self, reference: NaiveDate) -> Result<Tensor> {
        let shift = days_since(self.reference, reference) as f64;
        let real = self
            .pad_mask
            .ones_like()?
            .sub(&self.pad_mask)?
            .to_dtype(DType::F32)?;
        (&self.days + shift)?.mul(&real)
    }

    /// Day of year 1..=366, `(B,T)` f32 (0 on padded dates).
    pub fn doy(&self) -> Result<Tensor> {
        Ok(self.doy.clone())
    }

    /// Reference date of [`Self::days`].
    pub fn reference(&self) -> NaiveDate {
        self.reference
    }

    /// Padding mask `(B,T)` u8, 1 = padded date.
    pub fn pad_mask(&self) -> &Tensor {
        &self.pad_mask
    }

    /// Validity mask, if any.
    pub fn valid(&self) -> Option<&Tensor> {
        self.valid.as_ref()
    }

    /// Labels, if any.
    pub fn labels(&self) -> Option<&Tensor> {
        self.labels.as_ref()
    }

    /// Replaces the values with a tensor of the same `(B,T)` prefix (an augmented
    /// view, a normalised copy...).
    pub fn with_values(mut self, values: Tensor) -> Result<Self> {
        let old = self.values.dims();
        let new = values.dims();
        if new.len() != old.len() || new[..2] != old[..2] {
            bail!("SitsBatch::with_values: expected shape like {old:?}, got {new:?}")
        }
        check_dtype("values", &values, DType::F32)?;
        self.values = values;
        Ok(self)
    }

    /// Moves every tensor to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            values: self.values.to_device(device)?,
            days: self.days.to_device(device)?,
            doy: self.doy.to_device(device)?,
            pad_mask: self.pad_mask.to_device(device)?,
            reference: self.reference,
            valid: self
                .valid
                .as_ref()
                .map(|t| t.to_device(device))
                .transpose()?,
            labels: self
                .labels
                .as_ref()
                .map(|t| t.to_device(device))
                .transpose()?,
        })
    }
}

fn doy_of_offset(reference: NaiveDate, day: i64) -> Result<u32> {
    let date = if day >= 0 {
        reference.checked_add_days(Days::new(day as u64))
    } else {
        reference.checked_sub_days(Days::new(day.unsigned_abs()))
    };
    match date {
        Some(d) => Ok(day_of_year(d)),
        None => bail!("SitsBatch: day offset {day} from {reference} is out of the calendar range"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> NaiveDate {
        NaiveDate::from_ymd_opt(2018, 9, 1).unwrap()
    }

    #[test]
    fn rejects_bad_shapes() {
        let dev = Device::Cpu;
        let v = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        let bt = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let wrong = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
        let m = Tensor::zeros((2, 3), DType::U8, &dev).unwrap();
        let err = SitsBatch::new(v.clone(), wrong, bt.clone(), m.clone(), reference())
            .unwrap_err()
            .to_string();
        assert!(err.contains("days must be (B,T)"), "{err}");
        let err = SitsBatch::new(v.clone(), bt.clone(), bt.clone(), bt.clone(), reference())
            .unwrap_err()
            .to_string();
        assert!(err.contains("pad_mask must be U8"), "{err}");
        let ok = SitsBatch::new(v, bt.clone(), bt, m, reference()).unwrap();
        let err = ok
            .clone()
            .with_labels(Tensor::zeros((3,), DType::I64, &dev).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("labels must be"), "{err}");
        let err = ok
            .with_valid(Tensor::zeros((2, 3, 1, 1), DType::U8, &dev).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("valid mask must have shape [2, 3]"), "{err}");
    }

    #[test]
    fn days_and_doy() {
        let dev = Device::Cpu;
        let v = Tensor::zeros((1, 3, 1, 2, 2), DType::F32, &dev).unwrap();
        let b = SitsBatch::from_days(
            v,
            &[[0i64, 122, 500]],
            &[[false, false, true]],
            reference(),
            &dev,
        )
        .unwrap();
        assert_eq!(b.layout(), BatchLayout::Patch);
        // 2018-09-01 is day 244; +122 days is 2019-01-01
        assert_eq!(
            b.doy().unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![244.0, 1.0, 0.0]]
        );
        let earlier = NaiveDate::from_ymd_opt(2018, 8, 1).unwrap();
        assert_eq!(
            b.days_since(earlier).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![31.0, 153.0, 0.0]]
        );
        assert_eq!(b.pad_mask().to_vec2::<u8>().unwrap(), vec![vec![0, 0, 1]]);
    }

    #[test]
    fn empty_dates_become_padding() {
        let dev = Device::Cpu;
        let v = Tensor::zeros((3, 4, 1, 1, 2), DType::F32, &dev).unwrap();
        let pad = [
            [false, false, false, true],
            [false, false, false, false],
            [false, false, true, true],
        ];
        let batch =
            SitsBatch::from_days(v, &[[0i64, 1, 2, 3]; 3], &pad, reference(), &dev).unwrap();
        // without validity nothing changes
        let same = batch.clone().with_empty_dates_as_padding().unwrap();
        assert_eq!(
            same.pad_mask().to_vec2::<u8>().unwrap(),
            batch.pad_mask().to_vec2::<u8>().unwrap()
        );
        // sample 0: date 1 has no valid pixel, date 2 one of two; sample 1: no
        // valid date at all (keeps its flags); sample 2: date 0 empty
        let valid = Tensor::new(
            &[
                [[[1u8, 1]], [[0, 0]], [[0, 1]], [[0, 0]]],
                [[[0, 0]], [[0, 0]], [[0, 0]], [[0, 0]]],
                [[[0, 0]], [[1, 0]], [[0, 0]], [[0, 0]]],
            ],
            &dev,
        )
        .unwrap();
        let b = batch
            .with_valid(valid)
            .unwrap()
            .with_empty_dates_as_padding()
            .unwrap();
        assert_eq!(
            b.pad_mask().to_vec2::<u8>().unwrap(),
            vec![vec![0, 1, 0, 1], vec![0, 0, 0, 0], vec![1, 0, 1, 1]]
        );
        // pixel series: validity (B, T)
        let v = Tensor::zeros((1, 3, 2), DType::F32, &dev).unwrap();
        let s = SitsBatch::from_days(v, &[[0i64, 1, 2]], &[[false; 3]], reference(), &dev)
            .unwrap()
            .with_valid(Tensor::new(&[[1u8, 0, 1]], &dev).unwrap())
            .unwrap()
            .with_empty_dates_as_padding()
            .unwrap();
        assert_eq!(s.pad_mask().to_vec2::<u8>().unwrap(), vec![vec![0, 1, 0]]);
    }
}
