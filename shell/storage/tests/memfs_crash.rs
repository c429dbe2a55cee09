//! Crashes of a MemFs under a live engine: what a power loss, a torn write or a process crash
//! leaves, and a seeded random workload that crashes often and checks every promise the
//! engine made (its durable index) held.

mod common;

use common::*;
use std::path::Path;
use zmq_raft_core::{Entry, LogIndex, Term};
use zmq_raft_storage::{records, CrashFault, Engine, MemFs, Options};

fn dir() -> &'static Path {
    Path::new("/peer")
}

#[test]
fn power_loss_recovers_exactly_the_synced_prefix() {
    for opts in [Options::default(), tiny()] {
        let fs = MemFs::new();
        let (mut e, _) = open(&fs, dir(), opts.clone());
        e.append(idx(1), &entries(1, 6, 1)).unwrap();
        assert_eq!(e.sync().unwrap(), idx(6));
        e.append(idx(7), &entries(7, 9, 1)).unwrap();
        e.append(idx(10), &entries(10, 10, 1)).unwrap();
        // With tiny segments, sealing a full segment on roll-over syncs it too.
        let durable = e.durable_index();
        drop(e);
        fs.crash(CrashFault::LoseUnsynced);
        let (_, rec) = open(&fs, dir(), opts.clone());
        assert_eq!(rec.entries, entries(1, durable.0, 1), "{opts:?}");
        if opts.segment_size == Options::default().segment_size {
            assert_eq!(durable, idx(6));
        }
    }
}

#[test]
fn process_crash_keeps_unsynced_entries_and_reopen_makes_them_durable() {
    let fs = MemFs::new();
    let (mut e, _) = open(&fs, dir(), Options::default());
    e.append(idx(1), &entries(1, 4, 1)).unwrap();
    drop(e); // the process dies; the kernel still has the writes
    let (e, rec) = open(&fs, dir(), Options::default());
    assert_eq!(rec.entries, entries(1, 4, 1));
    assert_eq!(e.durable_index(), idx(4));
    drop(e);
    // The core now counts 1..=4 as durable: a power loss must not take them.
    fs.crash(CrashFault::LoseUnsynced);
    let (_, rec) = open(&fs, dir(), Options::default());
    assert_eq!(rec.entries, entries(1, 4, 1));
}

#[test]
fn torn_write_recovers_the_synced_prefix_plus_whole_unsynced_records() {
    let synced = entries(1, 3, 1);
    let batch = entries(4, 8, 1);
    let lens: Vec<usize> = batch.iter().map(records::encoded_len).collect();
    let total: usize = lens.iter().sum();
    for keep in 0..=total {
        let fs = MemFs::new();
        let (mut e, _) = open(&fs, dir(), Options::default());
        e.append(idx(1), &synced).unwrap();
        e.sync().unwrap();
        e.append(idx(4), &batch).unwrap(); // one write of five records
        fs.crash(CrashFault::TornWrite { keep });
        drop(e);
        let (_, rec) = open(&fs, dir(), Options::default());
        let whole = lens
            .iter()
            .scan(0, |end, l| {
                *end += l;
                Some(*end)
            })
            .filter(|&end| end <= keep)
            .count();
        let mut expect = synced.clone();
        expect.extend_from_slice(&batch[..whole]);
        assert_eq!(rec.entries, expect, "keep {keep}");
    }
}

#[test]
fn a_new_segment_survives_power_loss() {
    // The directory fsync at segment creation is what keeps a later-synced segment reachable.
    let fs = MemFs::new();
    let (mut e, _) = open(&fs, dir(), tiny());
    e.append(idx(1), &entries(1, 10, 1)).unwrap();
    assert!(e.segment_count() > 2);
    e.sync().unwrap();
    drop(e);
    fs.crash(CrashFault::LoseUnsynced);
    let (_, rec) = open(&fs, dir(), tiny());
    assert_eq!(rec.entries, entries(1, 10, 1));
}

/// A small deterministic generator (SplitMix64): tests need no RNG crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the log should hold: entries after `start`.
struct Model {
    start: LogIndex,
    start_term: Term,
    log: Vec<Entry>,
}

