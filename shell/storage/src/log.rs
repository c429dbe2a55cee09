//! The segmented log: appending, group-commit bookkeeping, truncating a suffix, compacting a
//! prefix, reading back, and recovering after a crash.
//!
//! Invariants the recovery rule leans on:
//! - Only the last ("active") segment may hold bytes not yet fsynced: a segment is fsynced
//!   ("sealed") before its successor is created, and a new segment file and the directory are
//!   fsynced when it is created. So damage in any other segment is corruption.
//! - Segments are contiguous: each starts at the index after the previous one's last. A
//!   suffix truncation removes later segments newest first, each removal made durable before
//!   the next, and fsyncs the cut before new entries are written after it, so no crash can
//!   leave stale entries behind new ones or a gap in the middle.

use crate::error::{Result, StorageError};
use crate::fs::{sync_dir, Fs, FsFile};
use crate::record::{self, MAX_PAYLOAD_LEN};
use crate::segment::{self, Segment};
use crate::sync::{SyncDone, SyncJob};
use crate::Options;
use log::{info, warn};
use std::path::{Path, PathBuf};
use zmq_raft_core::{Entry, LogIndex, Term};

/// The sync job currently running, if any.
struct InFlight {
    id: u64,
    /// The lowest index a truncation removed while the job ran: entries from there on may have
    /// been rewritten after the job captured its target, so the job does not vouch for them.
    cut: Option<LogIndex>,
}

pub(crate) struct Log<F: Fs> {
    fs: F,
    dir: PathBuf,
    opts: Options,
    segments: Vec<Segment>,
    /// Open handle of the last segment (present exactly when `segments` is not empty).
    active: Option<F::File>,
    /// Entries up to `start` are covered by the snapshot and can no longer be read.
    start: LogIndex,
    start_term: Term,
    last: LogIndex,
    /// Every entry up to here is fsynced.
    durable: LogIndex,
    /// Bytes were written to the active segment since it was last fsynced (or since the last
    /// sync job captured it).
    dirty: bool,
    in_flight: Option<InFlight>,
    next_job: u64,
    /// Reused buffer for encoding a batch of records into one write.
    scratch: Vec<u8>,
}

