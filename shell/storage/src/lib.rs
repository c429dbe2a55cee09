//! Durable storage for a zmq-raft peer: a segmented, checksummed log, the hard state and
//! configuration, and the snapshot, all in one directory:
//!
//! ```text
//! log-00000000000000000001.seg   log segments, named by their first index
//! meta                           hard state + configuration (replaced atomically)
//! snapshot                       the latest snapshot (replaced atomically)
//! meta.tmp, snapshot.tmp         writes in progress; deleted on start
//! ```
//!
//! The engine is written against a small file-system trait ([`Fs`]) with two
//! implementations: [`RealFs`] (std::fs, real fsyncs) and [`MemFs`] (in memory, deterministic,
//! crashable, for the simulator and tests).
//!
//! # Driving it
//!
//! The core emits `Write::Log`, `Write::HardState` and `Write::Compact`; [`Engine::apply`]
//! carries them out (a compaction needs the covering snapshot stored first).
//! Log entries reach the OS at once but become durable only through a sync, so many appends
//! share one fsync (group commit): [`Engine::sync`] on the calling thread, or
//! [`Engine::begin_sync`] / [`SyncJob::run`] / [`Engine::finish_sync`] with the fsync on a
//! [`Syncer`] thread while the loop keeps appending. The durable index reported is exactly
//! what was appended before the sync began. A hard state is durable when `apply` returns.
//!
//! # Recovery rule
//!
//! Whether damaged bytes were ever synced cannot be read from the file, so [`Engine::open`]
//! decides by position, relying on the invariant that only the last segment can hold unsynced
//! bytes (a segment is fsynced before the next one is created):
//!
//! - Damage (a record cut short, or one whose length or crc32c is wrong) in the last segment
//!   with no checksum-valid record anywhere after it is a **torn tail**: the segment is cut
//!   back to the last whole record, with a `log::warn!` naming the file and offset.
//! - Damage followed by any valid record, damage in any other segment, a record whose index is
//!   not the next one, segments that do not continue each other, a log that does not reach
//!   back to the snapshot, and a damaged `meta` or `snapshot` file are **corruption**: open
//!   fails with [`StorageError::Corrupt`] naming the file and offset, and serves nothing.
//! - A log that conflicts with the snapshot (no entry at its index with its term) is discarded,
//!   as Raft's InstallSnapshot rule says; segments the snapshot wholly covers are deleted.
//!
//! After a write or fsync error the engine refuses further work ([`StorageError::Poisoned`]):
//! after a failed fsync the kernel may have dropped the data, so only a reopen, which reads
//! the disk again, knows what is durable.

#[cfg(test)]
mod dir_sync_tests;
mod engine;
mod error;
mod fs;
mod hard_state;
mod log;
mod memfs;
mod record;
mod segment;
mod snapshot;
mod sync;

pub use engine::{Engine, Options};
pub use error::{Result, StorageError};
pub use fs::{Fs, FsFile, RealFile, RealFs};
pub use hard_state::Meta;
pub use memfs::{CrashFault, MemFile, MemFs};
pub use record::{Record, RecordError, MAX_PAYLOAD_LEN, MIN_PAYLOAD_LEN, RECORD_HEADER_LEN};
pub use snapshot::{SnapshotMeta, SnapshotReader, SnapshotWriter, SNAPSHOT_HEADER_LEN};
pub use sync::{SyncDone, SyncJob, Syncer};

/// Record encoding, public for tools that read segment files directly.
pub mod records {
    pub use crate::record::{check, decode, encode_into, encoded_len, total_len};
}
