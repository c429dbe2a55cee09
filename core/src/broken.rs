//! Deliberately broken variants of the core, compiled in only with the `broken` feature, so
//! the simulator can prove it catches each kind of bug. Normal builds cannot enable them.

/// A bug to plant in the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// A follower acknowledges an append before the entries are durable.
    AckBeforeDurable,
    /// The leader commits by counting replicas of an entry from an earlier term.
    CommitOldTerm,
    /// A follower keeps a conflicting suffix instead of truncating it.
    SkipTruncate,
    /// A peer grants a second vote in a term.
    DoubleVote,
    /// A restarted peer forgets the request ids in its log.
    ForgetRequestIds,
    /// A leader serves a ReadIndex read without confirming its leadership first.
    ReadWithoutRound,
    /// A membership change goes straight to the new configuration, without the joint step.
    SkipJointStep,
    /// Log compaction ignores the commit index (and what was applied).
    CompactPastCommit,
}

impl Bug {
    pub const ALL: [Bug; 8] = [
        Bug::AckBeforeDurable,
        Bug::CommitOldTerm,
        Bug::SkipTruncate,
        Bug::DoubleVote,
        Bug::ForgetRequestIds,
        Bug::ReadWithoutRound,
        Bug::SkipJointStep,
        Bug::CompactPastCommit,
    ];
}