impl<F: Fs> Log<F> {
    /// Rebuilds the log from the segment files in `dir`, given the snapshot (index, term) —
    /// (0, 0) if none. Returns the entries after the snapshot.
    pub(crate) fn recover(
        fs: F,
        dir: PathBuf,
        opts: Options,
        snapshot: (LogIndex, Term),
    ) -> Result<(Log<F>, Vec<Entry>)> {
        let (snap_index, snap_term) = snapshot;
        let names = fs
            .list_dir(&dir)
            .map_err(StorageError::io("list directory", &dir))?;
        let mut files: Vec<(LogIndex, PathBuf)> = names
            .iter()
            .filter_map(|n| segment::parse_file_name(n).map(|first| (first, dir.join(n))))
            .collect();
        files.sort();
        let mut log = Log {
            fs,
            dir,
            opts,
            segments: Vec::new(),
            active: None,
            start: snap_index,
            start_term: snap_term,
            last: snap_index,
            durable: snap_index,
            dirty: false,
            in_flight: None,
            next_job: 0,
            scratch: Vec::new(),
        };

        // A segment whose successor starts at or before the entry after the snapshot holds
        // only entries the snapshot covers: left over from a compaction a crash interrupted.
        let covered = files
            .windows(2)
            .take_while(|w| w[1].0 <= snap_index.next())
            .count();
        if covered > 0 {
            for (_, path) in files.drain(..covered) {
                info!(
                    "{}: removing segment covered by the snapshot at {snap_index}",
                    path.display()
                );
                log.remove(&path)?;
            }
            sync_dir(&log.fs, &log.dir)?;
        }
        if let Some((first, path)) = files.first() {
            if *first > snap_index.next() {
                return Err(StorageError::corrupt(
                    path,
                    0,
                    format!(
                        "log starts at index {first} but the snapshot ends at {snap_index}: \
                         entries in between are missing"
                    ),
                ));
            }
        }

        let mut entries = Vec::new();
        let mut term_at_snapshot = None;
        let count = files.len();
        for (k, (first, path)) in files.into_iter().enumerate() {
            if let Some(prev) = log.segments.last() {
                if first != prev.last.next() {
                    return Err(StorageError::corrupt(
                        &path,
                        0,
                        format!(
                            "segment starts at index {first} but the previous one ends at {}: \
                             the log has a gap or an overlap",
                            prev.last
                        ),
                    ));
                }
            }
            let mut file = log
                .fs
                .open(&path)
                .map_err(StorageError::io("open", &path))?;
            let (seg, damage) = segment::scan(
                &file,
                &path,
                first,
                log.opts.index_interval,
                |index, entry| {
                    if index == snap_index {
                        term_at_snapshot = Some(entry.term());
                    }
                    if index > snap_index {
                        entries.push(entry);
                    }
                },
            )?;
            let is_last = k + 1 == count;
            if let Some(d) = damage {
                if !is_last {
                    return Err(StorageError::corrupt(
                        &path,
                        d.offset,
                        format!(
                            "{}; only the last segment can end in a torn write, this one was \
                             synced before the next was created",
                            d.reason
                        ),
                    ));
                }
                if let Some(valid) = segment::find_valid_record(&file, &path, d.offset + 1)? {
                    return Err(StorageError::corrupt(
                        &path,
                        d.offset,
                        format!(
                            "{}, yet a whole record follows at offset {valid}: damage inside \
                             synced data, not a torn write",
                            d.reason
                        ),
                    ));
                }
                warn!(
                    "{}: torn write at offset {} ({}); cutting the segment back to the last \
                     whole record",
                    path.display(),
                    d.offset,
                    d.reason
                );
                file.set_len(d.offset)
                    .map_err(StorageError::io("truncate", &path))?;
                file.sync_data()
                    .map_err(StorageError::io("fdatasync", &path))?;
            }
            log.segments.push(seg);
            if is_last {
                log.active = Some(file);
            }
        }

        if let Some(log_last) = log.segments.last().map(|s| s.last) {
            // Raft's rule for a snapshot: keep the log after it only if the log holds the
            // snapshot's last entry with the same term (an install the crash interrupted
            // before the stale log was deleted ends up here).
            let conflict = if snap_index == LogIndex::ZERO {
                None
            } else if log_last < snap_index {
                Some(format!(
                    "it ends at {log_last}, before the snapshot's {snap_index}"
                ))
            } else {
                term_at_snapshot.filter(|&t| t != snap_term).map(|t| {
                    format!("its entry {snap_index} has term {t}, the snapshot's has {snap_term}")
                })
            };
            if let Some(why) = conflict {
                warn!("{}: discarding the log: {why}", log.dir.display());
                entries.clear();
                log.discard_all(snap_index, snap_term)?;
            } else {
                log.last = log_last.max(snap_index);
            }
        }

        // What was recovered may have survived only in the page cache (a process crash); the
        // core will treat it as durable, so make it so.
        if let (Some(file), Some(seg)) = (&log.active, log.segments.last()) {
            file.sync_data()
                .map_err(StorageError::io("fdatasync", &seg.path))?;
        }
        sync_dir(&log.fs, &log.dir)?;
        log.durable = log.last;
        Ok((log, entries))
    }

    pub(crate) fn start(&self) -> (LogIndex, Term) {
        (self.start, self.start_term)
    }

    pub(crate) fn last(&self) -> LogIndex {
        self.last
    }

    pub(crate) fn durable(&self) -> LogIndex {
        self.durable
    }

    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Checks an append before any byte is written, so a rejected one changes nothing.
    fn check_append(&self, first: LogIndex, entries: &[Entry]) -> Result<()> {
        if first <= self.start {
            return Err(StorageError::InvalidArgument(format!(
                "write at index {first} reaches into entries up to {} covered by the snapshot",
                self.start
            )));
        }
        if first > self.last.next() {
            return Err(StorageError::InvalidArgument(format!(
                "write at index {first} would leave a gap after the last index {}",
                self.last
            )));
        }
        if let Some(e) = entries.iter().find(|e| e.len() + 8 > MAX_PAYLOAD_LEN) {
            return Err(StorageError::InvalidArgument(format!(
                "entry of {} bytes is too large to store",
                e.len()
            )));
        }
        Ok(())
    }

    /// Removes every entry from `first` on (if any), then writes `entries` from `first`,
    /// without fsyncing them.
    pub(crate) fn append(&mut self, first: LogIndex, entries: &[Entry]) -> Result<()> {
        self.check_append(first, entries)?;
        if first <= self.last {
            self.truncate_from(first)?;
        }
        self.scratch.clear();
        for (i, entry) in entries.iter().enumerate() {
            let index = first.plus(i as u64);
            if self.should_roll() {
                self.flush()?;
                self.roll(index)?;
            }
            if self.segments.is_empty() {
                self.create_segment(index)?;
            }
            let before = self.scratch.len();
            record::encode_into(index, entry, &mut self.scratch)
                .map_err(|e| StorageError::InvalidArgument(e.to_string()))?;
            let seg = self.segments.last_mut().expect("created above");
            seg.push((self.scratch.len() - before) as u64);
            self.last = index;
        }
        self.flush()
    }

