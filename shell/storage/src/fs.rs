//! The handful of file-system operations the engine needs, as traits, so the same engine code
//! runs on real files ([`RealFs`]) and on the simulator's crash-testable [`MemFs`](crate::MemFs).
//!
//! The engine tracks every file's length itself and writes with positioned writes, so the
//! traits need no seek position and a file handle can be cloned for a background fsync.

use crate::error::{Result, StorageError};
use std::io;
use std::path::Path;

/// An open file, readable and writable.
pub trait FsFile: Sized {
    /// Current length in bytes (including data not yet synced).
    fn len(&self) -> io::Result<u64>;

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `buf` from `offset`; `UnexpectedEof` if the file is too short.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes all of `buf` at `offset`, extending the file if needed. Not durable until
    /// [`FsFile::sync_data`].
    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;

    /// Writes `buf` at the end of the file; returns the offset it was written at.
    fn append(&mut self, buf: &[u8]) -> io::Result<u64> {
        let offset = self.len()?;
        self.write_all_at(offset, buf)?;
        Ok(offset)
    }

    /// Truncates or extends the file. Not durable until [`FsFile::sync_data`].
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// Makes the file's data and length durable (`fdatasync`). Says nothing about the
    /// directory entry: that needs [`Fs::sync_dir`].
    fn sync_data(&self) -> io::Result<()>;

    /// Another handle to the same open file, e.g. for a background fsync.
    fn try_clone(&self) -> io::Result<Self>;
}

/// A file system: directories of named files.
pub trait Fs: Clone {
    type File: FsFile;

    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Creates `path`, or truncates it if it exists, and opens it read-write.
    fn create(&self, path: &Path) -> io::Result<Self::File>;

    /// Opens an existing file read-write; `NotFound` if it does not exist.
    fn open(&self, path: &Path) -> io::Result<Self::File>;

    /// Atomically replaces `to` with `from`. Not durable until the directory is synced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file. Not durable until the directory is synced.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Names of the files in `dir`, sorted.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system through `std::fs`, with real fsyncs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// A file of [`RealFs`].
#[derive(Debug)]
pub struct RealFile(std::fs::File);

impl FsFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, buf, offset)
    }

    fn write_all_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn try_clone(&self) -> io::Result<RealFile> {
        Ok(RealFile(self.0.try_clone()?))
    }
}

impl Fs for RealFs {
    type File = RealFile;

    /// Also syncs the parent of a directory it creates, so the new directory itself survives
    /// a crash.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(dir)?;
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.sync_dir(parent),
            _ => Ok(()),
        }
    }

    fn create(&self, path: &Path) -> io::Result<RealFile> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map(RealFile)
    }

    fn open(&self, path: &Path) -> io::Result<RealFile> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(RealFile)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// On Linux, fsync on a directory opened read-only is how a directory entry is made
    /// durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Replaces `dir/name` with `bytes` so that after a crash the file holds either the old or the
/// new bytes, never a mix: write `dir/tmp_name`, fsync it, rename it over `name`, fsync `dir`.
pub(crate) fn replace_atomically<F: Fs>(
    fs: &F,
    dir: &Path,
    name: &str,
    tmp_name: &str,
    bytes: &[u8],
) -> Result<()> {
    let tmp = dir.join(tmp_name);
    let path = dir.join(name);
    let mut file = fs.create(&tmp).map_err(StorageError::io("create", &tmp))?;
    file.write_all_at(0, bytes)
        .map_err(StorageError::io("write", &tmp))?;
    file.sync_data()
        .map_err(StorageError::io("fdatasync", &tmp))?;
    drop(file);
    fs.rename(&tmp, &path)
        .map_err(StorageError::io("rename", &tmp))?;
    sync_dir(fs, dir)
}

/// [`Fs::sync_dir`] with the error context filled in.
pub(crate) fn sync_dir<F: Fs>(fs: &F, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .map_err(StorageError::io("fsync directory", dir))
}

/// Reads a whole (small) file, or `None` if it does not exist.
pub(crate) fn read_small_file<F: Fs>(fs: &F, path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match fs.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("open", path)(e)),
    };
    let len = file.len().map_err(StorageError::io("stat", path))?;
    let len = usize::try_from(len).map_err(|_| {
        StorageError::corrupt(path, 0, format!("file of {len} bytes is too large to load"))
    })?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(0, &mut buf)
        .map_err(StorageError::io("read", path))?;
    Ok(Some(buf))
}
