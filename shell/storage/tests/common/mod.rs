//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use zmq_raft_core::{Entry, EntryType, LogIndex, RequestId, Term};
use zmq_raft_storage::{Engine, Fs, Options};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "zmq-raft-storage-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A distinct, recognisable entry for `index` written in `term`.
pub fn entry(index: u64, term: u64) -> Entry {
    let data = format!("entry {index} of term {term}");
    Entry::new(
        RequestId::from_parts(1_700_000_000, [1, 2, 3], 4, index as u32),
        EntryType::State,
        Term(term),
        data.as_bytes(),
    )
}

/// Entries `from..=to`, all of `term`.
pub fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to).map(|i| entry(i, term)).collect()
}

/// Tiny segments so a dozen entries span several files.
pub fn tiny() -> Options {
    Options {
        segment_size: 150,
        index_interval: 2,
    }
}

pub fn open<F: Fs>(fs: &F, dir: &Path, opts: Options) -> (Engine<F>, zmq_raft_core::Recovered) {
    Engine::open(fs.clone(), dir, opts).unwrap()
}

pub fn idx(i: u64) -> LogIndex {
    LogIndex(i)
}

/// Segment file names in `dir`, sorted.
pub fn segment_names<F: Fs>(fs: &F, dir: &Path) -> Vec<String> {
    fs.list_dir(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect()
}

/// A logger that keeps every message, so tests can check what was warned about.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if let Ok(mut v) = self.0.lock() {
            v.push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        let _ = log::set_logger(c);
        log::set_max_level(log::LevelFilter::Info);
        c
    })
}

/// Starts capturing log messages (idempotent).
pub fn capture_logs() {
    capture();
}

/// Captured messages that mention `needle` (tests run in parallel, so filter by their dir).
pub fn logs_mentioning(needle: &str) -> Vec<String> {
    capture()
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.contains(needle))
        .cloned()
        .collect()
}