    fn should_roll(&self) -> bool {
        self.segments
            .last()
            .is_some_and(|s| !s.is_empty() && s.len >= self.opts.segment_size)
    }

    /// Writes the encoded records in `scratch` (already accounted in the active segment) to
    /// the OS in one call.
    fn flush(&mut self) -> Result<()> {
        if self.scratch.is_empty() {
            return Ok(());
        }
        let seg = self.segments.last().expect("records belong to a segment");
        let file = self.active.as_mut().expect("the last segment is open");
        let offset = seg.len - self.scratch.len() as u64;
        file.write_all_at(offset, &self.scratch)
            .map_err(StorageError::io("write", &seg.path))?;
        self.scratch.clear();
        self.dirty = true;
        Ok(())
    }

    /// Seals the active segment (fsync) and starts a new one at `next`.
    fn roll(&mut self, next: LogIndex) -> Result<()> {
        if let (Some(file), Some(seg)) = (&self.active, self.segments.last()) {
            file.sync_data()
                .map_err(StorageError::io("fdatasync", &seg.path))?;
            self.durable = self.durable.max(seg.last);
        }
        self.dirty = false;
        self.create_segment(next)
    }

    fn create_segment(&mut self, first: LogIndex) -> Result<()> {
        let path = self.dir.join(segment::file_name(first));
        let file = self
            .fs
            .create(&path)
            .map_err(StorageError::io("create", &path))?;
        file.sync_data()
            .map_err(StorageError::io("fdatasync", &path))?;
        // Without this, entries later synced into the file could vanish with its directory
        // entry on a power loss (see the `segment_dir_sync_matters` test).
        if !self.opts.skips_segment_dir_sync() {
            sync_dir(&self.fs, &self.dir)?;
        }
        self.segments
            .push(Segment::empty(path, first, self.opts.index_interval));
        self.active = Some(file);
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<()> {
        self.fs
            .remove_file(path)
            .map_err(StorageError::io("remove", path))
    }

    /// Removes entries from `first` (in `start + 1 ..= last`) on, durably.
    fn truncate_from(&mut self, first: LogIndex) -> Result<()> {
        // Whole segments after the cut go newest first, each removal durable before the next,
        // so a crash part-way leaves a contiguous prefix of the old log.
        while let Some(seg) = self.segments.last() {
            if seg.first < first {
                break;
            }
            let path = seg.path.clone();
            self.active = None;
            self.remove(&path)?;
            sync_dir(&self.fs, &self.dir)?;
            self.segments.pop();
        }
        if let Some(seg) = self.segments.last_mut() {
            if self.active.is_none() {
                let file = self
                    .fs
                    .open(&seg.path)
                    .map_err(StorageError::io("open", &seg.path))?;
                self.active = Some(file);
            }
            let file = self.active.as_mut().expect("opened above");
            if seg.last >= first {
                let offset = seg.offset_of(file, first)?;
                file.set_len(offset)
                    .map_err(StorageError::io("truncate", &seg.path))?;
                // Durable before anything new is written after the cut: otherwise a crash could
                // keep the new entries but undo the cut, leaving old entries after new ones.
                file.sync_data()
                    .map_err(StorageError::io("fdatasync", &seg.path))?;
                seg.cut(first, offset);
            }
        }
        self.last = first.prev();
        // The cut segment was just fsynced and every earlier one is sealed.
        self.durable = self.last;
        self.dirty = false;
        if let Some(flight) = &mut self.in_flight {
            flight.cut = Some(flight.cut.map_or(first, |c| c.min(first)));
        }
        Ok(())
    }

    /// The term of the entry at `index`, if the log still knows it (`start` included).
    pub(crate) fn term_at(&self, index: LogIndex) -> Result<Option<Term>> {
        if index == self.start {
            return Ok(Some(self.start_term));
        }
        if index < self.start || index > self.last {
            return Ok(None);
        }
        Ok(self.entries(index, index.next())?.first().map(Entry::term))
    }

    /// Forgets entries up to `upto` (in `start ..= last`), which a snapshot covers, deleting
    /// the segments that hold nothing else.
    pub(crate) fn compact(&mut self, upto: LogIndex) -> Result<()> {
        if upto <= self.start {
            return Ok(());
        }
        let term = self.term_at(upto)?.ok_or_else(|| {
            StorageError::InvalidArgument(format!(
                "cannot compact up to {upto}: the log ends at {}",
                self.last
            ))
        })?;
        let n = self.segments.iter().take_while(|s| s.last <= upto).count();
        if n == self.segments.len() {
            self.active = None;
        }
        // Oldest first: whatever a crash leaves is still contiguous, and recovery deletes
        // segments the snapshot covers anyway.
        for seg in self.segments.drain(..n) {
            self.fs
                .remove_file(&seg.path)
                .map_err(StorageError::io("remove", &seg.path))?;
        }
        if n > 0 {
            sync_dir(&self.fs, &self.dir)?;
        }
        if self.segments.is_empty() {
            self.dirty = false;
        }
        self.start = upto;
        self.start_term = term;
        self.durable = self.durable.max(upto);
        Ok(())
    }

    /// Deletes every segment: the log restarts empty after `start` (a snapshot that
    /// conflicts with or lies beyond the log replaced it).
    pub(crate) fn discard_all(&mut self, start: LogIndex, start_term: Term) -> Result<()> {
        self.active = None;
        // Newest first, each durable: a crash leaves a prefix that ends before the snapshot,
        // which recovery discards too.
        while let Some(seg) = self.segments.last() {
            let path = seg.path.clone();
            self.remove(&path)?;
            sync_dir(&self.fs, &self.dir)?;
            self.segments.pop();
        }
        self.start = start;
        self.start_term = start_term;
        self.last = start;
        self.durable = start;
        self.dirty = false;
        if let Some(flight) = &mut self.in_flight {
            flight.cut = Some(start.next());
        }
        Ok(())
    }

    /// Calls `each` for every entry in `from..to`.
    pub(crate) fn for_each(
        &self,
        from: LogIndex,
        to: LogIndex,
        mut each: impl FnMut(LogIndex, Entry),
    ) -> Result<()> {
        if from <= self.start || from > to || to > self.last.next() {
            return Err(StorageError::InvalidArgument(format!(
                "entries {from}..{to} are not all in the log, which holds {}..={}",
                self.start.next(),
                self.last
            )));
        }
        let first_seg = self.segments.partition_point(|s| s.last < from);
        for (k, seg) in self.segments.iter().enumerate().skip(first_seg) {
            if seg.first >= to {
                break;
            }
            let mut visit = |index, _offset, entry| each(index, entry);
            if k + 1 == self.segments.len() {
                let file = self.active.as_ref().expect("the last segment is open");
                seg.read(file, from, to, &mut visit)?;
            } else {
                let file = self
                    .fs
                    .open(&seg.path)
                    .map_err(StorageError::io("open", &seg.path))?;
                seg.read(&file, from, to, &mut visit)?;
            }
        }
        Ok(())
    }

    /// The entries in `from..to`, read from disk.
    pub(crate) fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(to.0.saturating_sub(from.0).min(1 << 16) as usize);
        self.for_each(from, to, |_, e| out.push(e))?;
        Ok(out)
    }

