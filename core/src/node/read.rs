//! Linearizable reads: ReadIndex (the leader confirms it still leads with one round of
//! heartbeats, then serves once applied up to the commit index it read), a lease that skips
//! the round while provably valid, and forwarding from followers to the leader.

use super::{Bug, Node, RoleState};
use crate::message::{Message, ReadIndexRequest, ReadIndexResponse};
use crate::output::{Output, ReadResult, Role};
use crate::types::{LogIndex, PeerId, ReadId, Time};
use std::collections::{BTreeMap, VecDeque};

/// Who asked for a read the leader is confirming.
#[derive(Debug)]
enum Origin {
    Local(ReadId),
    /// A follower's read, by the follower's context.
    Remote(PeerId, u64),
}

#[derive(Debug, Default)]
pub(super) struct Reads {
    /// Leader: the latest confirmation round started; every AppendEntries carries it.
    pub seq: u64,
    /// Leader: a round must start at the next flush.
    round_wanted: bool,
    /// Leader: rounds not yet confirmed, with the time each was sent (for the lease).
    rounds: VecDeque<(u64, Time)>,
    /// Leader: reads waiting for their round: (round, read index, who asked).
    unconfirmed: VecDeque<(u64, LogIndex, Origin)>,
    /// Leader: until when no other leader can exist (lease reads).
    lease_until: Option<Time>,
    /// Confirmed reads waiting for the state machine to reach their index.
    confirmed: Vec<(LogIndex, ReadId)>,
    /// Follower: reads forwarded to the leader, by context.
    forwarded: BTreeMap<u64, ReadId>,
}

impl Node {
    /// A linearizable read. The answer comes as `Output::Read(id, ..)`: `Ready` means every
    /// write acknowledged before this call is applied and the read may be served now.
    pub fn read(&mut self, now: crate::types::Now, id: ReadId) {
        self.advance_clock(now);
        match self.role {
            Role::Leader => {
                let index = self.read_index();
                self.start_read(index, Origin::Local(id));
            }
            _ => match self.leader.clone() {
                Some(leader) => {
                    self.reads.forwarded.insert(id.0, id);
                    let req = ReadIndexRequest {
                        term: self.term,
                        ctx: id.0,
                    };
                    self.outputs
                        .push_back(Output::Send(leader, Message::ReadIndex(req)));
                }
                None => self.fail_read(id, None),
            },
        }
    }

    /// The index a read must wait for: the commit index, but no less than this term's first
    /// entry, whose commit proves the leader knows every committed entry.
    fn read_index(&self) -> LogIndex {
        let RoleState::Leader(l) = &self.state else {
            unreachable!("only a leader has a read index")
        };
        self.commit.max(l.term_start)
    }

    fn start_read(&mut self, index: LogIndex, origin: Origin) {
        let lease = self.cfg.lease_reads
            && !self.lease_forfeited()
            && self
                .reads
                .lease_until
                .is_some_and(|until| self.now.mono < until);
        if lease || self.alone_is_quorum() || self.has_bug(Bug::ReadWithoutRound) {
            self.read_confirmed(index, origin);
        } else {
            self.reads.round_wanted = true;
            let round = self.reads.seq + 1;
            self.reads.unconfirmed.push_back((round, index, origin));
        }
    }

    fn read_confirmed(&mut self, index: LogIndex, origin: Origin) {
        match origin {
            Origin::Local(id) => self.reads.confirmed.push((index, id)),
            Origin::Remote(peer, ctx) => {
                let resp = ReadIndexResponse {
                    term: self.term,
                    ctx,
                    index: Some(index),
                };
                self.outputs
                    .push_back(Output::Send(peer, Message::ReadIndexResponse(resp)));
            }
        }
    }

    fn fail_read(&mut self, id: ReadId, leader: Option<PeerId>) {
        self.outputs
            .push_back(Output::Read(id, ReadResult::NotLeader { leader }));
    }

    pub(super) fn handle_read_index(&mut self, from: &PeerId, req: ReadIndexRequest) {
        if self.role == Role::Leader {
            let index = self.read_index();
            self.start_read(index, Origin::Remote(from.clone(), req.ctx));
        } else {
            let resp = ReadIndexResponse {
                term: self.term,
                ctx: req.ctx,
                index: None,
            };
            self.outputs
                .push_back(Output::Send(from.clone(), Message::ReadIndexResponse(resp)));
        }
    }

