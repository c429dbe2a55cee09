//! Messages peers exchange. Transport-neutral: serde derives let any driver encode them; the
//! ZeroMQ shell maps them onto zmq-raft's frames.

use crate::entry::Entry;
use crate::types::{LogIndex, Term};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    RequestVote(RequestVote),
    VoteResponse(VoteResponse),
    AppendEntries(AppendEntries),
    AppendResponse(AppendResponse),
    /// A follower asks the leader for a read index on behalf of its read `ctx`.
    ReadIndex(ReadIndexRequest),
    ReadIndexResponse(ReadIndexResponse),
    /// Leadership transfer: the leader tells an up-to-date follower to campaign at once.
    TimeoutNow {
        term: Term,
    },
    InstallSnapshot(InstallSnapshot),
    InstallSnapshotResponse(InstallSnapshotResponse),
}

/// One chunk of the leader's snapshot, for a follower that needs entries it compacted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshot {
    pub term: Term,
    /// Last index and term the snapshot covers.
    pub index: LogIndex,
    pub last_term: Term,
    /// The configuration at `index`, MessagePack-encoded as in CONFIG entries.
    pub membership: Vec<u8>,
    /// Where `data` sits in the snapshot, and the snapshot's size.
    pub offset: u64,
    pub total: u64,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    pub term: Term,
    pub index: LogIndex,
    /// The offset to send next: where a lost chunk resumes.
    pub next_offset: u64,
    /// The snapshot is installed (or was not needed): replicate entries after `index`.
    pub done: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexRequest {
    pub term: Term,
    pub ctx: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexResponse {
    pub term: Term,
    pub ctx: u64,
    /// The index the read must wait for, or `None` when the responder is not (or no longer)
    /// the leader.
    pub index: Option<LogIndex>,
}

/// A vote request. With `pre_vote` set it asks "would you vote for me in `term`?" and changes
/// nothing on the receiver: that is how a partitioned peer avoids inflating terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    pub term: Term,
    pub last_log_index: LogIndex,
    pub last_log_term: Term,
    pub pre_vote: bool,
    /// Sent on the leader's own request (TimeoutNow): voters skip the leader-lease check.
    pub transfer: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteResponse {
    /// For a granted pre-vote, the term asked about; otherwise the responder's term.
    pub term: Term,
    pub granted: bool,
    pub pre_vote: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    pub term: Term,
    pub prev_log_index: LogIndex,
    pub prev_log_term: Term,
    pub leader_commit: LogIndex,
    pub entries: Vec<Entry>,
    /// The leader's latest read-confirmation round; echoed in the response, it proves the
    /// follower still accepted this leader after the round began (ReadIndex).
    pub read_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResponse {
    pub term: Term,
    pub outcome: AppendOutcome,
    /// The `read_seq` of the AppendEntries answered.
    pub read_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log matches the leader's (and is durable) up to `match_index`.
    Success { match_index: LogIndex },
    /// The follower has no entry matching `rejected` (the request's previous index). The hint
    /// lets the leader skip a whole term per round trip (Raft thesis 5.3): `hint_term` is the
    /// term the follower holds at `rejected` (0 when its log is shorter) and `hint_index` the
    /// first index it holds in that term (its last index + 1 when shorter).
    Conflict {
        rejected: LogIndex,
        hint_term: Term,
        hint_index: LogIndex,
    },
}

impl Message {
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote(m) => m.term,
            Message::VoteResponse(m) => m.term,
            Message::AppendEntries(m) => m.term,
            Message::AppendResponse(m) => m.term,
            Message::ReadIndex(m) => m.term,
            Message::ReadIndexResponse(m) => m.term,
            Message::TimeoutNow { term } => *term,
            Message::InstallSnapshot(m) => m.term,
            Message::InstallSnapshotResponse(m) => m.term,
        }
    }

    /// A short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::RequestVote(m) if m.pre_vote => "PreVote",
            Message::RequestVote(_) => "RequestVote",
            Message::VoteResponse(m) if m.pre_vote => "PreVoteResponse",
            Message::VoteResponse(_) => "VoteResponse",
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendResponse(_) => "AppendResponse",
            Message::ReadIndex(_) => "ReadIndex",
            Message::ReadIndexResponse(_) => "ReadIndexResponse",
            Message::TimeoutNow { .. } => "TimeoutNow",
            Message::InstallSnapshot(_) => "InstallSnapshot",
            Message::InstallSnapshotResponse(_) => "InstallSnapshotResponse",
        }
    }
}
