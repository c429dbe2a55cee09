//! Membership change by joint consensus, as zmq-raft's ConfigUpdate does it: the leader
//! appends Cold,new; once that commits it appends Cnew; a leader not in Cnew steps down once
//! Cnew commits. A configuration takes effect as soon as it is in a log, committed or not.

use super::{Bug, Node, Progress, RoleState};
use crate::entry::{Entry, EntryType, RequestId};
use crate::membership::{Member, Membership};
use crate::output::{ClientResult, Role};
use crate::types::{LogIndex, Now, PeerId};
use std::collections::BTreeSet;

impl Node {
    /// Asks the cluster to move to the configuration `new`. Idempotent by request id; the
    /// answer comes as `Output::Reply(id, ..)`: `Accepted`, then `Committed { index }` once the
    /// joint configuration commits (the final one follows by itself), or `Busy`,
    /// `InvalidConfig`, `NotLeader`, `Expired`.
    pub fn change_membership(&mut self, now: Now, id: RequestId, new: Vec<Member>) {
        self.advance_clock(now);
        if !self.admit(id) {
            return;
        }
        let last_config = self.config_log.last().map_or(LogIndex::ZERO, |c| c.0);
        if self.membership.is_joint() || last_config > self.commit {
            return self.reply(id, ClientResult::Busy);
        }
        if let Err(e) = self.membership.validate_change(&new) {
            return self.reply(id, ClientResult::InvalidConfig(e.0));
        }
        let joint = if self.has_bug(Bug::SkipJointStep) {
            Membership::simple(new)
        } else {
            Membership {
                old: self.membership.old.clone(),
                new: Some(new),
            }
        };
        let entry = Entry::new(id, EntryType::Config, self.term, &joint.encode());
        let index = self.append_as_leader(entry);
        log::info!("{}: joint configuration at {index}", self.cfg.id);
        self.leader_state().waiting.insert(index, id);
        self.reply(id, ClientResult::Accepted { index });
    }

    /// The membership in force.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Records a CONFIG entry appended at `index`; returns whether it was one.
    pub(super) fn note_config_entry(&mut self, index: LogIndex, entry: &Entry) -> bool {
        if entry.kind() != EntryType::Config {
            return false;
        }
        match Membership::decode(entry.data()) {
            Ok(m) => {
                self.config_log.push((index, m));
                true
            }
            Err(e) => {
                log::error!("{}: CONFIG entry at {index} ignored: {e}", self.cfg.id);
                false
            }
        }
    }

    /// Recomputes what derives from the membership in force.
    pub(super) fn refresh_membership(&mut self) {
        self.membership = self
            .config_log
            .last()
            .map_or_else(|| self.base_membership.clone(), |c| c.1.clone());
        self.voters = self.membership.voters();
        let me = self.cfg.id.clone();
        let targets: BTreeSet<PeerId> = self
            .voters
            .iter()
            .chain(self.learners.iter())
            .filter(|p| **p != me)
            .cloned()
            .collect();
        self.others = targets.iter().cloned().collect();
        let next = self.log.last_index().next();
        let now = self.now.mono;
        if let RoleState::Leader(l) = &mut self.state {
            l.progress.retain(|p, _| targets.contains(p));
            for p in &targets {
                l.progress
                    .entry(p.clone())
                    .or_insert_with(|| Progress::new(next, now));
            }
            self.replicate_pending = true;
        }
    }

    /// After a commit: a committed joint configuration is followed by the final one; a leader
    /// left out of a committed final configuration steps down.
    pub(super) fn advance_membership(&mut self) {
        let Some((index, m)) = self.config_log.last() else {
            return;
        };
        if *index > self.commit || self.role != Role::Leader {
            return;
        }
        if let Some(new) = &m.new {
            let fin = Membership::simple(new.clone());
            let entry = Entry::new(RequestId::ZERO, EntryType::Config, self.term, &fin.encode());
            let at = self.append_as_leader(entry);
            log::info!("{}: final configuration at {at}", self.cfg.id);
        } else if !self.voters.contains(&self.cfg.id) {
            log::info!(
                "{}: not in the committed configuration; stepping down",
                self.cfg.id
            );
            let term = self.term;
            self.become_follower(term, None);
        }
    }
}
