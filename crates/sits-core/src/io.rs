//! The rule every writer of the workspace follows for an output that already exists.

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
