//! A peer's simulated disk: durable state plus the writes issued but not yet synced. A crash
//! loses the unsynced writes, or, with torn writes on, keeps a random prefix of them that may
//! end in the middle of a log write (as a log file cut back to its last whole record would).

use zmq_raft_core::{Entry, HardState, LogIndex, Recovered, Write, WriteId};

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

    /// A crash. `keep` chooses how much of the unsynced data survives: `None` loses it all;
    /// `Some((writes, entries))` keeps that many whole writes and then that many entries of the
    /// next one if it is a log write.
    pub fn crash(&mut self, keep: Option<(usize, usize)>) {
        let pending = std::mem::take(&mut self.pending);
        self.syncing = None;
        let Some((whole, partial)) = keep else {
            return;
        };
        let mut it = pending.into_iter();
        for (_, w) in it.by_ref().take(whole) {
            self.apply(w);
        }
        if let Some((_, Write::Log { first, mut entries })) = it.next() {
            entries.truncate(partial);
            self.apply(Write::Log { first, entries });
        }
    }

    pub fn recovered(&self) -> Recovered {
        Recovered {
            hard_state: self.hard_state.clone(),
            log_start: LogIndex(0),
            log_start_term: Default::default(),
            entries: self.log.clone(),
        }
    }
}
