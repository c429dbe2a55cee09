//! Snapshots: compacting the log under a snapshot the state machine made, and sending it in
//! chunks to a follower that needs what was compacted. A lost chunk is resumed from the offset
//! the follower names, not restarted.

use super::{Bug, Node, RoleState};
use crate::membership::Membership;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, Message};
use crate::output::{Output, Role};
use crate::persist::{SnapshotMeta, Write};
use crate::progress::SnapshotSend;
use crate::types::{LogIndex, Now, PeerId, Term};
use std::sync::Arc;

/// A snapshot arriving from the leader.
#[derive(Debug)]
pub(super) struct Incoming {
    index: LogIndex,
    term: Term,
    membership: Membership,
    /// The next byte expected.
    expected: u64,
    /// Every byte arrived; waiting for the driver to install it.
    complete: bool,
    leader: PeerId,
}

impl Node {
    /// The state machine made a durable snapshot of everything up to `meta.index` (at most the
    /// applied index). The log is compacted up to the lowest of that, the commit index and the
    /// prune index (below which no request id is still remembered, so deduplication loses
    /// nothing, RAFT.md); the driver is asked to delete those entries with `Write::Compact`.
    /// Returns the index compacted up to.
    pub fn snapshot_taken(&mut self, now: Now, meta: SnapshotMeta, data: Arc<[u8]>) -> LogIndex {
        self.advance_clock(now);
        assert!(
            meta.index <= self.applied || self.has_bug(Bug::CompactPastCommit),
            "{}: snapshot at {} beyond applied {}",
            self.cfg.id,
            meta.index,
            self.applied
        );
        let upto = meta.index.min(self.compaction_bound());
        self.snapshot = Some((meta, data));
        if upto <= self.log.start() {
            return self.log.start();
        }
        // The configuration in force at `upto` becomes the base the log builds on.
        if let Some(pos) = self.config_log.iter().rposition(|(i, _)| *i <= upto) {
            self.base_membership = self.config_log[pos].1.clone();
            self.config_log.drain(..=pos);
        }
        self.issue_log_write();
        self.log.compact(upto);
        let id = self.next_write_id();
        self.outputs
            .push_back(Output::Write(id, Write::Compact { upto }));
        upto
    }

    /// How far the log may be compacted now: min(commit, applied, prune index), where below
    /// the prune index every request id has expired (RAFT.md). A snapshot meant to compact
    /// the log should be made at this index (e.g. by replaying the log onto the last one).
    pub fn compaction_bound(&self) -> LogIndex {
        let prune = self
            .requests
            .lowest_index()
            .map_or(self.commit, |i| i.prev());
        if self.has_bug(Bug::CompactPastCommit) {
            return prune.min(self.log.last_index());
        }
        self.commit.min(self.applied).min(prune)
    }

    /// The configuration in force at `index` (which must not precede the log start).
    pub fn membership_at(&self, index: LogIndex) -> Membership {
        self.config_log
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or_else(|| self.base_membership.clone(), |c| c.1.clone())
    }

    /// Index of the entry before the first one this log holds.
    pub fn log_start(&self) -> LogIndex {
        self.log.start()
    }

    /// Leader: sends the next chunk of the snapshot to `peer`.
    pub(super) fn send_snapshot_chunk(&mut self, peer: &PeerId) {
        let Some((meta, data)) = self.snapshot.clone() else {
            log::error!(
                "{}: {peer} needs compacted entries but there is no snapshot",
                self.cfg.id
            );
            return;
        };
        let chunk_len = self.cfg.max_batch_bytes.max(1) as u64;
        let term = self.term;
        let RoleState::Leader(l) = &mut self.state else {
            return;
        };
        let Some(pr) = l.progress.get_mut(peer) else {
            return;
        };
        let send = pr.snapshot.get_or_insert(SnapshotSend {
            index: meta.index,
            offset: 0,
            waiting: false,
        });
        if send.index != meta.index {
            // A newer snapshot was taken meanwhile: start over with it.
            *send = SnapshotSend {
                index: meta.index,
                offset: 0,
                waiting: false,
            };
        }
        if send.waiting {
            return;
        }
        send.waiting = true;
        let total = data.len() as u64;
        let offset = send.offset.min(total);
        let end = (offset + chunk_len).min(total);
        let msg = InstallSnapshot {
            term,
            index: meta.index,
            last_term: meta.term,
            membership: meta.membership.encode(),
            offset,
            total,
            data: data[offset as usize..end as usize].to_vec(),
        };
        self.outputs
            .push_back(Output::Send(peer.clone(), Message::InstallSnapshot(msg)));
    }