impl Model {
    fn last(&self) -> LogIndex {
        self.start.plus(self.log.len() as u64)
    }
    fn term_at(&self, i: LogIndex) -> Term {
        if i == self.start {
            self.start_term
        } else {
            self.log[(i.0 - self.start.0 - 1) as usize].term()
        }
    }
}

fn random_workload(seed: u64) {
    let mut rng = Rng(seed);
    let fs = MemFs::new();
    let opts = || Options {
        segment_size: 120 + rng_free_size(seed),
        index_interval: 3,
    };
    let (mut e, _) = Engine::open(fs.clone(), dir(), opts()).unwrap();
    let mut m = Model {
        start: idx(0),
        start_term: Term(0),
        log: Vec::new(),
    };
    let mut term = 1;
    let mut job = None;
    for step in 0..150 {
        let case = format!("seed {seed} step {step}");
        match rng.below(10) {
            0..=3 => {
                let n = 1 + rng.below(4);
                let first = m.last().next();
                let new: Vec<Entry> = (0..n).map(|k| entry(first.0 + k, term)).collect();
                e.append(first, &new).unwrap();
                m.log.extend(new);
            }
            4 if m.last() > m.start => {
                // A new leader overwrites a suffix.
                term += 1;
                let first = m.start.plus(1 + rng.below(m.last().0 - m.start.0));
                let n = rng.below(3);
                let new: Vec<Entry> = (0..n).map(|k| entry(first.0 + k, term)).collect();
                e.append(first, &new).unwrap();
                m.log.truncate((first.0 - m.start.0 - 1) as usize);
                m.log.extend(new);
            }
            5 => {
                e.sync().unwrap();
            }
            6 => match job.take() {
                None => job = e.begin_sync().unwrap(),
                Some(j) => {
                    e.finish_sync(zmq_raft_storage::SyncJob::run(j)).unwrap();
                }
            },
            7 if rng.below(3) == 0 => {
                let s = m.start.plus(rng.below(m.last().0 - m.start.0 + 1));
                let t = m.term_at(s);
                let mut w = e.begin_snapshot(s, t, 1).unwrap();
                w.write_chunk(0, b"s").unwrap();
                e.finish_snapshot(w).unwrap();
                m.log.drain(..(s.0 - m.start.0) as usize);
                m.start = s;
                m.start_term = t;
            }
            8 | 9 => {
                let durable = e.durable_index();
                let fault = match rng.below(3) {
                    0 => CrashFault::LoseUnsynced,
                    1 => CrashFault::KeepUnsynced,
                    _ => CrashFault::TornWrite {
                        keep: rng.below(120) as usize,
                    },
                };
                // Sometimes the engine is gone before the crash, sometimes it dies with it.
                if rng.below(2) == 0 {
                    drop(e);
                    fs.crash(fault.clone());
                } else {
                    fs.crash(fault.clone());
                    drop(e);
                }
                job = None;
                let (e2, rec) = Engine::open(fs.clone(), dir(), opts())
                    .unwrap_or_else(|err| panic!("{case}: {fault:?}: {err}"));
                e = e2;
                assert_eq!(
                    (rec.log_start, rec.log_start_term),
                    (m.start, m.start_term),
                    "{case}"
                );
                let n = rec.entries.len();
                assert!(n <= m.log.len(), "{case}: recovered more than written");
                assert_eq!(rec.entries, m.log[..n], "{case}: {fault:?}");
                assert!(
                    m.start.plus(n as u64) >= durable,
                    "{case}: {fault:?} lost entries up to {durable} that were reported durable, \
                     recovered up to {}",
                    m.start.plus(n as u64)
                );
                m.log.truncate(n);
            }
            _ => {}
        }
        assert_eq!(e.last_index(), m.last(), "{case}");
        assert!(e.durable_index() <= e.last_index(), "{case}");
        if step % 10 == 0 && m.last() > m.start {
            let read = e.entries(m.start.next(), m.last().next()).unwrap();
            assert_eq!(read, m.log, "{case}");
        }
    }
}

/// Varies the segment size by seed without borrowing the workload's generator.
fn rng_free_size(seed: u64) -> u64 {
    Rng(seed ^ 0x5eed).below(200)
}

#[test]
fn random_workloads_with_crashes_keep_every_promise() {
    for seed in 0..40 {
        random_workload(seed);
    }
}
