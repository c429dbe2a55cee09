//! Group commit: what a sync reports durable, off-thread syncing, and how truncations and
//! failures interact with a sync in flight.

mod common;

use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use zmq_raft_core::{LogIndex, Term};
use zmq_raft_storage::{CrashFault, Engine, MemFs, Options, RealFs, StorageError, Syncer};

fn big() -> Options {
    Options::default()
}

#[test]
fn a_sync_reports_exactly_what_was_appended_before_it_began() {
    let fs = MemFs::new();
    let dir = Path::new("/peer");
    let (mut e, _) = open(&fs, dir, big());
    assert!(e.begin_sync().unwrap().is_none(), "nothing to sync yet");
    e.append(idx(1), &entries(1, 5, 1)).unwrap();
    let job = e.begin_sync().unwrap().expect("entries to sync");
    assert_eq!(job.target(), idx(5));
    // Entries gather while the sync runs; no second job meanwhile.
    e.append(idx(6), &entries(6, 8, 1)).unwrap();
    assert!(e.begin_sync().unwrap().is_none());
    assert_eq!(e.finish_sync(job.run()).unwrap(), idx(5));
    assert_eq!(e.durable_index(), idx(5));
    let job = e.begin_sync().unwrap().expect("6..=8 still unsynced");
    assert_eq!(job.target(), idx(8));
    assert_eq!(e.finish_sync(job.run()).unwrap(), idx(8));
    assert!(e.begin_sync().unwrap().is_none());
}

#[test]
fn what_a_sync_reported_survives_power_loss() {
    let fs = MemFs::new();
    let dir = Path::new("/peer");
    let (mut e, _) = open(&fs, dir, big());
    e.append(idx(1), &entries(1, 5, 1)).unwrap();
    let job = e.begin_sync().unwrap().unwrap();
    let done = job.run();
    e.append(idx(6), &entries(6, 8, 1)).unwrap();
    let durable = e.finish_sync(done).unwrap();
    drop(e);
    fs.crash(CrashFault::LoseUnsynced);
    let (_, rec) = open(&fs, dir, big());
    assert_eq!(rec.entries, entries(1, durable.0, 1));
}

#[test]
fn a_truncation_during_a_sync_lowers_what_it_vouches_for() {
    let fs = MemFs::new();
    let dir = Path::new("/peer");
    let (mut e, _) = open(&fs, dir, big());
    e.append(idx(1), &entries(1, 10, 1)).unwrap();
    let job = e.begin_sync().unwrap().unwrap();
    assert_eq!(job.target(), idx(10));
    // A new leader overwrites 5.. while the sync of 1..=10 is in flight.
    e.append(idx(5), &entries(5, 12, 2)).unwrap();
    assert_eq!(e.durable_index(), idx(4), "the cut is synced inline");
    // The job covered old 5..=10, not the new ones: it vouches for 4 at most.
    assert_eq!(e.finish_sync(job.run()).unwrap(), idx(4));
    assert_eq!(e.sync().unwrap(), idx(12));
}

#[test]
fn a_snapshot_discarding_the_log_during_a_sync_lowers_what_it_vouches_for() {
    let fs = MemFs::new();
    let dir = Path::new("/peer");
    let (mut e, _) = open(&fs, dir, big());
    e.append(idx(1), &entries(1, 10, 1)).unwrap();
    let job = e.begin_sync().unwrap().unwrap();
    let mut w = e.begin_snapshot(idx(5), Term(2), 1).unwrap();
    w.write_chunk(0, b"s").unwrap();
    e.finish_snapshot(w).unwrap();
    e.append(idx(6), &entries(6, 9, 2)).unwrap();
    assert_eq!(e.finish_sync(job.run()).unwrap(), idx(5));
}

#[test]
fn a_foreign_sync_result_is_refused() {
    let fs = MemFs::new();
    let (mut a, _) = open(&fs, Path::new("/a"), big());
    let (mut b, _) = open(&fs, Path::new("/b"), big());
    a.append(idx(1), &entries(1, 1, 1)).unwrap();
    let job = a.begin_sync().unwrap().unwrap();
    assert!(matches!(
        b.finish_sync(job.run()),
        Err(StorageError::InvalidArgument(_))
    ));
    // b is not poisoned by a caller's mistake.
    b.append(idx(1), &entries(1, 1, 1)).unwrap();
}

#[test]
fn a_failed_fsync_poisons_the_engine() {
    let fs = MemFs::new();
    let dir = Path::new("/peer");
    let (mut e, _) = open(&fs, dir, big());
    e.append(idx(1), &entries(1, 3, 1)).unwrap();
    // The crash strands the engine's handles, so its next fsync fails.
    fs.crash(CrashFault::KeepUnsynced);
    let err = e.sync().unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("log-00000000000000000001.seg"),
        "{err}"
    );
    assert!(matches!(
        e.append(idx(4), &entries(4, 4, 1)),
        Err(StorageError::Poisoned { .. })
    ));
    assert!(matches!(
        e.entries(idx(1), idx(2)),
        Err(StorageError::Poisoned { .. })
    ));
    drop(e);
    let (_, rec) = open(&fs, dir, big());
    assert_eq!(rec.entries, entries(1, 3, 1));
}

#[test]
fn syncer_thread_group_commits_on_real_files() {
    let tmp = TempDir::new("syncer");
    let dir = tmp.path();
    let (mut e, _) = Engine::open(RealFs, dir, big()).unwrap();
    let wakeups = Arc::new(AtomicUsize::new(0));
    let w = wakeups.clone();
    let syncer = Syncer::spawn(move || {
        w.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let mut in_flight = false;
    let mut last_durable = LogIndex(0);
    let mut syncs = 0;
    for i in 1..=200u64 {
        e.append(idx(i), &[entry(i, 1)]).unwrap();
        if let Some(done) = syncer.try_recv() {
            let target = done.target();
            let durable = e.finish_sync(done).unwrap();
            assert_eq!(durable, target);
            assert!(durable >= last_durable);
            last_durable = durable;
            in_flight = false;
            syncs += 1;
        }
        if !in_flight {
            if let Some(job) = e.begin_sync().unwrap() {
                assert_eq!(job.target(), idx(i));
                syncer.submit(job).unwrap();
                in_flight = true;
            }
        }
    }
    while in_flight {
        let done = syncer.recv().unwrap();
        last_durable = e.finish_sync(done).unwrap();
        syncs += 1;
        in_flight = false;
        if let Some(job) = e.begin_sync().unwrap() {
            syncer.submit(job).unwrap();
            in_flight = true;
        }
    }
    assert_eq!(last_durable, idx(200));
    // The worker notifies after handing over each result, so count once it has been joined.
    drop(syncer);
    assert_eq!(wakeups.load(Ordering::SeqCst), syncs);
    drop(e);
    let (_, rec) = Engine::open(RealFs, dir, big()).unwrap();
    assert_eq!(rec.entries, entries(1, 200, 1));
}
