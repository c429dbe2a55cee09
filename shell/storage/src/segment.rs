//! One segment file of the log: a run of records with consecutive indices, named after the
//! index of its first record (`log-00000000000000000001.seg`), plus the bounded in-memory index
//! used to find a record in it.

use crate::error::{Result, StorageError};
use crate::fs::FsFile;
use crate::record::{self, Record, RecordError, RECORD_HEADER_LEN};
use std::path::{Path, PathBuf};
use zmq_raft_core::{Entry, LogIndex};

const PREFIX: &str = "log-";
const SUFFIX: &str = ".seg";

/// How much a reader fetches per read call.
const READ_BLOCK: usize = 256 * 1024;

/// The file name of the segment whose first record is `first`. Zero-padded so names sort like
/// the indices they carry.
pub(crate) fn file_name(first: LogIndex) -> String {
    format!("{PREFIX}{:020}{SUFFIX}", first.0)
}

/// The first index a segment file name carries, or `None` if it is not a segment name.
pub(crate) fn parse_file_name(name: &str) -> Option<LogIndex> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(LogIndex)
}

/// Byte offsets of every `interval`-th record of a segment: the memory cost is one `u64` per
/// `interval` entries, and finding any record reads at most `interval - 1` records forward.
#[derive(Clone, Debug)]
pub(crate) struct SparseIndex {
    interval: u64,
    /// `offsets[k]` is where the record of index `first + k * interval` starts.
    offsets: Vec<u64>,
}

impl SparseIndex {
    pub(crate) fn new(interval: u64) -> SparseIndex {
        SparseIndex {
            interval: interval.max(1),
            offsets: Vec::new(),
        }
    }

    /// Notes that the record of `index` (the `n`-th of its segment, from 0) starts at
    /// `offset`; records must be noted in order.
    fn note(&mut self, n: u64, offset: u64) {
        if n.is_multiple_of(self.interval) {
            debug_assert_eq!(n / self.interval, self.offsets.len() as u64);
            self.offsets.push(offset);
        }
    }

    /// The nearest indexed record at or before the `n`-th: (its number, its offset).
    fn seek(&self, n: u64) -> (u64, u64) {
        let k = (n / self.interval).min(self.offsets.len().saturating_sub(1) as u64);
        match self.offsets.get(k as usize) {
            Some(&offset) => (k * self.interval, offset),
            None => (0, 0),
        }
    }

    /// Forgets records from the `n`-th on.
    fn truncate(&mut self, n: u64) {
        self.offsets.truncate(n.div_ceil(self.interval) as usize);
    }
}

/// What the engine knows about one segment file.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    pub first: LogIndex,
    /// Index of the last record; `first - 1` when the segment is empty.
    pub last: LogIndex,
    /// Length of the valid records, in bytes.
    pub len: u64,
    sparse: SparseIndex,
}

