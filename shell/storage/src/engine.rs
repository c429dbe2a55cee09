//! The engine: one directory holding a peer's log, hard state and snapshot, and the calls a
//! driver makes to carry out the core's writes.

use crate::error::{Result, StorageError};
use crate::fs::{sync_dir, Fs};
use crate::hard_state::{self, Meta, META_TMP};
use crate::log::Log;
use crate::snapshot::{SnapshotMeta, SnapshotReader, SnapshotWriter, SNAPSHOT_TMP};
use crate::sync::{SyncDone, SyncJob};
use log::info;
use std::path::{Path, PathBuf};
use zmq_raft_core::{Entry, HardState, LogIndex, Recovered, Term, Write};

/// Tuning knobs.
#[derive(Clone, Debug)]
pub struct Options {
    /// A segment is sealed and a new one started once it reaches this many bytes (a segment
    /// can exceed it by one record).
    pub segment_size: u64,
    /// One byte offset is kept in memory per this many entries; finding an entry reads at most
    /// this many records forward.
    pub index_interval: u64,
    /// Sabotage for self-tests (unit tests, and the simulator's `broken` builds): skip the
    /// directory fsync when creating a segment, to prove the tests notice.
    #[cfg(any(test, feature = "broken"))]
    pub skip_segment_dir_sync: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_size: 64 << 20,
            index_interval: 64,
            #[cfg(any(test, feature = "broken"))]
            skip_segment_dir_sync: false,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        if self.segment_size == 0 || self.index_interval == 0 {
            return Err(StorageError::InvalidArgument(
                "segment_size and index_interval must be positive".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn skips_segment_dir_sync(&self) -> bool {
        #[cfg(any(test, feature = "broken"))]
        return self.skip_segment_dir_sync;
        #[cfg(not(any(test, feature = "broken")))]
        false
    }
}

/// A peer's durable storage. Single-threaded; see [`Engine::begin_sync`] for fsyncing on
/// another thread.
pub struct Engine<F: Fs> {
    fs: F,
    dir: PathBuf,
    log: Log<F>,
    meta: Meta,
    snapshot: Option<SnapshotMeta>,
    /// Set by the first I/O failure or corruption met while writing; see
    /// [`StorageError::Poisoned`].
    poisoned: Option<String>,
}

impl<F: Fs> Engine<F> {
    /// Opens (creating if needed) the storage in `dir`, recovering from whatever a crash left:
    /// see the crate docs for what is repaired and what is refused. Everything recovered is
    /// fsynced before this returns, so the core may treat it as durable.
    pub fn open(fs: F, dir: impl AsRef<Path>, options: Options) -> Result<(Engine<F>, Recovered)> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir)
            .map_err(StorageError::io("create directory", &dir))?;
        remove_interrupted_writes(&fs, &dir)?;
        let meta = hard_state::load(&fs, &dir)?.unwrap_or_default();
        let snapshot = SnapshotReader::open(&fs, &dir)?.map(|r| r.meta());
        let snap = snapshot.map_or((LogIndex::ZERO, Term(0)), |m| (m.index, m.term));
        let (log, entries) = Log::recover(fs.clone(), dir.clone(), options, snap)?;
        let (log_start, log_start_term) = log.start();
        let recovered = Recovered {
            hard_state: meta.hard_state.clone(),
            log_start,
            log_start_term,
            entries,
            // The driver keeps the configuration (`save_config`) and decodes it.
            membership: None,
        };
        let engine = Engine {
            fs,
            dir,
            log,
            meta,
            snapshot,
            poisoned: None,
        };
        Ok((engine, recovered))
    }

    fn check(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(StorageError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs a state-changing operation; an I/O error or corruption stops the engine.
    fn mutate<T>(&mut self, op: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.check()?;
        let result = op(self);
        if let Err(e) = &result {
            if e.poisons() {
                self.poisoned = Some(e.to_string());
            }
        }
        result
    }

    /// Carries out one of the core's writes (without fsyncing log entries: see
    /// [`Engine::sync`] and [`Engine::begin_sync`]; a hard state is durable on return).
    pub fn apply(&mut self, write: &Write) -> Result<()> {
        match write {
            Write::Log { first, entries } => self.append(*first, entries),
            Write::HardState(hs) => self.save_hard_state(hs),
            Write::Compact { upto } => self.compact(*upto),
        }
    }

    /// Removes every entry at `first` and after, then writes `entries` from `first`. The
    /// entries reach the OS but are not durable until a sync covers them; a removal is
    /// durable on return.
    pub fn append(&mut self, first: LogIndex, entries: &[Entry]) -> Result<()> {
        self.mutate(|e| e.log.append(first, entries))
    }

    /// Fsyncs on this thread; returns the highest durable index (the last one).
    pub fn sync(&mut self) -> Result<LogIndex> {
        self.mutate(|e| e.log.sync())
    }

    /// Captures a sync of everything appended so far, to run on any thread
    /// ([`SyncJob::run`], or a [`Syncer`](crate::Syncer)). `None` if nothing is unsynced or
    /// a job is already running: entries appended meanwhile wait for the next job.
    pub fn begin_sync(&mut self) -> Result<Option<SyncJob<F::File>>> {
        self.mutate(|e| e.log.begin_sync())
    }

    /// Accounts for a finished [`SyncJob`]; returns the highest durable index.
    pub fn finish_sync(&mut self, done: SyncDone) -> Result<LogIndex> {
        self.mutate(|e| e.log.finish_sync(done))
    }

    /// Forgets entries up to `upto`, deleting segments that hold nothing else. A durable
    /// snapshot must cover `upto`: the snapshot is what records the log's new start.
    pub fn compact(&mut self, upto: LogIndex) -> Result<()> {
        match self.snapshot {
            Some(s) if s.index >= upto => {}
            _ => {
                return Err(StorageError::InvalidArgument(format!(
                    "cannot compact up to {upto}: no snapshot covers it"
                )))
            }
        }
        self.mutate(|e| e.log.compact(upto))
    }

    /// Durably replaces the hard state (the configuration blob is kept).
    pub fn save_hard_state(&mut self, hard_state: &HardState) -> Result<()> {
        let meta = Meta {
            hard_state: hard_state.clone(),
            config: self.meta.config.clone(),
        };
        self.save_meta(meta)
    }

    /// Durably replaces the opaque configuration blob (the hard state is kept).
    pub fn save_config(&mut self, config: &[u8]) -> Result<()> {
        let meta = Meta {
            hard_state: self.meta.hard_state.clone(),
            config: config.to_vec(),
        };
        self.save_meta(meta)
    }

    fn save_meta(&mut self, meta: Meta) -> Result<()> {
        self.mutate(|e| {
            hard_state::store(&e.fs, &e.dir, &meta)?;
            e.meta = meta;
            Ok(())
        })
    }

    /// Starts receiving or writing a snapshot of `size` bytes covering the log up to `index`.
    pub fn begin_snapshot(
        &self,
        index: LogIndex,
        term: Term,
        size: u64,
    ) -> Result<SnapshotWriter<F>> {
        self.check()?;
        self.check_snapshot_index(index)?;
        SnapshotWriter::begin(&self.fs, &self.dir, index, term, size)
    }

    fn check_snapshot_index(&self, index: LogIndex) -> Result<()> {
        match self.snapshot {
            Some(s) if s.index > index => Err(StorageError::InvalidArgument(format!(
                "snapshot at {index} is older than the stored one at {}",
                s.index
            ))),
            _ => Ok(()),
        }
    }

    /// Makes a snapshot durable and visible, then applies Raft's rule to the log: if it holds
    /// the snapshot's last entry with the same term, entries after it stay (and segments the
    /// snapshot wholly covers are deleted); otherwise the whole log is discarded.
    pub fn finish_snapshot(&mut self, writer: SnapshotWriter<F>) -> Result<SnapshotMeta> {
        self.check_snapshot_index(writer.meta().index)?;
        self.mutate(|e| {
            let meta = writer.finish()?;
            e.snapshot = Some(meta);
            match e.log.term_at(meta.index)? {
                Some(t) if t == meta.term => e.log.compact(meta.index)?,
                _ => e.log.discard_all(meta.index, meta.term)?,
            }
            Ok(meta)
        })
    }

    /// The stored snapshot, checksum verified.
    pub fn open_snapshot(&self) -> Result<Option<SnapshotReader<F::File>>> {
        self.check()?;
        SnapshotReader::open(&self.fs, &self.dir)
    }

    /// What the stored snapshot covers, if there is one.
    pub fn snapshot(&self) -> Option<SnapshotMeta> {
        self.snapshot
    }

    /// The entries in `from..to` (exclusive), read back from disk.
    pub fn entries(&self, from: LogIndex, to: LogIndex) -> Result<Vec<Entry>> {
        self.check()?;
        self.log.entries(from, to)
    }

    /// Calls `each(index, entry)` for the entries in `from..to`, without collecting them.
    pub fn for_each_entry(
        &self,
        from: LogIndex,
        to: LogIndex,
        each: impl FnMut(LogIndex, Entry),
    ) -> Result<()> {
        self.check()?;
        self.log.for_each(from, to, each)
    }

    /// The term of the entry at `index`, if known (the log start included).
    pub fn term_at(&self, index: LogIndex) -> Result<Option<Term>> {
        self.check()?;
        self.log.term_at(index)
    }

    /// The index just before the first readable entry, and its term.
    pub fn log_start(&self) -> (LogIndex, Term) {
        self.log.start()
    }

    pub fn last_index(&self) -> LogIndex {
        self.log.last()
    }

    /// Every entry up to this index is fsynced.
    pub fn durable_index(&self) -> LogIndex {
        self.log.durable()
    }

    pub fn hard_state(&self) -> &HardState {
        &self.meta.hard_state
    }

    pub fn config(&self) -> &[u8] {
        &self.meta.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segment files (one open handle is kept, for the last).
    pub fn segment_count(&self) -> usize {
        self.log.segment_count()
    }
}

/// Deletes temp files of hard-state or snapshot writes a crash interrupted: never renamed into
/// place, they were never part of the state.
fn remove_interrupted_writes<F: Fs>(fs: &F, dir: &Path) -> Result<()> {
    let names = fs
        .list_dir(dir)
        .map_err(StorageError::io("list directory", dir))?;
    let mut removed = false;
    for name in [META_TMP, SNAPSHOT_TMP] {
        if names.iter().any(|n| n == name) {
            let path = dir.join(name);
            info!(
                "{}: removing a write interrupted by a crash",
                path.display()
            );
            fs.remove_file(&path)
                .map_err(StorageError::io("remove", &path))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(fs, dir)?;
    }
    Ok(())
}
