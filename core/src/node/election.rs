//! Terms, votes and elections: pre-vote, candidacy, leadership, CheckQuorum.

use super::{Bug, LeaderState, Node, RoleState};
use crate::entry::Entry;
use crate::message::{AppendOutcome, AppendResponse, Message, RequestVote, VoteResponse};
use crate::output::Role;
use crate::progress::Progress;
use crate::types::{LogIndex, PeerId};
use std::collections::BTreeMap;

impl Node {
    /// Settles the message's term against ours before any role sees it (etcd's `Step`).
    /// Returns whether the message should go on to its handler.
    pub(super) fn settle_term(&mut self, from: &PeerId, msg: &Message) -> bool {
        let term = msg.term();
        if term > self.term {
            match msg {
                Message::RequestVote(rv) => {
                    if self.in_leader_lease() && !rv.transfer {
                        // A healthy leader is known: this candidate is partitioned or removed.
                        log::debug!(
                            "{}: ignored {} from {from} for term {term}: leader {:?} is alive",
                            self.cfg.id,
                            msg.kind(),
                            self.leader
                        );
                        self.reject_vote(from, rv.pre_vote);
                        return false;
                    }
                    if !rv.pre_vote {
                        self.become_follower(term, None);
                    }
                }
                // Our own pre-vote granted: the term is the one we asked about, not ours yet.
                Message::VoteResponse(v) if v.pre_vote && v.granted => {}
                Message::AppendEntries(_) => self.become_follower(term, Some(from.clone())),
                _ => self.become_follower(term, None),
            }
        } else if term < self.term {
            match msg {
                Message::RequestVote(rv) => self.reject_vote(from, rv.pre_vote),
                Message::AppendEntries(ae) => {
                    // Tell the stale leader our term so it steps down.
                    let resp = AppendResponse {
                        term: self.term,
                        outcome: AppendOutcome::Conflict {
                            rejected: ae.prev_log_index,
                            hint_term: crate::types::Term(0),
                            hint_index: ae.prev_log_index,
                        },
                        read_seq: ae.read_seq,
                    };
                    self.send_after_durable(from.clone(), Message::AppendResponse(resp));
                }
                Message::ReadIndex(req) => {
                    let req = req.clone();
                    self.handle_read_index(from, req);
                }
                _ => {}
            }
            return false;
        }
        true
    }

    /// A follower that heard from its leader within the minimum election timeout (or a leader
    /// itself) refuses to help unseat it.
    fn in_leader_lease(&self) -> bool {
        if self.role == Role::Leader || self.now.mono < self.quiet_until {
            return true;
        }
        match (&self.leader, self.leader_contact) {
            (Some(_), Some(t)) => self.now.mono.since(t) < self.cfg.election_timeout_min_ms,
            _ => false,
        }
    }

    fn reject_vote(&mut self, to: &PeerId, pre_vote: bool) {
        let resp = VoteResponse {
            term: self.term,
            granted: false,
            pre_vote,
        };
        self.send_after_durable(to.clone(), Message::VoteResponse(resp));
    }

    pub(super) fn handle_request_vote(&mut self, from: &PeerId, rv: RequestVote) {
        let up_to_date = self.log.is_up_to_date(rv.last_log_index, rv.last_log_term);
        if rv.pre_vote {
            // Grant a pre-vote for a future term to any up-to-date log; nothing changes here.
            if rv.term > self.term && up_to_date {
                let resp = VoteResponse {
                    term: rv.term,
                    granted: true,
                    pre_vote: true,
                };
                self.send_after_durable(from.clone(), Message::VoteResponse(resp));
            } else {
                self.reject_vote(from, true);
            }
            return;
        }
        let free =
            self.voted_for.as_ref().is_none_or(|v| v == from) || self.has_bug(Bug::DoubleVote);
        if free && up_to_date {
            if self.role == Role::PreCandidate {
                let term = self.term;
                self.become_follower(term, None);
            }
            if self.voted_for.as_ref() != Some(from) {
                // One vote per term: only a planted bug may overwrite a vote.
                assert!(
                    self.voted_for.is_none() || self.has_bug(Bug::DoubleVote),
                    "{}: second vote in term {}",
                    self.cfg.id,
                    self.term
                );
                self.voted_for = Some(from.clone());
                self.persist_hard_state();
            }
            self.reset_election_timer();
            let resp = VoteResponse {
                term: self.term,
                granted: true,
                pre_vote: false,
            };
            // Held until the hard state naming this vote is durable.
            self.send_after_durable(from.clone(), Message::VoteResponse(resp));
        } else {
            self.reject_vote(from, false);
        }
    }