impl Segment {
    pub(crate) fn empty(path: PathBuf, first: LogIndex, interval: u64) -> Segment {
        Segment {
            path,
            first,
            last: first.prev(),
            len: 0,
            sparse: SparseIndex::new(interval),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.last < self.first
    }

    /// Accounts for a record of `len` bytes appended as the new last record.
    pub(crate) fn push(&mut self, len: u64) {
        let n = self.last.next().0 - self.first.0;
        self.sparse.note(n, self.len);
        self.last = self.last.next();
        self.len += len;
    }

    /// Accounts for cutting the segment back to `new_len` bytes, keeping records before
    /// `first_dropped`.
    pub(crate) fn cut(&mut self, first_dropped: LogIndex, new_len: u64) {
        self.sparse.truncate(first_dropped.0 - self.first.0);
        self.last = first_dropped.prev();
        self.len = new_len;
    }

    /// Byte offset of the record of `index`, which the segment holds.
    pub(crate) fn offset_of<F: FsFile>(&self, file: &F, index: LogIndex) -> Result<u64> {
        let mut found = None;
        self.read(file, index, index.next(), |_, offset, _| {
            found = Some(offset)
        })?;
        found
            .ok_or_else(|| StorageError::corrupt(&self.path, 0, format!("index {index} not found")))
    }

    /// Calls `each(index, offset, entry)` for every record in `from..to` (clamped to the
    /// segment), reading forward from the nearest indexed record. A damaged or misplaced
    /// record is corruption: these bytes were verified when written or recovered.
    pub(crate) fn read<F: FsFile>(
        &self,
        file: &F,
        from: LogIndex,
        to: LogIndex,
        mut each: impl FnMut(LogIndex, u64, Entry),
    ) -> Result<()> {
        let from = from.max(self.first);
        let to = to.min(self.last.next());
        if from >= to {
            return Ok(());
        }
        let (n, mut offset) = self.sparse.seek(from.0 - self.first.0);
        let mut index = self.first.plus(n);
        let mut reader = BlockReader::new(file, &self.path, self.len);
        while index < to {
            let rec = reader
                .record_at(offset)?
                .map_err(|e| StorageError::corrupt(&self.path, offset, e.to_string()))?;
            if rec.index != index {
                return Err(misplaced(&self.path, offset, rec.index, index));
            }
            if index >= from {
                each(index, offset, rec.entry);
            }
            offset += rec.len as u64;
            index = index.next();
        }
        Ok(())
    }
}

fn misplaced(path: &Path, offset: u64, found: LogIndex, expected: LogIndex) -> StorageError {
    StorageError::corrupt(
        path,
        offset,
        format!("record holds index {found} where index {expected} belongs"),
    )
}

/// Reads a file in large blocks so scanning many small records costs few system calls.
pub(crate) struct BlockReader<'a, F: FsFile> {
    file: &'a F,
    path: &'a Path,
    /// Bytes of the file that may be read.
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a, F: FsFile> BlockReader<'a, F> {
    pub(crate) fn new(file: &'a F, path: &'a Path, len: u64) -> BlockReader<'a, F> {
        BlockReader {
            file,
            path,
            len,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The bytes from `offset` on: at least `want` of them unless the readable length ends
    /// first (then all that remain).
    fn window(&mut self, offset: u64, want: usize) -> Result<&[u8]> {
        let offset = offset.min(self.len);
        let end = (offset + want as u64).min(self.len);
        let buf_end = self.buf_start + self.buf.len() as u64;
        if offset < self.buf_start || end > buf_end {
            let n = (want.max(READ_BLOCK) as u64).min(self.len - offset) as usize;
            self.buf.resize(n, 0);
            self.file
                .read_exact_at(offset, &mut self.buf)
                .map_err(StorageError::io("read", self.path))?;
            self.buf_start = offset;
        }
        Ok(&self.buf[(offset - self.buf_start) as usize..])
    }

    /// Decodes the record at `offset`. The outer error is an I/O failure; the inner one says
    /// why the bytes there are not a record.
    pub(crate) fn record_at(
        &mut self,
        offset: u64,
    ) -> Result<std::result::Result<Record, RecordError>> {
        let have = self.len.saturating_sub(offset);
        let head = self.window(offset, RECORD_HEADER_LEN)?;
        let total = match record::total_len(head) {
            Ok(total) => total,
            Err(e) => return Ok(Err(e)),
        };
        // Checked before reading, so a damaged length cannot make us read or allocate much.
        if total as u64 > have {
            return Ok(Err(RecordError::Incomplete {
                have: have as usize,
                need: total,
            }));
        }
        let bytes = self.window(offset, total)?;
        Ok(record::decode(bytes))
    }
}

/// Where and why a segment scan stopped short of the end of the file.
#[derive(Clone, Debug)]
pub(crate) struct Damage {
    pub offset: u64,
    pub reason: String,
}

/// Reads every record of a segment file from the start, checking each and its index, calling
/// `each` for each entry. Stops at the first bytes that are not a valid record and reports
/// them as [`Damage`]; whether that is a torn tail or corruption is the caller's call. A valid
/// record with the wrong index is corruption outright (a checksum-valid record is never the
/// product of a torn write).
pub(crate) fn scan<F: FsFile>(
    file: &F,
    path: &Path,
    first: LogIndex,
    interval: u64,
    mut each: impl FnMut(LogIndex, Entry),
) -> Result<(Segment, Option<Damage>)> {
    let file_len = file.len().map_err(StorageError::io("stat", path))?;
    let mut seg = Segment::empty(path.to_path_buf(), first, interval);
    let mut reader = BlockReader::new(file, path, file_len);
    while seg.len < file_len {
        let offset = seg.len;
        let rec = match reader.record_at(offset)? {
            Ok(rec) => rec,
            Err(e) => {
                let reason = e.to_string();
                return Ok((seg, Some(Damage { offset, reason })));
            }
        };
        let expected = seg.last.next();
        if rec.index != expected {
            return Err(misplaced(path, offset, rec.index, expected));
        }
        seg.push(rec.len as u64);
        each(rec.index, rec.entry);
    }
    Ok((seg, None))
}

/// The offset of the first checksum-valid record starting anywhere in `from..` of the file,
/// if any. Used to tell a torn tail (nothing valid after the damage) from damage inside data
/// that later, synced records follow.
pub(crate) fn find_valid_record<F: FsFile>(
    file: &F,
    path: &Path,
    from: u64,
) -> Result<Option<u64>> {
    let file_len = file.len().map_err(StorageError::io("stat", path))?;
    if from >= file_len {
        return Ok(None);
    }
    let mut tail = vec![0u8; (file_len - from) as usize];
    file.read_exact_at(from, &mut tail)
        .map_err(StorageError::io("read", path))?;
    Ok((0..tail.len())
        .find(|&p| record::check(&tail[p..]).is_ok())
        .map(|p| from + p as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_numerically() {
        assert_eq!(file_name(LogIndex(42)), "log-00000000000000000042.seg");
        assert_eq!(
            parse_file_name(&file_name(LogIndex(42))),
            Some(LogIndex(42))
        );
        assert_eq!(
            parse_file_name(&file_name(LogIndex(u64::MAX))),
            Some(LogIndex(u64::MAX))
        );
        assert!(file_name(LogIndex(9)) < file_name(LogIndex(10)));
        for bad in [
            "log-1.seg",
            "log-0000000000000000004x.seg",
            "meta",
            "log-00000000000000000001.seg.tmp",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
        assert_eq!(parse_file_name("log-99999999999999999999.seg"), None);
    }

    #[test]
    fn sparse_index_seeks_to_nearest_earlier_record() {
        let mut s = SparseIndex::new(4);
        for n in 0..10u64 {
            s.note(n, n * 100);
        }
        assert_eq!(s.offsets.len(), 3);
        assert_eq!(s.seek(0), (0, 0));
        assert_eq!(s.seek(3), (0, 0));
        assert_eq!(s.seek(5), (4, 400));
        assert_eq!(s.seek(9), (8, 800));
        s.truncate(5);
        assert_eq!(s.offsets.len(), 2);
        s.truncate(4);
        assert_eq!(s.offsets.len(), 1);
        assert_eq!(s.seek(7), (0, 0));
    }
}
