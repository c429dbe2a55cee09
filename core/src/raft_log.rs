//! The in-memory view of the replicated log, and which prefix of it is known durable.

use crate::entry::Entry;
use crate::types::{LogIndex, Term};

#[derive(Debug)]
pub(crate) struct RaftLog {
    /// Index just before `entries[0]`: 0, or the last index a snapshot covers.
    start: LogIndex,
    start_term: Term,
    entries: Vec<Entry>,
    /// Highest index such that the disk holds exactly this log's prefix up to it.
    durable: LogIndex,
    /// Lowest index changed in memory and not yet handed to the driver as a write.
    unwritten_from: Option<LogIndex>,
}

impl RaftLog {
    pub fn recovered(start: LogIndex, start_term: Term, entries: Vec<Entry>) -> RaftLog {
        let durable = start.plus(entries.len() as u64);
        let log = RaftLog {
            start,
            start_term,
            entries,
            durable,
            unwritten_from: None,
        };
        log.assert_terms_monotonic();
        log
    }

    fn assert_terms_monotonic(&self) {
        let mut t = self.start_term;
        for e in &self.entries {
            assert!(e.term() >= t, "recovered log terms decrease");
            t = e.term();
        }
    }

    pub fn start(&self) -> LogIndex {
        self.start
    }

