//! Object storage when sits-data is built without its `remote` feature: every
//! `s3://`, `gs://`, `az://` or `http(s)://` path is an error that says how to turn
//! the feature on. Local folders and files work as with it.

use std::sync::Arc;

use zarrs::storage::Bytes;

use super::store::{remote_err, DynStore};
use crate::error::Result;

fn needs_feature(url: &str) -> crate::error::DataError {
    remote_err(
        url,
        "object storage and http(s) need the `remote` feature of sits-data \
         (cargo add sits-data --features remote, or sits --features remote); \
         the sits command-line tool has it",
    )
}

/// Object storage is not built in: always an error naming the feature.
pub fn open_remote(url: &str) -> Result<Arc<DynStore>> {
    Err(needs_feature(url))
}

/// Never made without the `remote` feature ([`RangedObject::open`] fails).
pub(crate) struct RangedObject {
    never: std::convert::Infallible,
}

impl RangedObject {
    pub(crate) fn open(url: &str) -> Result<Self> {
        Err(needs_feature(url))
    }

    pub(crate) fn size(&self) -> Result<Option<u64>> {
        match self.never {}
    }

    pub(crate) fn get_range(&self, _start: u64, _end: u64) -> std::io::Result<Bytes> {
        match self.never {}
    }
}
