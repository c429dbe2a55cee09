//! The snapshot file: the state machine's state as of a log index, which lets the log before
//! it be deleted.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "ZRAFTSN1" (the trailing digit is the format version)
//!      8     8  last included index, u64 LE
//!     16     8  last included term, u64 LE
//!     24     8  data length, u64 LE
//!     32     4  crc32c of the data, u32 LE
//!     36     4  crc32c of bytes 0..36, u32 LE
//!     40     *  data
//! ```
//!
//! A snapshot is received in chunks into `snapshot.tmp`; [`SnapshotWriter::finish`] checksums
//! what is actually on disk, writes the header, fsyncs, renames it to `snapshot` and fsyncs
//! the directory, so `snapshot` is only ever a complete snapshot. A leftover `snapshot.tmp` is
//! an interrupted transfer and is deleted on start.

use crate::error::{Result, StorageError};
use crate::fs::{sync_dir, Fs, FsFile};
use std::path::{Path, PathBuf};
use zmq_raft_core::{LogIndex, Term};

pub(crate) const SNAPSHOT_FILE: &str = "snapshot";
pub(crate) const SNAPSHOT_TMP: &str = "snapshot.tmp";
const MAGIC: &[u8; 8] = b"ZRAFTSN1";
/// Bytes of header before the data.
pub const SNAPSHOT_HEADER_LEN: u64 = 40;
const CHECK_BLOCK: usize = 1 << 20;

/// What a snapshot covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last log index the snapshot includes.
    pub index: LogIndex,
    /// The term of that entry.
    pub term: Term,
    /// Bytes of data.
    pub size: u64,
}

struct Header {
    meta: SnapshotMeta,
    data_crc: u32,
}

