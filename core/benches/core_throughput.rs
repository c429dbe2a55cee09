//! Throughput of the Sans-IO core alone: no I/O, one thread, instant durability.
//!
//! ```text
//! cargo bench -p zmq-raft-core --bench core_throughput
//! CORE_BENCH_SECS=10 cargo bench -p zmq-raft-core --bench core_throughput   # longer runs
//! cargo bench -p zmq-raft-core --bench core_throughput -- one-by-one  # cases named so
//! ```
//!
//! A "message" is one call to `Node::step`. The cluster is driven by a lean loop of its own
//! (nodes in a `Vec`, peers found by index, a FIFO network, writes made durable the moment they
//! are drained and then dropped), so that what is measured is the core and not the harness.
//! One line also runs the same workload through `zmq_raft_core::testkit::Cluster` to show what
//! a heavier harness costs.
//!
//! Workloads, after an untimed election:
//!
//! * `pipelined`: a closed loop of `window` outstanding proposals of `PAYLOAD` bytes. Whenever
//!   proposals commit, the client tops the window up again; proposals made between two drains of
//!   the leader go out as one AppendEntries per follower (the leader batches).
//! * `one-by-one`: one proposal per round trip. Each proposal is drained and every message it
//!   causes delivered before the next, so every AppendEntries carries one entry: the cost per
//!   message.
//! * `heartbeats`: no proposals; the leader's heartbeat timer fires and every follower answers
//!   an empty AppendEntries. The floor of the cost per message.
//!
//! The core keeps its whole log and every request id in memory (no compaction yet), so each
//! case runs as several rounds on fresh clusters, timing only the steady state of each round.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use zmq_raft_core::testkit::Cluster;
use zmq_raft_core::{
    ClientResult, Config, Message, Node, Now, Output, PeerId, ReadId, ReadResult, Recovered,
    RequestId, Role, SnapshotMeta,
};

const PAYLOAD: usize = 100;
const UNIX_SECS: u64 = 1_700_000_000;

/// What one timed run counted.
#[derive(Clone, Copy, Default)]
struct Counters {
    /// Calls to `Node::step`.
    steps: u64,
    /// AppendEntries sent, and the entries they carried.
    appends: u64,
    append_entries: u64,
    /// `Committed` replies from the leader.
    committed: u64,
    elapsed: Duration,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.steps += o.steps;
        self.appends += o.appends;
        self.append_entries += o.append_entries;
        self.committed += o.committed;
        self.elapsed += o.elapsed;
    }
}

/// The lean driver: a cluster in a Vec with a FIFO network and instant durability.
struct Lean {
    ids: Vec<PeerId>,
    nodes: Vec<Node>,
    net: VecDeque<(usize, usize, Message)>,
    now: Now,
    c: Counters,
}

impl Lean {
    fn new(n: usize) -> Lean {
        Lean::with(n, false)
    }

    fn with(n: usize, lease_reads: bool) -> Lean {
        let ids: Vec<PeerId> = (1..=n).map(|i| PeerId::new(&format!("p{i}"))).collect();
        let now = Now::new(0, UNIX_SECS);
        let nodes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut cfg = Config::new(id.clone(), ids.clone());
                cfg.lease_reads = lease_reads;
                Node::new(cfg, Recovered::default(), i as u64 + 1, now)
            })
            .collect();
        Lean {
            ids,
            nodes,
            net: VecDeque::new(),
            now,
            c: Counters::default(),
        }
    }

    fn index(&self, peer: &PeerId) -> usize {
        // A handful of peers: a linear scan beats any map. `PeerId` equality compares its
        // `Arc<str>` pointer first, so this is a few pointer compares.
        self.ids.iter().position(|p| p == peer).expect("known peer")
    }

    /// Carries out node `i`'s outputs. Writes are durable as soon as drained: the node is told
    /// at once and drained again, until it has nothing left.
    fn drain(&mut self, i: usize) {
        loop {
            let mut last_write = None;
            while let Some(out) = self.nodes[i].poll_output() {
                match out {
                    Output::Write(id, write) => {
                        black_box(&write);
                        last_write = Some(id);
                    }
                    Output::Send(to, msg) => {
                        if let Message::AppendEntries(ae) = &msg {
                            self.c.appends += 1;
                            self.c.append_entries += ae.entries.len() as u64;
                        }
                        let to = self.index(&to);
                        self.net.push_back((i, to, msg));
                    }
                    Output::Apply { entries, .. } => {
                        black_box(&entries);
                    }
                    Output::Reply(_, ClientResult::Committed { .. }) => self.c.committed += 1,
                    Output::Reply(_, ClientResult::Accepted { .. }) => {}
                    Output::Reply(id, other) => panic!("proposal {id} refused: {other:?}"),
                    Output::Read(_, ReadResult::Ready) => self.c.committed += 1,
                    Output::Read(id, other) => panic!("read {id:?} failed: {other:?}"),
                    // No snapshots are taken in this benchmark.
                    Output::Changed { .. }
                    | Output::SnapshotChunk { .. }
                    | Output::InstallSnapshot(_) => {}
                }
            }
            match last_write {
                Some(id) => self.nodes[i].persisted(id),
                None => return,
            }
        }
    }

    /// Delivers the oldest message in the network; false when there was none.
    fn deliver_one(&mut self) -> bool {
        let Some((from, to, msg)) = self.net.pop_front() else {
            return false;
        };
        self.nodes[to].step(self.now, &self.ids[from], msg);
        self.c.steps += 1;
        self.drain(to);
        true
    }

    fn deliver_all(&mut self) {
        while self.deliver_one() {}
    }

    /// Runs timers until one leader has committed its first entry. Untimed.
    fn elect(&mut self) -> usize {
        for _ in 0..10_000 {
            if let Some(l) = self.nodes.iter().position(|n| n.role() == Role::Leader) {
                if self.nodes[l].commit_index().0 >= 1 {
                    return l;
                }
            }
            let next = self.nodes.iter().map(|n| n.next_deadline()).min().unwrap();
            self.now.mono = self.now.mono.max(next);
            for i in 0..self.nodes.len() {
                if self.nodes[i].next_deadline() <= self.now.mono {
                    self.nodes[i].tick(self.now);
                }
                self.drain(i);
            }
            self.deliver_all();
        }
        panic!("no leader emerged");
    }

    fn propose(&mut self, leader: usize, id: RequestId, data: &[u8]) {
        self.nodes[leader].propose(self.now, id, data);
    }
}

