//! The model of what a peer's core was told is durable: the writes reported synced, and those
//! issued but not yet synced. The real storage engine (over an in-memory file system) does the
//! actual storing and recovering; this model is the yardstick its recovery is checked against.

use zmq_raft_core::{Entry, HardState, LogIndex, Recovered, Term, Write, WriteId};

#[derive(Default, Debug, Clone)]
pub struct Disk {
    pub hard_state: HardState,
    /// What a snapshot covers: entries up to `start` (of `start_term`).
    pub start: LogIndex,
    pub start_term: Term,
    /// The entries after `start`.
    pub log: Vec<Entry>,
    pub pending: Vec<(WriteId, Write)>,
    /// A sync in progress covers writes up to this id.
    pub syncing: Option<WriteId>,
}

impl Disk {
    fn apply(&mut self, w: Write) {
        match w {
            Write::HardState(hs) => self.hard_state = hs,
            // The model keeps every entry: it is the yardstick, not the store.
            Write::Compact { .. } => {}
            Write::Log { first, entries } => {
                let keep = first.0.saturating_sub(self.start.0 + 1) as usize;
                self.log.truncate(keep);
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

    /// The entry at `index`, if the log (not a snapshot) holds it.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let i = index.0.checked_sub(self.start.0 + 1)?;
        self.log.get(i as usize)
    }

    /// (last term, last index) of the durable log.
    pub fn last(&self) -> (Term, LogIndex) {
        let term = self.log.last().map_or(self.start_term, |e| e.term());
        (term, self.start.plus(self.log.len() as u64))
    }

    /// A snapshot up to (`index`, `term`) was installed: what follows stays if the log agrees
    /// at `index`, else the log starts empty after it.
    pub fn installed(&mut self, index: LogIndex, term: Term) {
        if self.entry(index).map(|e| e.term()) == Some(term) {
            let drop = (index.0 - self.start.0) as usize;
            self.log.drain(..drop);
        } else {
            self.log.clear();
        }
        self.start = index;
        self.start_term = term;
    }

    /// After a crash, the disk holds what the storage engine recovered.
    pub fn recovered_as(&mut self, r: &Recovered) {
        self.hard_state = r.hard_state.clone();
        self.start = r.log_start;
        self.start_term = r.log_start_term;
        self.log = r.entries.clone();
        self.pending.clear();
        self.syncing = None;
    }
}
