//! Where a store lives: a local folder, or a prefix on object storage.
//!
//! A path that starts with `s3://`, `gs://`, `az://` (also `abfs://`, `azure://`),
//! `http://` or `https://` names a prefix on object storage, reached through zarrs'
//! [`object_store`] adapter; anything else is a
//! local folder. Credentials, region and endpoint come from the usual environment
//! variables of each service, read by the `object_store` builders:
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
use std::sync::{Arc, OnceLock};

use zarrs::storage::{
    byte_range::ByteRangeIterator, Bytes, MaybeBytes, MaybeBytesIterator, OffsetBytesIterator,
    ReadableWritableListableStorageTraits, StorageError, StoreKey, StoreKeys, StoreKeysPrefixes,
    StorePrefix,
};
use zarrs_object_store::object_store;
use zarrs_storage::storage_adapter::async_to_sync::{
    AsyncToSyncBlockOn, AsyncToSyncStorageAdapter,
};
use zarrs_storage::AsyncReadableStorageTraits;

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

struct BlockOn(tokio::runtime::Handle);

impl AsyncToSyncBlockOn for BlockOn {
    fn block_on<F: core::future::Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Handle> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt.handle().clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sits-object-store")
        .enable_all()
        .build()?;
    Ok(RT.get_or_init(|| rt).handle().clone())
}

fn remote_err(url: &str, reason: impl std::fmt::Display) -> DataError {
    DataError::Zarr {
        store: url.to_string(),
        reason: reason.to_string(),
    }
}

/// Opens the object-storage prefix `url` as a synchronous store (nothing is read
/// yet: a wrong bucket or credentials show at the first request).
pub fn open_remote(url: &str) -> Result<Arc<DynStore>> {
    let (store, prefix) = object_store_at(url)?;
    wrap(store, &prefix)
}

/// The object store of `url` and the prefix inside it.
fn object_store_at(url: &str) -> Result<(Arc<dyn object_store::ObjectStore>, String)> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| remote_err(url, "not a URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    if bucket.is_empty() {
        return Err(remote_err(
            url,
            format!("no bucket: write {scheme}://BUCKET/PREFIX"),
        ));
    }
    let bad = |e: object_store::Error| {
        remote_err(
            url,
            format!(
                "{e} (credentials and endpoint come from the environment: see \
                 `sits_data::zarr::store`)"
            ),
        )
    };
    let base = format!("{scheme}://{bucket}");
    let store: Arc<dyn object_store::ObjectStore> = match scheme {
        "s3" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(&base)
                .build()
                .map_err(bad)?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(&base)
                .build()
                .map_err(bad)?,
        ),
        "az" | "abfs" | "azure" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(&base)
                .build()
                .map_err(bad)?,
        ),
        "http" | "https" => {
            let store = object_store::http::HttpBuilder::new()
                .with_url(url.trim_end_matches('/'))
                .build()
                .map_err(bad)?;
            return Ok((Arc::new(store), String::new()));
        }
        other => return Err(remote_err(url, format!("unknown scheme {other}://"))),
    };
    Ok((store, prefix.to_string()))
}

/// One object on object storage, read by byte ranges: one ranged GET per call (the
/// GeoTIFF reader fetches headers and tiles this way). Synchronous, like the stores.
pub(crate) struct RangedObject {
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    handle: tokio::runtime::Handle,
    url: String,
}

impl RangedObject {
    /// The object at `url` (`s3://bucket/key.tif`, `https://host/path/file.tif`...);
    /// nothing is requested yet.
    pub(crate) fn open(url: &str) -> Result<Self> {
        let (dir, name) = url
            .rsplit_once('/')
            .filter(|(d, n)| !n.is_empty() && d.contains("://"))
            .ok_or_else(|| remote_err(url, "not the URL of an object"))?;
        let (store, prefix) = object_store_at(dir)?;
        let key = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let handle = runtime().map_err(|e| remote_err(url, format!("async runtime: {e}")))?;
        Ok(Self {
            store,
            path: object_store::path::Path::from(key),
            handle,
            url: url.to_string(),
        })
    }

    /// The object's size in bytes (one HEAD request); `None` when it does not exist.
    pub(crate) fn size(&self) -> Result<Option<u64>> {
        use object_store::ObjectStoreExt;
        match self.handle.block_on(self.store.head(&self.path)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote_err(&self.url, e)),
        }
    }

    /// Bytes `start..end` (one ranged GET).
    pub(crate) fn get_range(&self, start: u64, end: u64) -> std::io::Result<Bytes> {
        use object_store::ObjectStoreExt;
        self.handle
            .block_on(self.store.get_range(&self.path, start..end))
            .map_err(std::io::Error::other)
    }
}

