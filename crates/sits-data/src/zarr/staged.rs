//! Stores built under a temporary name next to the destination and renamed into
//! place, so that an interrupted write never leaves a partial store at the output.

#[allow(clippy::wildcard_imports)] // the parent module's helpers and imports
use super::*;

/// A store being built in a temporary folder next to its destination; the folder is
/// removed if the store is dropped before [`StagedStore::commit`].
pub(super) struct StagedStore {
    pub(super) tmp: tempfile::TempDir,
    pub(super) dest: std::path::PathBuf,
    kind: &'static str,
    if_exists: IfExists,
}

impl StagedStore {
    pub(super) fn new(path: &Path, kind: &'static str, if_exists: IfExists) -> Result<Self> {
        let name = path.file_name().ok_or_else(|| {
            DataError::Argument(format!("{} is not a store path", path.display()))
        })?;
        check_store_output(path, kind, if_exists)?;
        let dir = crate::io_util::parent_dir(path);
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".tmp")
            .tempdir_in(dir)
            .map_err(|e| DataError::io(path, e))?;
        Ok(Self {
            tmp,
            dest: path.to_path_buf(),
            kind,
            if_exists,
        })
    }

    /// Moves the finished store into place. An existing store is replaced only if it
    /// still passes [`check_store_output`]; it is moved aside first and restored if the
    /// rename fails, so the destination is never left empty.
    pub(super) fn commit(self) -> Result<()> {
        let dest = &self.dest;
        check_store_output(dest, self.kind, self.if_exists)?;
        let old = if dest.exists() {
            let aside = tempfile::Builder::new()
                .prefix(&format!(
                    ".{}.",
                    dest.file_name().unwrap_or_default().to_string_lossy()
                ))
                .suffix(".old")
                .tempdir_in(crate::io_util::parent_dir(dest))
                .map_err(|e| DataError::io(dest, e))?;
            let aside_path = aside.path().join("store");
            std::fs::rename(dest, &aside_path).map_err(|e| DataError::io(dest, e))?;
            Some((aside, aside_path))
        } else {
            None
        };
        let tmp = self.tmp.keep();
        if let Err(e) = std::fs::rename(&tmp, dest) {
            if let Some((_, aside_path)) = &old {
                let _ = std::fs::rename(aside_path, dest);
            }
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(DataError::io(dest, e));
        }
        // `old` (a store of our own kind, checked above) is removed on drop
        drop(old);
        Ok(())
    }
}

/// A new store at a path: on disk, a [`StagedStore`] renamed into place by
/// [`commit`](Self::commit); on object storage (see [`store`](super::store)), the
/// prefix itself, which must be empty, written in place (the caller writes the root
/// metadata last, so a store cut short is not read as one).
pub(super) struct NewStore {
    pub(super) store: Arc<DynStore>,
    pub(super) desc: String,
    staged: Option<StagedStore>,
}

impl NewStore {
    pub(super) fn create(path: &Path, kind: &'static str, if_exists: IfExists) -> Result<Self> {
        let desc = path.display().to_string();
        if is_remote(path) {
            let store = store::open(path, true)?;
            store::check_remote_output(store.as_ref(), &desc, kind)?;
            return Ok(Self {
                store,
                desc,
                staged: None,
            });
        }
        let staged = StagedStore::new(path, kind, if_exists)?;
        Ok(Self {
            store: new_store(staged.tmp.path())?,
            desc,
            staged: Some(staged),
        })
    }

    /// Moves a staged store into place (nothing to do on object storage).
    pub(super) fn commit(self) -> Result<()> {
        drop(self.store);
        self.staged.map_or(Ok(()), StagedStore::commit)
    }
}

/// Writes `f` into a new store at `path` ([`NewStore`]), so that a crash never leaves
/// something at `path` that reads as a store.
pub(super) fn write_store_atomic(
    path: &Path,
    kind: &'static str,
    if_exists: IfExists,
    f: impl FnOnce(Arc<DynStore>, &str) -> Result<()>,
) -> Result<()> {
    let out = NewStore::create(path, kind, if_exists)?;
    f(out.store.clone(), &out.desc)?;
    out.commit()
}