    /// A job to fsync what was written so far, unless there is nothing to sync or a job is
    /// already running (then entries gather for the next one).
    pub(crate) fn begin_sync(&mut self) -> Result<Option<SyncJob<F::File>>> {
        if self.in_flight.is_some() || !self.dirty {
            return Ok(None);
        }
        let (Some(file), Some(seg)) = (&self.active, self.segments.last()) else {
            return Ok(None);
        };
        let file = file
            .try_clone()
            .map_err(StorageError::io("duplicate handle", &seg.path))?;
        self.next_job += 1;
        self.in_flight = Some(InFlight {
            id: self.next_job,
            cut: None,
        });
        self.dirty = false;
        Ok(Some(SyncJob {
            id: self.next_job,
            target: self.last,
            path: seg.path.clone(),
            file,
        }))
    }

    /// Accounts for a finished job; returns the durable index.
    pub(crate) fn finish_sync(&mut self, done: SyncDone) -> Result<LogIndex> {
        let flight = match self.in_flight.take() {
            Some(f) if f.id == done.id => f,
            other => {
                self.in_flight = other;
                return Err(StorageError::InvalidArgument(format!(
                    "sync result {} does not belong to the sync in flight",
                    done.id
                )));
            }
        };
        done.result.map_err(|source| StorageError::Io {
            op: "fdatasync",
            path: done.path,
            source,
        })?;
        let covered = match flight.cut {
            Some(cut) => done.target.min(cut.prev()),
            None => done.target,
        };
        self.durable = self.durable.max(covered.min(self.last));
        Ok(self.durable)
    }

    /// Fsyncs on the calling thread; returns the durable index (the last one).
    pub(crate) fn sync(&mut self) -> Result<LogIndex> {
        if self.dirty || self.durable < self.last {
            if let (Some(file), Some(seg)) = (&self.active, self.segments.last()) {
                file.sync_data()
                    .map_err(StorageError::io("fdatasync", &seg.path))?;
            }
            self.dirty = false;
        }
        self.durable = self.last;
        Ok(self.durable)
    }
}
