//! Reading and writing NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! Supported dtypes: `bool`, `u1`, `i1`, `u2`, `i2`, `u4`, `i4`, `u8`, `i8`, `f2`, `f4`, `f8`,
//! little and big endian. Fortran-ordered arrays are read and returned in C order.
//! Structured dtypes, object arrays and strings are refused with an error naming the
//! file and the dtype. A file shorter than its header promises is reported as
//! truncated, never padded.
//!
//! ```
//! use ndarray::{ArrayD, IxDyn};
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("a.npy");
//! let a = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1f32, 2., 3., 4., 5., 6.]).unwrap();
//! sits_data::npy::write_npy(&path, &a.view(), Default::default()).unwrap();
//! let back = sits_data::npy::read_npy(&path).unwrap();
//! assert_eq!(back.shape(), &[2, 3]);
//! assert_eq!(back.to_f32(), a);
//! ```

// The decoder reads untrusted bytes: no unchecked index or slice in it.
#![warn(clippy::indexing_slicing)]

use std::path::Path;

use half::f16;
use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::error::{DataError, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Element types of a `.npy` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    /// `|b1`
    Bool,
    /// `|u1`
    U8,
    /// `|i1`
    I8,
    /// `u2`
    U16,
    /// `i2`
    I16,
    /// `u4`
    U32,
    /// `i4`
    I32,
    /// `u8`
    U64,
    /// `i8`
    I64,
    /// `f2`
    F16,
    /// `f4`
    F32,
    /// `f8`
    F64,
}

