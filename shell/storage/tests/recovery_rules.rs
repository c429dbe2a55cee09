//! Each recovery rule, on real files in temporary directories.

mod common;

use common::*;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use zmq_raft_core::{HardState, LogIndex, Term};
use zmq_raft_storage::{records, Engine, RealFs, SnapshotWriter, StorageError};

/// A log of entries 1..=12 (term 1) over several tiny segments, all synced, plus a hard
/// state. Returns the segment paths in order.
fn fixture(dir: &Path) -> Vec<PathBuf> {
    let (mut e, _) = open(&RealFs, dir, tiny());
    e.save_hard_state(&HardState {
        term: Term(1),
        voted_for: Some("a".into()),
    })
    .unwrap();
    e.append(idx(1), &entries(1, 12, 1)).unwrap();
    e.sync().unwrap();
    drop(e);
    let segs: Vec<PathBuf> = segment_names(&RealFs, dir)
        .iter()
        .map(|n| dir.join(n))
        .collect();
    assert!(segs.len() >= 3, "fixture spans several segments");
    segs
}

/// First index held by a segment, from its name.
fn first_of(seg: &Path) -> u64 {
    let name = seg.file_name().unwrap().to_str().unwrap();
    name[4..24].parse().unwrap()
}

/// Offsets of the records in a segment file of term-1 fixture entries.
fn record_offsets(seg: &Path) -> Vec<u64> {
    let len = std::fs::metadata(seg).unwrap().len();
    let mut offsets = Vec::new();
    let mut off = 0;
    let mut i = first_of(seg);
    while off < len {
        offsets.push(off);
        off += records::encoded_len(&entry(i, 1)) as u64;
        i += 1;
    }
    offsets
}

fn corrupt_file(err: &StorageError) -> (&Path, u64) {
    match err {
        StorageError::Corrupt { file, offset, .. } => (file, *offset),
        other => panic!("expected Corrupt, got {other}"),
    }
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn reopen(dir: &Path) -> Result<(Engine<RealFs>, zmq_raft_core::Recovered), StorageError> {
    Engine::open(RealFs, dir, tiny())
}

#[test]
fn torn_last_record_is_cut_back_with_a_warning() {
    capture_logs();
    let tmp = TempDir::new("torn");
    let segs = fixture(tmp.path());
    let last = segs.last().unwrap();
    let offsets = record_offsets(last);
    let cut_at = *offsets.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    set_len(last, len - 3);
    let (e, rec) = reopen(tmp.path()).unwrap();
    assert_eq!(rec.entries, entries(1, 11, 1));
    assert_eq!(e.last_index(), idx(11));
    assert_eq!(std::fs::metadata(last).unwrap().len(), cut_at);
    let warned = logs_mentioning(&last.display().to_string());
    assert!(
        warned
            .iter()
            .any(|m| m.starts_with("WARN") && m.contains(&format!("offset {cut_at}"))),
        "{warned:?}"
    );
    // Appending goes on from the cut.
    drop(e);
    let (mut e, _) = reopen(tmp.path()).unwrap();
    e.append(idx(12), &entries(12, 13, 2)).unwrap();
    e.sync().unwrap();
    drop(e);
    assert_eq!(reopen(tmp.path()).unwrap().1.entries.len(), 13);
}

#[test]
fn bad_checksum_in_the_last_record_is_a_torn_tail() {
    let tmp = TempDir::new("lastcrc");
    let segs = fixture(tmp.path());
    let last = segs.last().unwrap();
    let off = *record_offsets(last).last().unwrap();
    flip(last, off + 20);
    let (_, rec) = reopen(tmp.path()).unwrap();
    assert_eq!(rec.entries, entries(1, 11, 1));
}

#[test]
fn zeros_after_the_last_record_are_a_torn_tail() {
    let tmp = TempDir::new("zeros");
    let segs = fixture(tmp.path());
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(last)
        .unwrap()
        .write_all(&[0u8; 100])
        .unwrap();
    let (_, rec) = reopen(tmp.path()).unwrap();
    assert_eq!(rec.entries, entries(1, 12, 1));
    assert_eq!(std::fs::metadata(last).unwrap().len(), len);
}

#[test]
fn damage_followed_by_a_valid_record_is_corruption() {
    let tmp = TempDir::new("midcrc");
    let segs = fixture(tmp.path());
    let last = segs.last().unwrap();
    let offsets = record_offsets(last);
    assert!(offsets.len() >= 2);
    let victim = offsets[offsets.len() - 2];
    flip(last, victim + 20);
    let err = reopen(tmp.path()).err().expect("must refuse");
    let (file, offset) = corrupt_file(&err);
    assert_eq!((file, offset), (last.as_path(), victim));
    let msg = err.to_string();
    assert!(msg.contains("whole record follows"), "{msg}");
    // Nothing was cut: the bytes are left for an operator to inspect.
    assert!(std::fs::metadata(last).unwrap().len() > victim + 30);
}

#[test]
fn damaged_length_that_runs_past_the_end_is_still_caught_if_records_follow() {
    let tmp = TempDir::new("biglen");
    let segs = fixture(tmp.path());
    let last = segs.last().unwrap();
    let victim = record_offsets(last)[0];
    // Length field now claims ~16 MiB: "runs past EOF" but whole records follow it.
    flip(last, victim + 3);
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err), (last.as_path(), victim));
}