    pub fn last_index(&self) -> LogIndex {
        self.start.plus(self.entries.len() as u64)
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.start_term, Entry::term)
    }

    pub fn durable(&self) -> LogIndex {
        self.durable
    }

    /// The term of the entry at `index`, if this log holds it (or it is the snapshot's last).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.start {
            return Some(self.start_term);
        }
        self.get(index).map(Entry::term)
    }

    pub fn get(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.start {
            return None;
        }
        self.entries.get((index.0 - self.start.0 - 1) as usize)
    }

    /// Entries from `from`, at most `max_count` and about `max_bytes` (always at least one
    /// when any exists, so a single large entry still moves).
    pub fn slice(&self, from: LogIndex, max_count: usize, max_bytes: usize) -> Vec<Entry> {
        if from <= self.start || from > self.last_index() {
            return Vec::new();
        }
        let lo = (from.0 - self.start.0 - 1) as usize;
        let mut bytes = 0;
        let mut out = Vec::new();
        for e in self.entries[lo..].iter().take(max_count) {
            if !out.is_empty() && bytes + e.len() > max_bytes {
                break;
            }
            bytes += e.len();
            out.push(e.clone());
        }
        out
    }

    /// Entries in `[from, to]`, for applying.
    pub fn range(&self, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        if from > to || from <= self.start || to > self.last_index() {
            return Vec::new();
        }
        let lo = (from.0 - self.start.0 - 1) as usize;
        let hi = (to.0 - self.start.0) as usize;
        self.entries[lo..hi].to_vec()
    }

    /// Appends at the end. Terms never decrease along the log.
    pub fn append(&mut self, entry: Entry) {
        assert!(
            entry.term() >= self.last_term(),
            "log terms must not decrease: appending term {} after {}",
            entry.term(),
            self.last_term()
        );
        let idx = self.last_index().next();
        self.entries.push(entry);
        self.mark_unwritten(idx);
    }

    /// Removes every entry at `from` and after; returns them (their request ids must be
    /// forgotten).
    pub fn truncate_from(&mut self, from: LogIndex) -> Vec<Entry> {
        assert!(from > self.start, "cannot truncate into the snapshot");
        if from > self.last_index() {
            return Vec::new();
        }
        let keep = (from.0 - self.start.0 - 1) as usize;
        let removed = self.entries.split_off(keep);
        // Disk still holds the old suffix until the write that replaces it is durable.
        self.durable = self.durable.min(from.prev());
        self.mark_unwritten(from);
        removed
    }

    fn mark_unwritten(&mut self, idx: LogIndex) {
        self.unwritten_from = Some(self.unwritten_from.map_or(idx, |u| u.min(idx)));
    }

    /// Takes the pending change as one write: (first index, entries from it).
    pub fn take_unwritten(&mut self) -> Option<(LogIndex, Vec<Entry>)> {
        let from = self.unwritten_from.take()?;
        Some((from, self.range(from, self.last_index())))
    }

    /// A log write ending at `last` (and starting at `first`) became durable. `pending_first`
    /// is the lowest first index among writes still not durable: they may cut what this one
    /// wrote.
    pub fn on_durable(&mut self, last: LogIndex, pending_first: Option<LogIndex>) {
        let mut d = last.min(self.last_index());
        if let Some(p) = pending_first {
            d = d.min(p.prev());
        }
        if let Some(u) = self.unwritten_from {
            d = d.min(u.prev());
        }
        // What a snapshot covers is durable whatever older writes report.
        self.durable = d.max(self.start);
    }

    /// Forgets entries up to `upto` (a snapshot covers them).
    pub fn compact(&mut self, upto: LogIndex) {
        if upto <= self.start {
            return;
        }
        let term = self.term_at(upto).expect("compaction within the log");
        let n = (upto.0 - self.start.0) as usize;
        self.entries.drain(..n);
        self.start = upto;
        self.start_term = term;
        self.durable = self.durable.max(upto);
    }

    /// A snapshot up to (`index`, `term`) was installed: keep what follows it if this log
    /// agrees at `index`, else start empty after it.
    pub fn install(&mut self, index: LogIndex, term: Term) {
        if index <= self.last_index() && self.term_at(index) == Some(term) {
            self.compact(index);
            return;
        }
        self.entries.clear();
        self.start = index;
        self.start_term = term;
        self.durable = index;
        self.unwritten_from = None;
    }

    /// First index holding `term`, searching the run of `term` that ends at `at`.
    pub fn first_index_of_term_run(&self, at: LogIndex, term: Term) -> LogIndex {
        // Terms never decrease, so the run is found by binary search.
        let lo = self.entries.partition_point(|e| e.term() < term);
        let first = self.start.plus(lo as u64 + 1);
        first.min(at)
    }

    /// Last index whose term is `term` or lower, if it holds `term` at all; used by a leader to
    /// jump over a follower's conflicting term.
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let hi = self.entries.partition_point(|e| e.term() <= term);
        if hi == 0 {
            return (self.start_term == term).then_some(self.start);
        }
        (self.entries[hi - 1].term() == term).then(|| self.start.plus(hi as u64))
    }

    /// Is a log ending at (`last_index`, `last_term`) at least as up to date as this one?
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    pub fn iter_from(&self, from: LogIndex) -> impl Iterator<Item = (LogIndex, &Entry)> {
        let lo = from.0.saturating_sub(self.start.0 + 1) as usize;
        let start = self.start;
        self.entries
            .iter()
            .enumerate()
            .skip(lo)
            .map(move |(i, e)| (start.plus(i as u64 + 1), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryType, RequestId};

    fn e(term: u64) -> Entry {
        Entry::new(RequestId::ZERO, EntryType::State, Term(term), b"x")
    }

    fn log_of(terms: &[u64]) -> RaftLog {
        RaftLog::recovered(LogIndex(0), Term(0), terms.iter().map(|&t| e(t)).collect())
    }

    #[test]
    fn term_search() {
        let log = log_of(&[1, 1, 4, 4, 4, 5, 6]);
        assert_eq!(
            log.first_index_of_term_run(LogIndex(5), Term(4)),
            LogIndex(3)
        );
        assert_eq!(log.last_index_of_term(Term(4)), Some(LogIndex(5)));
        assert_eq!(log.last_index_of_term(Term(2)), None);
        assert_eq!(log.last_index_of_term(Term(6)), Some(LogIndex(7)));
        assert_eq!(log.last_index_of_term(Term(0)), Some(LogIndex(0)));
    }

    #[test]
    fn truncation_cuts_durable_prefix() {
        let mut log = log_of(&[1, 1, 1]);
        assert_eq!(log.durable(), LogIndex(3));
        let removed = log.truncate_from(LogIndex(2));
        assert_eq!(removed.len(), 2);
        assert_eq!(log.durable(), LogIndex(1));
        log.append(e(2));
        let (first, entries) = log.take_unwritten().unwrap();
        assert_eq!((first, entries.len()), (LogIndex(2), 1));
        log.on_durable(LogIndex(2), None);
        assert_eq!(log.durable(), LogIndex(2));
    }

    #[test]
    #[should_panic(expected = "must not decrease")]
    fn decreasing_terms_are_refused() {
        let mut log = log_of(&[3]);
        log.append(e(2));
    }

    #[test]
    fn slice_respects_limits_but_moves_one_big_entry() {
        let log = log_of(&[1, 1, 1, 1]);
        assert_eq!(log.slice(LogIndex(2), 2, usize::MAX).len(), 2);
        assert_eq!(log.slice(LogIndex(1), 10, 1).len(), 1);
        assert_eq!(log.slice(LogIndex(5), 10, 100).len(), 0);
    }
}