impl NpyDtype {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::Bool | Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 | Self::F16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    fn from_code(kind: char, size: &str) -> Option<Self> {
        Some(match (kind, size) {
            ('b', "1") => Self::Bool,
            ('u', "1") => Self::U8,
            ('i', "1") => Self::I8,
            ('u', "2") => Self::U16,
            ('i', "2") => Self::I16,
            ('u', "4") => Self::U32,
            ('i', "4") => Self::I32,
            ('u', "8") => Self::U64,
            ('i', "8") => Self::I64,
            ('f', "2") => Self::F16,
            ('f', "4") => Self::F32,
            ('f', "8") => Self::F64,
            _ => return None,
        })
    }
}

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version `(major, minor)`.
    pub version: (u8, u8),
    /// The dtype string as written, e.g. `<f4`.
    pub descr: String,
    /// Element type.
    pub dtype: NpyDtype,
    /// Whether multi-byte elements are big endian.
    pub big_endian: bool,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// Array shape.
    pub shape: Vec<usize>,
    /// Offset of the first data byte.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (the shape is checked at parse time so that this product
    /// and the byte size fit in `usize`).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of array data the header promises.
    pub fn data_len(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// Whether the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An array read from a `.npy` file, in C order, keeping its dtype.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum NpyArray {
    Bool(ArrayD<bool>),
    U8(ArrayD<u8>),
    I8(ArrayD<i8>),
    U16(ArrayD<u16>),
    I16(ArrayD<i16>),
    U32(ArrayD<u32>),
    I32(ArrayD<i32>),
    U64(ArrayD<u64>),
    I64(ArrayD<i64>),
    F16(ArrayD<f16>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

macro_rules! each_array {
    ($self:expr, $a:ident => $body:expr) => {
        match $self {
            NpyArray::Bool($a) => $body,
            NpyArray::U8($a) => $body,
            NpyArray::I8($a) => $body,
            NpyArray::U16($a) => $body,
            NpyArray::I16($a) => $body,
            NpyArray::U32($a) => $body,
            NpyArray::I32($a) => $body,
            NpyArray::U64($a) => $body,
            NpyArray::I64($a) => $body,
            NpyArray::F16($a) => $body,
            NpyArray::F32($a) => $body,
            NpyArray::F64($a) => $body,
        }
    };
}

impl NpyArray {
    /// Array shape.
    pub fn shape(&self) -> &[usize] {
        each_array!(self, a => a.shape())
    }

    /// Element type.
    pub fn dtype(&self) -> NpyDtype {
        match self {
            Self::Bool(_) => NpyDtype::Bool,
            Self::U8(_) => NpyDtype::U8,
            Self::I8(_) => NpyDtype::I8,
            Self::U16(_) => NpyDtype::U16,
            Self::I16(_) => NpyDtype::I16,
            Self::U32(_) => NpyDtype::U32,
            Self::I32(_) => NpyDtype::I32,
            Self::U64(_) => NpyDtype::U64,
            Self::I64(_) => NpyDtype::I64,
            Self::F16(_) => NpyDtype::F16,
            Self::F32(_) => NpyDtype::F32,
            Self::F64(_) => NpyDtype::F64,
        }
    }

    /// Converts to f32 (exact for integers up to 2^24 in magnitude; `bool` gives 0/1).
    pub fn to_f32(&self) -> ArrayD<f32> {
        match self {
            Self::Bool(a) => a.mapv(|v| v as u8 as f32),
            Self::F16(a) => a.mapv(f32::from),
            Self::F32(a) => a.clone(),
            Self::U8(a) => a.mapv(f32::from),
            Self::I8(a) => a.mapv(f32::from),
            Self::U16(a) => a.mapv(f32::from),
            Self::I16(a) => a.mapv(f32::from),
            Self::U32(a) => a.mapv(|v| v as f32),
            Self::I32(a) => a.mapv(|v| v as f32),
            Self::U64(a) => a.mapv(|v| v as f32),
            Self::I64(a) => a.mapv(|v| v as f32),
            Self::F64(a) => a.mapv(|v| v as f32),
        }
    }

    /// Converts an integer or boolean array to i64; floating-point arrays are refused
    /// (`path` names the file in the error), as are `u64` values above `i64::MAX`.
    pub fn to_i64(&self, path: &Path) -> Result<ArrayD<i64>> {
        let refuse = |reason: &str| DataError::UnsupportedDtype {
            path: path.to_path_buf(),
            dtype: format!("{:?}", self.dtype()),
            reason: reason.to_string(),
        };
        Ok(match self {
            Self::Bool(a) => a.mapv(i64::from),
            Self::U8(a) => a.mapv(i64::from),
            Self::I8(a) => a.mapv(i64::from),
            Self::U16(a) => a.mapv(i64::from),
            Self::I16(a) => a.mapv(i64::from),
            Self::U32(a) => a.mapv(i64::from),
            Self::I32(a) => a.mapv(i64::from),
            Self::I64(a) => a.clone(),
            Self::U64(a) => {
                if a.iter().any(|&v| v > i64::MAX as u64) {
                    return Err(refuse("value above i64::MAX"));
                }
                a.mapv(|v| v as i64)
            }
            Self::F16(_) | Self::F32(_) | Self::F64(_) => {
                return Err(refuse("an integer array (labels, ids, masks) was expected"))
            }
        })
    }
}

fn npy_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Npy {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Longest header text accepted, in bytes. numpy writes headers of a few hundred
/// bytes and refuses to read headers above 10,000 by default (`max_header_size`);
/// this bound keeps a header-length field from sizing a large allocation.
const MAX_HEADER_LEN: usize = 1 << 20;

/// Reads only the header of a `.npy` file (cheap: does not read the data).
pub fn read_npy_header(path: &Path) -> Result<NpyHeader> {
    crate::io_util::regular_file(path)?;
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    // 12 bytes hold the preamble, which announces the header length (bounded by
    // `preamble_len`); read that much more, and no further.
    let mut pre = [0u8; 12];
    let n = read_up_to(&mut f, &mut pre).map_err(|e| DataError::io(path, e))?;
    let mut head: Vec<u8> = pre.get(..n).unwrap_or_default().to_vec();
    let need = preamble_len(path, &head)?;
    if let Some(more) = need.checked_sub(head.len()).filter(|&m| m > 0) {
        let mut rest = vec![0u8; more];
        let m = read_up_to(&mut f, &mut rest).map_err(|e| DataError::io(path, e))?;
        head.extend_from_slice(rest.get(..m).unwrap_or_default());
    }
    parse_header(path, &head)
}

fn read_up_to(f: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while let Some(free) = buf.get_mut(n..).filter(|b| !b.is_empty()) {
        match f.read(free)? {
            0 => break,
            k => n = n.saturating_add(k),
        }
    }
    Ok(n)
}

/// Total length of magic + version + length field + header text.
fn preamble_len(path: &Path, bytes: &[u8]) -> Result<usize> {
    let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
    if bytes.get(..6) != Some(MAGIC.as_slice()) || bytes.len() < 10 {
        return Err(npy_err(path, "missing the \\x93NUMPY magic string"));
    }
    let (fixed, text_len) = match byte(6) {
        1 => (10, usize::from(u16::from_le_bytes([byte(8), byte(9)]))),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(npy_err(path, "header length field is truncated"));
            }
            let len = u32::from_le_bytes([byte(8), byte(9), byte(10), byte(11)]);
            (12, usize::try_from(len).unwrap_or(usize::MAX))
        }
        v => {
            return Err(npy_err(
                path,
                format!("unknown format version {v}.{}", byte(7)),
            ))
        }
    };
    if text_len > MAX_HEADER_LEN {
        return Err(npy_err(
            path,
            format!(
                "the header length field says {text_len} bytes, more than any .npy writer \
                 produces ({MAX_HEADER_LEN}); the file is damaged"
            ),
        ));
    }
    Ok(fixed + text_len)
}

fn parse_header(path: &Path, bytes: &[u8]) -> Result<NpyHeader> {
    let end = preamble_len(path, bytes)?;
    let version = (
        bytes.get(6).copied().unwrap_or(0),
        bytes.get(7).copied().unwrap_or(0),
    );
    let start = if version.0 == 1 { 10 } else { 12 };
    let raw = bytes.get(start..end).ok_or_else(|| {
        npy_err(
            path,
            format!("header is truncated ({} of {end} bytes)", bytes.len()),
        )
    })?;
    let text = if version.0 == 3 {
        std::str::from_utf8(raw).map_err(|_| npy_err(path, "header is not UTF-8"))?
    } else {
        std::str::from_utf8(raw)
            .ok()
            .filter(|s| s.is_ascii())
            .ok_or_else(|| npy_err(path, "header is not ASCII"))?
    };
    let descr = dict_value(text, "descr").ok_or_else(|| npy_err(path, "header has no 'descr'"))?;
    let fortran = dict_value(text, "fortran_order")
        .ok_or_else(|| npy_err(path, "header has no 'fortran_order'"))?;
    let shape_txt =
        dict_value(text, "shape").ok_or_else(|| npy_err(path, "header has no 'shape'"))?;

    if descr.starts_with('[') {
        return Err(DataError::UnsupportedDtype {
            path: path.to_path_buf(),
            dtype: descr.to_string(),
            reason: "structured (record) dtypes are not supported".into(),
        });
    }
    let descr =
        unquote(descr).ok_or_else(|| npy_err(path, format!("bad 'descr' value {descr}")))?;
    let unsupported = |reason: &str| DataError::UnsupportedDtype {
        path: path.to_path_buf(),
        dtype: descr.to_string(),
        reason: reason.to_string(),
    };
    let mut chars = descr.chars();
    let (order, kind) = match (chars.next(), chars.next()) {
        (Some(o @ ('<' | '>' | '|' | '=')), Some(k)) => (o, k),
        _ => {
            return Err(unsupported(
                "expected a byte-order mark then a kind, like <f4",
            ))
        }
    };
    let size = chars.as_str();
    let dtype = NpyDtype::from_code(kind, size).ok_or_else(|| {
        unsupported("supported: bool, u1, i1, u2, i2, u4, i4, u8, i8, f2, f4, f8")
    })?;
    let big_endian = order == '>';
    let fortran_order = match fortran {
        "True" => true,
        "False" => false,
        other => return Err(npy_err(path, format!("bad 'fortran_order' value {other}"))),
    };
    let shape = parse_shape(shape_txt)
        .ok_or_else(|| npy_err(path, format!("bad 'shape' value {shape_txt}")))?;
    // The element count and byte size must fit in memory addresses; a wrapped product
    // would let a tiny file pass the length check below.
    shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .filter(|&bytes| bytes <= isize::MAX as usize)
        .ok_or_else(|| {
            npy_err(
                path,
                format!("shape {shape:?} of {descr} is too large to be an array"),
            )
        })?;
    Ok(NpyHeader {
        version,
        descr: descr.to_string(),
        dtype,
        big_endian,
        fortran_order,
        shape,
        data_offset: end,
    })
}

/// The raw text of a value in the Python dict literal of a header.
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let quoted = [format!("'{key}'"), format!("\"{key}\"")];
    let (pos, q) = quoted
        .iter()
        .find_map(|q| text.find(q.as_str()).map(|p| (p, q)))?;
    let rest = text.get(pos.checked_add(q.len())?..)?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    // value ends at the matching close for (...) / [...] / a quote, or at the next
    // comma or brace
    let end = match rest.chars().next()? {
        '(' => rest.find(')')?.checked_add(1)?,
        '[' => rest.find(']')?.checked_add(1)?,
        q @ ('\'' | '"') => rest.get(1..)?.find(q)?.checked_add(2)?,
        _ => rest.find([',', '}']).unwrap_or(rest.len()),
    };
    Some(rest.get(..end)?.trim())
}

fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

fn parse_shape(s: &str) -> Option<Vec<usize>> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse().ok())
        .collect()
}

/// Checks that exactly the promised bytes follow the header. Fewer is a truncated
/// file; more means the header does not describe the data (a wrong dtype, a wrong
/// shape, or a header length field that points inside the header or the data), and
/// reading it would give shifted or reinterpreted numbers, so it is refused too.
fn check_data_len(path: &Path, h: &NpyHeader, found: u64) -> Result<()> {
    let expected = h.data_len() as u64;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(npy_err(
            path,
            format!(
                "{found} bytes of array data follow the header but its dtype {} and shape \
                 {:?} describe {expected}: the header does not match the data (wrong dtype, \
                 shape or header length); rewrite the file with numpy.save",
                h.descr, h.shape
            ),
        ));
    }
    Ok(())
}

/// Reads a whole `.npy` file.
///
/// The header is read and checked against the file's length first, so a header that
/// promises more data than the file holds is an error before anything large is
/// allocated, and the file is never read past what its header describes.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let meta = crate::io_util::regular_file(path)?;
    let h = read_npy_header(path)?;
    check_data_len(path, &h, meta.len().saturating_sub(h.data_offset as u64))?;
    let shape: Vec<u64> = h.shape.iter().map(|&d| d as u64).collect();
    crate::io_util::check_read_size(&path.display().to_string(), &shape, h.dtype.size() as u64)?;
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_npy(path, &bytes)
}

