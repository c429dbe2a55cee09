//! Proof that the directory fsync at segment creation matters: an engine built to skip it
//! loses entries it reported durable when the power fails; the real engine does not.
//! In-crate because the sabotage switch is a test-only option.

use crate::{CrashFault, Engine, Fs, MemFs, Options};
use std::path::Path;
use zmq_raft_core::{Entry, EntryType, LogIndex, RequestId, Term};

fn entries(n: u64) -> Vec<Entry> {
    (1..=n)
        .map(|i| Entry::new(RequestId::ZERO, EntryType::State, Term(1), &i.to_le_bytes()))
        .collect()
}

/// Appends across several segments, syncs, loses power; returns (durable index reported,
/// entries recovered).
fn crash_after_sync(skip_dir_sync: bool) -> (LogIndex, usize) {
    let fs = MemFs::new();
    let dir = Path::new("/peer");
    let opts = || Options {
        segment_size: 100,
        index_interval: 4,
        skip_segment_dir_sync: skip_dir_sync,
    };
    let (mut engine, _) = Engine::open(fs.clone(), dir, opts()).unwrap();
    engine.append(LogIndex(1), &entries(10)).unwrap();
    assert!(engine.segment_count() > 1);
    let durable = engine.sync().unwrap();
    drop(engine);
    fs.crash(CrashFault::LoseUnsynced);
    let (_, recovered) = Engine::open(fs.clone(), dir, Options::default()).unwrap();
    assert!(fs.list_dir(dir).is_ok());
    (durable, recovered.entries.len())
}

#[test]
fn segment_dir_sync_matters() {
    let (durable, recovered) = crash_after_sync(true);
    assert_eq!(durable, LogIndex(10));
    assert!(
        (recovered as u64) < durable.0,
        "without the directory fsync synced entries should vanish with their segment"
    );
    let (durable, recovered) = crash_after_sync(false);
    assert_eq!(recovered as u64, durable.0);
}
