//! The simulated world: peers running the real core over an in-memory network and disks, in
//! simulated time, with clients, faults, and the checker watching every step.

use crate::checker::{Checker, PeerLog, Violation};
use crate::disk::Disk;
use crate::kv::{Command, KvStore};
use crate::linearizability::{History, Op, Ret};
use crate::options::{ReadMode, Scenario};
use crate::trace::Trace;
use crate::Variant;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use zmq_raft_core::{
    ClientResult, Config, LogIndex, Member, Membership, Message, Node, Now, Output, PeerId, ReadId,
    ReadResult, RequestId, Role, SnapshotMeta, Term, Write,
};
use zmq_raft_storage::{CrashFault, Engine, Fs, MemFs, Options, StorageError, SyncDone};

/// Clients give up on an operation after this many attempts (it stays unanswered).
const MAX_ATTEMPTS: u32 = 12;
/// Where each peer keeps its data on its own in-memory file system.
const DATA_DIR: &str = "/data";
/// Unix second the simulated world starts at.
const EPOCH_SECS: u64 = 1_700_000_000;
/// A run that needs more events than this is stuck in a storm of messages: a liveness failure.
const MAX_EVENTS: u64 = 3_000_000;

#[derive(Debug)]
enum Event {
    /// `sent_by` is the sender's incarnation: a message still queued in a process that then
    /// crashed may die with it.
    Deliver {
        from: usize,
        to: usize,
        msg: Message,
        sent_by: u32,
    },
    Timer {
        peer: usize,
        incarnation: u32,
    },
    SyncDone {
        peer: usize,
        incarnation: u32,
    },
    Crash,
    /// Kill this peer if it is still the leader of this term.
    CrashLeader {
        peer: usize,
        term: u64,
    },
    Restart {
        peer: usize,
    },
    Partition,
    /// Ask the current leader to hand over to a random other peer.
    Transfer,
    /// Ask the current leader for a random new configuration.
    Reconfigure,
    /// A random peer snapshots its state machine and compacts its log.
    Snapshot,
    ClientStart {
        client: usize,
    },
    ClientRequest {
        client: usize,
        peer: usize,
        seq: u64,
    },
    ClientReply {
        client: usize,
        seq: u64,
        reply: Reply,
    },
    ClientTimeout {
        client: usize,
        seq: u64,
        attempt: u32,
    },
    EndSafety,
}

#[derive(Debug, Clone)]
enum Reply {
    /// The result, with the index its command was applied at (none for a read served outside
    /// the log).
    Done(Ret, Option<LogIndex>),
    Redirect(Option<usize>),
    Refused,
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    // Reversed: BinaryHeap is a max-heap and the earliest event must come out first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A peer's clock: `local = offset + global * rate / 1e6`.
#[derive(Clone, Copy)]
struct Clock {
    offset_ms: u64,
    rate_ppm: u64,
}

impl Clock {
    fn local(&self, global: u64) -> u64 {
        self.offset_ms + (global as u128 * self.rate_ppm as u128 / 1_000_000) as u64
    }

    fn global(&self, local: u64) -> u64 {
        let d = local.saturating_sub(self.offset_ms) as u128;
        d.saturating_mul(1_000_000).div_ceil(self.rate_ppm as u128) as u64
    }
}

struct Peer {
    id: PeerId,
    node: Option<Node>,
    incarnation: u32,
    /// The peer's file system: it outlives crashes.
    fs: MemFs,
    /// The real storage engine over `fs`, as the production peer runs it.
    engine: Option<Engine<MemFs>>,
    /// What the engine recovered at the last (re)open, for the next start.
    recovered: Option<zmq_raft_core::Recovered>,
    /// The fsync already run for the sync in progress, reported when its time comes.
    sync_done: Option<SyncDone>,
    /// Its data failed its checksums: it refuses to start and stays down.
    corrupted: bool,
    /// What the core was told is durable: the yardstick recovery is checked against.
    disk: Disk,
    /// The state machine as of the log start (the latest snapshot), from which the next
    /// snapshot is built by replaying the log.
    snap_kv: KvStore,
    /// A snapshot being received from the leader.
    incoming_snapshot: Vec<u8>,
    kv: KvStore,
    clock: Clock,
    timer_at: Option<u64>,
    /// Clients waiting for a request id's result.
    waiting: BTreeMap<RequestId, BTreeSet<usize>>,
    /// Reads in flight on this peer: read id -> (client, request id of the operation, key).
    reads: BTreeMap<ReadId, (usize, RequestId, u64)>,
    next_read: u64,
    /// Committed, waiting for this peer to apply the index to answer.
    awaiting_apply: Vec<(LogIndex, RequestId, usize)>,
}

struct Pending {
    seq: u64,
    rid: RequestId,
    cmd: Command,
    handle: usize,
    attempt: u32,
}

struct Client {
    target: usize,
    counter: u32,
    current: Option<Pending>,
    /// The liveness probe: never gives up, and ends the run when answered.
    probe: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub sim_ms: u64,
    pub events: u64,
    pub messages: u64,
    pub committed: u64,
    pub elections: u64,
    pub crashes: u64,
    pub ops_completed: u64,
    pub ops_total: u64,
    pub snapshots: u64,
    pub installs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Safety(Violation),
    Liveness(String),
}

pub struct World {
    sc: Scenario,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    peers: Vec<Peer>,
    clients: Vec<Client>,
    blocked: BTreeSet<(usize, usize)>,
    checker: Checker,
    pub trace: Trace,
    pub history: History,
    pub stats: Stats,
    liveness: bool,
    probe_done: bool,
    /// What each crashed peer had applied: its disk must still hold it on restart.
    crash_applied: BTreeMap<usize, LogIndex>,
    variant: Variant,
    corrupted: usize,
    reconfigs: u32,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finalizer: spreads seeds so neighbouring seeds share nothing.
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

impl World {
    pub fn new(sc: Scenario, variant: Variant, keep_text: bool) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
        rng.set_stream(2);
        let ids: Vec<PeerId> = (0..sc.peers)
            .map(|i| PeerId::new(&format!("p{i}")))
            .collect();
        let peers = ids
            .iter()
            .map(|id| {
                let drift = if sc.drift_ppm > 0 {
                    rng.next_u64() % (2 * sc.drift_ppm as u64 + 1)
                } else {
                    sc.drift_ppm as u64
                };
                Peer {
                    id: id.clone(),
                    node: None,
                    incarnation: 0,
                    fs: MemFs::new(),
                    engine: None,
                    recovered: None,
                    sync_done: None,
                    corrupted: false,
                    disk: Disk::default(),
                    snap_kv: KvStore::default(),
                    incoming_snapshot: Vec::new(),
                    kv: KvStore::default(),
                    clock: Clock {
                        offset_ms: rng.next_u64() % 1_000,
                        rate_ppm: 1_000_000 - sc.drift_ppm as u64 + drift,
                    },
                    timer_at: None,
                    waiting: BTreeMap::new(),
                    reads: BTreeMap::new(),
                    next_read: 0,
                    awaiting_apply: Vec::new(),
                }
            })
            .collect();
        let clients = (0..=sc.clients)
            .map(|c| Client {
                target: c % sc.peers,
                counter: 0,
                current: None,
                probe: c == sc.clients,
            })
            .collect();
        let mut trace = Trace::new();
        trace.keep_text = keep_text;
        let mut w = World {
            checker: Checker::new(sc.peers),
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            peers,
            clients,
            blocked: BTreeSet::new(),
            trace,
            history: History::new(),
            stats: Stats::default(),
            liveness: false,
            probe_done: false,
            crash_applied: BTreeMap::new(),
            variant,
            corrupted: 0,
            reconfigs: 0,
            sc,
        };
        for p in 0..w.sc.peers {
            let opts = w.storage_options();
            let (engine, recovered) = Engine::open(w.peers[p].fs.clone(), DATA_DIR, opts)
                .expect("an empty in-memory disk opens");
            w.peers[p].engine = Some(engine);
            w.peers[p].recovered = Some(recovered);
            w.start_peer(p)
                .expect("a fresh peer has nothing to violate");
        }
        for c in 0..w.sc.clients {
            let t = w.between(0, 100);
            w.schedule(t, Event::ClientStart { client: c });
        }
        // Each periodic nemesis first strikes somewhere in its first two periods.
        let periodic = [
            (w.sc.partition_every_ms, Event::Partition),
            (w.sc.snapshot_every_ms, Event::Snapshot),
            (w.sc.reconfig_every_ms, Event::Reconfigure),
            (w.sc.transfer_every_ms, Event::Transfer),
            (w.sc.crash_every_ms, Event::Crash),
        ];
        for (every, event) in periodic {
            if every > 0 {
                let t = w.between(0, every * 2);
                w.schedule(t, event);
            }
        }
        let end = w.sc.duration_ms;
        w.schedule(end, Event::EndSafety);
        w
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.rng.next_u64() % (hi - lo + 1)
    }

