//! Log replication: the follower's side of AppendEntries and the leader's side of its
//! responses, heartbeats and commit.

use super::{Bug, Node, RoleState};
use crate::message::{AppendEntries, AppendOutcome, AppendResponse, Message};
use crate::output::{ClientResult, Output, Role};
use crate::progress::ReplicationState;
use crate::types::{LogIndex, PeerId, Term};

impl Node {
    /// `from` leads our term (settle_term made the terms equal): follow it and keep quiet.
    /// False if this peer leads the same term, which one-leader-per-term rules out.
    pub(super) fn follow(&mut self, from: &PeerId) -> bool {
        if self.role != Role::Follower || self.leader.as_ref() != Some(from) {
            if self.role == Role::Leader {
                log::error!(
                    "{}: two leaders in term {}: replication from {from}",
                    self.cfg.id,
                    self.term
                );
                return false;
            }
            let term = self.term;
            self.become_follower(term, Some(from.clone()));
        }
        self.leader_contact = Some(self.now.mono);
        self.reset_election_timer();
        true
    }

    pub(super) fn handle_append_entries(&mut self, from: &PeerId, ae: AppendEntries) {
        if !self.follow(from) {
            return;
        }

        let outcome = self.accept_entries(&ae);
        let resp = AppendResponse {
            term: self.term,
            outcome,
            read_seq: ae.read_seq,
        };
        // Held until the appended entries (and our term) are durable.
        self.send_after_durable(from.clone(), Message::AppendResponse(resp));
    }

    /// Checks the log matches at the request's previous index, then appends what is new.
    fn accept_entries(&mut self, ae: &AppendEntries) -> AppendOutcome {
        let mut prev = ae.prev_log_index;
        let mut entries = &ae.entries[..];
        if prev < self.log.start() {
            // The start of the request is covered by our snapshot, hence committed and matching.
            let skip = (self.log.start().0 - prev.0).min(entries.len() as u64) as usize;
            entries = &entries[skip..];
            prev = prev.plus(skip as u64);
            if prev < self.log.start() {
                return AppendOutcome::Success {
                    match_index: self.log.start(),
                };
            }
        }
        match self.log.term_at(prev) {
            Some(t) if t == ae.prev_log_term => {}
            Some(t) => {
                return AppendOutcome::Conflict {
                    rejected: ae.prev_log_index,
                    hint_term: t,
                    hint_index: self.log.first_index_of_term_run(prev, t),
                }
            }
            None => {
                return AppendOutcome::Conflict {
                    rejected: ae.prev_log_index,
                    hint_term: Term(0),
                    hint_index: self.log.last_index().next(),
                }
            }
        }
        // Skip what we already hold; a stale or duplicated request must not cut a longer log.
        let mut first_new = entries.len();
        for (k, e) in entries.iter().enumerate() {
            let idx = prev.plus(k as u64 + 1);
            if self.log.term_at(idx) != Some(e.term()) {
                first_new = k;
                break;
            }
        }
        if first_new < entries.len() {
            let from = prev.plus(first_new as u64 + 1);
            if self.has_bug(Bug::SkipTruncate) && from <= self.log.last_index() {
                let keep = (self.log.last_index().0 - prev.0) as usize;
                if keep < entries.len() {
                    let last = self.log.last_index().next();
                    self.replace_log_suffix(last, &entries[keep..]);
                }
            } else {
                self.replace_log_suffix(from, &entries[first_new..]);
            }
        }
        let last_new = prev.plus(entries.len() as u64);
        self.set_commit(ae.leader_commit.min(last_new).max(self.commit));
        AppendOutcome::Success {
            match_index: last_new,
        }
    }

    pub(super) fn handle_append_response(&mut self, from: &PeerId, resp: AppendResponse) {
        if self.role != Role::Leader {
            return;
        }
        let now = self.now.mono;
        let next_hint = match &resp.outcome {
            AppendOutcome::Conflict {
                hint_term,
                hint_index,
                ..
            } => self.next_after_conflict(*hint_term, *hint_index),
            AppendOutcome::Success { .. } => LogIndex::ZERO,
        };
        let l = self.leader_state();
        let Some(pr) = l.progress.get_mut(from) else {
            return;
        };
        pr.recent_active = true;
        pr.acked_seq = pr.acked_seq.max(resp.read_seq);
        self.on_round_ack();
        let last = self.log.last_index();
        let l = self.leader_state();
        let Some(pr) = l.progress.get_mut(from) else {
            return;
        };
        match resp.outcome {
            AppendOutcome::Success { match_index } => {
                if match_index > last {
                    log::error!(
                        "{}: {from} claims to match {match_index} beyond our last {last}; ignored",
                        self.cfg.id
                    );
                    return;
                }
                if pr.acknowledged(match_index, now) {
                    self.maybe_commit();
                    self.maybe_send_timeout_now(from);
                }
            }
            AppendOutcome::Conflict { rejected, .. } => {
                if !pr.refused(rejected, next_hint, now) {
                    return;
                }
            }
        }
        self.send_appends_to(from);
    }

    /// Where to resume after a follower's conflict hint: past the leader's last entry of the
    /// follower's conflicting term if the leader has that term, else at the follower's first
    /// index of it.
    fn next_after_conflict(&self, hint_term: Term, hint_index: LogIndex) -> LogIndex {
        if hint_term == Term(0) {
            return hint_index;
        }
        match self.log.last_index_of_term(hint_term) {
            Some(i) => i.next(),
            None => hint_index,
        }
    }