/// Decodes the bytes of a `.npy` file; `path` is only used in error messages.
pub fn decode_npy(path: &Path, bytes: &[u8]) -> Result<NpyArray> {
    let h = parse_header(path, bytes)?;
    let data = bytes.get(h.data_offset..).unwrap_or_default();
    check_data_len(path, &h, data.len() as u64)?;
    let be = h.big_endian;
    macro_rules! decode {
        ($t:ty, $variant:ident) => {{
            const W: usize = std::mem::size_of::<$t>();
            let v: Vec<$t> = data
                .chunks_exact(W)
                .map(|c| {
                    let mut b = [0u8; W];
                    b.copy_from_slice(c);
                    if be {
                        <$t>::from_be_bytes(b)
                    } else {
                        <$t>::from_le_bytes(b)
                    }
                })
                .collect();
            NpyArray::$variant(shape_array(path, &h, v)?)
        }};
    }
    Ok(match h.dtype {
        NpyDtype::Bool => {
            if let Some(bad) = data.iter().find(|&&b| b > 1) {
                return Err(npy_err(path, format!("bool array holds byte {bad}")));
            }
            NpyArray::Bool(shape_array(
                path,
                &h,
                data.iter().map(|&b| b == 1).collect(),
            )?)
        }
        NpyDtype::U8 => NpyArray::U8(shape_array(path, &h, data.to_vec())?),
        NpyDtype::I8 => decode!(i8, I8),
        NpyDtype::U16 => decode!(u16, U16),
        NpyDtype::I16 => decode!(i16, I16),
        NpyDtype::U32 => decode!(u32, U32),
        NpyDtype::I32 => decode!(i32, I32),
        NpyDtype::U64 => decode!(u64, U64),
        NpyDtype::I64 => decode!(i64, I64),
        NpyDtype::F16 => {
            let v = data
                .chunks_exact(2)
                .map(|c| {
                    let pair = [
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ];
                    let bits = if be {
                        u16::from_be_bytes(pair)
                    } else {
                        u16::from_le_bytes(pair)
                    };
                    f16::from_bits(bits)
                })
                .collect();
            NpyArray::F16(shape_array(path, &h, v)?)
        }
        NpyDtype::F32 => decode!(f32, F32),
        NpyDtype::F64 => decode!(f64, F64),
    })
}

