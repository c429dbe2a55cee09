//! What the core asks its driver to do.

use crate::entry::{Entry, RequestId};
use crate::message::Message;
use crate::persist::{SnapshotMeta, Write};
use crate::types::{LogIndex, PeerId, ReadId, Term, WriteId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Follower,
    /// Asking for pre-votes; the term has not been raised.
    PreCandidate,
    Candidate,
    Leader,
}

/// The answer to a client proposal, keyed by its request id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientResult {
    /// The update is in the leader's log at `index`, not yet committed. A final result follows.
    Accepted { index: LogIndex },
    /// Committed at `index` (the index of the first copy, for a repeated request id).
    Committed { index: LogIndex },
    /// This peer is not the leader; retry with the one named, if known.
    NotLeader { leader: Option<PeerId> },
    /// The request id's timestamp is older than the TTL: final, the update is refused.
    Expired,
    /// The request id's timestamp lies too far in the future (client clock skew).
    InFuture,
    /// The payload exceeds the configured maximum entry size.
    TooLarge { size: usize, max: usize },
    /// A membership change is already in progress; retry later.
    Busy,
    /// The requested configuration is refused.
    InvalidConfig(String),
}

/// The outcome of [`crate::Node::read`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadResult {
    Ready,
    /// No leader could confirm the read; retry, with the one named if known.
    NotLeader {
        leader: Option<PeerId>,
    },
}

/// One thing for the driver to do. Drain with `Node::poll_output` after every input, and carry
/// each out in the order received:
///
/// * `Write`: perform writes in `WriteId` order and report `Node::persisted(id)` once durable
///   (fsynced). One report covers every earlier write, so group commit is free.
/// * `Send`: send at once. Nothing that depends on an unsynced write is ever emitted.
/// * `Apply`: committed entries, contiguous and in order, ready for the state machine.
/// * `Reply`: answer the client waiting on that request id.
/// * `Read`: a read is linearizable at this point (or failed).
/// * `Changed`: role, term or leader changed (for logs, monitors and clients).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Write(WriteId, Write),
    Send(PeerId, Message),
    Apply {
        first: LogIndex,
        entries: Vec<Entry>,
    },
    Reply(RequestId, ClientResult),
    /// The outcome of a linearizable read: on `Ready`, serve it from the state machine now
    /// (every `Apply` it needs came before).
    Read(ReadId, ReadResult),
    Changed {
        role: Role,
        term: Term,
        leader: Option<PeerId>,
    },
    /// Store this chunk of a snapshot being received from the leader, at `offset`.
    SnapshotChunk {
        index: LogIndex,
        term: Term,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    },
    /// Every chunk arrived: make the snapshot durable, load it into the state machine, then
    /// call `Node::snapshot_installed`.
    InstallSnapshot(SnapshotMeta),
}
