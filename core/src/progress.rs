//! A leader's view of one follower: how far it matches, what to send next, and how much is in
//! flight, so a slow or dead follower never makes the leader buffer without bound.

use crate::types::{LogIndex, Time};
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationState {
    /// Where the follower's log matches is unknown: one append at a time, waiting for its
    /// answer (or the next heartbeat) before sending another.
    Probe { waiting: bool },
    /// The follower matches: appends are pipelined within the in-flight window.
    Replicate,
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub match_index: LogIndex,
    pub next_index: LogIndex,
    pub state: ReplicationState,
    /// (last index, bytes) of each append sent and not yet acknowledged, in order.
    inflight: VecDeque<(LogIndex, usize)>,
    inflight_bytes: usize,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// The latest read-confirmation round the follower answered.
    pub acked_seq: u64,
    /// When the follower last acknowledged progress (or replication to it (re)started).
    pub last_ack: Time,
    /// A snapshot being sent because the follower needs entries this log compacted.
    pub snapshot: Option<SnapshotSend>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotSend {
    pub index: LogIndex,
    /// The next byte to send.
    pub offset: u64,
    /// A chunk is out and unanswered.
    pub waiting: bool,
}

impl Progress {
    pub fn new(next_index: LogIndex, now: Time) -> Progress {
        Progress {
            match_index: LogIndex::ZERO,
            next_index,
            state: ReplicationState::Probe { waiting: false },
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            recent_active: false,
            acked_seq: 0,
            last_ack: now,
            snapshot: None,
        }
    }

    pub fn can_send(&self, max_msgs: usize, max_bytes: usize) -> bool {
        match self.state {
            ReplicationState::Probe { waiting } => !waiting,
            ReplicationState::Replicate => {
                self.inflight.len() < max_msgs && self.inflight_bytes < max_bytes
            }
        }
    }

    /// Records an append covering up to `last` that was just sent.
    pub fn sent(&mut self, last: LogIndex, bytes: usize) {
        match self.state {
            ReplicationState::Probe { .. } => {
                self.state = ReplicationState::Probe { waiting: true };
            }
            ReplicationState::Replicate => {
                if last >= self.next_index {
                    self.next_index = last.next();
                    self.inflight.push_back((last, bytes));
                    self.inflight_bytes += bytes;
                }
            }
        }
    }

    /// The follower matches up to `index`. Returns whether that is news.
    pub fn acknowledged(&mut self, index: LogIndex, now: Time) -> bool {
        // Only the probe itself succeeding proves where the logs match; an answer to a
        // heartbeat at the old match point does not.
        if matches!(self.state, ReplicationState::Probe { .. }) && index.next() >= self.next_index {
            self.state = ReplicationState::Replicate;
        }
        while let Some(&(last, bytes)) = self.inflight.front() {
            if last > index {
                break;
            }
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
        }
        if index <= self.match_index {
            return false;
        }
        self.match_index = index;
        self.next_index = self.next_index.max(index.next());
        self.last_ack = now;
        true
    }

    /// The follower refused the append whose previous index was `rejected`; `next` is where
    /// the leader now believes the logs diverge. Returns false for a stale refusal.
    pub fn refused(&mut self, rejected: LogIndex, next: LogIndex, now: Time) -> bool {
        let was_replicating = match self.state {
            ReplicationState::Replicate if rejected <= self.match_index => return false,
            ReplicationState::Probe { .. } if rejected.next() != self.next_index => return false,
            ReplicationState::Replicate => true,
            ReplicationState::Probe { .. } => false,
        };
        self.become_probe(now);
        // A probe may go below the recorded match: a follower whose disk was wiped and that
        // rejoined with the same id holds less than it once acknowledged, and clamping would
        // re-send the same refused append forever.
        let floor = if was_replicating {
            self.match_index.next()
        } else {
            LogIndex(1)
        };
        self.next_index = next.min(rejected).max(floor);
        true
    }

    /// Back to one-at-a-time from the last known match: whatever was in flight is presumed lost.
    pub fn become_probe(&mut self, now: Time) {
        if self.state == ReplicationState::Replicate {
            self.next_index = self.match_index.next();
        }
        self.state = ReplicationState::Probe { waiting: false };
        self.inflight.clear();
        self.inflight_bytes = 0;
        self.last_ack = now;
    }

    /// Lets a waiting probe send again (on a heartbeat).
    pub fn unpause(&mut self) {
        if let ReplicationState::Probe { waiting: true } = self.state {
            self.state = ReplicationState::Probe { waiting: false };
        }
    }

    pub fn has_inflight(&self) -> bool {
        !self.inflight.is_empty()
    }

    pub fn inflight_bytes(&self) -> usize {
        self.inflight_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelining_is_bounded_and_acks_free_the_window() {
        let mut p = Progress::new(LogIndex(1), Time(0));
        assert!(p.acknowledged(LogIndex(0), Time(0)) || p.state == ReplicationState::Replicate);
        p.sent(LogIndex(10), 100);
        p.sent(LogIndex(20), 100);
        assert!(!p.can_send(2, 1000));
        assert_eq!(p.next_index, LogIndex(21));
        assert!(p.acknowledged(LogIndex(10), Time(1)));
        assert!(p.can_send(2, 1000));
        assert_eq!(p.inflight_bytes(), 100);
    }

    #[test]
    fn stale_refusals_are_ignored() {
        let mut p = Progress::new(LogIndex(1), Time(0));
        p.acknowledged(LogIndex(5), Time(0));
        assert!(!p.refused(LogIndex(4), LogIndex(1), Time(0)));
        assert!(p.refused(LogIndex(7), LogIndex(3), Time(0)));
        // A replicating follower never goes below what it acknowledged.
        assert_eq!(p.next_index, LogIndex(6));
        assert_eq!(p.state, ReplicationState::Probe { waiting: false });
        // A refusal of an older probe is stale.
        assert!(!p.refused(LogIndex(7), LogIndex(3), Time(0)));
    }

    #[test]
    fn a_probe_can_go_below_a_match_a_wiped_follower_lost() {
        let mut p = Progress::new(LogIndex(1), Time(0));
        p.acknowledged(LogIndex(38), Time(0));
        p.become_probe(Time(0));
        assert_eq!(p.next_index, LogIndex(39));
        assert!(p.refused(LogIndex(38), LogIndex(1), Time(0)));
        assert_eq!(p.next_index, LogIndex(1));
    }
}
