//! The Raft node: a value the driver feeds inputs and drains outputs from.
//!
//! Inputs: [`Node::step`] (a peer's message), [`Node::tick`] (time passed),
//! [`Node::propose`] (a client update), [`Node::persisted`] (a write became durable).
//! Outputs: [`Node::poll_output`] until `None`, then arm a timer for [`Node::next_deadline`].
//!
//! # The durability contract
//!
//! Every output that promises something about durable state is held inside the node until the
//! driver reported every write issued before it as durable:
//!
//! * a vote is granted (and a candidate counts its own vote) only once the hard state naming
//!   that vote is durable;
//! * a follower acknowledges an append only once the entries (and the term) are durable;
//! * a leader counts its own log toward commit only up to its durable index;
//! * entries are handed to the state machine only up to the local durable index.
//!
//! The one exception is the leader's own AppendEntries: they leave at once, in parallel with
//! its local write (Raft thesis 10.2.1), because they promise nothing about the leader's disk.

mod election;
mod read;
mod reconfig;
mod replication;
mod snapshot;
mod transfer;

pub use transfer::TransferError;

#[cfg(feature = "broken")]
use crate::broken::Bug;
use crate::config::Config;
use crate::dedup::RequestTable;
use crate::entry::{Entry, EntryType, RequestId};
use crate::membership::{Member, Membership};
use crate::message::Message;
use crate::output::{ClientResult, Output, Role};
use crate::persist::{HardState, Recovered, SnapshotMeta, Write};
use crate::progress::Progress;
use crate::raft_log::RaftLog;
use crate::types::{LogIndex, Now, PeerId, Term, Time, WriteId};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Role-specific state; it lives and dies with the role.
#[derive(Debug)]
enum RoleState {
    Follower,
    /// Votes (or pre-votes) received: peer -> granted.
    Candidate {
        votes: BTreeMap<PeerId, bool>,
    },
    Leader(LeaderState),
}

#[derive(Debug)]
struct LeaderState {
    progress: BTreeMap<PeerId, Progress>,
    heartbeat_due: Time,
    quorum_check_due: Time,
    /// Committed-reply owed to clients: index -> request id.
    waiting: BTreeMap<LogIndex, RequestId>,
    /// Index of this term's first entry (its CHECKPOINT).
    term_start: LogIndex,
    /// A leadership transfer in progress: (target, when it is abandoned).
    transfer: Option<(PeerId, Time)>,
    /// TimeoutNow went out this term: some voter may now ignore our lease, so none is used.
    transferred: bool,
}

/// A message that must wait for durable writes.
#[derive(Debug)]
struct Held {
    after: WriteId,
    to: PeerId,
    msg: Message,
}

pub struct Node {
    cfg: Config,
    /// The membership in force: the latest CONFIG entry in the log, else `base_membership`.
    membership: Membership,
    base_membership: Membership,
    /// CONFIG entries in the log, by index (truncation may uncover an earlier one).
    config_log: Vec<(LogIndex, Membership)>,
    /// Derived from `membership`: every voter.
    voters: BTreeSet<PeerId>,
    learners: BTreeSet<PeerId>,
    rng: ChaCha8Rng,
    now: Now,

    term: Term,
    voted_for: Option<PeerId>,
    log: RaftLog,

    role: Role,
    state: RoleState,
    leader: Option<PeerId>,
    commit: LogIndex,
    applied: LogIndex,
    requests: RequestTable,

    election_due: Time,
    /// When this peer last heard from a live leader; a vote request inside that lease is
    /// ignored so a rejoining peer cannot depose a healthy leader.
    leader_contact: Option<Time>,

    last_write: WriteId,
    durable_write: WriteId,
    /// Log writes not yet durable: (id, first index, last index).
    pending_log_writes: VecDeque<(WriteId, LogIndex, LogIndex)>,
    held: VecDeque<Held>,
    outputs: VecDeque<Output>,
    /// The leader has new entries to push to followers.
    replicate_pending: bool,
    /// Where a leader replicates: voters and learners other than this peer, in order.
    others: Vec<PeerId>,
    /// The latest snapshot, to send to followers that need compacted entries.
    snapshot: Option<(SnapshotMeta, Arc<[u8]>)>,
    /// A snapshot being received from the leader.
    incoming: Option<snapshot::Incoming>,
    reads: read::Reads,
    /// A freshly started peer does not know whether a leader's lease is running, so it grants
    /// no vote before this time (what makes lease reads safe across restarts).
    quiet_until: Time,
}

