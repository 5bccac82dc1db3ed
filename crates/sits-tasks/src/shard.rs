//! Which part of a job this process does: shard `index` of `count`, given as
//! `--shard i/n` or read from the scheduler (a SLURM job array, a Kubernetes
//! Indexed Job). Work is split by blocks of the output's chunks, block `k` going to
//! shard `k % count`, so that no two workers ever write the same chunk.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TaskError};

/// Shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This worker's shard, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parses `i/n` (0-based `i < n`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            TaskError::Settings(format!(
                "shard {s:?}: {why} (expected i/n with 0 <= i < n, for example 0/4)"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(|| bad("no /"))?;
        let index: usize = i.trim().parse().map_err(|_| bad("i is not a number"))?;
        let count: usize = n.trim().parse().map_err(|_| bad("n is not a number"))?;
        Self::new(index, count).map_err(|_| bad("i must be below n, and n at least 1"))
    }

    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(TaskError::Settings(format!(
                "shard {index} of {count}: the index must be below the count, and the count at least 1"
            )));
        }
        Ok(Self { index, count })
    }

    /// The shard the scheduler gives this process, if any: a SLURM job array
    /// (`SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN`, of
    /// `SLURM_ARRAY_TASK_COUNT`), or a Kubernetes Indexed Job
    /// (`JOB_COMPLETION_INDEX`, of `SITS_SHARD_COUNT`, set in the manifest to the
    /// job's `completions`).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) with the variables given by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let num = |k: &str| -> Result<Option<usize>> {
            match var(k) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    TaskError::Settings(format!("{k}={v:?} is not a non-negative number"))
                }),
            }
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let count = num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                TaskError::Settings(
                    "SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT".into(),
                )
            })?;
            return Self::new(id.saturating_sub(min), count).map(Some);
        }
        if let Some(index) = num("JOB_COMPLETION_INDEX")? {
            let count = num("SITS_SHARD_COUNT")?.ok_or_else(|| {
                TaskError::Settings(
                    "JOB_COMPLETION_INDEX is set but not SITS_SHARD_COUNT (set it to the Indexed \
                     Job's completions)"
                        .into(),
                )
            })?;
            return Self::new(index, count).map(Some);
        }
        Ok(None)
    }

    /// Whether block `k` (in the output's row-major block order) is this shard's.
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }
}
