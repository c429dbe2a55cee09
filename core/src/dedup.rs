//! The table of request ids already in the log, which makes client updates idempotent.
//!
//! Ids carry the second they were made in; an id older than the TTL is both refused and
//! forgotten, so the table holds only the ids of the last TTL and stays bounded.

use crate::entry::RequestId;
use crate::types::LogIndex;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct RequestTable {
    /// Keyed by the id read as a big-endian integer: its top 32 bits are the creation second,
    /// so the map's order is also expiry order, and comparisons are integer compares.
    by_id: BTreeMap<u128, LogIndex>,
    ttl_secs: u64,
}

/// Why a request id is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    Fresh,
    Expired,
    InFuture,
}

fn key(id: &RequestId) -> u128 {
    let mut b = [0u8; 16];
    b[4..].copy_from_slice(&id.0);
    u128::from_be_bytes(b)
}

fn secs_of(key: u128) -> u64 {
    (key >> 64) as u64
}

impl RequestTable {
    pub fn new(ttl_secs: u64) -> RequestTable {
        RequestTable {
            ttl_secs,
            ..Default::default()
        }
    }

    pub fn freshness(&self, id: RequestId, now_secs: u64, max_future_secs: u64) -> Freshness {
        let made = id.unix_secs() as u64;
        if made + self.ttl_secs < now_secs {
            Freshness::Expired
        } else if made > now_secs + max_future_secs {
            Freshness::InFuture
        } else {
            Freshness::Fresh
        }
    }

    pub fn get(&self, id: &RequestId) -> Option<LogIndex> {
        self.by_id.get(&key(id)).copied()
    }

    /// Remembers that `id` sits at `index`. The first copy wins: a duplicate is never appended,
    /// so a second insert only happens when replaying a log, where the first index is kept.
    pub fn insert(&mut self, id: RequestId, index: LogIndex, now_secs: u64) {
        if id.is_zero() || (id.unix_secs() as u64) + self.ttl_secs < now_secs {
            return;
        }
        self.by_id.entry(key(&id)).or_insert(index);
    }

    /// Forgets `id` if it was recorded at `index` (the entry was truncated away).
    pub fn remove(&mut self, id: &RequestId, index: LogIndex) {
        let k = key(id);
        if self.by_id.get(&k) == Some(&index) {
            self.by_id.remove(&k);
        }
    }

    /// Drops ids past their TTL.
    pub fn expire(&mut self, now_secs: u64) {
        while let Some((&k, _)) = self.by_id.first_key_value() {
            if secs_of(k) + self.ttl_secs >= now_secs {
                break;
            }
            self.by_id.pop_first();
        }
    }

    /// The lowest log index a remembered id sits at: compacting the log below it would lose
    /// nothing the deduplication still needs (RAFT.md's PRUNE INDEX, plus one).
    pub fn lowest_index(&self) -> Option<LogIndex> {
        self.by_id.values().min().copied()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(secs: u32, n: u32) -> RequestId {
        RequestId::from_parts(secs, [1, 2, 3], 7, n)
    }

    #[test]
    fn first_copy_wins_and_truncation_forgets() {
        let mut t = RequestTable::new(100);
        t.insert(id(1000, 1), LogIndex(5), 1000);
        t.insert(id(1000, 1), LogIndex(9), 1000);
        assert_eq!(t.get(&id(1000, 1)), Some(LogIndex(5)));
        t.remove(&id(1000, 1), LogIndex(9));
        assert_eq!(t.get(&id(1000, 1)), Some(LogIndex(5)));
        t.remove(&id(1000, 1), LogIndex(5));
        assert_eq!(t.get(&id(1000, 1)), None);
    }

    #[test]
    fn ids_expire_by_their_own_timestamp() {
        let mut t = RequestTable::new(100);
        t.insert(id(1000, 1), LogIndex(1), 1000);
        t.insert(id(1050, 2), LogIndex(2), 1050);
        t.expire(1101);
        assert_eq!(t.get(&id(1000, 1)), None);
        assert_eq!(t.get(&id(1050, 2)), Some(LogIndex(2)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.freshness(id(1000, 3), 1101, 10), Freshness::Expired);
        assert_eq!(t.freshness(id(1000, 3), 1100, 10), Freshness::Fresh);
        assert_eq!(t.freshness(id(1111, 3), 1100, 10), Freshness::InFuture);
        // An id already past its TTL is not even remembered.
        t.insert(id(900, 4), LogIndex(3), 1101);
        assert_eq!(t.get(&id(900, 4)), None);
    }
}
