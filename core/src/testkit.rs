//! A tiny deterministic in-memory cluster for tests, examples and the core benchmark: one
//! thread, no clocks, a FIFO network and disks that become durable only when told to. The
//! full fault-injecting simulator lives in the `sim` crate.

use crate::{
    ClientResult, Config, Entry, HardState, LogIndex, Message, Node, Now, Output, PeerId, ReadId,
    ReadResult, Recovered, RequestId, Role, Term, Write, WriteId,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A peer's disk: what is durable, and the writes issued but not yet synced.
#[derive(Default, Debug, Clone)]
pub struct Disk {
    pub hard_state: HardState,
    pub log: Vec<Entry>,
    pub pending: Vec<(WriteId, Write)>,
}

impl Disk {
    /// Makes every pending write durable; returns the last id, if any.
    pub fn sync(&mut self) -> Option<WriteId> {
        let last = self.pending.last().map(|p| p.0);
        for (_, w) in self.pending.drain(..) {
            match w {
                Write::HardState(hs) => self.hard_state = hs,
                // This disk keeps every entry; recovery starts from the first.
                Write::Compact { .. } => {}
                Write::Log { first, entries } => {
                    self.log.truncate(first.0 as usize - 1);
                    self.log.extend(entries);
                }
            }
        }
        last
    }

    pub fn recovered(&self) -> Recovered {
        Recovered {
            hard_state: self.hard_state.clone(),
            entries: self.log.clone(),
            ..Default::default()
        }
    }
}

pub struct Cluster {
    pub ids: Vec<PeerId>,
    pub nodes: BTreeMap<PeerId, Node>,
    pub disks: BTreeMap<PeerId, Disk>,
    pub net: VecDeque<(PeerId, PeerId, Message)>,
    /// Directed links that drop everything: (from, to).
    pub cut: BTreeSet<(PeerId, PeerId)>,
    pub applied: BTreeMap<PeerId, Vec<Entry>>,
    pub replies: Vec<(PeerId, RequestId, ClientResult)>,
    pub reads: Vec<(PeerId, ReadId, ReadResult)>,
    /// Snapshot chunks being received, by peer.
    pub incoming: BTreeMap<PeerId, Vec<u8>>,
    /// Snapshots installed: (peer, index, data).
    pub installed: Vec<(PeerId, LogIndex, Vec<u8>)>,
    pub now_ms: u64,
    pub unix_secs: u64,
    /// Sync disks right after each drain; when false, tests call `sync` themselves.
    pub auto_sync: bool,
    pub delivered: u64,
    /// The first `voters` peers start as voters, the rest as learners.
    voters: usize,
    configure: fn(&mut Config),
}

impl Cluster {
    pub fn new(n: usize) -> Cluster {
        Cluster::with_config(n, |_| {})
    }

    pub fn with_config(n: usize, configure: fn(&mut Config)) -> Cluster {
        Cluster::build(n, n, configure)
    }

    /// `voters` voting peers plus `learners` peers that follow the log without voting.
    pub fn with_learners(voters: usize, learners: usize) -> Cluster {
        Cluster::build(voters + learners, voters, |_| {})
    }

    fn build(n: usize, voters: usize, configure: fn(&mut Config)) -> Cluster {
        let ids: Vec<PeerId> = (1..=n).map(|i| PeerId::new(&format!("p{i}"))).collect();
        let mut c = Cluster {
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            net: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            replies: Vec::new(),
            reads: Vec::new(),
            incoming: BTreeMap::new(),
            installed: Vec::new(),
            now_ms: 0,
            unix_secs: 1_700_000_000,
            auto_sync: true,
            delivered: 0,
            voters,
            configure,
        };
        for id in ids {
            c.disks.insert(id.clone(), Disk::default());
            c.applied.insert(id.clone(), Vec::new());
            c.start(&id);
        }
        c
    }

    pub fn now(&self) -> Now {
        Now::new(self.now_ms, self.unix_secs)
    }

    fn start(&mut self, id: &PeerId) {
        let mut cfg = Config::new(id.clone(), self.ids[..self.voters].to_vec());
        cfg.learners = self.ids[self.voters..].to_vec();
        (self.configure)(&mut cfg);
        let seed = self.ids.iter().position(|p| p == id).unwrap() as u64 + 1;
        let rec = self.disks[id].recovered();
        let node = Node::new(cfg, rec, seed, self.now());
        self.nodes.insert(id.clone(), node);
    }

    pub fn id(&self, i: usize) -> PeerId {
        self.ids[i].clone()
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[&self.ids[i]]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        let id = self.ids[i].clone();
        self.nodes.get_mut(&id).unwrap()
    }

    /// Drains a node's outputs into the network, disk, applied list and replies.
    pub fn drain(&mut self, id: &PeerId) {
        if !self.nodes.contains_key(id) {
            return; // crashed
        }
        while let Some(out) = self.nodes.get_mut(id).and_then(Node::poll_output) {
            match out {
                Output::Write(w, write) => self.disks.get_mut(id).unwrap().pending.push((w, write)),
                Output::Send(to, msg) => {
                    if !self.cut.contains(&(id.clone(), to.clone())) {
                        self.net.push_back((id.clone(), to, msg));
                    }
                }
                Output::Apply { first, entries } => {
                    let applied = self.applied.get_mut(id).unwrap();
                    assert_eq!(first.0 as usize, applied.len() + 1, "apply out of order");
                    applied.extend(entries);
                }
                Output::Reply(rid, res) => self.replies.push((id.clone(), rid, res)),
                Output::Read(rid, res) => self.reads.push((id.clone(), rid, res)),
                Output::Changed { .. } => {}
                Output::SnapshotChunk { offset, data, .. } => {
                    let buf = self.incoming.entry(id.clone()).or_default();
                    buf.truncate(offset as usize);
                    buf.extend_from_slice(&data);
                }
                Output::InstallSnapshot(meta) => {
                    let data: std::sync::Arc<[u8]> =
                        self.incoming.remove(id).unwrap_or_default().into();
                    // The state machine restarts from the snapshot: stand-in entries below it.
                    let applied = self.applied.get_mut(id).unwrap();
                    applied.clear();
                    applied.resize(meta.index.0 as usize, Entry::checkpoint(Term(0)));
                    self.installed.push((id.clone(), meta.index, data.to_vec()));
                    let now = Now::new(self.now_ms, self.unix_secs);
                    let node = self.nodes.get_mut(id).unwrap();
                    node.snapshot_installed(now, meta.index, data);
                }
            }
        }
        if self.auto_sync {
            self.sync(id);
        }
    }

    /// Makes a peer's pending writes durable and tells its node.
    pub fn sync(&mut self, id: &PeerId) {
        if let Some(w) = self.disks.get_mut(id).unwrap().sync() {
            if let Some(node) = self.nodes.get_mut(id) {
                node.persisted(w);
                self.drain(id);
            }
        }
    }

    pub fn drain_all(&mut self) {
        for id in self.ids.clone() {
            self.drain(&id);
        }
    }

    /// Delivers messages until the network is empty (bounded, so a livelock fails loudly).
    pub fn deliver_all(&mut self) {
        self.drain_all();
        let mut budget = 1_000_000;
        while let Some((from, to, msg)) = self.net.pop_front() {
            budget -= 1;
            assert!(budget > 0, "network never went quiet");
            self.deliver(from, to, msg);
        }
    }

    pub fn deliver(&mut self, from: PeerId, to: PeerId, msg: Message) {
        if self.cut.contains(&(from.clone(), to.clone())) {
            return;
        }
        let now = self.now();
        if let Some(node) = self.nodes.get_mut(&to) {
            node.step(now, &from, msg);
            self.delivered += 1;
            self.drain(&to);
        }
    }

    /// Moves time forward by `ms`, one millisecond-granular timer at a time, delivering all
    /// messages in between.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        loop {
            self.deliver_all();
            let next = self
                .nodes
                .values()
                .map(|n| n.next_deadline().0)
                .min()
                .unwrap_or(end);
            if next > end {
                break;
            }
            self.now_ms = self.now_ms.max(next);
            let now = self.now();
            for id in self.ids.clone() {
                if let Some(n) = self.nodes.get_mut(&id) {
                    if n.next_deadline().0 <= self.now_ms {
                        n.tick(now);
                    }
                }
                self.drain(&id);
            }
        }
        self.now_ms = end;
        self.deliver_all();
    }

    pub fn leaders(&self) -> Vec<PeerId> {
        self.nodes
            .values()
            .filter(|n| n.role() == Role::Leader)
            .map(|n| n.id().clone())
            .collect()
    }

    /// Runs until exactly one leader exists (panics after a generous bound).
    pub fn elect(&mut self) -> PeerId {
        for _ in 0..200 {
            self.advance(50);
            let leaders = self.leaders();
            if leaders.len() == 1 {
                return leaders[0].clone();
            }
        }
        panic!("no single leader emerged");
    }

    /// Isolates a peer from everyone, both directions.
    pub fn isolate(&mut self, id: &PeerId) {
        for other in self.ids.clone() {
            if &other != id {
                self.cut.insert((id.clone(), other.clone()));
                self.cut.insert((other, id.clone()));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Kills a peer: unsynced writes and in-flight messages to it are lost.
    pub fn crash(&mut self, id: &PeerId) {
        self.nodes.remove(id);
        self.disks.get_mut(id).unwrap().pending.clear();
        self.net.retain(|(_, to, _)| to != id);
    }

    /// Restarts a crashed peer from its disk. Its state machine starts empty again.
    pub fn restart(&mut self, id: &PeerId) {
        self.applied.insert(id.clone(), Vec::new());
        self.start(id);
    }

    pub fn propose(&mut self, on: &PeerId, rid: RequestId, data: &[u8]) {
        let now = self.now();
        self.nodes.get_mut(on).unwrap().propose(now, rid, data);
        self.drain(on);
    }

    pub fn request_id(&self, n: u32) -> RequestId {
        RequestId::from_parts(self.unix_secs as u32, [1, 2, 3], 42, n)
    }
}