fn shape_array<T: Clone>(path: &Path, h: &NpyHeader, v: Vec<T>) -> Result<ArrayD<T>> {
    let bad = |e: ndarray::ShapeError| npy_err(path, format!("shape {:?}: {e}", h.shape));
    if h.fortran_order {
        let rev: Vec<usize> = h.shape.iter().rev().copied().collect();
        let a = ArrayD::from_shape_vec(IxDyn(&rev), v).map_err(bad)?;
        Ok(a.reversed_axes().as_standard_layout().into_owned())
    } else {
        ArrayD::from_shape_vec(IxDyn(&h.shape), v).map_err(bad)
    }
}

/// Element types this crate writes to `.npy` (always little endian, C order).
pub trait NpyWritable: Copy {
    /// The dtype string, e.g. `<f4`.
    const DESCR: &'static str;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! writable {
    ($t:ty, $d:expr) => {
        impl NpyWritable for $t {
            const DESCR: &'static str = $d;
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
writable!(u8, "|u1");
writable!(i8, "|i1");
writable!(u16, "<u2");
writable!(i16, "<i2");
writable!(u32, "<u4");
writable!(i32, "<i4");
writable!(i64, "<i8");
writable!(u64, "<u8");
writable!(f32, "<f4");
writable!(f64, "<f8");

impl NpyWritable for bool {
    const DESCR: &'static str = "|b1";
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
}

/// Encodes an array as `.npy` bytes (version 1.0, or 2.0 if the header needs it).
pub fn encode_npy<T: NpyWritable>(array: &ArrayViewD<'_, T>) -> Vec<u8> {
    let shape = match array.shape() {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        T::DESCR
    );
    // pad so that the data starts on a 64-byte boundary, ending with '\n'
    let pre = if dict.len() + 11 > u16::MAX as usize {
        12
    } else {
        10
    };
    let total = (pre + dict.len() + 1).div_ceil(64) * 64;
    dict.push_str(&" ".repeat(total - pre - dict.len() - 1));
    dict.push('\n');
    let mut out = Vec::with_capacity(total + array.len() * std::mem::size_of::<T>());
    out.extend_from_slice(MAGIC);
    if pre == 10 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    for &v in array.iter() {
        v.put(&mut out);
    }
    out
}

/// Writes an array to a `.npy` file, atomically: the bytes go to a temporary file in
/// the same folder that is then renamed, so a crash never leaves a partial file. An
/// existing file at `path` is refused unless `if_exists` is
/// [`IfExists::Replace`](sits_core::io::IfExists::Replace).
pub fn write_npy<T: NpyWritable>(
    path: &Path,
    array: &ArrayViewD<'_, T>,
    if_exists: sits_core::io::IfExists,
) -> Result<()> {
    crate::io_util::write_new(path, &encode_npy(array), if_exists)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn header_bytes(version: u8, dict: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out
    }

    #[test]
    fn big_endian_and_v2_v3() {
        for version in [1u8, 2, 3] {
            let mut b = header_bytes(
                version,
                "{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }\n",
            );
            for v in [1i16, -2, 300] {
                b.extend_from_slice(&v.to_be_bytes());
            }
            let a = decode_npy(Path::new("x.npy"), &b).unwrap();
            assert_eq!(
                a.to_i64(Path::new("x"))
                    .unwrap()
                    .into_raw_vec_and_offset()
                    .0,
                vec![1, -2, 300]
            );
        }
    }

    #[test]
    fn fortran_order_is_transposed_to_c() {
        // numpy: np.asfortranarray(np.arange(6).reshape(2,3)) stores 0,3,1,4,2,5
        let mut b = header_bytes(
            1,
            "{'descr': '<u2', 'fortran_order': True, 'shape': (2, 3), }\n",
        );
        for v in [0u16, 3, 1, 4, 2, 5] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let a = decode_npy(Path::new("f.npy"), &b).unwrap();
        let NpyArray::U16(a) = a else { panic!("dtype") };
        assert_eq!(
            a.iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5]
        );
        assert_eq!(a.shape(), &[2, 3]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let b = header_bytes(
            1,
            "{'descr': '<U8', 'fortran_order': False, 'shape': (1,), }\n",
        );
        let e = decode_npy(Path::new("s.npy"), &b).unwrap_err().to_string();
        assert!(
            e.contains("s.npy") && e.contains("unsupported dtype `<U8`"),
            "{e}"
        );
        let b = header_bytes(
            1,
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n",
        );
        let e = decode_npy(Path::new("r.npy"), &b).unwrap_err().to_string();
        assert!(e.contains("structured"), "{e}");
        let mut b = header_bytes(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }\n",
        );
        b.extend_from_slice(&[0u8; 20]);
        let e = decode_npy(Path::new("t.npy"), &b).unwrap_err().to_string();
        assert!(
            e.contains("truncated: expected 32 bytes of array data, found 20"),
            "{e}"
        );
        let e = decode_npy(Path::new("m.npy"), b"PK\x03\x04 not numpy")
            .unwrap_err()
            .to_string();
        assert!(e.contains("magic"), "{e}");
    }

    #[test]
    fn round_trip_every_writable_dtype() {
        let a = ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.5f64, -2.0, 3.25, 1e300]).unwrap();
        let b = decode_npy(Path::new("r"), &encode_npy(&a.view())).unwrap();
        assert_eq!(b, NpyArray::F64(a));
        let a = ArrayD::from_shape_vec(IxDyn(&[3]), vec![true, false, true]).unwrap();
        let b = decode_npy(Path::new("r"), &encode_npy(&a.view())).unwrap();
        assert_eq!(b, NpyArray::Bool(a));
        let a = ArrayD::from_shape_vec(IxDyn(&[]), vec![7i64]).unwrap();
        let enc = encode_npy(&a.view());
        assert_eq!(enc.len() % 64, 8); // data starts on a 64-byte boundary, then one i64
        assert_eq!(decode_npy(Path::new("r"), &enc).unwrap(), NpyArray::I64(a));
    }
}
