//! Leadership transfer: the leader brings a named follower up to date, stops taking
//! proposals, and tells it to campaign at once (TimeoutNow). An election timeout later the
//! transfer is abandoned if it has not happened.

use super::{Node, RoleState};
use crate::message::Message;
use crate::output::{Output, Role};
use crate::types::{Now, PeerId};

/// Why a transfer cannot start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferError {
    NotLeader,
    /// The target is this leader or not a voter of the configuration.
    BadTarget(PeerId),
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::NotLeader => f.write_str("only the leader can transfer leadership"),
            TransferError::BadTarget(p) => write!(f, "{p} is not another voting member"),
        }
    }
}

impl std::error::Error for TransferError {}

impl Node {
    /// Hands leadership to `target`. Proposals are refused until the transfer completes (this
    /// node steps down on seeing the new term) or is abandoned an election timeout later.
    pub fn transfer_leadership(&mut self, now: Now, target: &PeerId) -> Result<(), TransferError> {
        self.advance_clock(now);
        if self.role != Role::Leader {
            return Err(TransferError::NotLeader);
        }
        if target == self.id() || !self.voters.contains(target) {
            return Err(TransferError::BadTarget(target.clone()));
        }
        let until = self.now.mono.plus_ms(self.cfg.election_timeout_min_ms);
        let RoleState::Leader(l) = &mut self.state else {
            unreachable!("checked the role");
        };
        l.transfer = Some((target.clone(), until));
        log::info!("{}: transferring leadership to {target}", self.cfg.id);
        let target = target.clone();
        self.maybe_send_timeout_now(&target);
        self.send_appends_to(&target);
        Ok(())
    }

    pub(super) fn transferring(&self) -> bool {
        matches!(&self.state, RoleState::Leader(l) if l.transfer.is_some())
    }

    /// Once TimeoutNow has gone out, some voter may vote inside our lease.
    pub(super) fn lease_forfeited(&self) -> bool {
        matches!(&self.state, RoleState::Leader(l) if l.transferred)
    }

    /// Sends TimeoutNow if `peer` is the transfer target and holds our whole log.
    pub(super) fn maybe_send_timeout_now(&mut self, peer: &PeerId) {
        let last = self.log.last_index();
        let term = self.term;
        let RoleState::Leader(l) = &mut self.state else {
            return;
        };
        let Some((target, _)) = &l.transfer else {
            return;
        };
        let caught_up = l.progress.get(peer).is_some_and(|p| p.match_index == last);
        if target == peer && caught_up {
            l.transferred = true;
            self.reads_forfeit_lease();
            self.outputs
                .push_back(Output::Send(peer.clone(), Message::TimeoutNow { term }));
        }
    }

    pub(super) fn expire_transfer(&mut self) {
        let now = self.now.mono;
        if let RoleState::Leader(l) = &mut self.state {
            if l.transfer.as_ref().is_some_and(|(_, until)| now >= *until) {
                log::info!("{}: leadership transfer abandoned", self.cfg.id);
                l.transfer = None;
            }
        }
    }

    /// The leader asks us to campaign now: skip pre-vote, and let voters skip their lease.
    pub(super) fn handle_timeout_now(&mut self, from: &PeerId) {
        if self.role == Role::Follower && self.leader.as_ref() == Some(from) && self.is_voter() {
            log::info!("{}: campaigning at once on {from}'s request", self.cfg.id);
            self.campaign(true);
        }
    }
}
