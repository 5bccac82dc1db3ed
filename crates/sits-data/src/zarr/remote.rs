//! Object storage behind the synchronous store type (feature `remote`): zarrs'
//! `object_store` adapter driven by a small tokio runtime shared by the process.

use std::sync::{Arc, OnceLock};

use zarrs::storage::{
    byte_range::ByteRangeIterator, Bytes, MaybeBytes, MaybeBytesIterator, OffsetBytesIterator,
    StorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix,
};
use zarrs_object_store::object_store;
use zarrs_storage::storage_adapter::async_to_sync::{
    AsyncToSyncBlockOn, AsyncToSyncStorageAdapter,
};
use zarrs_storage::AsyncReadableStorageTraits;

use super::store::{remote_err, DynStore};
use crate::error::Result;

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