    pub(super) fn handle_read_index_response(&mut self, resp: ReadIndexResponse) {
        let Some(id) = self.reads.forwarded.remove(&resp.ctx) else {
            return;
        };
        match resp.index {
            Some(index) => self.reads.confirmed.push((index, id)),
            None => {
                let leader = self.leader.clone();
                self.fail_read(id, leader);
            }
        }
    }

    /// Starts the confirmation round at flush time, so the reads of one drain share it.
    pub(super) fn flush_read_round(&mut self) {
        if !std::mem::take(&mut self.reads.round_wanted) || self.role != Role::Leader {
            return;
        }
        self.begin_round();
        self.send_heartbeats();
    }

    /// Every heartbeat is a round too: it confirms pending reads and extends the lease.
    pub(super) fn begin_round(&mut self) {
        self.reads.seq += 1;
        let (seq, now) = (self.reads.seq, self.now.mono);
        self.reads.rounds.push_back((seq, now));
        self.reads.round_wanted = false;
    }

    /// A follower answered an AppendEntries of round `seq`.
    pub(super) fn on_round_ack(&mut self) {
        if self.reads.rounds.is_empty() && self.reads.unconfirmed.is_empty() {
            return;
        }
        let RoleState::Leader(l) = &self.state else {
            return;
        };
        let (me, seq) = (&self.cfg.id, self.reads.seq);
        let confirmed = self.membership.quorum_value(|p| {
            if p == me {
                seq
            } else {
                l.progress.get(p).map_or(0, |x| x.acked_seq)
            }
        });
        let mut sent_at = None;
        while self.reads.rounds.front().is_some_and(|r| r.0 <= confirmed) {
            sent_at = self.reads.rounds.pop_front().map(|r| r.1);
        }
        if let Some(t) = sent_at {
            // No follower that acked votes for anyone else until an election timeout after it
            // heard this round, measured on its own clock; shrink by the drift bound both ways.
            let min = self.cfg.election_timeout_min_ms;
            let ppm = self.cfg.max_clock_drift_ppm.min(500_000);
            let lease = min * (1_000_000 - 2 * ppm) / 1_000_000;
            let until = t.plus_ms(lease);
            self.reads.lease_until = Some(self.reads.lease_until.map_or(until, |u| u.max(until)));
        }
        while self
            .reads
            .unconfirmed
            .front()
            .is_some_and(|r| r.0 <= confirmed)
        {
            let (_, index, origin) = self.reads.unconfirmed.pop_front().expect("checked");
            self.read_confirmed(index, origin);
        }
    }

    /// Drops the lease at once (a leadership transfer started).
    pub(super) fn reads_forfeit_lease(&mut self) {
        self.reads.lease_until = None;
    }

    /// Serves confirmed reads whose index the state machine has reached.
    pub(super) fn serve_reads(&mut self) {
        let applied = self.applied;
        let mut i = 0;
        while i < self.reads.confirmed.len() {
            if self.reads.confirmed[i].0 <= applied {
                let (_, id) = self.reads.confirmed.swap_remove(i);
                self.outputs.push_back(Output::Read(id, ReadResult::Ready));
            } else {
                i += 1;
            }
        }
    }

    /// Leadership or the known leader changed: reads that depended on it fail, so nothing
    /// waits forever. Confirmed reads stay: their read point is already fixed.
    pub(super) fn abandon_reads(&mut self, was_leader: bool) {
        let leader = self.leader.clone();
        if was_leader {
            self.reads.rounds.clear();
            self.reads.lease_until = None;
            self.reads.round_wanted = false;
            for (_, _, origin) in std::mem::take(&mut self.reads.unconfirmed) {
                match origin {
                    Origin::Local(id) => self.fail_read(id, leader.clone()),
                    Origin::Remote(peer, ctx) => {
                        let resp = ReadIndexResponse {
                            term: self.term,
                            ctx,
                            index: None,
                        };
                        self.outputs
                            .push_back(Output::Send(peer, Message::ReadIndexResponse(resp)));
                    }
                }
            }
        }
        for (_, id) in std::mem::take(&mut self.reads.forwarded) {
            self.fail_read(id, leader.clone());
        }
    }
}