    pub(super) fn handle_vote_response(&mut self, from: &PeerId, v: VoteResponse) {
        let expected_term = match self.role {
            Role::PreCandidate if v.pre_vote => self.term.next(),
            Role::Candidate if !v.pre_vote => self.term,
            _ => return,
        };
        if v.granted && v.term != expected_term {
            return;
        }
        let RoleState::Candidate { votes } = &mut self.state else {
            return;
        };
        votes.insert(from.clone(), v.granted);
        let won = self.membership.quorum(|p| votes.get(p) == Some(&true));
        let lost = !self.membership.quorum(|p| votes.get(p) != Some(&false));
        if won {
            match self.role {
                Role::PreCandidate => self.become_candidate(),
                _ => self.become_leader(),
            }
        } else if lost {
            let term = self.term;
            self.become_follower(term, None);
        }
    }

    pub(super) fn election_timeout(&mut self) {
        if !self.is_voter() {
            // Learners never campaign.
            self.reset_election_timer();
            return;
        }
        self.become_pre_candidate();
    }

    fn become_pre_candidate(&mut self) {
        log::debug!("{}: pre-vote for term {}", self.cfg.id, self.term.next());
        self.abandon_reads(false);
        self.role = Role::PreCandidate;
        self.leader = None;
        self.leader_contact = None;
        let mut votes = BTreeMap::new();
        votes.insert(self.cfg.id.clone(), true);
        self.state = RoleState::Candidate { votes };
        self.reset_election_timer();
        self.announce();
        if self.alone_is_quorum() {
            return self.become_candidate();
        }
        let rv = RequestVote {
            term: self.term.next(),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: true,
            transfer: false,
        };
        for peer in self.other_voters() {
            // A pre-vote promises nothing, so it need not wait for the disk.
            self.outputs.push_back(crate::output::Output::Send(
                peer,
                Message::RequestVote(rv.clone()),
            ));
        }
    }

    pub(super) fn become_candidate(&mut self) {
        self.campaign(false);
    }

    /// Starts an election for the next term; `transfer` marks one the leader asked for.
    pub(super) fn campaign(&mut self, transfer: bool) {
        self.term = self.term.next();
        self.voted_for = Some(self.cfg.id.clone());
        self.persist_hard_state();
        log::debug!("{}: candidate for term {}", self.cfg.id, self.term);
        self.role = Role::Candidate;
        self.state = RoleState::Candidate {
            votes: BTreeMap::new(),
        };
        self.reset_election_timer();
        self.announce();
        let me = self.cfg.id.clone();
        let own_vote = VoteResponse {
            term: self.term,
            granted: true,
            pre_vote: false,
        };
        self.send_after_durable(me, Message::VoteResponse(own_vote));
        let rv = RequestVote {
            term: self.term,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: false,
            transfer,
        };
        for peer in self.other_voters() {
            self.send_after_durable(peer, Message::RequestVote(rv.clone()));
        }
    }

    fn become_leader(&mut self) {
        log::info!("{}: leader for term {}", self.cfg.id, self.term);
        let now = self.now.mono;
        let next = self.log.last_index().next();
        let progress = self
            .others
            .iter()
            .map(|p| (p.clone(), Progress::new(next, now)))
            .collect();
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id.clone());
        self.state = RoleState::Leader(LeaderState {
            progress,
            heartbeat_due: now.plus_ms(self.cfg.heartbeat_interval_ms),
            quorum_check_due: now.plus_ms(self.check_quorum_interval()),
            waiting: BTreeMap::new(),
            term_start: LogIndex::ZERO,
            transfer: None,
            transferred: false,
        });
        self.announce();
        // The CHECKPOINT lets entries of earlier terms commit without waiting for a client
        // update (RAFT.md), and gives this term an entry of its own to commit.
        let start = self.append_as_leader(Entry::checkpoint(self.term));
        self.leader_state().term_start = start;
    }

    fn check_quorum_interval(&self) -> u64 {
        match self.cfg.check_quorum_ms {
            0 => self.cfg.election_timeout_min_ms,
            ms => ms,
        }
    }

    /// CheckQuorum: a leader that heard from no majority for an election timeout steps down.
    /// Returns whether it is still leader.
    pub(super) fn check_quorum(&mut self) -> bool {
        let due = self.now.mono.plus_ms(self.check_quorum_interval());
        let me = self.cfg.id.clone();
        let RoleState::Leader(l) = &mut self.state else {
            return false;
        };
        let progress = &l.progress;
        let heard = self
            .membership
            .quorum(|p| *p == me || progress.get(p).is_some_and(|x| x.recent_active));
        for p in l.progress.values_mut() {
            p.recent_active = false;
        }
        l.quorum_check_due = due;
        if !heard {
            log::info!(
                "{}: stepping down in term {}: no majority heard from",
                self.cfg.id,
                self.term
            );
            let term = self.term;
            self.become_follower(term, None);
            return false;
        }
        true
    }

    pub(super) fn other_voters(&self) -> Vec<PeerId> {
        self.voters
            .iter()
            .filter(|p| **p != self.cfg.id)
            .cloned()
            .collect()
    }
}
