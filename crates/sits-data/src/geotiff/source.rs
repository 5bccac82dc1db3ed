//! Where a GeoTIFF's bytes come from: a local file, or an object on object storage
//! read by byte ranges.
//!
//! The TIFF decoder wants `Read + Seek`. On object storage every read that misses
//! the small cache becomes one ranged GET; before a window is decoded the reader
//! fetches the byte ranges of exactly the tiles (or strips) it needs
//! ([`Source::prefetch`]), so a window costs one request per run of adjacent tiles,
//! plus the header.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use zarrs::storage::Bytes;

use crate::error::{DataError, Result};
use crate::zarr::store::{self, RangedObject};

/// Bytes fetched on a cache miss (headers are read in small pieces).
const MISS_FETCH: u64 = 64 * 1024;
/// Ranges closer than this are fetched in one request.
const COALESCE_GAP: u64 = 16 * 1024;
/// Segments kept in the cache of a remote source.
const CACHE_SEGMENTS: usize = 64;

/// A GeoTIFF's bytes, local or remote.
pub(crate) enum Source {
    Local(BufReader<File>),
    Memory(Cursor<Vec<u8>>),
    Remote(Remote),
}

pub(crate) struct Remote {
    url: String,
    object: RangedObject,
    len: u64,
    pos: u64,
    cache: Vec<(u64, Bytes)>,
    requests: Arc<AtomicU64>,
}

impl Source {
    /// Opens `path`: an object-storage URL (`s3://bucket/key.tif`, ...) or a local
    /// file. A missing file or object is an error naming it.
    pub(crate) fn open(path: &Path, requests: Arc<AtomicU64>) -> Result<Self> {
        let Some(url) = store::url_of(path) else {
            let f = File::open(path).map_err(|e| DataError::io(path, e))?;
            return Ok(Self::Local(BufReader::with_capacity(64 * 1024, f)));
        };
        let object = RangedObject::open(url)?;
        requests.fetch_add(1, Ordering::Relaxed);
        let len = object.size()?.ok_or_else(|| DataError::Zarr {
            store: url.to_string(),
            reason: "no such object".into(),
        })?;
        Ok(Self::Remote(Remote {
            url: url.to_string(),
            object,
            len,
            pos: 0,
            cache: Vec::new(),
            requests,
        }))
    }

    /// Size of the file in bytes.
    pub(crate) fn len(&mut self, path: &Path) -> Result<u64> {
        match self {
            Self::Local(f) => f
                .get_ref()
                .metadata()
                .map(|m| m.len())
                .map_err(|e| DataError::io(path, e)),
            Self::Memory(c) => Ok(c.get_ref().len() as u64),
            Self::Remote(r) => Ok(r.len),
        }
    }

    /// Fetches the byte ranges `(offset, length)` ahead of decoding (remote only;
    /// a local file is read as the decoder goes). Adjacent or nearly adjacent ranges
    /// are fetched in one request.
    pub(crate) fn prefetch(&mut self, ranges: &mut [(u64, u64)]) -> Result<()> {
        let Self::Remote(r) = self else {
            return Ok(());
        };
        ranges.sort_unstable();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &(off, len) in ranges.iter().filter(|(_, l)| *l > 0) {
            if r.cached(off, len) {
                continue;
            }
            match runs.last_mut() {
                Some((s, e)) if off <= *e + COALESCE_GAP => *e = (*e).max(off + len),
                _ => runs.push((off, off + len)),
            }
        }
        for (s, e) in runs {
            r.fetch(s, e - s).map_err(|e| DataError::Zarr {
                store: r.url.clone(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

impl Remote {
    fn cached(&self, off: u64, len: u64) -> bool {
        self.cache
            .iter()
            .any(|(s, b)| *s <= off && off + len <= *s + b.len() as u64)
    }

    fn fetch(&mut self, off: u64, len: u64) -> std::io::Result<()> {
        let len = len.min(self.len.saturating_sub(off));
        if len == 0 {
            return Ok(());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let bytes = self.object.get_range(off, off + len)?;
        if bytes.len() as u64 != len {
            return Err(std::io::Error::other(format!(
                "{}: asked for {len} bytes at {off}, got {}",
                self.url,
                bytes.len()
            )));
        }
        if self.cache.len() >= CACHE_SEGMENTS {
            self.cache.remove(0);
        }
        self.cache.push((off, bytes));
        Ok(())
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Local(f) => f.read(buf),
            Self::Memory(c) => c.read(buf),
            Self::Remote(r) => {
                if r.pos >= r.len || buf.is_empty() {
                    return Ok(0);
                }
                let hit = |r: &Remote| {
                    r.cache
                        .iter()
                        .rev()
                        .find(|(s, b)| *s <= r.pos && r.pos < *s + b.len() as u64)
                        .map(|(s, b)| (*s, b.clone()))
                };
                let (start, bytes) = match hit(r) {
                    Some(x) => x,
                    None => {
                        r.fetch(r.pos, MISS_FETCH.max(buf.len() as u64))?;
                        hit(r)
                            .ok_or_else(|| std::io::Error::other("range read returned nothing"))?
                    }
                };
                let from = (r.pos - start) as usize;
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                r.pos += n as u64;
                Ok(n)
            }
        }
    }
}

impl Seek for Source {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        match self {
            Self::Local(f) => f.seek(to),
            Self::Memory(c) => c.seek(to),
            Self::Remote(r) => {
                let pos = match to {
                    SeekFrom::Start(p) => Some(p),
                    SeekFrom::End(d) => r.len.checked_add_signed(d),
                    SeekFrom::Current(d) => r.pos.checked_add_signed(d),
                };
                r.pos = pos.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
                })?;
                Ok(r.pos)
            }
        }
    }
}
