//! Embedding the Sans-IO core in a transport of your own: a three-node cluster in one process,
//! each node on its own thread, talking over plain `std::sync::mpsc` channels. No ZeroMQ, no
//! files: the "disk" is a Vec that a write becomes part of when the driver "syncs" it.
//!
//! The interesting part is [`run_node`], the driver loop. Everything a real deployment needs is
//! there in miniature: a message bus, a disk with group commit, a timer armed from
//! `next_deadline()`, a state machine fed by `Apply`, and replies to a client.
//!
//! The client on the main thread finds the leader by following `NotLeader { leader }`
//! redirects, pushes 10,000 proposals through a bounded window, waits for every
//! `Committed`, checks that the three state machines applied the same entries, and stops the
//! nodes.
//!
//! ```text
//! cargo run --release -p zmq-raft-core --example channels_cluster
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zmq_raft_core::{
    ClientResult, Config, Entry, EntryType, HardState, LogIndex, Message, Node, Now, Output,
    PeerId, Recovered, RequestId, Write, WriteId,
};

/// Cluster size.
const NODES: usize = 3;
/// Proposals the client submits.
const PROPOSALS: u32 = 10_000;
/// Proposals the client keeps in flight at most.
const WINDOW: usize = 256;
/// Payload bytes per proposal.
const PAYLOAD: usize = 100;
/// Anything that takes longer than this is an error, not a hang.
const GIVE_UP: Duration = Duration::from_secs(60);
/// Inputs a node takes off its channel before draining outputs. Taking several lets the core
/// batch: many proposals make one log write and one AppendEntries per follower.
const MAX_INPUTS_PER_ITERATION: usize = 1024;

/// What arrives on a node's channel.
enum Input {
    /// A message from a peer, by index on the bus.
    Peer { from: usize, msg: Message },
    /// A client proposal; the answer goes to the client channel.
    Propose { id: RequestId, data: Vec<u8> },
    /// Shut down and hand back what was applied.
    Stop,
}

/// What a node tells the client: (node index, request id, result).
type ClientEvent = (usize, RequestId, ClientResult);

/// The shared clock. Monotonic milliseconds come from one `Instant` taken at start (the core
/// only ever compares them); unix seconds come from the wall clock, because request ids carry
/// their creation second and expire by it.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
}