    pub(super) fn handle_snapshot_response(&mut self, from: &PeerId, r: InstallSnapshotResponse) {
        if self.role != Role::Leader {
            return;
        }
        let now = self.now.mono;
        let RoleState::Leader(l) = &mut self.state else {
            return;
        };
        let Some(pr) = l.progress.get_mut(from) else {
            return;
        };
        pr.recent_active = true;
        let Some(send) = pr.snapshot.as_mut().filter(|s| s.index == r.index) else {
            return;
        };
        if r.done {
            pr.snapshot = None;
            pr.become_probe(now);
            pr.acknowledged(r.index, now);
            pr.next_index = r.index.next();
            self.maybe_commit();
        } else {
            send.offset = r.next_offset;
            send.waiting = false;
        }
        self.send_appends_to(from);
    }

    /// Follower: a chunk of the leader's snapshot.
    pub(super) fn handle_install_snapshot(&mut self, from: &PeerId, m: InstallSnapshot) {
        if !self.follow(from) {
            return;
        }
        let have = m.index <= self.commit || self.log.term_at(m.index) == Some(m.last_term);
        if have {
            // This log already holds (or committed past) what the snapshot covers.
            return self.answer_snapshot(from, m.index, m.total, true);
        }
        let membership = match Membership::decode(&m.membership) {
            Ok(ms) => ms,
            Err(e) => {
                log::error!("{}: InstallSnapshot from {from} dropped: {e}", self.cfg.id);
                return;
            }
        };
        let same = |i: &Incoming| i.index == m.index && i.term == m.last_term;
        if m.offset == 0
            && !self
                .incoming
                .as_ref()
                .is_some_and(|i| same(i) && i.complete)
        {
            self.incoming = Some(Incoming {
                index: m.index,
                term: m.last_term,
                membership,
                expected: 0,
                complete: false,
                leader: from.clone(),
            });
        }
        let Some(inc) = self.incoming.as_mut().filter(|i| same(i)) else {
            // Not the snapshot we are receiving: ask for this one from the start.
            return self.answer_snapshot(from, m.index, 0, false);
        };
        if inc.complete || m.offset != inc.expected || m.offset + m.data.len() as u64 > m.total {
            let next = inc.expected;
            return self.answer_snapshot(from, m.index, next, false);
        }
        inc.expected += m.data.len() as u64;
        let (expected, total) = (inc.expected, m.total);
        self.outputs.push_back(Output::SnapshotChunk {
            index: m.index,
            term: m.last_term,
            offset: m.offset,
            total,
            data: m.data,
        });
        if expected < total {
            return self.answer_snapshot(from, m.index, expected, false);
        }
        inc.complete = true;
        let meta = SnapshotMeta {
            index: inc.index,
            term: inc.term,
            membership: inc.membership.clone(),
        };
        // Answered once the driver reports it installed.
        self.outputs.push_back(Output::InstallSnapshot(meta));
    }

    /// The driver made the received snapshot durable and loaded it into the state machine.
    pub fn snapshot_installed(&mut self, now: Now, index: LogIndex, data: Arc<[u8]>) {
        self.advance_clock(now);
        let Some(inc) = self.incoming.take() else {
            return;
        };
        if !inc.complete || inc.index != index {
            self.incoming = Some(inc);
            return;
        }
        self.issue_log_write();
        let kept_config = self.config_log.iter().any(|(i, _)| *i > index)
            && self.log.term_at(index) == Some(inc.term);
        self.log.install(index, inc.term);
        // The request ids remembered must be those of entries this log still holds: entries
        // the snapshot replaced may have been a divergent suffix. Ids of entries the snapshot
        // covers were past their TTL when the leader compacted (the prune index).
        let unix = self.now.unix_secs;
        let mut requests = crate::dedup::RequestTable::new(self.cfg.request_id_ttl_secs);
        for (i, e) in self.log.iter_from(index.next()) {
            requests.insert(e.request_id(), i, unix);
        }
        self.requests = requests;
        if !kept_config {
            self.config_log.clear();
        } else {
            self.config_log.retain(|(i, _)| *i > index);
        }
        self.base_membership = inc.membership.clone();
        self.refresh_membership();
        if index > self.commit {
            self.commit = index;
        }
        self.applied = self.applied.max(index);
        let meta = SnapshotMeta {
            index,
            term: inc.term,
            membership: inc.membership,
        };
        let total = data.len() as u64;
        self.snapshot = Some((meta, data));
        let leader = inc.leader;
        self.answer_snapshot(&leader, index, total, true);
    }

    fn answer_snapshot(&mut self, to: &PeerId, index: LogIndex, next_offset: u64, done: bool) {
        let resp = InstallSnapshotResponse {
            term: self.term,
            index,
            next_offset,
            done,
        };
        self.send_after_durable(to.clone(), Message::InstallSnapshotResponse(resp));
    }
}
