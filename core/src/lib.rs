//! A Sans-IO Raft core speaking zmq-raft's log format. See [`Node`] for the contract.

#[cfg(feature = "broken")]
pub mod broken;
pub mod config;
mod dedup;
pub mod entry;
pub mod membership;
pub mod message;
mod node;
pub mod output;
pub mod persist;
mod progress;
mod raft_log;
#[doc(hidden)]
pub mod testkit;
pub mod types;

pub use config::Config;
pub use entry::{Entry, EntryError, EntryType, RequestId, ENTRY_HEADER_LEN};
pub use membership::{Member, Membership, MembershipError};
pub use message::{
    AppendEntries, AppendOutcome, AppendResponse, InstallSnapshot, InstallSnapshotResponse,
    Message, ReadIndexRequest, ReadIndexResponse, RequestVote, VoteResponse,
};
pub use node::{Node, TransferError};
pub use output::{ClientResult, Output, ReadResult, Role};
pub use persist::{HardState, Recovered, SnapshotMeta, Write};
pub use types::{LogIndex, Now, PeerId, ReadId, Term, Time, WriteId};
