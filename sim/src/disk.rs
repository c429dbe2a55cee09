//! The model of what a peer's core was told is durable: the writes reported synced, and those
//! issued but not yet synced. The real storage engine (over an in-memory file system) does the
//! actual storing and recovering; this model is the yardstick its recovery is checked against.

use zmq_raft_core::{Entry, HardState, Recovered, Write, WriteId};

#[derive(Default, Debug, Clone)]
pub struct Disk {
    pub hard_state: HardState,
    pub log: Vec<Entry>,
    pub pending: Vec<(WriteId, Write)>,
    /// A sync in progress covers writes up to this id.
    pub syncing: Option<WriteId>,
}

impl Disk {
    fn apply(&mut self, w: Write) {
        match w {
            Write::HardState(hs) => self.hard_state = hs,
            Write::Log { first, entries } => {
                self.log.truncate(first.0.saturating_sub(1) as usize);
                self.log.extend(entries);
            }
        }
    }

    /// Completes the sync in progress: writes up to its id become durable.
    pub fn finish_sync(&mut self) -> Option<WriteId> {
        let upto = self.syncing.take()?;
        let split = self.pending.partition_point(|(w, _)| *w <= upto);
        let done: Vec<_> = self.pending.drain(..split).collect();
        for (_, w) in done {
            self.apply(w);
        }
        Some(upto)
    }

    /// Starts a sync covering every pending write; returns false if one is running or there
    /// is nothing to sync.
    pub fn start_sync(&mut self) -> bool {
        if self.syncing.is_some() {
            return false;
        }
        match self.pending.last() {
            Some((w, _)) => {
                self.syncing = Some(*w);
                true
            }
            None => false,
        }
    }

    /// After a crash, the disk holds what the storage engine recovered.
    pub fn recovered_as(&mut self, r: &Recovered) {
        self.hard_state = r.hard_state.clone();
        self.log = r.entries.clone();
        self.pending.clear();
        self.syncing = None;
    }
}