#[test]
fn damage_in_an_earlier_segment_is_corruption() {
    let tmp = TempDir::new("early");
    let segs = fixture(tmp.path());
    let len = std::fs::metadata(&segs[0]).unwrap().len();
    set_len(&segs[0], len - 1);
    let err = reopen(tmp.path()).err().expect("must refuse");
    let (file, _) = corrupt_file(&err);
    assert_eq!(file, segs[0].as_path());
    assert!(err.to_string().contains("only the last segment"), "{err}");
}

#[test]
fn a_missing_middle_segment_is_a_gap() {
    let tmp = TempDir::new("gap");
    let segs = fixture(tmp.path());
    std::fs::remove_file(&segs[1]).unwrap();
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err).0, segs[2].as_path());
    assert!(err.to_string().contains("gap"), "{err}");
}

#[test]
fn a_missing_first_segment_is_a_gap_before_the_log() {
    let tmp = TempDir::new("nofirst");
    let segs = fixture(tmp.path());
    std::fs::remove_file(&segs[0]).unwrap();
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err).0, segs[1].as_path());
}

#[test]
fn overlapping_segments_are_refused() {
    let tmp = TempDir::new("overlap");
    let segs = fixture(tmp.path());
    let last = segs.last().unwrap();
    let stray = tmp
        .path()
        .join(format!("log-{:020}.seg", first_of(last) - 1));
    std::fs::write(&stray, b"").unwrap();
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err).0, stray.as_path());
}

#[test]
fn a_valid_record_in_the_wrong_place_is_corruption() {
    let tmp = TempDir::new("misplaced");
    let segs = fixture(tmp.path());
    let last = segs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    let mut rec = Vec::new();
    records::encode_into(LogIndex(99), &entry(99, 1), &mut rec).unwrap();
    OpenOptions::new()
        .append(true)
        .open(last)
        .unwrap()
        .write_all(&rec)
        .unwrap();
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err), (last.as_path(), len));
    assert!(err.to_string().contains("index 99"), "{err}");
}

#[test]
fn a_corrupt_or_truncated_hard_state_is_an_error() {
    let tmp = TempDir::new("meta");
    fixture(tmp.path());
    let meta = tmp.path().join("meta");
    let good = std::fs::read(&meta).unwrap();
    flip(&meta, 10);
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err).0, meta.as_path());
    assert!(err.to_string().contains("checksum"), "{err}");
    std::fs::write(&meta, &good[..good.len() - 1]).unwrap();
    assert_eq!(
        corrupt_file(&reopen(tmp.path()).err().unwrap()).0,
        meta.as_path()
    );
    std::fs::write(&meta, &good).unwrap();
    let (e, rec) = reopen(tmp.path()).unwrap();
    assert_eq!(rec.hard_state.voted_for, Some("a".into()));
    assert_eq!(e.hard_state().term, Term(1));
}