fn request_id(round: u32, n: u64) -> RequestId {
    RequestId::from_parts(UNIX_SECS as u32, [1, 2, 3], round as u16, n as u32)
}

/// One round of the pipelined workload on a fresh cluster: `entries` commits, `window` in
/// flight.
fn pipelined_round(nodes: usize, window: u64, entries: u64, round: u32) -> Counters {
    let mut c = Lean::new(nodes);
    let leader = c.elect();
    c.deliver_all();
    c.c = Counters::default();
    let data = [0xabu8; PAYLOAD];
    let mut proposed = 0u64;
    let t0 = Instant::now();
    while c.c.committed < entries {
        // The client tops up the window; what it proposes since the leader's last drain
        // leaves as one batch.
        while proposed - c.c.committed < window {
            c.propose(leader, request_id(round, proposed), &data);
            proposed += 1;
        }
        c.drain(leader);
        if !c.deliver_one() {
            panic!("network went quiet with proposals outstanding");
        }
    }
    c.c.elapsed = t0.elapsed();
    c.c
}

/// One round of the one-by-one workload: each proposal's round trip completes before the next.
fn one_by_one_round(nodes: usize, entries: u64, round: u32) -> Counters {
    let mut c = Lean::new(nodes);
    let leader = c.elect();
    c.deliver_all();
    c.c = Counters::default();
    let data = [0xabu8; PAYLOAD];
    let t0 = Instant::now();
    for n in 0..entries {
        c.propose(leader, request_id(round, n), &data);
        c.drain(leader);
        c.deliver_all();
    }
    c.c.elapsed = t0.elapsed();
    assert_eq!(c.c.committed, entries);
    c.c
}

/// Heartbeats only: the leader's timer fires, every follower gets an empty AppendEntries and
/// answers it. No entries, so this is the floor of the per-message cost.
fn heartbeat_round(nodes: usize, beats: u64) -> Counters {
    let mut c = Lean::new(nodes);
    let leader = c.elect();
    c.deliver_all();
    c.c = Counters::default();
    let t0 = Instant::now();
    for _ in 0..beats {
        c.now.mono = c.nodes[leader].next_deadline();
        c.nodes[leader].tick(c.now);
        c.drain(leader);
        c.deliver_all();
    }
    c.c.elapsed = t0.elapsed();
    assert_eq!(c.nodes[leader].role(), Role::Leader);
    c.c
}

/// Linearizable reads on the leader, `batch` at a time: with ReadIndex, one heartbeat round
/// confirms every read of a batch; with a lease, no round at all. Counts reads served.
fn read_round(nodes: usize, reads: u64, batch: u64, lease: bool) -> Counters {
    let mut c = Lean::with(nodes, lease);
    let leader = c.elect();
    c.deliver_all();
    c.c = Counters::default();
    let t0 = Instant::now();
    let mut id = 0;
    while c.c.committed < reads {
        for _ in 0..batch {
            id += 1;
            c.nodes[leader].read(c.now, ReadId(id));
        }
        c.drain(leader);
        c.deliver_all();
    }
    c.c.elapsed = t0.elapsed();
    c.c
}

