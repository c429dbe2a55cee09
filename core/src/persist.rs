//! What the core asks the driver to make durable, and what the driver hands back on start.

use crate::entry::Entry;
use crate::membership::Membership;
use crate::types::{LogIndex, PeerId, Term};

/// The state Raft must never forget: the current term and the vote cast in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<PeerId>,
}

/// A durable write. The driver performs writes in the order it receives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Remove every log entry at `first` and after, then store `entries` starting at `first`.
    /// A plain append has `first == last index + 1` and removes nothing.
    Log {
        first: LogIndex,
        entries: Vec<Entry>,
    },
    /// Replace the hard state.
    HardState(HardState),
    /// Entries up to `upto` may be deleted: a durable snapshot covers them. Nothing waits for
    /// this one; it only frees space.
    Compact { upto: LogIndex },
}

/// What a snapshot covers: every entry up to `index` (of `term`), and the configuration in
/// force there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
    pub membership: Membership,
}

/// What a peer recovered from its disk at start-up.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    /// Index of the entry just before `entries[0]` (0 for a log that starts at 1; later, the
    /// index covered by a snapshot).
    pub log_start: LogIndex,
    /// Term of the entry at `log_start` (0 when `log_start` is 0).
    pub log_start_term: Term,
    /// Every durable entry after `log_start`, in order.
    pub entries: Vec<Entry>,
    /// The configuration at `log_start`, when a snapshot covers it (CONFIG entries after it
    /// are in `entries`).
    pub membership: Option<Membership>,
}