#[test]
fn hard_state_and_config_survive_and_an_interrupted_replace_is_dropped() {
    let tmp = TempDir::new("metatmp");
    fixture(tmp.path());
    let (mut e, _) = reopen(tmp.path()).unwrap();
    e.save_config(b"peers: a b c").unwrap();
    e.save_hard_state(&HardState {
        term: Term(2),
        voted_for: None,
    })
    .unwrap();
    drop(e);
    // A crash mid-replace leaves a temp file (here: garbage) that must not be read.
    std::fs::write(tmp.path().join("meta.tmp"), b"half-written").unwrap();
    let (e, rec) = reopen(tmp.path()).unwrap();
    assert_eq!(rec.hard_state.term, Term(2));
    assert_eq!(rec.hard_state.voted_for, None);
    assert_eq!(e.config(), b"peers: a b c");
    assert!(!tmp.path().join("meta.tmp").exists());
}

#[test]
fn a_partial_snapshot_is_discarded_on_start() {
    let tmp = TempDir::new("snaptmp");
    fixture(tmp.path());
    let (e, _) = reopen(tmp.path()).unwrap();
    let mut w = e.begin_snapshot(idx(6), Term(1), 10).unwrap();
    w.write_chunk(0, b"01234").unwrap();
    drop(w); // the crash
    drop(e);
    assert!(tmp.path().join("snapshot.tmp").exists());
    let (e, rec) = reopen(tmp.path()).unwrap();
    assert!(!tmp.path().join("snapshot.tmp").exists());
    assert!(e.snapshot().is_none());
    assert_eq!(rec.log_start, idx(0));
    assert_eq!(rec.entries, entries(1, 12, 1));
}

#[test]
fn snapshot_chunks_must_not_leave_gaps_and_must_be_complete() {
    let tmp = TempDir::new("snapchunks");
    fixture(tmp.path());
    let (mut e, _) = reopen(tmp.path()).unwrap();
    let mut w = e.begin_snapshot(idx(6), Term(1), 6).unwrap();
    assert!(w.write_chunk(1, b"x").is_err(), "gap");
    w.write_chunk(0, b"abc").unwrap();
    w.write_chunk(0, b"abc").unwrap(); // a resent chunk is fine
    assert!(w.write_chunk(3, b"defg").is_err(), "past the size");
    w.write_chunk(3, b"de").unwrap();
    drop(w);
    let mut w = e.begin_snapshot(idx(6), Term(1), 6).unwrap();
    w.write_chunk(0, b"abcde").unwrap();
    assert!(matches!(
        e.finish_snapshot(w),
        Err(StorageError::InvalidArgument(_))
    ));
    let mut w = e.begin_snapshot(idx(6), Term(1), 6).unwrap();
    w.write_chunk(0, b"abcdef").unwrap();
    let meta = e.finish_snapshot(w).unwrap();
    assert_eq!((meta.index, meta.term, meta.size), (idx(6), Term(1), 6));
    let reader = e.open_snapshot().unwrap().unwrap();
    assert_eq!(reader.read_all().unwrap(), b"abcdef");
    let mut chunk = [0u8; 2];
    reader.read_at(2, &mut chunk).unwrap();
    assert_eq!(&chunk, b"cd");
    assert!(reader.read_at(5, &mut chunk).is_err());
    // An older snapshot can no longer be started.
    assert!(e.begin_snapshot(idx(5), Term(1), 1).is_err());
}