    /// Sends to `peer` as much as its flow-control window allows.
    pub(super) fn send_appends_to(&mut self, peer: &PeerId) {
        let max_msgs = self.cfg.max_inflight_msgs;
        let max_bytes = self.cfg.max_inflight_bytes;
        loop {
            let RoleState::Leader(l) = &self.state else {
                return;
            };
            let Some(pr) = l.progress.get(peer) else {
                return;
            };
            if pr.snapshot.is_some() {
                return self.send_snapshot_chunk(peer);
            }
            if !pr.can_send(max_msgs, max_bytes) {
                return;
            }
            let next = pr.next_index;
            let probing = matches!(pr.state, ReplicationState::Probe { .. });
            if !probing && next > self.log.last_index() {
                return;
            }
            let entries =
                self.log
                    .slice(next, self.cfg.max_batch_entries, self.cfg.max_batch_bytes);
            let bytes: usize = entries.iter().map(|e| e.len()).sum();
            let prev = next.prev();
            let Some(prev_term) = self.log.term_at(prev) else {
                // The follower needs entries this log compacted: send the snapshot instead.
                return self.send_snapshot_chunk(peer);
            };
            let last = prev.plus(entries.len() as u64);
            let ae = AppendEntries {
                term: self.term,
                prev_log_index: prev,
                prev_log_term: prev_term,
                leader_commit: self.commit,
                entries,
                read_seq: self.reads.seq,
            };
            self.leader_state()
                .progress
                .get_mut(peer)
                .expect("checked above")
                .sent(last, bytes);
            self.outputs
                .push_back(Output::Send(peer.clone(), Message::AppendEntries(ae)));
            if probing {
                return;
            }
        }
    }

    pub(super) fn broadcast_append(&mut self) {
        let others = std::mem::take(&mut self.others);
        for peer in &others {
            self.send_appends_to(peer);
        }
        self.others = others;
    }

    /// Heartbeats keep followers' election timers quiet and carry the commit index; a probe
    /// that went unanswered is sent again, and a pipeline that stalled is restarted.
    pub(super) fn heartbeat(&mut self) {
        let now = self.now.mono;
        let interval = self.cfg.heartbeat_interval_ms;
        let stall = self.cfg.replication_timeout_ms;
        let term = self.term;
        let commit = self.commit;
        self.begin_round();
        let l = self.leader_state();
        l.heartbeat_due = now.plus_ms(interval);
        let mut plain = Vec::new();
        let mut resend = Vec::new();
        for (peer, pr) in l.progress.iter_mut() {
            if let Some(send) = pr.snapshot.as_mut() {
                // An unanswered chunk is sent again (from the offset last asked for).
                send.waiting = false;
                resend.push(peer.clone());
                continue;
            }
            match pr.state {
                ReplicationState::Probe { .. } => {
                    pr.unpause();
                    resend.push(peer.clone());
                }
                ReplicationState::Replicate => {
                    if pr.has_inflight() && now.since(pr.last_ack) >= stall {
                        pr.become_probe(now);
                        resend.push(peer.clone());
                    } else {
                        plain.push((peer.clone(), pr.match_index));
                    }
                }
            }
        }
        for (peer, m) in plain {
            self.send_plain_heartbeat(peer, m, term, commit);
        }
        for peer in resend {
            self.send_appends_to(&peer);
        }
    }

    /// An empty AppendEntries at the follower's known match point: it cannot be refused and
    /// upsets no pipeline; the commit it carries is capped by what the follower is known to hold.
    fn send_plain_heartbeat(&mut self, peer: PeerId, m: LogIndex, term: Term, commit: LogIndex) {
        let ae = AppendEntries {
            term,
            prev_log_index: m,
            prev_log_term: self.log.term_at(m).unwrap_or(Term(0)),
            leader_commit: commit.min(m),
            entries: Vec::new(),
            read_seq: self.reads.seq,
        };
        self.outputs
            .push_back(Output::Send(peer, Message::AppendEntries(ae)));
    }

    /// A heartbeat to every follower, whatever its replication state: a read round.
    pub(super) fn send_heartbeats(&mut self) {
        let (term, commit) = (self.term, self.commit);
        let RoleState::Leader(l) = &self.state else {
            return;
        };
        let targets: Vec<(PeerId, LogIndex)> = l
            .progress
            .iter()
            .map(|(p, pr)| (p.clone(), pr.match_index))
            .collect();
        for (peer, m) in targets {
            self.send_plain_heartbeat(peer, m, term, commit);
        }
    }

    /// Advances the commit index to the highest index a majority holds durably, but only by
    /// counting an entry of the current term (Raft 5.4.2).
    pub(super) fn maybe_commit(&mut self) {
        let RoleState::Leader(l) = &self.state else {
            return;
        };
        // The highest index a majority (of both halves, while joint) holds durably; this
        // leader counts with its durable index, and only where it is a member.
        let (me, durable) = (&self.cfg.id, self.log.durable());
        let candidate = self.membership.quorum_value(|p| {
            if p == me {
                durable
            } else {
                l.progress.get(p).map_or(LogIndex::ZERO, |x| x.match_index)
            }
        });
        let current_term = self.log.term_at(candidate) == Some(self.term);
        if candidate <= self.commit || !(current_term || self.has_bug(Bug::CommitOldTerm)) {
            return;
        }
        self.set_commit(candidate);
        let commit = self.commit;
        while let Some(entry) = self.leader_state().waiting.first_entry() {
            if *entry.key() > commit {
                break;
            }
            let (index, id) = entry.remove_entry();
            self.reply(id, ClientResult::Committed { index });
        }
        self.advance_membership();
    }
}
