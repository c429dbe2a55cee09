//! The one error type of the engine. Every variant says where the problem is (file, offset,
//! operation) so an operator can act on it without a debugger.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong in the storage engine.
#[derive(Debug)]
pub enum StorageError {
    /// An operating-system call failed.
    Io {
        /// The operation, e.g. `"fdatasync"` or `"read"`.
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Stored bytes are damaged in a way that cannot be explained by a crash during a write
    /// (see the crate docs for the rule). The engine refuses to serve them.
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The caller asked for something inconsistent with the stored state, e.g. an append that
    /// would leave a gap. Nothing was written.
    InvalidArgument(String),
    /// An earlier write or fsync failed. After a failed fsync the kernel may already have
    /// dropped the dirty pages, so nothing written since the last good sync can be trusted:
    /// the engine refuses further work until it is reopened (which re-reads the disk).
    Poisoned { cause: String },
}

/// Result with a [`StorageError`].
pub type Result<T> = std::result::Result<T, StorageError>;

impl StorageError {
    /// Adapter for `map_err`: an I/O failure of `op` on `path`.
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io { op, path, source }
    }

    pub(crate) fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            file: file.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    /// Whether this error leaves the on-disk state unknown, so the engine must stop.
    pub(crate) fn poisons(&self) -> bool {
        matches!(self, StorageError::Io { .. } | StorageError::Corrupt { .. })
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { op, path, source } => {
                write!(f, "{op} failed on {}: {source}", path.display())
            }
            StorageError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "{} is corrupt at offset {offset}: {reason}",
                file.display()
            ),
            StorageError::InvalidArgument(why) => write!(f, "invalid storage request: {why}"),
            StorageError::Poisoned { cause } => write!(
                f,
                "storage engine stopped after an earlier failure ({cause}); reopen it"
            ),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
