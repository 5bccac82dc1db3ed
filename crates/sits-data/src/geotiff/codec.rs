//! One tile or strip from its stored bytes to samples: decompression (none, deflate,
//! LZW, zstd, PackBits), byte order, and the horizontal (2) and floating-point (3)
//! predictors, as TIFF 6.0 and Adobe's Technical Note 3 define them.
//!
//! The `tiff` crate parses the container; blocks are decoded here, whole, from the
//! bytes the reader fetched: a block is decompressed in one call (the `tiff` crate's
//! streaming LZW reader fails on some right-edge tiles GDAL writes, whose last code
//! ends the stream without room for more), blocks can be decoded in parallel, and
//! every size is checked against the block's expected size before anything is
//! allocated.

use std::io::Read;

use super::SampleType;

/// How the stored blocks are coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Coding {
    pub(crate) compression: u16,
    pub(crate) predictor: u16,
    pub(crate) big_endian: bool,
    pub(crate) sample_type: SampleType,
    /// Samples per pixel in one block (the bands of a pixel-interleaved file, else 1).
    pub(crate) spp: usize,
}

/// A decoded block: samples in native byte order, `rows x cols x spp`.
pub(crate) struct Block {
    pub(crate) bytes: Vec<u8>,
}

impl Coding {
    /// Decodes one block of `rows x cols` pixels (the stored size: full tiles
    /// including padding, or the rows of a strip). `Err` says what is wrong.
    pub(crate) fn decode(&self, raw: &[u8], rows: usize, cols: usize) -> Result<Block, String> {
        let size = self.sample_type.size();
        let row_bytes = cols * self.spp * size;
        let expected = rows * row_bytes;
        let mut bytes = match self.compression {
            1 => raw.get(..expected).map(<[u8]>::to_vec).ok_or_else(|| {
                format!(
                    "an uncompressed block of {} bytes, {expected} expected",
                    raw.len()
                )
            })?,
            8 | 32946 => {
                let options = zune_inflate::DeflateOptions::default()
                    .set_size_hint(expected)
                    .set_limit(expected);
                zune_inflate::DeflateDecoder::new_with_options(raw, options)
                    .decode_zlib()
                    .map_err(|e| format!("deflate: {e:?}"))?
            }
            5 => lzw(raw, expected)?,
            50000 => {
                let mut out = Vec::with_capacity(expected);
                zstd::stream::read::Decoder::new(raw)
                    .map_err(|e| format!("zstd: {e}"))?
                    .take(expected as u64)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("zstd: {e}"))?;
                out
            }
            32773 => packbits(raw, expected)?,
            other => return Err(format!("compression {other} is not read")),
        };
        if bytes.len() < expected {
            return Err(format!(
                "a block decompresses to {} bytes, {expected} expected ({rows} x {cols} \
                 pixels x {} samples x {size} bytes)",
                bytes.len(),
                self.spp
            ));
        }
        match self.predictor {
            1 => self.fix_order(&mut bytes),
            2 => {
                self.fix_order(&mut bytes);
                for row in bytes.chunks_exact_mut(row_bytes) {
                    self.undo_horizontal(row);
                }
            }
            3 => {
                let mut tmp = vec![0u8; row_bytes];
                for row in bytes.chunks_exact_mut(row_bytes) {
                    undo_float(row, &mut tmp, self.spp, size);
                }
            }
            other => return Err(format!("predictor {other} is not read (read: 1, 2, 3)")),
        }
        Ok(Block { bytes })
    }

    fn fix_order(&self, bytes: &mut [u8]) {
        let size = self.sample_type.size();
        if self.big_endian != cfg!(target_endian = "big") && size > 1 {
            for s in bytes.chunks_exact_mut(size) {
                s.reverse();
            }
        }
    }

    /// Cumulative sums along the row, per sample channel, in the sample's integer
    /// width (wrapping, as the predictor was applied).
    fn undo_horizontal(&self, row: &mut [u8]) {
        let spp = self.spp;
        macro_rules! run {
            ($t:ty) => {{
                const N: usize = std::mem::size_of::<$t>();
                if spp == 1 {
                    // one running sum: the common single-band case, kept tight
                    let mut prev: $t = 0;
                    for ch in row.chunks_exact_mut(N) {
                        let mut b = [0u8; N];
                        b.copy_from_slice(ch);
                        let v = <$t>::from_ne_bytes(b).wrapping_add(prev);
                        ch.copy_from_slice(&v.to_ne_bytes());
                        prev = v;
                    }
                } else {
                    let mut prev: Vec<$t> = vec![0; spp];
                    for (k, ch) in row.chunks_exact_mut(N).enumerate() {
                        let mut b = [0u8; N];
                        b.copy_from_slice(ch);
                        let p = &mut prev[k % spp];
                        let v = <$t>::from_ne_bytes(b).wrapping_add(*p);
                        ch.copy_from_slice(&v.to_ne_bytes());
                        *p = v;
                    }
                }
            }};
        }
        match self.sample_type.size() {
            1 => run!(u8),
            2 => run!(u16),
            4 => run!(u32),
            _ => run!(u64),
        }
    }
}

/// The floating-point predictor: bytes differenced along the row (stride `spp`),
/// each sample's bytes stored as planes from the most significant.
fn undo_float(row: &mut [u8], tmp: &mut [u8], spp: usize, size: usize) {
    for i in spp..row.len() {
        row[i] = row[i].wrapping_add(row[i - spp]);
    }
    let n = row.len() / size;
    for i in 0..n {
        for b in 0..size {
            // plane b holds byte b (big-endian order) of every sample
            tmp[i * size + b] = row[b * n + i];
        }
        let s = &mut tmp[i * size..(i + 1) * size];
        if cfg!(target_endian = "little") {
            s.reverse();
        }
    }
    row.copy_from_slice(&tmp[..row.len()]);
}

fn lzw(raw: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    let mut dec = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
    let mut out = vec![0u8; expected];
    let mut filled = 0;
    let mut input = raw;
    while filled < expected {
        let r = dec.decode_bytes(input, &mut out[filled..]);
        filled += r.consumed_out;
        input = &input[r.consumed_in..];
        match r.status {
            Ok(weezl::LzwStatus::Ok) => {}
            // the end code, or the stream ends without one (libtiff accepts both)
            Ok(weezl::LzwStatus::Done) | Ok(weezl::LzwStatus::NoProgress) => break,
            Err(e) => return Err(format!("LZW: {e}")),
        }
    }
    out.truncate(filled);
    Ok(out)
}

fn packbits(raw: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(expected);
    let mut i = 0;
    while i < raw.len() && out.len() < expected {
        let n = raw[i] as i8;
        i += 1;
        match n {
            0..=127 => {
                let len = n as usize + 1;
                let lit = raw
                    .get(i..i + len)
                    .ok_or("PackBits: a literal run past the end of the block")?;
                out.extend_from_slice(lit);
                i += len;
            }
            -127..=-1 => {
                let v = *raw
                    .get(i)
                    .ok_or("PackBits: a repeat past the end of the block")?;
                out.extend(std::iter::repeat_n(v, (1 - n as isize) as usize));
                i += 1;
            }
            -128 => {}
        }
    }
    out.truncate(expected);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_decodes_the_tiff_spec_example() {
        // TIFF 6.0, section 9
        let raw = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7,
            0xAA,
        ];
        let out = packbits(&raw, 24).unwrap();
        assert_eq!(
            out,
            [
                0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22,
                0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA
            ]
        );
        assert!(packbits(&[0x05, 1, 2], 6).is_err());
    }
}
