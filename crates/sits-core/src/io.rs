//! The rule every writer of the workspace follows for an output that already exists,
//! and the one atomic file writer.

use std::io::Write;
use std::path::Path;

/// What a writer does when its output path already exists.
///
/// Nothing in the workspace removes or replaces a path the program did not create: a
/// writer refuses an existing output unless it is given [`IfExists::Replace`], and
/// even then replaces only what is of its own kind (a regular file for file writers,
/// a store written by `sits` of the same kind for store writers), never a folder of
/// other files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfExists {
    /// Refuse with an error naming the path (the default).
    #[default]
    Refuse,
    /// Replace it, if it is of the writer's own kind.
    Replace,
}

/// Writes a file at `path` through a temporary file in the same folder: `write` gets
/// the open temporary file and its path (for writers that take a path), then the
/// file is synced and renamed over `path`. Readers see the old file or the complete
/// new one, never a part; the temporary is removed if anything fails. The file gets
/// the mode `File::create` would give (0o666 less the umask).
///
/// An existing regular file at `path` is replaced: callers apply the [`IfExists`]
/// rule first where the file may be the user's. A folder at `path` is refused.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File, &Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    if path.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a folder is there, and a file was to be written",
        ));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // the mode `File::create` gives, not tempfile's private 0o600: reports, arrays
    // and weights are meant to be read by others
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    let tmp_path = tmp.path().to_path_buf();
    let mode = tmp.as_file().metadata()?.permissions();
    write(tmp.as_file_mut(), &tmp_path)?;
    // a writer that recreated the file by its path (candle's safetensors writer
    // does) may have left a private mode: give the file back the one it was made with
    std::fs::set_permissions(&tmp_path, mode)?;
    // synced through its path: the handle may be that of a replaced file
    std::fs::File::open(&tmp_path)?.sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// [`write_atomic_with`] for bytes in memory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |f, _| f.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_files_refuse_folders_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let err = write_atomic_with(&p, |_, _| Err(std::io::Error::other("writer failed")));
        assert!(err.is_err());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"two",
            "a failed write keeps the old file"
        );
        assert!(write_atomic(dir.path(), b"x").is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary left behind");
    }

    #[cfg(unix)]
    #[test]
    fn a_writer_that_recreates_the_file_privately_does_not_change_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.txt");
        write_atomic(&plain, b"x").unwrap();
        let want = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        let p = dir.path().join("b.bin");
        write_atomic_with(&p, |_, tmp| {
            std::fs::remove_file(tmp)?;
            std::fs::write(tmp, b"y")?;
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o600))
        })
        .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"y");
        let got = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            got, want,
            "mode {got:o}, a plain atomic write gives {want:o}"
        );
    }
}
