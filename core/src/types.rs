//! Newtypes for the numbers Raft juggles, so a term can never be passed where an index is due.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// A Raft term. Terms only ever grow on a peer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

impl Term {
    /// The largest term the 7-byte on-wire entry header can carry.
    pub const MAX: Term = Term((1 << 56) - 1);

    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A position in the replicated log. Index 0 is the empty prefix; the first entry is 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    pub const ZERO: LogIndex = LogIndex(0);

    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one; saturates at zero.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }

    pub fn plus(self, n: u64) -> LogIndex {
        LogIndex(self.0 + n)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A peer's identity: zmq-raft peer ids are arbitrary strings. Cheap to clone because every
/// message to send carries one; a driver that reuses the node's own `PeerId` values makes
/// comparisons a pointer check.
#[derive(Clone, PartialOrd, Ord)]
pub struct PeerId(Arc<str>);

impl std::hash::Hash for PeerId {
    // Hashes the text, consistent with equality (pointer equality implies equal text).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialEq for PeerId {
    fn eq(&self, other: &PeerId) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for PeerId {}

impl PeerId {
    pub fn new(id: &str) -> PeerId {
        PeerId(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for PeerId {
    fn from(id: &str) -> PeerId {
        PeerId::new(id)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        let s = String::deserialize(d)?;
        Ok(PeerId(Arc::from(s)))
    }
}

/// Monotonic time in milliseconds, as the driver's clock reads it. The core never reads a clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    pub fn plus_ms(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }

    pub fn since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// What the driver knows about "now": monotonic milliseconds for timers, and the wall-clock
/// second, needed only because request ids carry their creation second and expire by it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub mono: Time,
    pub unix_secs: u64,
}

impl Now {
    pub fn new(mono_ms: u64, unix_secs: u64) -> Now {
        Now {
            mono: Time(mono_ms),
            unix_secs,
        }
    }
}

/// The driver's name for one linearizable read, unique among its reads in flight on this node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ReadId(pub u64);

/// Identifies a durable write the core asked for. The driver performs writes in `WriteId`
/// order; reporting `persisted(w)` promises every write up to and including `w` is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(pub u64);