#[test]
fn a_corrupt_snapshot_is_refused_on_start_and_on_read() {
    let tmp = TempDir::new("snapcrc");
    fixture(tmp.path());
    let (mut e, _) = reopen(tmp.path()).unwrap();
    let mut w = e.begin_snapshot(idx(6), Term(1), 8).unwrap();
    w.write_chunk(0, b"snapshot").unwrap();
    e.finish_snapshot(w).unwrap();
    let reader = e.open_snapshot().unwrap().unwrap();
    let snap = tmp.path().join("snapshot");
    flip(&snap, 42);
    // Bytes changed under an open reader: read_all checks again.
    assert_eq!(
        corrupt_file(&reader.read_all().unwrap_err()).0,
        snap.as_path()
    );
    drop(reader);
    drop(e);
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err), (snap.as_path(), 40));
    flip(&snap, 42);
    flip(&snap, 9); // header: the index
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err), (snap.as_path(), 0));
}

#[test]
fn recovery_starts_after_the_snapshot_and_removes_covered_segments() {
    let tmp = TempDir::new("snapcover");
    let segs = fixture(tmp.path());
    // A snapshot made durable just before a crash, before compaction ran.
    let s = first_of(&segs[2]);
    let mut w = SnapshotWriter::begin(&RealFs, tmp.path(), idx(s), Term(1), 1).unwrap();
    w.write_chunk(0, b"x").unwrap();
    w.finish().unwrap();
    let (e, rec) = reopen(tmp.path()).unwrap();
    assert_eq!((rec.log_start, rec.log_start_term), (idx(s), Term(1)));
    assert_eq!(rec.entries, entries(s + 1, 12, 1));
    // Segments holding only entries up to the snapshot's go; the one holding it stays.
    assert!(!segs[0].exists() && !segs[1].exists());
    assert!(segs[2].exists());
    assert_eq!(e.term_at(idx(s)).unwrap(), Some(Term(1)));
}

#[test]
fn a_log_that_conflicts_with_the_snapshot_is_discarded() {
    let tmp = TempDir::new("snapconflict");
    fixture(tmp.path());
    let mut w = SnapshotWriter::begin(&RealFs, tmp.path(), idx(7), Term(5), 1).unwrap();
    w.write_chunk(0, b"x").unwrap();
    w.finish().unwrap();
    let (mut e, rec) = reopen(tmp.path()).unwrap();
    assert_eq!((rec.log_start, rec.log_start_term), (idx(7), Term(5)));
    assert!(rec.entries.is_empty());
    assert!(segment_names(&RealFs, tmp.path()).is_empty());
    e.append(idx(8), &entries(8, 9, 5)).unwrap();
    e.sync().unwrap();
    drop(e);
    assert_eq!(reopen(tmp.path()).unwrap().1.entries, entries(8, 9, 5));
}

#[test]
fn a_log_starting_after_the_snapshot_is_a_gap() {
    let tmp = TempDir::new("snapgap");
    let segs = fixture(tmp.path());
    let mut w = SnapshotWriter::begin(&RealFs, tmp.path(), idx(1), Term(1), 1).unwrap();
    w.write_chunk(0, b"x").unwrap();
    w.finish().unwrap();
    std::fs::remove_file(&segs[0]).unwrap();
    let err = reopen(tmp.path()).err().expect("must refuse");
    assert_eq!(corrupt_file(&err).0, segs[1].as_path());
    assert!(err.to_string().contains("snapshot ends at 1"), "{err}");
}

#[test]
fn unknown_files_are_left_alone() {
    let tmp = TempDir::new("unknown");
    fixture(tmp.path());
    std::fs::write(tmp.path().join("README"), b"hello").unwrap();
    let (_, rec) = reopen(tmp.path()).unwrap();
    assert_eq!(rec.entries.len(), 12);
    assert!(tmp.path().join("README").exists());
}

#[test]
fn errors_name_the_operation_and_file() {
    let tmp = TempDir::new("ioerr");
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let err = Engine::open(RealFs, file.join("sub"), tiny())
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, StorageError::Io { .. }), "{msg}");
    assert!(msg.contains("not-a-dir"), "{msg}");
    assert!(std::error::Error::source(&err).is_some());
}