fn wrap<T: object_store::ObjectStore>(store: T, prefix: &str) -> Result<Arc<DynStore>> {
    let handle = runtime().map_err(|e| remote_err(prefix, format!("async runtime: {e}")))?;
    Ok(if prefix.is_empty() {
        WholeObjects::boxed(zarrs_object_store::AsyncObjectStore::new(store), handle)
    } else {
        let store = object_store::prefix::PrefixStore::new(store, prefix);
        WholeObjects::boxed(zarrs_object_store::AsyncObjectStore::new(store), handle)
    })
}

/// An object store made synchronous, whose reads fetch the whole object in one GET.
///
/// zarrs' async-to-sync adapter reads every value through a partial read, and the
/// object_store adapter answers a partial read with a HEAD (for the object's size)
/// and then a ranged GET: two round trips per chunk. The chunks written here are
/// not sharded and are compressed as a whole, so a read needs the whole object
/// anyway: here it is one GET per chunk, as one file read per chunk on disk.
struct WholeObjects<A: AsyncReadableStorageTraits> {
    sync: AsyncToSyncStorageAdapter<A, BlockOn>,
    store: Arc<A>,
    handle: tokio::runtime::Handle,
}

impl<A> WholeObjects<A>
where
    A: AsyncReadableStorageTraits
        + zarrs_storage::AsyncWritableStorageTraits
        + zarrs_storage::AsyncListableStorageTraits
        + 'static,
{
    fn boxed(store: A, handle: tokio::runtime::Handle) -> Arc<DynStore> {
        let store = Arc::new(store);
        Arc::new(Self {
            sync: AsyncToSyncStorageAdapter::new(store.clone(), BlockOn(handle.clone())),
            store,
            handle,
        })
    }
}

impl<A: AsyncReadableStorageTraits> zarrs::storage::ReadableStorageTraits for WholeObjects<A> {
    fn get(&self, key: &StoreKey) -> std::result::Result<MaybeBytes, StorageError> {
        self.handle.block_on(self.store.get(key))
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> std::result::Result<MaybeBytesIterator<'a>, StorageError> {
        let Some(bytes) = self.get(key)? else {
            return Ok(None);
        };
        let size = bytes.len() as u64;
        Ok(Some(Box::new(byte_ranges.map(move |r| {
            let range = r.to_range(size);
            if range.start > range.end || range.end > size {
                return Err(StorageError::Other(format!(
                    "byte range {r} is outside the {size}-byte object"
                )));
            }
            Ok(bytes.slice(range.start as usize..range.end as usize))
        }))))
    }

    fn size_key(&self, key: &StoreKey) -> std::result::Result<Option<u64>, StorageError> {
        self.sync.size_key(key)
    }

    fn supports_get_partial(&self) -> bool {
        false
    }
}

impl<A> zarrs::storage::WritableStorageTraits for WholeObjects<A>
where
    A: AsyncReadableStorageTraits + zarrs_storage::AsyncWritableStorageTraits,
{
    fn set(&self, key: &StoreKey, value: Bytes) -> std::result::Result<(), StorageError> {
        self.sync.set(key, value)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator<Bytes>,
    ) -> std::result::Result<(), StorageError> {
        self.sync.set_partial_many(key, offset_values)
    }

    fn erase(&self, key: &StoreKey) -> std::result::Result<(), StorageError> {
        self.sync.erase(key)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> std::result::Result<(), StorageError> {
        self.sync.erase_prefix(prefix)
    }

    fn supports_set_partial(&self) -> bool {
        self.sync.supports_set_partial()
    }
}

impl<A> zarrs::storage::ListableStorageTraits for WholeObjects<A>
where
    A: AsyncReadableStorageTraits + zarrs_storage::AsyncListableStorageTraits,
{
    fn list(&self) -> std::result::Result<StoreKeys, StorageError> {
        self.sync.list()
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> std::result::Result<StoreKeys, StorageError> {
        self.sync.list_prefix(prefix)
    }

    fn list_dir(
        &self,
        prefix: &StorePrefix,
    ) -> std::result::Result<StoreKeysPrefixes, StorageError> {
        self.sync.list_dir(prefix)
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> std::result::Result<u64, StorageError> {
        self.sync.size_prefix(prefix)
    }

    fn size(&self) -> std::result::Result<u64, StorageError> {
        self.sync.size()
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