impl Header {
    fn encode(&self) -> [u8; SNAPSHOT_HEADER_LEN as usize] {
        let mut h = [0u8; SNAPSHOT_HEADER_LEN as usize];
        h[0..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&self.meta.index.0.to_le_bytes());
        h[16..24].copy_from_slice(&self.meta.term.0.to_le_bytes());
        h[24..32].copy_from_slice(&self.meta.size.to_le_bytes());
        h[32..36].copy_from_slice(&self.data_crc.to_le_bytes());
        let crc = crc32c::crc32c(&h[..36]);
        h[36..40].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes untrusted header bytes; on failure, the reason.
    fn decode(h: &[u8]) -> std::result::Result<Header, String> {
        if h.len() < SNAPSHOT_HEADER_LEN as usize {
            return Err(format!(
                "{} bytes is too short for a snapshot header",
                h.len()
            ));
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let computed = crc32c::crc32c(&h[..36]);
        if u32_at(36) != computed {
            return Err("snapshot header checksum mismatch".into());
        }
        if &h[0..8] != MAGIC {
            return Err("not a snapshot (bad magic or version)".into());
        }
        Ok(Header {
            meta: SnapshotMeta {
                index: LogIndex(u64_at(8)),
                term: Term(u64_at(16)),
                size: u64_at(24),
            },
            data_crc: u32_at(32),
        })
    }
}

/// crc32c of `len` bytes of `file` from `offset`, read in blocks.
fn checksum<H: FsFile>(file: &H, path: &Path, offset: u64, len: u64) -> Result<u32> {
    let mut crc = 0;
    let mut buf = vec![0u8; CHECK_BLOCK.min(len as usize)];
    let mut done = 0;
    while done < len {
        let n = ((len - done) as usize).min(buf.len());
        file.read_exact_at(offset + done, &mut buf[..n])
            .map_err(StorageError::io("read", path))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        done += n as u64;
    }
    Ok(crc)
}

/// Receives a snapshot chunk by chunk. Dropping it unfinished leaves a `snapshot.tmp` that the
/// next start deletes.
pub struct SnapshotWriter<F: Fs> {
    fs: F,
    dir: PathBuf,
    tmp: PathBuf,
    file: F::File,
    meta: SnapshotMeta,
    /// Bytes of data written so far, all contiguous from 0.
    written: u64,
}

impl<F: Fs> SnapshotWriter<F> {
    /// Starts a snapshot of `size` bytes covering the log up to `index` (of term `term`),
    /// replacing any unfinished one.
    pub fn begin(fs: &F, dir: &Path, index: LogIndex, term: Term, size: u64) -> Result<Self> {
        let tmp = dir.join(SNAPSHOT_TMP);
        let file = fs.create(&tmp).map_err(StorageError::io("create", &tmp))?;
        Ok(SnapshotWriter {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            tmp,
            file,
            meta: SnapshotMeta { index, term, size },
            written: 0,
        })
    }

    pub fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// Bytes of data received so far (the offset the next chunk is expected at).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Stores `bytes` at data offset `offset`. Chunks may repeat (a resent chunk) but may not
    /// leave a gap or run past the announced size.
    pub fn write_chunk(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        let end = offset.checked_add(bytes.len() as u64);
        if offset > self.written || !matches!(end, Some(e) if e <= self.meta.size) {
            return Err(StorageError::InvalidArgument(format!(
                "snapshot chunk at {offset} of {} bytes does not fit: {} of {} bytes received",
                bytes.len(),
                self.written,
                self.meta.size
            )));
        }
        self.file
            .write_all_at(SNAPSHOT_HEADER_LEN + offset, bytes)
            .map_err(StorageError::io("write", &self.tmp))?;
        self.written = self.written.max(offset + bytes.len() as u64);
        Ok(())
    }

    /// Checksums the data as stored, writes the header and makes the snapshot visible
    /// atomically and durably. Only then may the log it covers be deleted.
    pub fn finish(mut self) -> Result<SnapshotMeta> {
        if self.written != self.meta.size {
            return Err(StorageError::InvalidArgument(format!(
                "snapshot incomplete: {} of {} bytes received",
                self.written, self.meta.size
            )));
        }
        // Checksumming what was read back, not what was passed in, also catches a bad write.
        let data_crc = checksum(&self.file, &self.tmp, SNAPSHOT_HEADER_LEN, self.meta.size)?;
        let header = Header {
            meta: self.meta,
            data_crc,
        };
        self.file
            .write_all_at(0, &header.encode())
            .map_err(StorageError::io("write", &self.tmp))?;
        self.file
            .sync_data()
            .map_err(StorageError::io("fdatasync", &self.tmp))?;
        let path = self.dir.join(SNAPSHOT_FILE);
        self.fs
            .rename(&self.tmp, &path)
            .map_err(StorageError::io("rename", &self.tmp))?;
        sync_dir(&self.fs, &self.dir)?;
        Ok(self.meta)
    }
}

/// A snapshot read back from disk, its checksum verified when opened.
pub struct SnapshotReader<H: FsFile> {
    file: H,
    path: PathBuf,
    meta: SnapshotMeta,
    data_crc: u32,
}

impl<H: FsFile> SnapshotReader<H> {
    /// Opens `dir/snapshot`, or `None` if there is none. Reads the whole file once to verify
    /// its checksum, so what it serves afterwards was intact at open.
    pub fn open<F: Fs<File = H>>(fs: &F, dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(SNAPSHOT_FILE);
        let file = match fs.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("open", &path)(e)),
        };
        let len = file.len().map_err(StorageError::io("stat", &path))?;
        let mut h = vec![0u8; SNAPSHOT_HEADER_LEN.min(len) as usize];
        file.read_exact_at(0, &mut h)
            .map_err(StorageError::io("read", &path))?;
        let header = Header::decode(&h).map_err(|r| StorageError::corrupt(&path, 0, r))?;
        let expected = SNAPSHOT_HEADER_LEN.checked_add(header.meta.size);
        if expected != Some(len) {
            return Err(StorageError::corrupt(
                &path,
                len,
                format!(
                    "file is {len} bytes but the header announces {} bytes of data",
                    header.meta.size
                ),
            ));
        }
        let crc = checksum(&file, &path, SNAPSHOT_HEADER_LEN, header.meta.size)?;
        if crc != header.data_crc {
            return Err(StorageError::corrupt(
                &path,
                SNAPSHOT_HEADER_LEN,
                "snapshot data checksum mismatch",
            ));
        }
        Ok(Some(SnapshotReader {
            file,
            path,
            meta: header.meta,
            data_crc: header.data_crc,
        }))
    }

    pub fn meta(&self) -> SnapshotMeta {
        self.meta
    }

    /// Fills `buf` from data offset `offset` (e.g. a chunk to send to a follower).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if !matches!(end, Some(e) if e <= self.meta.size) {
            return Err(StorageError::InvalidArgument(format!(
                "snapshot read at {offset} of {} bytes runs past its {} bytes",
                buf.len(),
                self.meta.size
            )));
        }
        self.file
            .read_exact_at(SNAPSHOT_HEADER_LEN + offset, buf)
            .map_err(StorageError::io("read", &self.path))
    }

    /// All the data, checksum verified again on the bytes returned.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        let len = usize::try_from(self.meta.size).map_err(|_| {
            StorageError::InvalidArgument("snapshot too large to load into memory".into())
        })?;
        let mut data = vec![0u8; len];
        self.read_at(0, &mut data)?;
        if crc32c::crc32c(&data) != self.data_crc {
            return Err(StorageError::corrupt(
                &self.path,
                SNAPSHOT_HEADER_LEN,
                "snapshot data checksum mismatch",
            ));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    quickcheck! {
        fn header_round_trip(index: u64, term: u64, size: u64, data_crc: u32) -> bool {
            let h = Header { meta: SnapshotMeta { index: LogIndex(index), term: Term(term), size }, data_crc };
            let d = Header::decode(&h.encode()).unwrap();
            d.meta == h.meta && d.data_crc == data_crc
        }

        fn header_garbage_never_panics(bytes: Vec<u8>) -> bool {
            let _ = Header::decode(&bytes);
            true
        }
    }
}