/// A lagging follower receives a `size`-byte snapshot from the leader in 1 MiB chunks over
/// the testkit's in-memory network. Returns (bytes, wall time of the transfer).
fn snapshot_transfer(size: usize) -> (usize, Duration) {
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.request_id_ttl_secs = 5;
        cfg.max_batch_bytes = 1 << 20;
    });
    let leader = c.elect();
    let lagging = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    c.isolate(&lagging);
    for n in 0..10 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, b"x");
    }
    c.advance(100);
    c.unix_secs += 60; // the request ids expire, so the log may compact
    c.advance(100);
    let node = &c.nodes[&leader];
    let index = node.applied_index();
    let meta = SnapshotMeta {
        index,
        term: node.term_at(index).unwrap(),
        membership: node.membership().clone(),
    };
    let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let now = c.now();
    let node = c.nodes.get_mut(&leader).unwrap();
    assert_eq!(node.snapshot_taken(now, meta, data.into()), index);
    c.heal();
    let t0 = Instant::now();
    while c.installed.is_empty() {
        c.advance(50);
    }
    let elapsed = t0.elapsed();
    assert_eq!(c.installed[0].2.len(), size);
    (size, elapsed)
}

/// The one-by-one workload through the testkit's `Cluster` (BTreeMap-keyed nodes, disks that
/// keep every entry, a `PeerId` clone per hop).
fn testkit_one_by_one_round(nodes: usize, entries: u64) -> Counters {
    let mut c = Cluster::new(nodes);
    let leader = c.elect();
    c.deliver_all();
    let delivered0 = c.delivered;
    let replies0 = c.replies.len();
    let data = [0xabu8; PAYLOAD];
    let t0 = Instant::now();
    for n in 0..entries {
        let rid = c.request_id(n as u32);
        c.propose(&leader, rid, &data);
        c.deliver_all();
    }
    let elapsed = t0.elapsed();
    let committed = c.replies[replies0..]
        .iter()
        .filter(|r| matches!(r.2, ClientResult::Committed { .. }))
        .count() as u64;
    assert_eq!(committed, entries);
    Counters {
        steps: c.delivered - delivered0,
        // Every AppendEntries here carries the one new entry; the testkit does not count them.
        appends: (nodes as u64 - 1) * entries,
        append_entries: (nodes as u64 - 1) * entries,
        committed,
        elapsed,
    }
}

/// Repeats `round` on fresh clusters until `secs` of timed work accumulated.
fn measure(secs: f64, mut round: impl FnMut(u32) -> Counters) -> Counters {
    let mut total = Counters::default();
    let mut r = 0;
    while total.elapsed.as_secs_f64() < secs {
        total.add(&round(r));
        r += 1;
    }
    total
}

fn report(name: &str, nodes: usize, c: &Counters) {
    let s = c.elapsed.as_secs_f64();
    println!(
        "{name:<28} {nodes:>5} {:>12.0} {:>9.0} {:>12.0} {:>11.1} {:>8.1}",
        c.steps as f64 / s,
        s * 1e9 / c.steps as f64,
        c.committed as f64 / s,
        c.append_entries as f64 / c.appends.max(1) as f64,
        s,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument selects cases whose name (with the
    // node count, e.g. "one-by-one 3") starts with it.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted =
        |name: &str| filter.is_empty() || filter.iter().any(|f| name.starts_with(f.as_str()));
    let secs: f64 = std::env::var("CORE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    println!(
        "core_throughput: {PAYLOAD} B payloads, single thread, instant durability, \
         ~{secs} s per case"
    );
    println!(
        "{:<28} {:>5} {:>12} {:>9} {:>12} {:>11} {:>8}",
        "workload", "nodes", "messages/s", "ns/msg", "commits/s", "entries/AE", "secs"
    );
    for nodes in [3, 5] {
        for window in [256u64, 32] {
            let name = format!("pipelined, window {window}");
            if wanted(&format!("{name} {nodes}")) {
                let c = measure(secs, |r| pipelined_round(nodes, window, 200_000, r));
                report(&name, nodes, &c);
            }
        }
        if wanted(&format!("one-by-one {nodes}")) {
            let c = measure(secs, |r| one_by_one_round(nodes, 100_000, r));
            report("one-by-one", nodes, &c);
        }
    }
    for nodes in [3, 5] {
        if wanted(&format!("heartbeats {nodes}")) {
            let c = measure(secs, |_| heartbeat_round(nodes, 200_000));
            report("heartbeats", nodes, &c);
        }
    }
    for (name, batch, lease) in [
        ("reads: ReadIndex, 1/round", 1, false),
        ("reads: ReadIndex, 64/round", 64, false),
        ("reads: lease", 1, true),
    ] {
        if wanted(&format!("{name} 3")) {
            let c = measure(secs, |_| read_round(3, 200_000, batch, lease));
            report(name, 3, &c);
        }
    }
    if wanted("snapshot transfer 3") {
        let (bytes, t) = snapshot_transfer(64 << 20);
        println!(
            "snapshot transfer: {} MiB in 1 MiB chunks in {:.3} s = {:.0} MiB/s (testkit network)",
            bytes >> 20,
            t.as_secs_f64(),
            (bytes >> 20) as f64 / t.as_secs_f64()
        );
    }
    if wanted("testkit one-by-one 3") {
        let c = measure(secs, |_| testkit_one_by_one_round(3, 100_000));
        report("testkit one-by-one", 3, &c);
    }
}
