//! File-system helpers shared by the writers of this crate and the reports: atomic
//! writes, the rule for existing outputs, output-versus-input checks and run folders.
//!
//! The rule every writer of the workspace follows: **nothing removes or replaces a
//! path that the program did not create**. A writer given an existing output refuses
//! it unless the caller passes [`IfExists::Replace`], and even then it only replaces
//! what is of its own kind (a file with a file, a store written by `sits` with a store
//! of the same kind); a folder of other files is never removed. Outputs are built
//! under a temporary name next to the destination and renamed into place, and the
//! temporary is removed on every error path.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

use sits_core::io::IfExists;

/// The folder a path lives in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// [`sits_core::io::write_atomic`] with this crate's error: readers never see a
/// half-written file. An existing regular file at `path` is replaced; use
/// [`write_new`] where the file may be the user's.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sits_core::io::write_atomic(path, bytes).map_err(|e| {
        if path.is_dir() {
            DataError::Exists {
                path: path.to_path_buf(),
                reason: "a folder is there, and a file was to be written".into(),
            }
        } else {
            DataError::io(path, e)
        }
    })
}

/// [`write_atomic`] with the rule for an existing `path`: refused unless `if_exists`
/// is [`IfExists::Replace`] (and never a folder).
pub fn write_new(path: &Path, bytes: &[u8], if_exists: IfExists) -> Result<()> {
    check_file_output(path, if_exists)?;
    write_atomic(path, bytes)
}

/// Checks that a file may be written at `path` under `if_exists`, before any work.
pub fn check_file_output(path: &Path, if_exists: IfExists) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DataError::io(path, e)),
        Ok(m) if m.is_file() && if_exists == IfExists::Replace => Ok(()),
        Ok(m) => Err(DataError::Exists {
            path: path.to_path_buf(),
            reason: if m.is_file() {
                "the file exists; choose another output or ask to overwrite it".into()
            } else {
                "something other than a file is there; choose another output".into()
            },
        }),
    }
}

/// The absolute, symlink-free form of `path`, which may not exist yet: its deepest
/// existing ancestor is canonicalised and the rest appended (`..` in the rest is
/// refused, as it cannot be resolved without the file system).
fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| DataError::io(Path::new("."), e))?
            .join(path)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(c) => {
                let mut out = c;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(_) => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err(DataError::Argument(format!(
                        "{}: cannot resolve this path",
                        path.display()
                    )));
                };
                rest.push(name.to_os_string());
                existing = parent;
            }
        }
    }
}

/// Refuses an `output` that is `input`, lies inside it, or contains it: writing there
/// would replace or mix with the data being read. Both may be files or folders;
/// symbolic links are followed.
pub fn check_output_outside_input(input: &Path, output: &Path) -> Result<()> {
    let (i, o) = (resolve(input)?, resolve(output)?);
    let reason = if i == o {
        "it is the input itself"
    } else if o.starts_with(&i) {
        "it lies inside the input"
    } else if i.starts_with(&o) {
        "it contains the input"
    } else {
        return Ok(());
    };
    Err(DataError::Exists {
        path: output.to_path_buf(),
        reason: format!(
            "refusing this output: {reason} ({}); write somewhere else",
            input.display()
        ),
    })
}

/// Name of the marker file that [`prepare_run_dir`] leaves in the folders it creates.
pub const RUN_MARKER: &str = ".sits-run";

/// Makes `dir` ready to receive the files of a run (reports, logs, checkpoints):
/// creates it if it is missing, accepts it if it is empty or was made by an earlier
/// run (it holds [`RUN_MARKER`]), and refuses any other existing folder or file, so
/// that a run never writes into (or later replaces files of) a folder of the user's.
/// A write probe checks that the folder is writable, so that a run fails here and not
/// after hours of work.
pub fn prepare_run_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(DataError::Exists {
                path: dir.to_path_buf(),
                reason: "a file is there, and an output folder was to be made".into(),
            })
        }
        Ok(_) => {
            let marked = dir.join(RUN_MARKER).is_file();
            let empty = std::fs::read_dir(dir)
                .map_err(|e| DataError::io(dir, e))?
                .next()
                .is_none();
            if !marked && !empty {
                return Err(DataError::Exists {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "this folder has files and was not made by a sits run (no {RUN_MARKER} \
                         in it); choose a new or empty output folder"
                    ),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        }
        Err(e) => return Err(DataError::io(dir, e)),
    }
    // The marker is the folder's first entry, made with `create_new` and never
    // replaced: several workers preparing the same folder at once (a sharded job)
    // each see it empty or marked, never holding files without a marker.
    let marker = dir.join(RUN_MARKER);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(
                b"This folder was made by a sits run; a later run may replace the files in it.\n",
            )
            .map_err(|e| DataError::io(&marker, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // an earlier (or concurrent) run's marker: probe that the folder is
            // writable with a file that has no name in it
            tempfile::tempfile_in(dir)
                .map(|_| ())
                .map_err(|e| DataError::io(dir, e))
        }
        Err(e) => Err(DataError::io(&marker, e)),
    }
}

/// Checks that `path` is a folder that can be listed, so that a missing path, a file
/// or a permission error is reported as such (with `expected` saying what was
/// wanted), not as an unknown layout.
pub(crate) fn listable_dir(path: &Path, expected: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_dir() {
        return Err(DataError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a folder; expected {expected}"),
            ),
        ));
    }
    std::fs::read_dir(path).map_err(|e| DataError::io(path, e))?;
    Ok(())
}

/// Reads a file to a string, naming the file in the error.
pub(crate) fn read_to_string(path: &Path) -> Result<String> {
    regular_file(path)?;
    std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))
}

/// The metadata of `path`, which must be a regular file (or a link to one): a folder,
/// a FIFO or a device is refused by name before anything opens it (opening a FIFO for
/// reading blocks until a writer comes, so the program would hang).
pub(crate) fn regular_file(path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "is a folder"
        } else {
            "is not a regular file (a FIFO, socket or device?)"
        };
        return Err(DataError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{kind}; a data file was expected here"),
            ),
        ));
    }
    Ok(meta)
}

/// Parses a JSON file, naming the file in the error.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| DataError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Whole-array reads larger than this many bytes are refused (see [`read_budget`]).
pub const DEFAULT_READ_BUDGET: u64 = 8 << 30;

/// The largest whole-array read, in bytes, that the readers of this crate accept
/// before allocating: the environment variable `SITS_READ_BUDGET_MB` (mebibytes)
/// when set, else [`DEFAULT_READ_BUDGET`] (8 GiB). A store or file that declares a
/// larger array is refused with its shape, and the fix (read windows, or raise the
/// budget), instead of being allocated.
pub fn read_budget() -> u64 {
    std::env::var("SITS_READ_BUDGET_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_READ_BUDGET, |mb| mb.saturating_mul(1 << 20))
}

/// Checks that an array of `shape` with `elem_size`-byte elements can be read whole:
/// its size must be computable and within [`read_budget`]. Returns the byte size.
pub fn check_read_size(what: &str, shape: &[u64], elem_size: u64) -> Result<u64> {
    let bytes = shape
        .iter()
        .try_fold(elem_size, |acc, &d| acc.checked_mul(d));
    let budget = read_budget();
    match bytes {
        Some(b) if b <= budget && usize::try_from(b).is_ok() => Ok(b),
        _ => Err(DataError::TooLarge {
            what: what.to_string(),
            shape: shape.to_vec(),
            budget,
        }),
    }
}