    fn chance_ppm(&mut self, ppm: u32) -> bool {
        ppm > 0 && (self.rng.next_u64() % 1_000_000) < ppm as u64
    }

    /// Schedules the next occurrence of a periodic nemesis, about `every_ms` from now.
    fn again(&mut self, every_ms: u64, event: Event) {
        let next = self.between(every_ms / 2, every_ms * 3 / 2);
        self.schedule(next, event);
    }

    /// A running peer that believes it leads (the first, if several do in different terms).
    fn leader_index(&self) -> Option<usize> {
        (0..self.sc.peers).find(|&p| {
            self.peers[p]
                .node
                .as_ref()
                .is_some_and(|n| n.role() == Role::Leader)
        })
    }

    fn schedule(&mut self, delay: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: self.now + delay,
            seq: self.seq,
            event,
        });
    }

    fn peer_now(&self, p: usize) -> Now {
        let local = self.peers[p].clock.local(self.now);
        Now::new(local, EPOCH_SECS + local / 1000)
    }

    /// Runs to the end: the safety phase, then the liveness phase.
    pub fn run(&mut self) -> Result<(), Failure> {
        let limit = self.sc.duration_ms + self.sc.liveness_ms;
        while let Some(s) = self.queue.pop() {
            self.now = s.at;
            self.stats.sim_ms = self.now;
            if self.now > limit {
                return Err(Failure::Liveness(format!(
                    "no leader committed a new write within {} ms of the faults stopping",
                    self.sc.liveness_ms
                )));
            }
            self.stats.events += 1;
            if self.stats.events > MAX_EVENTS {
                return Err(Failure::Liveness(format!(
                    "more than {MAX_EVENTS} events: the cluster is in a message storm"
                )));
            }
            self.handle(s.event).map_err(Failure::Safety)?;
            if self.probe_done {
                break;
            }
        }
        self.stats.sim_ms = self.now;
        self.stats.committed = self.checker.committed_len();
        self.check_log_matching().map_err(Failure::Safety)?;
        self.checker.final_check().map_err(Failure::Safety)?;
        if !self.probe_done {
            return Err(Failure::Liveness("the event queue ran dry".into()));
        }
        Ok(())
    }

    fn check_log_matching(&self) -> Result<(), Violation> {
        let nodes: Vec<(usize, &Node)> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.node.as_ref().map(|n| (i, n)))
            .collect();
        self.checker.log_matching(&nodes)
    }

    fn handle(&mut self, event: Event) -> Result<(), Violation> {
        match event {
            Event::Deliver {
                from,
                to,
                msg,
                sent_by,
            } => {
                if self.peers[to].node.is_none() {
                    return Ok(());
                }
                if self.peers[from].incarnation != sent_by && self.rng.next_u64().is_multiple_of(2)
                {
                    // Its sender crashed before the message left its send queue.
                    return Ok(());
                }
                self.stats.messages += 1;
                let now = self.peer_now(to);
                let term = msg.term().0;
                self.trace
                    .record(self.now, &[1, from as u64, to as u64, term], || {
                        format!("p{from} -> p{to}  {}", describe(&msg))
                    });
                let fid = self.peers[from].id.clone();
                self.peers[to].node.as_mut().unwrap().step(now, &fid, msg);
                self.after_input(to)
            }
            Event::Timer { peer, incarnation } => {
                let p = &self.peers[peer];
                if p.incarnation != incarnation || p.timer_at != Some(self.now) || p.node.is_none()
                {
                    return Ok(());
                }
                self.peers[peer].timer_at = None;
                let now = self.peer_now(peer);
                self.peers[peer].node.as_mut().unwrap().tick(now);
                self.after_input(peer)
            }
            Event::SyncDone { peer, incarnation } => {
                if self.peers[peer].incarnation != incarnation || self.peers[peer].node.is_none() {
                    return Ok(());
                }
                if let Some(done) = self.peers[peer].sync_done.take() {
                    let engine = self.peers[peer].engine.as_mut().expect("running");
                    if let Err(e) = engine.finish_sync(done) {
                        return Err(Violation {
                            invariant: "storage syncs",
                            detail: format!("p{peer}: {e}"),
                        });
                    }
                }
                if let Some(w) = self.peers[peer].disk.finish_sync() {
                    self.trace.record(self.now, &[2, peer as u64, w.0], || {
                        format!("p{peer} synced w{}", w.0)
                    });
                    self.peers[peer].node.as_mut().unwrap().persisted(w);
                }
                self.after_input(peer)
            }
            Event::Crash => {
                if !self.liveness {
                    let up: Vec<usize> = (0..self.sc.peers)
                        .filter(|&p| self.peers[p].node.is_some())
                        .collect();
                    if !up.is_empty() {
                        // Half the crashes kill the leader: that is where elections, truncation
                        // and commit rules meet.
                        let leader = self.leader_index();
                        let random = up[self.rng.next_u64() as usize % up.len()];
                        let victim = match leader {
                            Some(l) if self.rng.next_u64().is_multiple_of(2) => l,
                            _ => random,
                        };
                        self.crash(victim)?;
                    }
                    self.again(self.sc.crash_every_ms, Event::Crash);
                }
                Ok(())
            }
            Event::CrashLeader { peer, term } => {
                let still = self.peers[peer]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.role() == Role::Leader && n.term().0 == term);
                if still && !self.liveness {
                    self.crash(peer)?;
                }
                Ok(())
            }
            Event::Restart { peer } => {
                if self.peers[peer].node.is_none() && !self.peers[peer].corrupted {
                    self.start_peer(peer)?;
                }
                Ok(())
            }
            Event::Partition => {
                if !self.liveness {
                    self.repartition();
                    self.again(self.sc.partition_every_ms, Event::Partition);
                }
                Ok(())
            }
            Event::ClientStart { client } => {
                self.start_op(client);
                Ok(())
            }
            Event::Snapshot => {
                self.again(self.sc.snapshot_every_ms, Event::Snapshot);
                // Half the time the leader: its compaction is what sends laggards snapshots.
                let random = self.rng.next_u64() as usize % self.sc.peers;
                let p = match self.leader_index() {
                    Some(l) if self.rng.next_u64().is_multiple_of(2) => l,
                    _ => random,
                };
                self.take_snapshot(p)
            }
            Event::Reconfigure => {
                if self.liveness {
                    return Ok(());
                }
                self.again(self.sc.reconfig_every_ms, Event::Reconfigure);
                self.reconfigure()
            }
            Event::Transfer => {
                if self.liveness {
                    return Ok(());
                }
                self.again(self.sc.transfer_every_ms, Event::Transfer);
                self.transfer()
            }
            Event::ClientRequest { client, peer, seq } => self.client_request(client, peer, seq),
            Event::ClientReply { client, seq, reply } => self.client_reply(client, seq, reply),
            Event::ClientTimeout {
                client,
                seq,
                attempt,
            } => {
                let c = &self.clients[client];
                if let Some(p) = &c.current {
                    if p.seq == seq && p.attempt == attempt {
                        let next = (c.target + 1) % self.sc.peers;
                        self.retry(client, next);
                    }
                }
                Ok(())
            }
            Event::EndSafety => {
                self.begin_liveness();
                Ok(())
            }
        }
    }

    // ---- peers ----

    fn start_peer(&mut self, p: usize) -> Result<(), Violation> {
        let ids: Vec<PeerId> = self.peers.iter().map(|p| p.id.clone()).collect();
        let mut cfg = Config::new(self.peers[p].id.clone(), ids[..self.sc.voters].to_vec());
        cfg.learners = ids[self.sc.voters..].to_vec();
        cfg.max_batch_entries = self.sc.max_batch_entries;
        cfg.max_inflight_msgs = self.sc.max_inflight_msgs;
        (cfg.election_timeout_min_ms, cfg.election_timeout_max_ms) = self.sc.election_timeout_ms;
        cfg.heartbeat_interval_ms = self.sc.heartbeat_ms;
        cfg.lease_reads = self.sc.reads == ReadMode::Lease;
        cfg.check_quorum_ms = cfg.election_timeout_min_ms * self.sc.check_quorum_factor;
        cfg.max_inflight_bytes = self.sc.max_inflight_bytes;
        // The declared bound is the simulated one: each peer's clock rate is within it.
        cfg.max_clock_drift_ppm = self.sc.drift_ppm as u64;
        cfg.request_id_ttl_secs = self.sc.request_id_ttl_secs;
        (self.variant.core)(&mut cfg);
        let mut recovered = self.peers[p]
            .recovered
            .take()
            .expect("storage was opened before the start");
        if let Some(applied) = self.crash_applied.remove(&p) {
            self.checker.on_restart(p, &recovered, applied)?;
        }
        // The state machine restarts from the stored snapshot, if any.
        let mut stored = None;
        if recovered.log_start > LogIndex(0) {
            let engine = self.peers[p].engine.as_ref().expect("opened");
            let read = engine.open_snapshot().and_then(|r| match r {
                Some(reader) => reader.read_all().map(Some),
                None => Ok(None),
            });
            let Ok(Some(data)) = read else {
                return Err(Violation {
                    invariant: "storage recovers from a crash",
                    detail: format!(
                        "p{p}: log starts at {} but no snapshot reads back",
                        recovered.log_start
                    ),
                });
            };
            let Some((membership, kv)) = decode_snapshot(&data) else {
                return Err(Violation {
                    invariant: "storage recovers from a crash",
                    detail: format!("p{p}: the stored snapshot does not decode"),
                });
            };
            self.checker
                .check_snapshot_state(p, recovered.log_start, &kv)?;
            recovered.membership = Some(membership.clone());
            let meta = SnapshotMeta {
                index: recovered.log_start,
                term: recovered.log_start_term,
                membership,
            };
            stored = Some((meta, kv, data));
        }
        let seed =
            mix(self.sc.seed ^ ((p as u64) << 40) ^ ((self.peers[p].incarnation as u64) << 20));
        let now = self.peer_now(p);
        let mut node = Node::new(cfg, recovered, seed, now);
        let peer = &mut self.peers[p];
        peer.kv = KvStore::default();
        peer.snap_kv = KvStore::default();
        if let Some((meta, kv, data)) = stored {
            peer.kv = kv.clone();
            peer.snap_kv = kv;
            // So a restarted leader can ship it to followers that need compacted entries.
            node.snapshot_taken(now, meta, data.into());
        }
        peer.node = Some(node);
        let (term, last) = {
            let n = peer.node.as_ref().unwrap();
            (n.term().0, n.last_index().0)
        };
        self.trace.record(self.now, &[3, p as u64, term, last], || {
            format!("p{p} started: term {term}, last index {last}")
        });
        self.after_input(p)
    }

    fn storage_options(&self) -> Options {
        // Options has one more field (a sabotage switch) in `broken` builds.
        #[allow(clippy::needless_update)]
        let mut o = Options {
            segment_size: self.sc.segment_size,
            index_interval: 16,
            ..Options::default()
        };
        (self.variant.storage)(&mut o);
        o
    }

    /// What the crash does to the peer's disk.
    fn crash_fault(&mut self, p: usize) -> CrashFault {
        let minority = (self.sc.peers - 1) / 2;
        if self.corrupted < minority && self.chance_ppm(self.sc.corrupt_ppm) {
            // Flip a bit only where the engine must notice: the meta file or a sealed segment
            // (damage in the last segment's tail is indistinguishable from a torn write).
            let fs = &self.peers[p].fs;
            let mut names = fs.list_dir(DATA_DIR.as_ref()).unwrap_or_default();
            names.sort();
            let last_segment = names.iter().rev().find(|n| n.ends_with(".seg")).cloned();
            let targets: Vec<String> = names
                .into_iter()
                .filter(|n| {
                    n == "meta" || (n.ends_with(".seg") && Some(n) != last_segment.as_ref())
                })
                .collect();
            if !targets.is_empty() {
                let name = &targets[self.rng.next_u64() as usize % targets.len()];
                let path = std::path::Path::new(DATA_DIR).join(name);
                let len = self.peers[p]
                    .fs
                    .read_file(&path)
                    .map_or(0, |b| b.len() as u64);
                if len > 0 {
                    let offset = self.rng.next_u64() % len;
                    let bit = (self.rng.next_u64() % 8) as u8;
                    return CrashFault::FlipBit { path, offset, bit };
                }
            }
        }
        if !self.sc.torn_writes {
            return CrashFault::LoseUnsynced;
        }
        match self.rng.next_u64() % 3 {
            0 => CrashFault::LoseUnsynced,
            1 => CrashFault::KeepUnsynced,
            _ => CrashFault::TornWrite {
                keep: self.between(0, 64) as usize,
            },
        }
    }

    fn crash(&mut self, p: usize) -> Result<(), Violation> {
        self.stats.crashes += 1;
        let fault = self.crash_fault(p);
        let applied = self.peers[p]
            .node
            .as_ref()
            .map_or(LogIndex(0), |n| n.applied_index());
        let peer = &mut self.peers[p];
        peer.node = None;
        peer.engine = None;
        peer.sync_done = None;
        peer.incarnation += 1;
        peer.timer_at = None;
        peer.waiting.clear();
        peer.reads.clear();
        peer.awaiting_apply.clear();
        peer.fs.crash(fault.clone());
        self.crash_applied.insert(p, applied);
        let flipped = matches!(fault, CrashFault::FlipBit { .. });
        self.trace.record(self.now, &[4, p as u64, applied.0], || {
            format!("p{p} CRASHED (had applied {applied}; disk: {fault:?})")
        });
        let opts = self.storage_options();
        match Engine::open(self.peers[p].fs.clone(), DATA_DIR, opts) {
            Ok((engine, recovered)) => {
                self.checker
                    .on_recovery(p, &self.peers[p].disk, &recovered)?;
                let peer = &mut self.peers[p];
                peer.disk.recovered_as(&recovered);
                peer.engine = Some(engine);
                peer.recovered = Some(recovered);
                let (lo, hi) = self.sc.restart_ms;
                let delay = self.between(lo.min(hi), hi.max(lo));
                self.schedule(delay, Event::Restart { peer: p });
                Ok(())
            }
            Err(e @ StorageError::Corrupt { .. }) if flipped => {
                // Refusing to serve damaged data is the right answer; the peer stays down.
                self.trace.record(self.now, &[11, p as u64], || {
                    format!("p{p} refuses to start: {e}")
                });
                // Its last durable state stays in the model: the copies it held were acknowledged,
                // they are lost to the cluster like a peer that never comes back.
                self.corrupted += 1;
                self.peers[p].corrupted = true;
                Ok(())
            }
            Err(e) => Err(Violation {
                invariant: "storage recovers from a crash",
                detail: format!("p{p} after {fault:?}: {e}"),
            }),
        }
    }

    /// Carries out everything the node asked for after an input, then re-arms its timer.
    fn after_input(&mut self, p: usize) -> Result<(), Violation> {
        while let Some(out) = self.peers[p].node.as_mut().and_then(Node::poll_output) {
            match out {
                Output::Write(w, write) => {
                    if let Write::Log { first, entries } = &write {
                        let node = self.peers[p].node.as_ref().expect("running");
                        let mut prev = node.term_at(first.prev()).unwrap_or(Term(0));
                        for (k, e) in entries.iter().enumerate() {
                            self.checker
                                .on_log_write(p, first.plus(k as u64), e, prev)?;
                            prev = e.term();
                        }
                    }
                    if let Err(e) = self.peers[p]
                        .engine
                        .as_mut()
                        .expect("running")
                        .apply(&write)
                    {
                        return Err(Violation {
                            invariant: "storage accepts writes",
                            detail: format!("p{p}: {e}"),
                        });
                    }
                    self.peers[p].disk.pending.push((w, write))
                }
                Output::Send(to, msg) => {
                    let to = self.index_of(&to);
                    self.send(p, to, msg);
                }
                Output::Apply { first, entries } => {
                    self.checker.on_apply(p, first, &entries)?;
                    for (k, e) in entries.iter().enumerate() {
                        self.peers[p].kv.apply(first.plus(k as u64), e);
                    }
                    self.answer_applied(p)?;
                }
                Output::Reply(rid, result) => self.peer_reply(p, rid, result)?,
                Output::Read(id, result) => self.read_done(p, id, result),
                Output::SnapshotChunk { offset, data, .. } => {
                    let buf = &mut self.peers[p].incoming_snapshot;
                    buf.truncate(offset as usize);
                    buf.extend_from_slice(&data);
                }
                Output::InstallSnapshot(meta) => self.install_snapshot(p, meta)?,
                Output::Changed { role, term, leader } => {
                    self.trace
                        .record(self.now, &[5, p as u64, role as u64, term.0], || {
                            format!("p{p} is {role:?} in term {term} (leader {leader:?})")
                        });
                    let node = self.peers[p].node.as_ref().expect("running");
                    if matches!(role, Role::PreCandidate | Role::Candidate) && !node.is_voter() {
                        return Err(Violation {
                            invariant: "a removed peer never disrupts",
                            detail: format!(
                                "p{p}, not a voter of its configuration, campaigns in term {term}"
                            ),
                        });
                    }
                    if role == Role::Leader {
                        self.stats.elections += 1;
                        self.checker
                            .on_leader(p, self.peers[p].node.as_ref().unwrap())?;
                        if !self.liveness && self.chance_ppm(self.sc.isolate_new_leader_ppm) {
                            self.isolate(p);
                        }
                        if !self.liveness && self.chance_ppm(self.sc.crash_new_leader_ppm) {
                            let (_, hi) = self.sc.delay_ms;
                            let d = self.between(0, 2 * hi + 10);
                            self.schedule(
                                d,
                                Event::CrashLeader {
                                    peer: p,
                                    term: term.0,
                                },
                            );
                        }
                    }
                }
            }
        }
        let Some(node) = self.peers[p].node.as_ref() else {
            return Ok(());
        };
        self.checker.on_commit(p, node.commit_index())?;
        if node.role() == Role::Leader {
            self.check_flow_control(p)?;
        }
        let node = self.peers[p].node.as_ref().expect("running");
        if node.commit_index() > self.checker.max_commit() {
            self.check_new_commit(p)?;
        }
        let node = self.peers[p].node.as_ref().expect("running");
        let deadline = node.next_deadline().0;
        let at = self.peers[p].clock.global(deadline).max(self.now);
        if self.peers[p].timer_at != Some(at) {
            self.peers[p].timer_at = Some(at);
            let inc = self.peers[p].incarnation;
            self.schedule(
                at - self.now,
                Event::Timer {
                    peer: p,
                    incarnation: inc,
                },
            );
        }
        if self.peers[p].disk.start_sync() {
            // The fsync happens now; writes arriving meanwhile wait for the next one.
            let engine = self.peers[p].engine.as_mut().expect("running");
            match engine.begin_sync() {
                Ok(job) => self.peers[p].sync_done = job.map(|j| j.run()),
                Err(e) => {
                    return Err(Violation {
                        invariant: "storage syncs",
                        detail: format!("p{p}: {e}"),
                    })
                }
            }
            let (lo, hi) = self.sc.sync_ms;
            let d = self.between(lo, hi);
            let inc = self.peers[p].incarnation;
            self.schedule(
                d,
                Event::SyncDone {
                    peer: p,
                    incarnation: inc,
                },
            );
        }
        Ok(())
    }

    /// A slow or dead follower never makes the leader buffer without bound: what is in flight
    /// to each follower stays within the window plus one batch.
    fn check_flow_control(&self, p: usize) -> Result<(), Violation> {
        let node = self.peers[p].node.as_ref().expect("running");
        let cfg = node.config();
        let bound = cfg.max_inflight_bytes + cfg.max_batch_bytes;
        for q in &self.peers {
            if let Some(bytes) = node.inflight_bytes(&q.id) {
                if bytes > bound {
                    return Err(Violation {
                        invariant: "bounded in-flight bytes",
                        detail: format!(
                            "leader p{p} has {bytes} B in flight to {} (bound {bound})",
                            q.id
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn transfer(&mut self) -> Result<(), Violation> {
        let Some(l) = self.leader_index() else {
            return Ok(());
        };
        let node = self.peers[l].node.as_ref().expect("running");
        let others: Vec<PeerId> = node
            .membership()
            .voters()
            .into_iter()
            .filter(|p| p != node.id())
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let id = others[self.rng.next_u64() as usize % others.len()].clone();
        let target = self.index_of(&id);
        self.trace
            .record(self.now, &[13, l as u64, target as u64], || {
                format!("p{l} asked to transfer leadership to p{target}")
            });
        let now = self.peer_now(l);
        let node = self.peers[l].node.as_mut().expect("running");
        if let Err(e) = node.transfer_leadership(now, &id) {
            return Err(Violation {
                invariant: "a leader can hand over to another voter",
                detail: format!("p{l} refused to transfer to p{target}: {e}"),
            });
        }
        self.after_input(l)
    }

    /// Peer `p` snapshots its state machine at the compaction bound (min of commit, applied
    /// and the prune index), built by replaying its log onto its previous snapshot, stores it
    /// durably, and lets the core compact the log.
    fn take_snapshot(&mut self, p: usize) -> Result<(), Violation> {
        let Some(node) = self.peers[p].node.as_ref() else {
            return Ok(());
        };
        let (start, bound) = (node.log_start(), node.compaction_bound());
        if bound <= start {
            return Ok(());
        }
        let mut kv = self.peers[p].snap_kv.clone();
        let mut i = start.next();
        while i <= bound {
            kv.apply(i, node.entry(i).expect("entries after the log start"));
            i = i.next();
        }
        self.checker.check_snapshot_state(p, bound, &kv)?;
        let meta = SnapshotMeta {
            index: bound,
            term: node.term_at(bound).expect("in the log"),
            membership: node.membership_at(bound),
        };
        let data = encode_snapshot(&meta.membership, &kv);
        self.store_snapshot(p, &meta, &data)?;
        self.trace.record(self.now, &[15, p as u64, bound.0], || {
            format!("p{p} snapshot at {bound}, {} bytes", data.len())
        });
        self.peers[p].snap_kv = kv;
        self.stats.snapshots += 1;
        let now = self.peer_now(p);
        let node = self.peers[p].node.as_mut().expect("running");
        node.snapshot_taken(now, meta, data.into());
        self.after_input(p)
    }

    fn store_snapshot(
        &mut self,
        p: usize,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> Result<(), Violation> {
        let engine = self.peers[p].engine.as_mut().expect("running");
        let stored = engine
            .begin_snapshot(meta.index, meta.term, data.len() as u64)
            .and_then(|mut w| w.write_chunk(0, data).map(|_| w))
            .and_then(|w| engine.finish_snapshot(w));
        match stored {
            Ok(_) => Ok(()),
            Err(e) => Err(Violation {
                invariant: "storage stores snapshots",
                detail: format!("p{p} at {}: {e}", meta.index),
            }),
        }
    }

    /// Every chunk of the leader's snapshot arrived: store it, load it, tell the core.
    fn install_snapshot(&mut self, p: usize, meta: SnapshotMeta) -> Result<(), Violation> {
        let data = std::mem::take(&mut self.peers[p].incoming_snapshot);
        let Some((_, kv)) = decode_snapshot(&data) else {
            return Err(Violation {
                invariant: "snapshots arrive whole",
                detail: format!(
                    "p{p} received a snapshot at {} that does not decode",
                    meta.index
                ),
            });
        };
        self.checker.check_snapshot_state(p, meta.index, &kv)?;
        self.store_snapshot(p, &meta, &data)?;
        self.trace
            .record(self.now, &[16, p as u64, meta.index.0], || {
                format!("p{p} installed the leader's snapshot at {}", meta.index)
            });
        self.stats.installs += 1;
        let peer = &mut self.peers[p];
        peer.kv = kv.clone();
        peer.snap_kv = kv;
        peer.disk.installed(meta.index, meta.term);
        let now = self.peer_now(p);
        let node = self.peers[p].node.as_mut().expect("running");
        node.snapshot_installed(now, meta.index, data.into());
        Ok(())
    }

    /// Asks the leader for a random configuration of 3 or more peers (add, remove and
    /// replace, several at once), through spares that have been following as learners.
    fn reconfigure(&mut self) -> Result<(), Violation> {
        let Some(l) = self.leader_index() else {
            return Ok(());
        };
        let n = self.sc.peers;
        let size = self.between(3.min(n as u64), n as u64) as usize;
        let mut order: Vec<usize> = (0..n).collect();
        for i in 0..size {
            let j = i + self.rng.next_u64() as usize % (n - i);
            order.swap(i, j);
        }
        let mut chosen = order[..size].to_vec();
        chosen.sort_unstable();
        let members: Vec<Member> = chosen
            .iter()
            .map(|&p| Member {
                id: self.peers[p].id.clone(),
                url: format!("tcp://10.0.0.{p}:8047"),
            })
            .collect();
        self.reconfigs += 1;
        let secs = (EPOCH_SECS + self.now / 1000) as u32;
        let rid = RequestId::from_parts(secs, [0x43, 0x46, 0x47], 1, self.reconfigs);
        self.trace
            .record(self.now, &[14, l as u64, size as u64], || {
                format!("p{l} asked for configuration {chosen:?}")
            });
        let now = self.peer_now(l);
        let node = self.peers[l].node.as_mut().expect("running");
        node.change_membership(now, rid, members);
        self.after_input(l)
    }

    fn check_new_commit(&mut self, p: usize) -> Result<(), Violation> {
        let node = self.peers[p].node.as_ref().expect("running");
        let index = node.commit_index();
        let entry = node
            .entry(index)
            .expect("committed entries are in the log")
            .clone();
        let logs: Vec<PeerLog> = self
            .peers
            .iter()
            .map(|q| {
                let holds_durably = index <= q.disk.start || q.disk.entry(index) == Some(&entry);
                match &q.node {
                    Some(n) => PeerLog {
                        holds: index <= n.log_start() || n.entry(index) == Some(&entry),
                        holds_durably,
                        last: (n.last_term(), n.last_index()),
                    },
                    // A corrupted peer never runs again, so it can never win an election.
                    None if q.corrupted => PeerLog {
                        holds: true,
                        holds_durably,
                        last: (Term(0), LogIndex(0)),
                    },
                    None => PeerLog {
                        holds: holds_durably,
                        holds_durably,
                        last: q.disk.last(),
                    },
                }
            })
            .collect();
        let m = node.membership();
        let groups: Vec<Vec<usize>> = std::iter::once(&m.old)
            .chain(m.new.as_ref())
            .map(|g| g.iter().map(|x| self.index_of(&x.id)).collect())
            .collect();
        self.checker.on_new_commit(index, &entry, &logs, &groups)
    }

    fn index_of(&self, id: &PeerId) -> usize {
        self.peers
            .iter()
            .position(|p| &p.id == id)
            .expect("messages only go to known peers")
    }

    fn net_delay(&mut self) -> u64 {
        let (lo, hi) = self.sc.delay_ms;
        self.between(lo, hi)
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        let faults = !self.liveness;
        if self.blocked.contains(&(from, to)) || (faults && self.chance_ppm(self.sc.loss_ppm)) {
            return;
        }
        let sent_by = self.peers[from].incarnation;
        let duplicate = (faults && self.chance_ppm(self.sc.dup_ppm)).then(|| msg.clone());
        for msg in std::iter::once(msg).chain(duplicate) {
            let d = self.net_delay();
            self.schedule(
                d,
                Event::Deliver {
                    from,
                    to,
                    msg,
                    sent_by,
                },
            );
        }
    }

    fn repartition(&mut self) {
        let n = self.sc.peers;
        let kind = self.rng.next_u64() % 6;
        let mut blocked = BTreeSet::new();
        let desc;
        match kind {
            0 | 1 => desc = "healed".to_string(),
            2 => {
                // Symmetric split into a random minority and majority.
                let size = self.between(1, (n - 1) as u64) as usize;
                let mut side: Vec<usize> = (0..n).collect();
                for i in 0..size {
                    let j = i + self.rng.next_u64() as usize % (n - i);
                    side.swap(i, j);
                }
                let a: BTreeSet<usize> = side[..size].iter().copied().collect();
                for x in 0..n {
                    for y in 0..n {
                        if a.contains(&x) != a.contains(&y) {
                            blocked.insert((x, y));
                        }
                    }
                }
                desc = format!("split {a:?} from the rest");
            }
            3 => {
                let a = self.rng.next_u64() as usize % n;
                let b = (a + 1 + self.rng.next_u64() as usize % (n - 1)) % n;
                blocked.insert((a, b));
                desc = format!("one-way: p{a} cannot reach p{b}");
            }
            4 => {
                let leader = self.leader_index();
                let l = leader.unwrap_or(self.rng.next_u64() as usize % n);
                for x in 0..n {
                    if x != l {
                        blocked.insert((x, l));
                        blocked.insert((l, x));
                    }
                }
                desc = format!("isolated p{l}");
            }
            _ => {
                // Flapping: toggle one link pair on top of the current state.
                blocked = self.blocked.clone();
                let a = self.rng.next_u64() as usize % n;
                let b = (a + 1 + self.rng.next_u64() as usize % (n - 1)) % n;
                if !blocked.remove(&(a, b)) {
                    blocked.insert((a, b));
                    blocked.insert((b, a));
                } else {
                    blocked.remove(&(b, a));
                }
                desc = format!("flapped link p{a}-p{b}");
            }
        }
        self.blocked = blocked;
        self.trace
            .record(self.now, &[6, kind, self.blocked.len() as u64], || {
                format!("network {desc}")
            });
    }

    /// Cuts `p` off from everyone; the next partition change decides when it heals.
    fn isolate(&mut self, p: usize) {
        for x in 0..self.sc.peers {
            if x != p {
                self.blocked.insert((x, p));
                self.blocked.insert((p, x));
            }
        }
        self.trace.record(self.now, &[10, p as u64], || {
            format!("network isolated new leader p{p}")
        });
    }

    fn begin_liveness(&mut self) {
        self.liveness = true;
        self.blocked.clear();
        self.sc.delay_ms = (1, self.sc.delay_ms.1.min(20));
        self.sc.sync_ms = (0, self.sc.sync_ms.1.min(5));
        self.trace.record(self.now, &[7], || {
            "FAULTS STOP: network healed, every peer restarted; liveness phase".to_string()
        });
        for p in 0..self.sc.peers {
            if self.peers[p].node.is_none() && !self.peers[p].corrupted {
                self.schedule(0, Event::Restart { peer: p });
            }
        }
        let probe = self.sc.clients;
        self.schedule(0, Event::ClientStart { client: probe });
    }

    // ---- clients ----

    fn start_op(&mut self, client: usize) {
        let probe = self.clients[client].probe;
        let key = self.rng.next_u64() % self.sc.keys;
        let write = probe || self.rng.next_u64().is_multiple_of(2);
        let c = &mut self.clients[client];
        c.counter += 1;
        let value = ((client as u64) << 32) | c.counter as u64;
        let cmd = if write {
            Command::Put { key, value }
        } else {
            Command::Get { key }
        };
        let op = match cmd {
            Command::Put { key, value } => Op::Put { key, value },
            Command::Get { key } => Op::Get { key },
        };
        let secs = (EPOCH_SECS + self.now / 1000) as u32;
        let rid = RequestId::from_parts(secs, [0x51, 0x4d, client as u8], 1, c.counter);
        let handle = self.history.invoke(client as u64, op, self.now);
        self.stats.ops_total += 1;
        self.seq += 1;
        self.clients[client].current = Some(Pending {
            seq: self.seq,
            rid,
            cmd,
            handle,
            attempt: 0,
        });
        let target = self.clients[client].target;
        self.retry(client, target);
    }

    fn retry(&mut self, client: usize, peer: usize) {
        let timeout = self.sc.client_timeout_ms;
        let c = &mut self.clients[client];
        let Some(p) = c.current.as_mut() else { return };
        p.attempt += 1;
        if p.attempt > MAX_ATTEMPTS && !c.probe {
            // Give up: the operation stays unanswered in the history.
            c.current = None;
            let think = self.between(self.sc.think_ms.0, self.sc.think_ms.1);
            self.schedule(think, Event::ClientStart { client });
            return;
        }
        c.target = peer;
        let (seq, attempt) = (p.seq, p.attempt);
        let d = self.net_delay();
        self.schedule(d, Event::ClientRequest { client, peer, seq });
        self.schedule(
            timeout,
            Event::ClientTimeout {
                client,
                seq,
                attempt,
            },
        );
    }

    /// The client's operation in progress, if it is still the one numbered `seq` (replies and
    /// requests of operations already finished or given up on are stale).
    fn pending(&self, client: usize, seq: u64) -> Option<&Pending> {
        self.clients[client]
            .current
            .as_ref()
            .filter(|p| p.seq == seq)
    }

    fn client_request(&mut self, client: usize, peer: usize, seq: u64) -> Result<(), Violation> {
        let Some(p) = self.pending(client, seq) else {
            return Ok(());
        };
        let (rid, data) = (p.rid, p.cmd.encode());
        if self.peers[peer].node.is_none() {
            return Ok(());
        }
        if let (Command::Get { key }, false) = (p.cmd, self.sc.reads == ReadMode::Log) {
            return self.client_read(client, peer, rid, key);
        }
        self.trace
            .record(self.now, &[8, client as u64, peer as u64], || {
                format!("client {client} -> p{peer}  propose {rid}")
            });
        self.peers[peer]
            .waiting
            .entry(rid)
            .or_default()
            .insert(client);
        let now = self.peer_now(peer);
        self.peers[peer]
            .node
            .as_mut()
            .unwrap()
            .propose(now, rid, &data);
        self.after_input(peer)
    }

    fn peer_reply(
        &mut self,
        p: usize,
        rid: RequestId,
        result: ClientResult,
    ) -> Result<(), Violation> {
        let reply = match result {
            ClientResult::Accepted { .. } => return Ok(()),
            ClientResult::Committed { index } => {
                let clients = self.peers[p].waiting.remove(&rid).unwrap_or_default();
                for c in clients {
                    self.peers[p].awaiting_apply.push((index, rid, c));
                }
                return self.answer_applied(p);
            }
            ClientResult::NotLeader { leader } => {
                Reply::Redirect(leader.map(|l| self.index_of(&l)))
            }
            ClientResult::Expired
            | ClientResult::InFuture
            | ClientResult::TooLarge { .. }
            | ClientResult::Busy
            | ClientResult::InvalidConfig(_) => Reply::Refused,
        };
        let clients = self.peers[p].waiting.remove(&rid).unwrap_or_default();
        for c in clients {
            self.reply_to(c, rid, reply.clone());
        }
        Ok(())
    }

    /// Answers clients whose committed request this peer has now applied.
    fn answer_applied(&mut self, p: usize) -> Result<(), Violation> {
        let applied = self.peers[p]
            .node
            .as_ref()
            .map_or(LogIndex(0), |n| n.applied_index());
        let ready: Vec<_> = self.peers[p]
            .awaiting_apply
            .iter()
            .filter(|(i, _, _)| *i <= applied)
            .copied()
            .collect();
        self.peers[p]
            .awaiting_apply
            .retain(|(i, _, _)| *i > applied);
        for (index, rid, c) in ready {
            let ret = self.peers[p].kv.result(index).cloned();
            let holder = self.peers[p]
                .node
                .as_ref()
                .and_then(|n| n.entry(index))
                .map(|e| e.request_id());
            let compacted = self.peers[p]
                .node
                .as_ref()
                .is_some_and(|n| index <= n.log_start());
            match ret {
                Some(ret) if holder == Some(rid) => {
                    self.reply_to(c, rid, Reply::Done(ret, Some(index)))
                }
                // A snapshot replaced the log there: the result is gone; the client retries.
                None if compacted => {}
                _ => {
                    return Err(Violation {
                        invariant: "acknowledged never lost",
                        detail: format!(
                            "p{p} acknowledged {rid} at {index}, which applied no command of it"
                        ),
                    })
                }
            }
        }
        Ok(())
    }

    fn client_read(
        &mut self,
        client: usize,
        peer: usize,
        rid: RequestId,
        key: u64,
    ) -> Result<(), Violation> {
        let p = &mut self.peers[peer];
        p.next_read += 1;
        let id = ReadId(p.next_read);
        p.reads.insert(id, (client, rid, key));
        self.trace
            .record(self.now, &[12, client as u64, peer as u64], || {
                format!("client {client} -> p{peer}  read k{key} ({id:?})")
            });
        let now = self.peer_now(peer);
        self.peers[peer]
            .node
            .as_mut()
            .expect("running")
            .read(now, id);
        self.after_input(peer)
    }

    /// The core says a read may be served now (or failed): answer from this peer's state.
    fn read_done(&mut self, p: usize, id: ReadId, result: ReadResult) {
        let Some((client, rid, key)) = self.peers[p].reads.remove(&id) else {
            return;
        };
        let reply = match result {
            ReadResult::Ready => Reply::Done(Ret::Value(self.peers[p].kv.get(key)), None),
            ReadResult::NotLeader { leader } => Reply::Redirect(leader.map(|l| self.index_of(&l))),
        };
        self.reply_to(client, rid, reply);
    }

    fn reply_to(&mut self, client: usize, rid: RequestId, reply: Reply) {
        let Some(seq) = self.clients[client]
            .current
            .as_ref()
            .filter(|p| p.rid == rid)
            .map(|p| p.seq)
        else {
            return;
        };
        if self.chance_ppm(if self.liveness { 0 } else { self.sc.loss_ppm }) {
            return;
        }
        let d = self.net_delay();
        self.schedule(d, Event::ClientReply { client, seq, reply });
    }

    fn client_reply(&mut self, client: usize, seq: u64, reply: Reply) -> Result<(), Violation> {
        let Some(p) = self.pending(client, seq) else {
            return Ok(());
        };
        let (handle, rid) = (p.handle, p.rid);
        match reply {
            Reply::Done(ret, index) => {
                self.trace.record(self.now, &[9, client as u64, seq], || {
                    format!("client {client} done: {ret:?} at {index:?}")
                });
                // Acknowledged now: the client saw it. From here on it must never be lost.
                if let Some(index) = index {
                    self.checker.on_ack(rid, index)?;
                }
                self.history.complete(handle, self.now, ret);
                self.stats.ops_completed += 1;
                self.clients[client].current = None;
                if self.clients[client].probe {
                    self.probe_done = true;
                    return Ok(());
                }
                let think = self.between(self.sc.think_ms.0, self.sc.think_ms.1);
                self.schedule(think, Event::ClientStart { client });
            }
            Reply::Redirect(Some(leader)) => self.retry(client, leader),
            Reply::Redirect(None) => {
                // Any other peer, at random: stepping through them in order can cycle forever
                // between removed peers that still name each other as leader.
                let n = self.sc.peers;
                let next =
                    (self.clients[client].target + 1 + self.rng.next_u64() as usize % (n - 1)) % n;
                self.retry(client, next);
            }
            Reply::Refused => {
                self.clients[client].current = None;
                self.schedule(1, Event::ClientStart { client });
            }
        }
        Ok(())
    }
}

/// A snapshot's bytes: the configuration at its index, then the key-value data.
fn encode_snapshot(membership: &Membership, kv: &KvStore) -> Vec<u8> {
    let m = membership.encode();
    let mut b = Vec::with_capacity(4 + m.len());
    b.extend_from_slice(&(m.len() as u32).to_le_bytes());
    b.extend_from_slice(&m);
    b.extend_from_slice(&kv.snapshot_bytes());
    b
}

fn decode_snapshot(b: &[u8]) -> Option<(Membership, KvStore)> {
    let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let m = Membership::decode(b.get(4..4 + n)?).ok()?;
    let kv = KvStore::from_snapshot(b.get(4 + n..)?)?;
    Some((m, kv))
}

fn describe(msg: &Message) -> String {
    match msg {
        Message::RequestVote(m) => format!(
            "{} t{} last {}@t{}",
            msg.kind(),
            m.term,
            m.last_log_index,
            m.last_log_term
        ),
        Message::VoteResponse(m) => format!("{} t{} granted={}", msg.kind(), m.term, m.granted),
        Message::AppendEntries(m) => format!(
            "AppendEntries t{} prev {}@t{} commit {} +{} entries",
            m.term,
            m.prev_log_index,
            m.prev_log_term,
            m.leader_commit,
            m.entries.len()
        ),
        Message::AppendResponse(m) => format!("AppendResponse t{} {:?}", m.term, m.outcome),
        Message::ReadIndex(m) => format!("ReadIndex t{} ctx {}", m.term, m.ctx),
        Message::TimeoutNow { term } => format!("TimeoutNow t{term}"),
        Message::InstallSnapshot(m) => format!(
            "InstallSnapshot t{} upto {}@t{} bytes {}..{} of {}",
            m.term,
            m.index,
            m.last_term,
            m.offset,
            m.offset + m.data.len() as u64,
            m.total
        ),
        Message::InstallSnapshotResponse(m) => format!(
            "InstallSnapshotResponse t{} {} next {} done {}",
            m.term, m.index, m.next_offset, m.done
        ),
        Message::ReadIndexResponse(m) => {
            format!(
                "ReadIndexResponse t{} ctx {} index {:?}",
                m.term, m.ctx, m.index
            )
        }
    }
}
