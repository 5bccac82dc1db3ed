//! Where a store lives: a local folder, or a prefix on object storage.
//!
//! A path that starts with `s3://`, `gs://`, `az://` (also `abfs://`, `azure://`),
//! `http://` or `https://` names a prefix on object storage, reached through zarrs'
//! `object_store` adapter when sits-data is built with its `remote` feature (without
//! it such a path is an error naming the feature); anything else is a local folder.
//! Credentials, region and endpoint come from the usual environment variables of
//! each service, read by the `object_store` builders:
//!
//! | service | variables (for example) |
//! | --- | --- |
//! | S3 and S3-compatible servers | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT` (MinIO, Ceph, a local server), `AWS_ALLOW_HTTP=true` for `http://` endpoints |
//! | Google Cloud Storage | `GOOGLE_SERVICE_ACCOUNT` (a key file), `GOOGLE_BUCKET` |
//! | Azure Blob Storage | `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` |
//! | HTTP(S) | none (read-only servers; WebDAV servers also take writes) |
//!
//! The stores are synchronous for the rest of the crate: each request runs to
//! completion on a small tokio runtime shared by the process (zarrs'
//! async-to-sync adapter), so readers and writers are the same code for disk and
//! object storage. They must not be called from inside an async runtime.

use std::path::Path;
use std::sync::Arc;

use zarrs::storage::ReadableWritableListableStorageTraits;

pub use super::remote::open_remote;
pub(crate) use super::remote::RangedObject;
use crate::error::{DataError, Result};

/// A store on disk or on object storage, behind one type.
pub type DynStore = dyn ReadableWritableListableStorageTraits;

const SCHEMES: [&str; 7] = [
    "s3://", "gs://", "az://", "abfs://", "azure://", "http://", "https://",
];

/// The object-storage URL that `path` spells (`s3://bucket/prefix`, ...), if it is
/// one.
pub fn url_of(path: &Path) -> Option<&str> {
    let s = path.to_str()?;
    SCHEMES.iter().any(|p| s.starts_with(p)).then_some(s)
}

/// Whether `path` names a prefix on object storage rather than a local folder.
pub fn is_remote(path: &Path) -> bool {
    url_of(path).is_some()
}

/// `path` joined with a child name, for a local folder or an object-storage prefix.
pub fn join(path: &Path, name: &str) -> std::path::PathBuf {
    match url_of(path) {
        Some(url) => format!("{}/{name}", url.trim_end_matches('/')).into(),
        None => path.join(name),
    }
}

pub(super) fn remote_err(url: &str, reason: impl std::fmt::Display) -> DataError {
    DataError::Zarr {
        store: url.to_string(),
        reason: reason.to_string(),
    }
}

/// Opens the store at `path`: an object-storage prefix, or a local folder (made if
/// missing only when `create`).
pub fn open(path: &Path, create: bool) -> Result<Arc<DynStore>> {
    if let Some(url) = url_of(path) {
        return open_remote(url);
    }
    if !create {
        super::check_store_dir(path)?;
    }
    super::new_store(path)
}

/// The `sits.kind` of the store's root group, if it has one.
pub fn kind_of(store: &DynStore) -> Option<String> {
    let key = zarrs::storage::StoreKey::new("zarr.json").ok()?;
    super::kind_in(&store.get(&key).ok()??)
}

/// Whether anything at all is stored under the store's root (one listing request).
pub fn is_empty(store: &DynStore, desc: &str) -> Result<bool> {
    let listed = store
        .list_dir(&zarrs::storage::StorePrefix::root())
        .map_err(|e| super::zerr(desc, e))?;
    Ok(listed.keys().is_empty() && listed.prefixes().is_empty())
}

/// Checks that a new store may be written at the object-storage prefix `url`:
/// nothing may be there. Stores on object storage are never replaced (nothing
/// there is removed by sits): delete the prefix with the storage's own tools first.
pub fn check_remote_output(store: &DynStore, url: &str, kind: &str) -> Result<()> {
    if is_empty(store, url)? {
        return Ok(());
    }
    let reason = match kind_of(store) {
        Some(k) if k == kind => format!(
            "a sits {kind} store is already there; sits never deletes objects on object \
             storage: choose a new prefix, or delete this one with the storage's tools"
        ),
        Some(k) => format!("a sits {k} store is there; choose a new prefix"),
        None => "objects are already under this prefix; they are never replaced: choose a \
                 new prefix"
            .into(),
    };
    Err(DataError::Exists {
        path: url.into(),
        reason,
    })
}

/// Writes the small file `name` (a fitted model, a report) into `dir`, a local
/// folder or an object-storage prefix, and returns its path. A local file is
/// written atomically and replaced only with
/// [`IfExists::Replace`](sits_core::io::IfExists::Replace); an object that
/// exists is never replaced (nothing on object storage is removed by sits).
pub fn put_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    if_exists: sits_core::io::IfExists,
) -> Result<std::path::PathBuf> {
    let path = join(dir, name);
    let Some(url) = url_of(dir) else {
        crate::io_util::write_new(&path, bytes, if_exists)?;
        return Ok(path);
    };
    let store = open_remote(url)?;
    let key = zarrs::storage::StoreKey::new(name).map_err(|e| remote_err(url, e))?;
    if store
        .size_key(&key)
        .map_err(|e| remote_err(url, format!("{name}: {e}")))?
        .is_some()
    {
        return Err(DataError::Exists {
            path,
            reason: "the object exists; sits never replaces objects on object storage: \
                     choose another prefix, or delete it with the storage's tools"
                .into(),
        });
    }
    store
        .set(&key, bytes.to_vec().into())
        .map_err(|e| remote_err(url, format!("{name}: {e}")))?;
    Ok(path)
}

/// Reads the small file `name` of `dir` (a local folder or an object-storage
/// prefix): `None` when it is not there; an error when it holds more than
/// `max_bytes` (checked before it is read).
pub fn get_file(dir: &Path, name: &str, max_bytes: u64) -> Result<Option<Vec<u8>>> {
    let path = join(dir, name);
    let too_big = |size: u64| {
        DataError::field(
            &path,
            "size",
            format!("{size} bytes, more than the {max_bytes} expected of this file"),
        )
    };
    let Some(url) = url_of(dir) else {
        let size = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DataError::io(&path, e)),
            Ok(m) => m.len(),
        };
        if size > max_bytes {
            return Err(too_big(size));
        }
        return std::fs::read(&path)
            .map(Some)
            .map_err(|e| DataError::io(&path, e));
    };
    let store = open_remote(url)?;
    let key = zarrs::storage::StoreKey::new(name).map_err(|e| remote_err(url, e))?;
    match store
        .size_key(&key)
        .map_err(|e| remote_err(url, format!("{name}: {e}")))?
    {
        None => return Ok(None),
        Some(size) if size > max_bytes => return Err(too_big(size)),
        Some(_) => {}
    }
    Ok(store
        .get(&key)
        .map_err(|e| remote_err(url, format!("{name}: {e}")))?
        .map(|b| b.to_vec()))
}