impl Node {
    /// Builds a node from its configuration and what it recovered from disk. `seed` drives its
    /// election timeouts: the same seed and inputs always give the same outputs.
    pub fn new(cfg: Config, recovered: Recovered, seed: u64, now: Now) -> Node {
        if let Err(e) = cfg.validate() {
            panic!("invalid configuration for peer {}: {e}", cfg.id);
        }
        let log = RaftLog::recovered(
            recovered.log_start,
            recovered.log_start_term,
            recovered.entries,
        );
        let mut requests = RequestTable::new(cfg.request_id_ttl_secs);
        #[cfg(feature = "broken")]
        let forget = cfg.bug == Some(Bug::ForgetRequestIds);
        #[cfg(not(feature = "broken"))]
        let forget = false;
        for (i, e) in log.iter_from(log.start().next()).filter(|_| !forget) {
            requests.insert(e.request_id(), i, now.unix_secs);
        }
        let start = log.start();
        let base_membership = recovered.membership.clone().unwrap_or_else(|| {
            Membership::simple(
                cfg.voters
                    .iter()
                    .map(|id| Member {
                        id: id.clone(),
                        url: String::new(),
                    })
                    .collect(),
            )
        });
        let config_log = log
            .iter_from(log.start().next())
            .filter(|(_, e)| e.kind() == EntryType::Config)
            .filter_map(|(i, e)| Membership::decode(e.data()).ok().map(|m| (i, m)))
            .collect();
        let mut node = Node {
            membership: base_membership.clone(),
            base_membership,
            config_log,
            voters: BTreeSet::new(),
            learners: cfg.learners.iter().cloned().collect(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            now,
            term: recovered.hard_state.term,
            voted_for: recovered.hard_state.voted_for,
            log,
            role: Role::Follower,
            state: RoleState::Follower,
            leader: None,
            commit: start,
            applied: start,
            requests,
            election_due: now.mono,
            leader_contact: None,
            last_write: WriteId(0),
            durable_write: WriteId(0),
            pending_log_writes: VecDeque::new(),
            held: VecDeque::new(),
            outputs: VecDeque::new(),
            replicate_pending: false,
            others: Vec::new(),
            snapshot: None,
            incoming: None,
            reads: read::Reads::default(),
            quiet_until: now.mono.plus_ms(cfg.election_timeout_min_ms),
            cfg,
        };
        node.refresh_membership();
        node.reset_election_timer();
        node
    }

    // ---- getters ----

    pub fn id(&self) -> &PeerId {
        &self.cfg.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn voted_for(&self) -> Option<&PeerId> {
        self.voted_for.as_ref()
    }
    pub fn leader(&self) -> Option<&PeerId> {
        self.leader.as_ref()
    }
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }
    /// Highest index handed out in an `Apply` output.
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }
    pub fn last_term(&self) -> Term {
        self.log.last_term()
    }
    pub fn durable_index(&self) -> LogIndex {
        self.log.durable()
    }
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.get(index)
    }
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }
    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn is_voter(&self) -> bool {
        self.voters.contains(&self.cfg.id)
    }
    /// How many request ids the deduplication table holds.
    pub fn remembered_request_ids(&self) -> usize {
        self.requests.len()
    }
    /// Bytes of appends in flight to `peer` (leader only).
    pub fn inflight_bytes(&self, peer: &PeerId) -> Option<usize> {
        match &self.state {
            RoleState::Leader(l) => l.progress.get(peer).map(Progress::inflight_bytes),
            _ => None,
        }
    }

    /// The next time [`Node::tick`] has work to do.
    pub fn next_deadline(&self) -> Time {
        match &self.state {
            RoleState::Leader(l) => {
                let t = l.heartbeat_due.min(l.quorum_check_due);
                l.transfer.as_ref().map_or(t, |(_, until)| t.min(*until))
            }
            _ => self.election_due,
        }
    }

    // ---- inputs ----

    fn advance_clock(&mut self, now: Now) {
        // Time never goes back inside the node, whatever the driver's clock does.
        self.now.mono = self.now.mono.max(now.mono);
        self.now.unix_secs = self.now.unix_secs.max(now.unix_secs);
    }

    /// Time passed. Calling it early is harmless.
    pub fn tick(&mut self, now: Now) {
        self.advance_clock(now);
        self.requests.expire(self.now.unix_secs);
        let t = self.now.mono;
        if let RoleState::Leader(l) = &self.state {
            let (hb, qc) = (l.heartbeat_due, l.quorum_check_due);
            if t >= qc && !self.check_quorum() {
                return;
            }
            self.expire_transfer();
            if t >= hb {
                self.heartbeat();
            }
        } else if t >= self.election_due {
            self.election_timeout();
        }
    }

    /// A message from peer `from`.
    pub fn step(&mut self, now: Now, from: &PeerId, msg: Message) {
        self.advance_clock(now);
        // Election traffic only from voters of the configuration in force: that is what keeps
        // removed or stray peers from disrupting the cluster. Appends are taken from whoever
        // leads a term at least ours (one leader per term), because a lagging follower may not
        // know yet the configuration that elected it; a leader hears only from its targets.
        let allowed = match &msg {
            Message::RequestVote(_) | Message::VoteResponse(_) | Message::TimeoutNow { .. } => {
                self.voters.contains(from)
            }
            Message::AppendResponse(_)
            | Message::InstallSnapshotResponse(_)
            | Message::ReadIndex(_) => self.voters.contains(from) || self.learners.contains(from),
            Message::AppendEntries(_)
            | Message::InstallSnapshot(_)
            | Message::ReadIndexResponse(_) => true,
        };
        if from == &self.cfg.id || !allowed {
            log::debug!(
                "{}: dropped {} from {from}: not a member of the configuration",
                self.cfg.id,
                msg.kind()
            );
            return;
        }
        if !self.settle_term(from, &msg) {
            return;
        }
        match msg {
            Message::RequestVote(m) => self.handle_request_vote(from, m),
            Message::VoteResponse(m) => self.handle_vote_response(from, m),
            Message::AppendEntries(m) => self.handle_append_entries(from, m),
            Message::AppendResponse(m) => self.handle_append_response(from, m),
            Message::ReadIndex(m) => self.handle_read_index(from, m),
            Message::ReadIndexResponse(m) => self.handle_read_index_response(m),
            Message::TimeoutNow { .. } => self.handle_timeout_now(from),
            Message::InstallSnapshot(m) => self.handle_install_snapshot(from, m),
            Message::InstallSnapshotResponse(m) => self.handle_snapshot_response(from, m),
        }
    }

    /// A client update with its request id. The answer comes as `Output::Reply`.
    pub fn propose(&mut self, now: Now, id: RequestId, data: &[u8]) {
        self.advance_clock(now);
        if self.role == Role::Leader && data.len() > self.cfg.max_entry_bytes {
            let result = ClientResult::TooLarge {
                size: data.len(),
                max: self.cfg.max_entry_bytes,
            };
            return self.reply(id, result);
        }
        if !self.admit(id) {
            return;
        }
        let index = self.append_as_leader(Entry::new(id, EntryType::State, self.term, data));
        self.leader_state().waiting.insert(index, id);
        self.reply(id, ClientResult::Accepted { index });
    }

    /// Whether a client request with this id should be appended now. If not, it has been
    /// answered: not the leader, an id too old or from the future, or already in the log
    /// (idempotence: the answer names the first copy).
    fn admit(&mut self, id: RequestId) -> bool {
        if self.role != Role::Leader || self.transferring() {
            // A leader handing over takes no requests: the new leader will.
            let leader = self.leader.clone().filter(|_| !self.transferring());
            self.reply(id, ClientResult::NotLeader { leader });
            return false;
        }
        use crate::dedup::Freshness;
        let freshness =
            self.requests
                .freshness(id, self.now.unix_secs, self.cfg.request_id_max_future_secs);
        match freshness {
            Freshness::Expired => self.reply(id, ClientResult::Expired),
            Freshness::InFuture => self.reply(id, ClientResult::InFuture),
            Freshness::Fresh => match self.requests.get(&id) {
                None => return true,
                Some(index) if index <= self.commit => {
                    self.reply(id, ClientResult::Committed { index })
                }
                Some(index) => {
                    self.leader_state().waiting.insert(index, id);
                    self.reply(id, ClientResult::Accepted { index });
                }
            },
        }
        false
    }

    /// The driver made every write up to and including `upto` durable.
    pub fn persisted(&mut self, upto: WriteId) {
        if upto <= self.durable_write {
            return;
        }
        if upto > self.last_write {
            log::error!(
                "{}: driver reported write {} durable, but only {} were issued; ignored",
                self.cfg.id,
                upto.0,
                self.last_write.0
            );
            return;
        }
        self.durable_write = upto;
        let mut last_durable = None;
        while let Some(&(w, _, last)) = self.pending_log_writes.front() {
            if w > upto {
                break;
            }
            self.pending_log_writes.pop_front();
            last_durable = Some(last);
        }
        if let Some(last) = last_durable {
            let pending_first = self.pending_log_writes.iter().map(|p| p.1).min();
            self.log.on_durable(last, pending_first);
            if self.role == Role::Leader {
                self.maybe_commit();
            }
        }
        while self.held.front().is_some_and(|h| h.after <= upto) {
            let h = self.held.pop_front().expect("checked non-empty");
            self.deliver(h.to, h.msg);
        }
    }

    /// The next thing for the driver to do, in order; `None` when there is nothing left.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.outputs.is_empty() {
            self.flush();
        }
        self.outputs.pop_front()
    }

    // ---- internals shared by the roles ----

    /// Whether a planted bug is active; always false in normal builds.
    #[inline(always)]
    fn has_bug(&self, _bug: Bug) -> bool {
        #[cfg(feature = "broken")]
        return self.cfg.bug == Some(_bug);
        #[cfg(not(feature = "broken"))]
        false
    }

    /// Turns accumulated work into outputs: the pending log write, appends to followers, and
    /// entries ready to apply. Deferred to here so that many proposals make one write and one
    /// message per follower.
    fn flush(&mut self) {
        self.issue_log_write();
        if self.replicate_pending {
            self.replicate_pending = false;
            self.broadcast_append();
        }
        self.flush_read_round();
        self.maybe_apply();
        self.serve_reads();
    }

    fn issue_log_write(&mut self) {
        if let Some((first, entries)) = self.log.take_unwritten() {
            let id = self.next_write_id();
            let last = first.plus(entries.len() as u64).prev();
            self.pending_log_writes.push_back((id, first, last));
            self.outputs
                .push_back(Output::Write(id, Write::Log { first, entries }));
        }
    }

    fn next_write_id(&mut self) -> WriteId {
        self.last_write = WriteId(self.last_write.0 + 1);
        self.last_write
    }

    fn persist_hard_state(&mut self) {
        let id = self.next_write_id();
        let hs = HardState {
            term: self.term,
            voted_for: self.voted_for.clone(),
        };
        self.outputs
            .push_back(Output::Write(id, Write::HardState(hs)));
    }

    /// Sends `msg` once every write issued so far is durable.
    fn send_after_durable(&mut self, to: PeerId, msg: Message) {
        self.issue_log_write();
        let planted =
            matches!(msg, Message::AppendResponse(_)) && self.has_bug(Bug::AckBeforeDurable);
        if self.durable_write >= self.last_write || planted {
            self.deliver(to, msg);
        } else {
            let after = self.last_write;
            self.held.push_back(Held { after, to, msg });
        }
    }

    fn deliver(&mut self, to: PeerId, msg: Message) {
        if to != self.cfg.id {
            self.outputs.push_back(Output::Send(to, msg));
        } else if let Message::VoteResponse(v) = msg {
            // A candidate's own vote, counted only now that it is durable.
            if v.term == self.term {
                let me = self.cfg.id.clone();
                self.handle_vote_response(&me, v);
            }
        }
    }

    fn reply(&mut self, id: RequestId, result: ClientResult) {
        self.outputs.push_back(Output::Reply(id, result));
    }

    fn announce(&mut self) {
        self.outputs.push_back(Output::Changed {
            role: self.role,
            term: self.term,
            leader: self.leader.clone(),
        });
    }

    /// Would this peer's vote alone make a majority (a one-voter cluster)?
    fn alone_is_quorum(&self) -> bool {
        let me = &self.cfg.id;
        self.membership.quorum(|p| p == me)
    }

    fn random_election_timeout(&mut self) -> u64 {
        let span = self.cfg.election_timeout_max_ms - self.cfg.election_timeout_min_ms;
        self.cfg.election_timeout_min_ms + self.rng.next_u64() % span
    }

    fn reset_election_timer(&mut self) {
        let timeout = self.random_election_timeout();
        self.election_due = self.now.mono.plus_ms(timeout);
    }

    fn set_commit(&mut self, index: LogIndex) {
        if index <= self.commit {
            return;
        }
        assert!(
            index <= self.log.last_index(),
            "{}: commit {index} beyond last index {}",
            self.cfg.id,
            self.log.last_index()
        );
        self.commit = index;
    }

    /// Hands committed, locally durable entries to the state machine.
    fn maybe_apply(&mut self) {
        let upto = self.commit.min(self.log.durable());
        if upto > self.applied {
            let first = self.applied.next();
            let entries = self.log.range(first, upto);
            debug_assert_eq!(entries.len() as u64, upto.0 - self.applied.0);
            self.applied = upto;
            self.outputs.push_back(Output::Apply { first, entries });
        }
    }

    /// Appends entries received from a leader, after truncating a conflicting suffix; keeps the
    /// request-id table in step with the log.
    fn replace_log_suffix(&mut self, from: LogIndex, entries: &[Entry]) {
        assert!(
            from > self.commit,
            "{}: refusing to truncate committed entries from {from} (commit {})",
            self.cfg.id,
            self.commit
        );
        assert!(
            self.role != Role::Leader,
            "a leader never truncates its own log"
        );
        let mut reconfigured = false;
        for (i, e) in (from.0..).zip(self.log.truncate_from(from)) {
            self.requests.remove(&e.request_id(), LogIndex(i));
            reconfigured |= e.kind() == EntryType::Config;
        }
        self.config_log.retain(|(i, _)| *i < from);
        for e in entries {
            let idx = self.log.last_index().next();
            self.requests
                .insert(e.request_id(), idx, self.now.unix_secs);
            self.log.append(e.clone());
            reconfigured |= self.note_config_entry(idx, e);
        }
        if reconfigured {
            self.refresh_membership();
        }
    }

    fn append_as_leader(&mut self, entry: Entry) -> LogIndex {
        debug_assert_eq!(entry.term(), self.term);
        let idx = self.log.last_index().next();
        self.requests
            .insert(entry.request_id(), idx, self.now.unix_secs);
        let reconfigured = self.note_config_entry(idx, &entry);
        self.log.append(entry);
        self.replicate_pending = true;
        if reconfigured {
            self.refresh_membership();
        }
        idx
    }

    fn leader_state(&mut self) -> &mut LeaderState {
        match &mut self.state {
            RoleState::Leader(l) => l,
            _ => unreachable!("leader state asked for in role {:?}", self.role),
        }
    }

    /// Steps down to follower of `term` (raising the term persists it, with the vote cleared).
    fn become_follower(&mut self, term: Term, leader: Option<PeerId>) {
        assert!(term >= self.term, "terms never go back");
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard_state();
        }
        let was_leader = self.role == Role::Leader;
        if was_leader || self.leader != leader {
            let old = std::mem::replace(&mut self.leader, leader.clone());
            self.abandon_reads(was_leader);
            self.leader = old;
        }
        if let RoleState::Leader(l) = std::mem::replace(&mut self.state, RoleState::Follower) {
            let leader = leader.clone();
            for (_, id) in l.waiting {
                self.reply(
                    id,
                    ClientResult::NotLeader {
                        leader: leader.clone(),
                    },
                );
            }
        }
        let changed = self.role != Role::Follower || self.leader != leader;
        self.role = Role::Follower;
        self.state = RoleState::Follower;
        self.leader = leader;
        self.replicate_pending = false;
        self.reset_election_timer();
        if changed {
            self.announce();
        }
    }
}

#[cfg(not(feature = "broken"))]
#[derive(Clone, Copy)]
enum Bug {
    AckBeforeDurable,
    CommitOldTerm,
    SkipTruncate,
    DoubleVote,
    ReadWithoutRound,
    SkipJointStep,
    CompactPastCommit,
}

#[cfg(test)]
mod tests;
