//! Storage engine benchmark on real files.
//!
//! ```text
//! cargo run --release -p zmq-raft-storage --example storage_bench -- \
//!     [--dir PATH] [--seconds S] [--entries N]
//! ```
//!
//! Measures, in a fresh directory under PATH (default: the system temp dir):
//! - the raw fdatasync rate of the disk (100-byte write + fdatasync, repeated);
//! - appends/s with group commit (append a batch, one fsync) for batches of 1, 16 and 256
//!   entries of 100 B and 1 KiB;
//! - the same with the fsync on a `Syncer` thread while the loop keeps appending;
//! - restart: open time and resident memory after N entries (default 1,000,000), measured in
//!   a child process so the figures are not muddied by the writer's memory.

use std::path::{Path, PathBuf};
use std::time::Instant;
use zmq_raft_core::{Entry, EntryType, LogIndex, RequestId, Term};
use zmq_raft_storage::{Engine, FsFile, Options, RealFs, Syncer};

struct Args {
    dir: PathBuf,
    seconds: f64,
    entries: u64,
    /// Internal: run only the restart measurement on this directory (child process).
    restart_only: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: std::env::temp_dir(),
        seconds: 2.0,
        entries: 1_000_000,
        restart_only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()),
            "--seconds" => args.seconds = value().parse().expect("--seconds takes a number"),
            "--entries" => args.entries = value().parse().expect("--entries takes a count"),
            "--restart-only" => args.restart_only = Some(PathBuf::from(value())),
            "-h" | "--help" => {
                println!("storage_bench [--dir PATH] [--seconds S] [--entries N]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// An entry whose encoded size is `size` bytes.
fn entry(i: u64, size: usize) -> Entry {
    let data = vec![(i % 251) as u8; size - zmq_raft_core::ENTRY_HEADER_LEN];
    Entry::new(
        RequestId::from_parts(1_700_000_000, [1, 2, 3], 4, i as u32),
        EntryType::State,
        Term(1),
        &data,
    )
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fresh_dir(base: &Path, tag: &str) -> PathBuf {
    let d = base.join(format!("storage-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn raw_fdatasync(base: &Path, secs: f64) {
    let dir = fresh_dir(base, "raw");
    std::fs::create_dir_all(&dir).unwrap();
    let fs = RealFs;
    let path = dir.join("raw");
    let mut file = zmq_raft_storage::Fs::create(&fs, &path).unwrap();
    let buf = [7u8; 100];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        file.write_all_at(n * 100, &buf).unwrap();
        file.sync_data().unwrap();
        n += 1;
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "raw 100 B write + fdatasync: {:>9.0} /s  ({:.3} ms each)",
        n as f64 / el,
        el * 1000.0 / n as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn group_commit(base: &Path, secs: f64, size: usize, batch: usize) {
    let dir = fresh_dir(base, &format!("gc-{size}-{batch}"));
    let (mut e, _) = Engine::open(RealFs, &dir, Options::default()).unwrap();
    let pool: Vec<Entry> = (0..batch as u64).map(|i| entry(i, size)).collect();
    let start = Instant::now();
    let mut next = 1u64;
    let mut syncs = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        e.append(LogIndex(next), &pool).unwrap();
        next += batch as u64;
        e.sync().unwrap();
        syncs += 1;
    }
    let el = start.elapsed().as_secs_f64();
    let n = (next - 1) as f64;
    println!(
        "group commit {size:>5} B x {batch:>3}/fsync: {:>9.0} entries/s  {:>7.0} fsyncs/s  {:>7.1} MB/s",
        n / el,
        syncs as f64 / el,
        n * size as f64 / el / 1e6
    );
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Appends one entry per loop turn while a Syncer thread fsyncs whatever gathered.
fn pipelined(base: &Path, secs: f64, size: usize) {
    let dir = fresh_dir(base, &format!("pipe-{size}"));
    let (mut e, _) = Engine::open(RealFs, &dir, Options::default()).unwrap();
    let syncer = Syncer::spawn(|| {}).unwrap();
    let one = [entry(0, size)];
    let start = Instant::now();
    let mut next = 1u64;
    let mut syncs = 0u64;
    let mut in_flight = false;
    // Bound the unsynced backlog like a Raft leader bounds in-flight entries.
    let max_backlog = 4096;
    while start.elapsed().as_secs_f64() < secs {
        if next - 1 - e.durable_index().0 < max_backlog {
            e.append(LogIndex(next), &one).unwrap();
            next += 1;
        } else if in_flight {
            let done = syncer.recv().unwrap();
            e.finish_sync(done).unwrap();
            in_flight = false;
            syncs += 1;
        }
        if let Some(done) = syncer.try_recv() {
            e.finish_sync(done).unwrap();
            in_flight = false;
            syncs += 1;
        }
        if !in_flight {
            if let Some(job) = e.begin_sync().unwrap() {
                syncer.submit(job).unwrap();
                in_flight = true;
            }
        }
    }
    while in_flight {
        e.finish_sync(syncer.recv().unwrap()).unwrap();
        syncs += 1;
        in_flight = false;
    }
    let el = start.elapsed().as_secs_f64();
    let durable = e.durable_index().0 as f64;
    println!(
        "pipelined   {size:>5} B (Syncer thread): {:>9.0} durable entries/s  {:>7.0} fsyncs/s  {:>6.1} entries/fsync",
        durable / el,
        syncs as f64 / el,
        durable / syncs.max(1) as f64
    );
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

fn restart(base: &Path, n: u64) {
    let dir = fresh_dir(base, "restart");
    let (mut e, _) = Engine::open(RealFs, &dir, Options::default()).unwrap();
    let start = Instant::now();
    let batch = 1024u64;
    let mut next = 1u64;
    while next <= n {
        let k = batch.min(n - next + 1);
        let es: Vec<Entry> = (next..next + k).map(|i| entry(i, 100)).collect();
        e.append(LogIndex(next), &es).unwrap();
        next += k;
    }
    e.sync().unwrap();
    let segments = e.segment_count();
    drop(e);
    println!(
        "wrote {n} entries of 100 B ({segments} segments) in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .arg("--restart-only")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

fn restart_only(dir: &Path) {
    let before = vm_rss_kib();
    let start = Instant::now();
    let (e, rec) = Engine::open(RealFs, dir, Options::default()).unwrap();
    let el = start.elapsed();
    let with_entries = vm_rss_kib();
    let n = rec.entries.len();
    let payload: usize = rec.entries.iter().map(Entry::len).sum();
    println!(
        "restart: open recovered {n} entries in {:.3} s ({:.0} entries/s, page cache warm)",
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64().max(1e-9)
    );
    println!(
        "restart: VmRSS {} KiB before open, {} KiB after (Recovered holds {} KiB of entry bytes)",
        before,
        with_entries,
        payload / 1024
    );
    println!(
        "restart: engine's own index: {} segments, ~{} KiB of sparse offsets",
        e.segment_count(),
        (n as u64 / Options::default().index_interval) * 8 / 1024
    );
    // Reads through the sparse index, as a follower catch-up would.
    for from in [n as u64 / 2, n as u64 / 3, 5] {
        let t = Instant::now();
        let got = e.entries(LogIndex(from), LogIndex(from + 1000)).unwrap();
        assert_eq!(got.len(), 1000);
        println!(
            "read 1000 entries from index {from}: {:.3} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
}

fn main() {
    let args = parse_args();
    if let Some(dir) = &args.restart_only {
        restart_only(dir);
        return;
    }
    let t = Instant::now();
    println!(
        "storage_bench: dir {}, {} s per measurement",
        args.dir.display(),
        args.seconds
    );
    raw_fdatasync(&args.dir, args.seconds);
    for size in [100, 1024] {
        for batch in [1, 16, 256] {
            group_commit(&args.dir, args.seconds, size, batch);
        }
    }
    for size in [100, 1024] {
        pipelined(&args.dir, args.seconds, size);
    }
    restart(&args.dir, args.entries);
    println!("total {:.1} s", t.elapsed().as_secs_f64());
}