impl Clock {
    fn now(&self) -> Now {
        let mono_ms = self.start.elapsed().as_millis() as u64;
        Now::new(mono_ms, unix_secs())
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An in-memory disk. Writes are staged as they come out of the node, in order, and become
/// durable together in [`MemDisk::sync`]: one "fsync" per loop iteration however many writes the
/// iteration produced (group commit).
#[derive(Default)]
struct MemDisk {
    hard_state: HardState,
    log: Vec<Entry>,
    staged: Vec<(WriteId, Write)>,
}

impl MemDisk {
    fn stage(&mut self, id: WriteId, write: Write) {
        self.staged.push((id, write));
    }

    /// Makes every staged write durable, in order. Returns the last id synced, which is what
    /// the node must be told: one `persisted(id)` covers every write up to `id`.
    fn sync(&mut self) -> Option<WriteId> {
        let last = self.staged.last().map(|(id, _)| *id);
        for (_, write) in self.staged.drain(..) {
            match write {
                Write::HardState(hs) => self.hard_state = hs,
                Write::Compact { .. } => {}
                Write::Log { first, entries } => {
                    // Remove everything from `first` on, then append: a plain append removes
                    // nothing, a follower repairing its log cuts a conflicting suffix.
                    self.log.truncate(first.0 as usize - 1);
                    self.log.extend(entries);
                }
            }
        }
        last
    }
}

/// What a node thread hands back when it stops.
struct NodeReport {
    /// Every entry given to the state machine, in log order.
    applied: Vec<Entry>,
    /// What the disk holds durably.
    disk_log_len: usize,
}

/// Everything one node thread owns.
struct NodeDriver {
    me: usize,
    node: Node,
    disk: MemDisk,
    /// The state machine: here it just keeps the entries it is given.
    applied: Vec<Entry>,
    /// Published for the client, which waits for every node to catch up before stopping them.
    applied_index: Arc<AtomicU64>,
    peers: Vec<PeerId>,
    bus: Vec<Sender<Input>>,
    client: Sender<ClientEvent>,
}

impl NodeDriver {
    /// Carries out every pending output, in the order the node emits them.
    fn drain_outputs(&mut self) {
        while let Some(out) = self.node.poll_output() {
            match out {
                // Stage now, sync at the end of the iteration (see `run_node`).
                Output::Write(id, write) => self.disk.stage(id, write),
                // Send at once: the core holds back anything that depends on an unsynced
                // write. A send error means that node already stopped; drop the message,
                // as a network would.
                Output::Send(to, msg) => {
                    let to = self.index_of(&to);
                    let _ = self.bus[to].send(Input::Peer { from: self.me, msg });
                }
                // Committed and durable entries, contiguous and in order.
                Output::Apply { first, entries } => {
                    assert_eq!(first.0 as usize, self.applied.len() + 1, "apply gap");
                    self.applied.extend(entries);
                    self.applied_index
                        .store(self.applied.len() as u64, Ordering::Release);
                }
                Output::Reply(id, result) => {
                    let _ = self.client.send((self.me, id, result));
                }
                // This example issues no linearizable reads (`Node::read`) and takes no
                // snapshots, so none is ever sent to it either.
                Output::Read(..) | Output::SnapshotChunk { .. } | Output::InstallSnapshot(_) => {}
                Output::Changed { role, term, leader } => {
                    eprintln!(
                        "  {}: {role:?} in term {term}, leader {}",
                        self.peers[self.me],
                        leader.as_ref().map_or("unknown", PeerId::as_str)
                    );
                }
            }
        }
    }

    fn index_of(&self, peer: &PeerId) -> usize {
        self.peers
            .iter()
            .position(|p| p == peer)
            .expect("a peer of the configuration")
    }

    fn handle(&mut self, now: Now, input: Input) -> bool {
        match input {
            Input::Peer { from, msg } => self.node.step(now, &self.peers[from], msg),
            Input::Propose { id, data } => self.node.propose(now, id, &data),
            Input::Stop => return false,
        }
        true
    }
}

/// The driver loop of one node. The order of each iteration matters and is the whole contract
/// between a transport and the core:
///
/// 1. wait for an input, at most until the node's next deadline;
/// 2. feed it (and whatever else is already queued) to the node;
/// 3. tick if the deadline passed;
/// 4. drain the outputs: send, apply, reply, and stage writes;
/// 5. sync the staged writes together, then report `persisted(last id)`;
/// 6. drain again: durability releases held acks and votes, commits, applies;
/// 7. arm the timer from `next_deadline()` and go back to 1.
fn run_node(mut d: NodeDriver, inbox: Receiver<Input>, clock: Clock) -> NodeReport {
    let give_up = clock.start + GIVE_UP + Duration::from_secs(5);
    let mut running = true;
    while running && Instant::now() < give_up {
        // 1. Wait for the first input or the deadline, whichever comes first.
        let deadline = d.node.next_deadline().0;
        let now_ms = clock.now().mono.0;
        let wait = Duration::from_millis(deadline.saturating_sub(now_ms));
        let first = match inbox.recv_timeout(wait) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };

        // 2. Inputs: this one and those already waiting, up to a bound so timers and outputs
        //    are never starved.
        let now = clock.now();
        if let Some(input) = first {
            running = d.handle(now, input);
            for _ in 1..MAX_INPUTS_PER_ITERATION {
                if !running {
                    break;
                }
                match inbox.try_recv() {
                    Ok(input) => running = d.handle(now, input),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
        }

        // 3. Tick when due (calling it early would be harmless, just wasted work).
        if now.mono >= d.node.next_deadline() {
            d.node.tick(now);
        }

        // 4-6. Drain; sync what was staged (one fsync for the whole iteration) and tell the
        //      node; drain again. Repeat until a drain stages nothing new.
        d.drain_outputs();
        while let Some(last) = d.disk.sync() {
            d.node.persisted(last);
            d.drain_outputs();
        }
        // 7. The timer is armed at the top of the loop from `next_deadline()`.
    }
    NodeReport {
        disk_log_len: d.disk.log.len(),
        applied: d.applied,
    }
}

/// The client: submits proposals to whoever it believes leads, follows redirects, and keeps at
/// most `WINDOW` in flight.
struct Client {
    nodes: Vec<Sender<Input>>,
    peers: Vec<PeerId>,
    events: Receiver<ClientEvent>,
    /// Where proposals go.
    leader: usize,
    /// Made once; the counter makes each request id unique.
    unix_secs: u32,
    machine: [u8; 3],
    pid: u16,
    /// Request id -> its payload, for every proposal not yet committed.
    in_flight: HashMap<RequestId, Vec<u8>>,
    /// Refused by a non-leader; resent (same id, so never applied twice) at `retry_at`.
    retry: VecDeque<RequestId>,
    retry_at: Instant,
    /// Highest index the cluster committed one of our proposals at.
    max_committed: LogIndex,
}

impl Client {
    fn request_id(&self, counter: u32) -> RequestId {
        RequestId::from_parts(self.unix_secs, self.machine, self.pid, counter)
    }

    fn send(&self, id: RequestId) {
        let data = self.in_flight[&id].clone();
        let _ = self.nodes[self.leader].send(Input::Propose { id, data });
    }

    /// Submits proposals `range` and returns once all of them are committed.
    fn run(
        &mut self,
        range: std::ops::Range<u32>,
        window: usize,
        give_up: Instant,
    ) -> Result<(), String> {
        let mut next = range.start;
        let mut committed = 0u32;
        let total = range.end - range.start;
        while committed < total {
            if Instant::now() > give_up {
                return Err(format!(
                    "gave up: {committed} of {total} committed, {} in flight",
                    self.in_flight.len()
                ));
            }
            // Resend redirected proposals once their back-off passed.
            if !self.retry.is_empty() && Instant::now() >= self.retry_at {
                for id in std::mem::take(&mut self.retry) {
                    self.send(id);
                }
            }
            // Fill the window.
            while self.in_flight.len() < window && next < range.end {
                let id = self.request_id(next);
                let data = payload(next);
                self.in_flight.insert(id, data);
                self.send(id);
                next += 1;
            }
            let (from, id, result) = match self.events.recv_timeout(Duration::from_millis(10)) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err("all nodes stopped".into()),
            };
            if !self.in_flight.contains_key(&id) {
                continue; // a late answer for a proposal already settled
            }
            match result {
                // Appended on the leader, not yet committed: a final answer follows.
                ClientResult::Accepted { .. } => {}
                ClientResult::Committed { index } => {
                    self.in_flight.remove(&id);
                    self.max_committed = self.max_committed.max(index);
                    committed += 1;
                }
                ClientResult::NotLeader { leader } => {
                    match leader {
                        // Redirect at once to the leader named.
                        Some(l) => {
                            self.leader = self.peers.iter().position(|p| *p == l).unwrap();
                            self.retry_at = Instant::now();
                        }
                        // Nobody known (an election is running): try the next node, later.
                        None => {
                            if from == self.leader {
                                self.leader = (self.leader + 1) % self.nodes.len();
                            }
                            self.retry_at = Instant::now() + Duration::from_millis(50);
                        }
                    }
                    self.retry.push_back(id);
                }
                other => return Err(format!("proposal {id} refused: {other:?}")),
            }
        }
        Ok(())
    }
}

/// A recognisable payload: the counter, then filler.
fn payload(counter: u32) -> Vec<u8> {
    let mut data = vec![b'.'; PAYLOAD];
    data[..4].copy_from_slice(&counter.to_be_bytes());
    data
}

fn main() -> ExitCode {
    let clock = Clock {
        start: Instant::now(),
    };
    let give_up = clock.start + GIVE_UP;
    let peers: Vec<PeerId> = (1..=NODES).map(|i| PeerId::new(&format!("n{i}"))).collect();

    // The bus: one channel per node; every node (and the client) holds every sender.
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..NODES).map(|_| mpsc::channel()).unzip();
    let (client_tx, client_rx) = mpsc::channel();
    let applied_indexes: Vec<_> = (0..NODES).map(|_| Arc::new(AtomicU64::new(0))).collect();

    let mut threads = Vec::new();
    for (me, inbox) in inboxes.into_iter().enumerate() {
        let cfg = Config::new(peers[me].clone(), peers.clone());
        // A fresh node: empty disk. A restarted one would pass what it read back from disk.
        let node = Node::new(cfg, Recovered::default(), me as u64 + 1, clock.now());
        let driver = NodeDriver {
            me,
            node,
            disk: MemDisk::default(),
            applied: Vec::new(),
            applied_index: applied_indexes[me].clone(),
            peers: peers.clone(),
            bus: senders.clone(),
            client: client_tx.clone(),
        };
        let handle = thread::Builder::new()
            .name(peers[me].to_string())
            .spawn(move || run_node(driver, inbox, clock))
            .expect("spawn node thread");
        threads.push(handle);
    }
    drop(client_tx);

    let mut client = Client {
        nodes: senders.clone(),
        peers: peers.clone(),
        events: client_rx,
        leader: 0,
        unix_secs: unix_secs() as u32,
        machine: [0x12, 0x34, 0x56],
        pid: std::process::id() as u16,
        in_flight: HashMap::new(),
        retry: VecDeque::new(),
        retry_at: Instant::now(),
        max_committed: LogIndex(0),
    };

    // Find the leader: the first proposal alone, following redirects until it commits.
    println!("electing a leader and committing the first proposal...");
    let mut outcome = client.run(0..1, 1, give_up);
    let mut elapsed = Duration::ZERO;
    if outcome.is_ok() {
        println!("leader is {}", peers[client.leader]);
        let t0 = Instant::now();
        outcome = client.run(1..PROPOSALS, WINDOW, give_up);
        elapsed = t0.elapsed();
    }
    // Followers learn the final commit index from the next AppendEntries or heartbeat: wait
    // until every state machine caught up before stopping the nodes.
    if outcome.is_ok() {
        let target = client.max_committed.0;
        while applied_indexes
            .iter()
            .any(|a| a.load(Ordering::Acquire) < target)
        {
            if Instant::now() > give_up {
                outcome = Err(format!("nodes never all applied up to {target}"));
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    // Stop and join every thread, whatever happened.
    for s in &senders {
        let _ = s.send(Input::Stop);
    }
    let reports: Vec<NodeReport> = threads
        .into_iter()
        .map(|t| t.join().expect("node thread panicked"))
        .collect();

    let result = outcome.and_then(|()| check(&reports, client.max_committed, &client));
    match result {
        Ok(()) => {
            let rate = f64::from(PROPOSALS - 1) / elapsed.as_secs_f64();
            println!(
                "committed {PROPOSALS} proposals of {PAYLOAD} B: the first alone while finding \
                 the leader, then {} with up to {WINDOW} in flight in {:.3} s = \
                 {rate:.0} proposals/s",
                PROPOSALS - 1,
                elapsed.as_secs_f64()
            );
            println!(
                "all {NODES} nodes applied the same {} entries",
                client.max_committed
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every node applied the same entries up to the last commit, and each proposal exactly once.
fn check(reports: &[NodeReport], upto: LogIndex, client: &Client) -> Result<(), String> {
    let n = upto.0 as usize;
    for (i, r) in reports.iter().enumerate() {
        if r.applied.len() < n || r.disk_log_len < n {
            return Err(format!(
                "node {i} applied {} and stored {} entries, expected at least {n}",
                r.applied.len(),
                r.disk_log_len
            ));
        }
        if r.applied[..n] != reports[0].applied[..n] {
            return Err(format!("node {i} applied different entries than node 0"));
        }
    }
    let mut seen = HashSet::new();
    for e in &reports[0].applied[..n] {
        if e.kind() != EntryType::State {
            continue; // a new leader's CHECKPOINT
        }
        if !seen.insert(e.request_id()) {
            return Err(format!("request {} applied twice", e.request_id()));
        }
        let counter = u32::from_be_bytes(e.data()[..4].try_into().expect("4 bytes"));
        if e.request_id() != client.request_id(counter) || e.data() != payload(counter) {
            return Err(format!("entry {e:?} does not hold what was proposed"));
        }
    }
    for counter in 0..PROPOSALS {
        let id = client.request_id(counter);
        if !seen.contains(&id) {
            return Err(format!("request {id} never applied"));
        }
    }
    Ok(())
}
