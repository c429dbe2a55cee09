//! Damage at every byte offset of a small store: the last segment cut at every length, every
//! file cut at every length, and one bit flipped at every offset of every file. Each case must
//! either recover a prefix holding every entry whose record is intact (so every entry synced
//! before the "crash"), or refuse with `Corrupt` naming the damaged file; never panic, never
//! return an entry different from the one written.
//!
//! Runs on MemFs and on real files.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use zmq_raft_core::{Entry, HardState, Recovered, Term};
use zmq_raft_storage::{records, Engine, Fs, MemFs, Options, RealFs, StorageError};

const SNAPSHOT_AT: u64 = 2;
const LAST: u64 = 12;

fn opts() -> Options {
    Options {
        segment_size: 200,
        index_interval: 2,
    }
}

/// The store every case starts from, as (file name, bytes): 12 entries over 3 segments, a
/// hard state, and a snapshot at 2 (the first segment still holds 1..=4).
fn fixture() -> Vec<(String, Vec<u8>)> {
    let fs = MemFs::new();
    let dir = Path::new("/fixture");
    let (mut e, _) = Engine::open(fs.clone(), dir, opts()).unwrap();
    e.save_hard_state(&HardState {
        term: Term(1),
        voted_for: Some("peer-a".into()),
    })
    .unwrap();
    e.append(idx(1), &entries(1, LAST, 1)).unwrap();
    e.sync().unwrap();
    let mut w = e.begin_snapshot(idx(SNAPSHOT_AT), Term(1), 5).unwrap();
    w.write_chunk(0, b"state").unwrap();
    e.finish_snapshot(w).unwrap();
    drop(e);
    let files: Vec<(String, Vec<u8>)> = fs
        .list_dir(dir)
        .unwrap()
        .into_iter()
        .map(|n| {
            let bytes = fs.read_file(&dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect();
    assert_eq!(segment_names(&fs, dir).len(), 3, "{files:?}");
    assert!(files.iter().any(|(n, _)| n == "meta"));
    assert!(files.iter().any(|(n, _)| n == "snapshot"));
    files
}

/// (record start, record end, index) of each record of a segment's bytes.
fn layout(bytes: &[u8]) -> Vec<(usize, usize, u64)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < bytes.len() {
        let (index, len) = records::check(&bytes[off..]).unwrap();
        out.push((off, off + len, index.0));
        off += len;
    }
    out
}

/// Installs `files` in a fresh directory and opens the engine there.
trait Store {
    fn recover(&mut self, files: &[(String, Vec<u8>)]) -> Result<Recovered, StorageError>;
    fn dir(&self) -> PathBuf;
}

struct Mem;

impl Store for Mem {
    fn recover(&mut self, files: &[(String, Vec<u8>)]) -> Result<Recovered, StorageError> {
        let fs = MemFs::new();
        let dir = Path::new("/peer");
        fs.create_dir_all(dir).unwrap();
        for (name, bytes) in files {
            fs.write_file_durably(&dir.join(name), bytes).unwrap();
        }
        Engine::open(fs, dir, opts()).map(|(_, r)| r)
    }
    fn dir(&self) -> PathBuf {
        PathBuf::from("/peer")
    }
}

struct Real(TempDir);

impl Store for Real {
    fn recover(&mut self, files: &[(String, Vec<u8>)]) -> Result<Recovered, StorageError> {
        let dir = self.dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        Engine::open(RealFs, &dir, opts()).map(|(_, r)| r)
    }
    fn dir(&self) -> PathBuf {
        self.0.path().join("peer")
    }
}

/// What a case must produce.
enum Expect {
    /// Recovery succeeds with entries after the snapshot up to this index.
    Upto(u64),
    /// Recovery refuses, naming one of these files.
    Corrupt(Vec<String>),
}

fn written() -> Vec<Entry> {
    entries(SNAPSHOT_AT + 1, LAST, 1)
}

fn check(store: &mut dyn Store, files: &[(String, Vec<u8>)], expect: &Expect, case: &str) {
    let result = store.recover(files);
    match (expect, result) {
        (Expect::Upto(n), Ok(rec)) => {
            assert_eq!(rec.log_start, idx(SNAPSHOT_AT), "{case}");
            assert_eq!(
                rec.entries,
                written()[..(n - SNAPSHOT_AT) as usize],
                "{case}"
            );
            assert_eq!(rec.hard_state.voted_for, Some("peer-a".into()), "{case}");
        }
        (Expect::Corrupt(names), Err(StorageError::Corrupt { file, .. })) => {
            let name = file.file_name().unwrap().to_str().unwrap().to_string();
            assert_eq!(file.parent(), Some(store.dir().as_path()), "{case}");
            assert!(
                names.contains(&name),
                "{case}: blamed {name}, expected one of {names:?}"
            );
        }
        (Expect::Upto(n), Err(e)) => panic!("{case}: expected entries up to {n}, got {e}"),
        (Expect::Corrupt(names), Ok(rec)) => panic!(
            "{case}: expected Corrupt naming {names:?}, recovered {} entries",
            rec.entries.len()
        ),
        (Expect::Corrupt(_), Err(e)) => panic!("{case}: expected Corrupt, got {e}"),
    }
}

fn segments(files: &[(String, Vec<u8>)]) -> Vec<usize> {
    (0..files.len())
        .filter(|&i| files[i].0.ends_with(".seg"))
        .collect()
}

fn run_matrix(store: &mut dyn Store) -> usize {
    let files = fixture();
    let segs = segments(&files);
    let last_seg = *segs.last().unwrap();
    let mut cases = 0;

    // (a) Every file cut at every length.
    for (i, (name, bytes)) in files.iter().enumerate() {
        for len in 0..bytes.len() {
            let expect = if i == last_seg {
                // A torn tail: keep every record that ends within the cut.
                let kept = layout(bytes)
                    .iter()
                    .filter(|(_, end, _)| *end <= len)
                    .map(|&(_, _, index)| index)
                    .max();
                let first_of_last = layout(bytes)[0].2;
                Expect::Upto(kept.unwrap_or(first_of_last - 1))
            } else if name.ends_with(".seg") {
                // A synced segment cut short: refused, blaming it or, when the cut falls on a
                // record boundary, its successor for not following on.
                let k = segs.iter().position(|&s| s == i).unwrap();
                Expect::Corrupt(vec![name.clone(), files[segs[k + 1]].0.clone()])
            } else {
                Expect::Corrupt(vec![name.clone()])
            };
            let mut damaged = files.clone();
            damaged[i].1.truncate(len);
            check(store, &damaged, &expect, &format!("{name} cut to {len}"));
            cases += 1;
        }
    }

    // (b) One bit flipped at every offset of every file.
    for (i, (name, bytes)) in files.iter().enumerate() {
        let last_record = layout(&files[last_seg].1).last().copied().unwrap();
        for offset in 0..bytes.len() {
            let expect = if i == last_seg && offset >= last_record.0 {
                // Damage in the last record of the last segment looks exactly like a torn
                // write: it is cut off.
                Expect::Upto(last_record.2 - 1)
            } else {
                Expect::Corrupt(vec![name.clone()])
            };
            let mut damaged = files.clone();
            damaged[i].1[offset] ^= 1 << (offset % 8);
            check(
                store,
                &damaged,
                &expect,
                &format!("{name} bit flipped at {offset}"),
            );
            cases += 1;
        }
    }
    cases
}

#[test]
fn every_offset_on_memfs() {
    let cases = run_matrix(&mut Mem);
    assert!(cases > 1000, "{cases}");
}

#[test]
fn every_offset_on_real_files() {
    let cases = run_matrix(&mut Real(TempDir::new("matrix")));
    assert!(cases > 1000, "{cases}");
}
