//! A cluster of cores, each persisting through the real storage engine on real files in a
//! temporary directory, driven in one thread over an in-process FIFO network: the production
//! data path minus the sockets.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use zmq_raft_core::{
    ClientResult, Config, Entry, Message, Node, Now, Output, PeerId, RequestId, Role, WriteId,
};
use zmq_raft_storage::{Engine, Options, RealFs};

pub struct Peer {
    pub node: Node,
    pub engine: Engine<RealFs>,
    /// Last write handed to the engine and not yet reported durable.
    pub unsynced: Option<WriteId>,
    pub applied: Vec<Entry>,
}

pub struct FileCluster {
    pub root: PathBuf,
    pub ids: Vec<PeerId>,
    pub peers: BTreeMap<PeerId, Peer>,
    pub net: VecDeque<(PeerId, PeerId, Message)>,
    pub replies: Vec<(RequestId, ClientResult)>,
    pub now_ms: u64,
    pub unix_secs: u64,
    incarnations: u64,
}

impl FileCluster {
    pub fn new(name: &str, n: usize) -> FileCluster {
        let root = std::env::temp_dir().join(format!("zmq-raft-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let ids = (1..=n).map(|i| PeerId::new(&format!("p{i}"))).collect();
        let mut c = FileCluster {
            root,
            ids,
            peers: BTreeMap::new(),
            net: VecDeque::new(),
            replies: Vec::new(),
            now_ms: 0,
            unix_secs: 1_700_000_000,
            incarnations: 0,
        };
        for id in c.ids.clone() {
            c.start(&id);
        }
        c
    }

    fn now(&self) -> Now {
        Now::new(self.now_ms, self.unix_secs)
    }

    pub fn dir(&self, id: &PeerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Opens the peer's storage (recovering whatever is there) and starts its core.
    pub fn start(&mut self, id: &PeerId) {
        let options = Options {
            segment_size: 4 << 10,
            ..Options::default()
        };
        let (engine, recovered) =
            Engine::open(RealFs, self.dir(id), options).expect("storage opens");
        self.incarnations += 1;
        let cfg = Config::new(id.clone(), self.ids.clone());
        let node = Node::new(cfg, recovered, self.incarnations, self.now());
        let peer = Peer {
            node,
            engine,
            unsynced: None,
            applied: Vec::new(),
        };
        self.peers.insert(id.clone(), peer);
        self.drain(id);
    }

    /// Kills a peer: its in-flight messages and its process go; its files stay.
    pub fn kill(&mut self, id: &PeerId) {
        self.peers.remove(id);
        self.net.retain(|(_, to, _)| to != id);
    }

    /// Drains a peer's outputs, then fsyncs and reports durability (group commit: one sync
    /// for everything the drain wrote), until it has nothing more to say.
    pub fn drain(&mut self, id: &PeerId) {
        loop {
            let Some(peer) = self.peers.get_mut(id) else {
                return;
            };
            while let Some(out) = peer.node.poll_output() {
                match out {
                    Output::Write(w, write) => {
                        peer.engine.apply(&write).expect("storage write");
                        peer.unsynced = Some(w);
                    }
                    Output::Send(to, msg) => self.net.push_back((id.clone(), to, msg)),
                    Output::Apply { entries, .. } => peer.applied.extend(entries),
                    Output::Reply(rid, result) => self.replies.push((rid, result)),
                    // These tests take no snapshots.
                    Output::Changed { .. }
                    | Output::Read(..)
                    | Output::SnapshotChunk { .. }
                    | Output::InstallSnapshot(_) => {}
                }
            }
            let Some(w) = peer.unsynced.take() else {
                return;
            };
            peer.engine.sync().expect("fsync");
            peer.node.persisted(w);
        }
    }

    pub fn deliver_all(&mut self) {
        let mut budget = 1_000_000;
        while let Some((from, to, msg)) = self.net.pop_front() {
            budget -= 1;
            assert!(budget > 0, "network never went quiet");
            let now = self.now();
            if let Some(peer) = self.peers.get_mut(&to) {
                peer.node.step(now, &from, msg);
                self.drain(&to);
            }
        }
    }

    /// Moves time forward, firing due timers and delivering everything in between.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        loop {
            self.deliver_all();
            let next = self.peers.values().map(|p| p.node.next_deadline().0).min();
            match next {
                Some(t) if t <= end => self.now_ms = self.now_ms.max(t),
                _ => break,
            }
            let now = self.now();
            for id in self.ids.clone() {
                if let Some(p) = self.peers.get_mut(&id) {
                    if p.node.next_deadline().0 <= self.now_ms {
                        p.node.tick(now);
                    }
                }
                self.drain(&id);
            }
        }
        self.now_ms = end;
        self.deliver_all();
    }

    pub fn leader(&self) -> Option<PeerId> {
        self.peers
            .iter()
            .find(|(_, p)| p.node.role() == Role::Leader)
            .map(|(id, _)| id.clone())
    }

    pub fn elect(&mut self) -> PeerId {
        for _ in 0..200 {
            self.advance(50);
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader elected");
    }

    pub fn propose(&mut self, on: &PeerId, rid: RequestId, data: &[u8]) {
        let now = self.now();
        self.peers
            .get_mut(on)
            .expect("running")
            .node
            .propose(now, rid, data);
        self.drain(on);
    }

    pub fn request_id(&self, n: u32) -> RequestId {
        RequestId::from_parts(self.unix_secs as u32, [7, 7, 7], 1, n)
    }

    pub fn last_reply(&self, rid: RequestId) -> Option<&ClientResult> {
        self.replies
            .iter()
            .rev()
            .find(|(r, _)| *r == rid)
            .map(|(_, res)| res)
    }
}

impl Drop for FileCluster {
    fn drop(&mut self) {
        self.peers.clear();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
