//! The invariants checked while a scenario runs. Each returns a `Violation` naming the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use zmq_raft_core::{Entry, EntryType, LogIndex, Node, RequestId, Term};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

fn violation(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

#[derive(Default)]
pub struct Checker {
    leaders: BTreeMap<Term, usize>,
    /// The one applied history every peer must follow.
    canonical: Vec<Entry>,
    applied_ids: BTreeSet<RequestId>,
    /// Request ids acknowledged to clients as committed, with the index given.
    acked: BTreeMap<RequestId, LogIndex>,
    commit: Vec<LogIndex>,
    /// The highest index any peer ever committed.
    max_commit: LogIndex,
    /// Every (index, term) any log ever held, with its entry and the term before it: Log
    /// Matching, checked incrementally as logs are written.
    written: BTreeMap<(LogIndex, Term), (Entry, Term)>,
}

/// What the commit-stability check needs to know about one peer's log.
pub struct PeerLog {
    /// Its log (in memory if running, on disk if down) holds the committed entry.
    pub holds: bool,
    /// Its durable log holds the committed entry.
    pub holds_durably: bool,
    /// (last term, last index) of the log it would campaign with.
    pub last: (Term, LogIndex),
}

impl Checker {
    pub fn new(peers: usize) -> Checker {
        Checker {
            commit: vec![LogIndex(0); peers],
            ..Default::default()
        }
    }

    pub fn committed_len(&self) -> u64 {
        self.canonical.len() as u64
    }

    /// At most one leader per term; a new leader holds every entry known committed.
    pub fn on_leader(&mut self, peer: usize, node: &Node) -> Result<(), Violation> {
        let term = node.term();
        if let Some(&other) = self.leaders.get(&term) {
            if other != peer {
                return violation(
                    "one leader per term",
                    format!("peers {other} and {peer} both lead term {term}"),
                );
            }
        }
        self.leaders.insert(term, peer);
        let start = node.log_start().0 as usize;
        for (i, e) in self.canonical.iter().enumerate().skip(start) {
            let idx = LogIndex(i as u64 + 1);
            if node.entry(idx) != Some(e) {
                return violation(
                    "leader completeness",
                    format!(
                        "leader {peer} of term {term} lacks committed entry {idx} ({e:?}); has {:?}",
                        node.entry(idx)
                    ),
                );
            }
        }
        Ok(())
    }

    /// A peer applied entries: they must agree with what anyone applied at those indexes, and
    /// no request id may be applied twice.
    pub fn on_apply(
        &mut self,
        peer: usize,
        first: LogIndex,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        for (k, e) in entries.iter().enumerate() {
            let idx = first.0 as usize + k;
            if idx <= self.canonical.len() {
                if &self.canonical[idx - 1] != e {
                    return violation(
                        "state machine safety",
                        format!(
                            "peer {peer} applied {e:?} at {idx} where {:?} was applied before",
                            self.canonical[idx - 1]
                        ),
                    );
                }
                continue;
            }
            if idx != self.canonical.len() + 1 {
                return violation(
                    "applied in order",
                    format!("peer {peer} applied {idx} past {}", self.canonical.len()),
                );
            }
            let rid = e.request_id();
            if e.kind() == EntryType::State && !rid.is_zero() && !self.applied_ids.insert(rid) {
                return violation(
                    "request applied once",
                    format!("request id {rid} applied again at index {idx}"),
                );
            }
            if let Some(&acked) = self.acked.get(&rid) {
                if acked.0 as usize != idx {
                    return violation(
                        "acknowledged never lost",
                        format!("request {rid} acknowledged at {acked} but applied at {idx}"),
                    );
                }
            }
            self.canonical.push(e.clone());
        }
        Ok(())
    }

    /// A client was told `rid` committed at `index`.
    pub fn on_ack(&mut self, rid: RequestId, index: LogIndex) -> Result<(), Violation> {
        if let Some(e) = self.canonical.get(index.0.wrapping_sub(1) as usize) {
            if e.request_id() != rid {
                return violation(
                    "acknowledged never lost",
                    format!("request {rid} acknowledged at {index}, which holds {e:?}"),
                );
            }
        }
        self.acked.insert(rid, index);
        Ok(())
    }

    pub fn max_commit(&self) -> LogIndex {
        self.max_commit
    }

    /// Raft's commit is stable the moment it happens: a majority holds the entry durably, and
    /// every peer lacking it has a log less up to date than the entry, so it can never win an
    /// election. Checked whenever the cluster's highest commit index grows; this is what makes
    /// a commit of an earlier term's entry by counting replicas (Raft figure 8) visible at once.
    ///
    /// `groups` are the committing leader's configuration (two while joint), as peer indexes.
    pub fn on_new_commit(
        &mut self,
        index: LogIndex,
        entry: &Entry,
        peers: &[PeerLog],
        groups: &[Vec<usize>],
    ) -> Result<(), Violation> {
        self.max_commit = index;
        for g in groups {
            let durable = g.iter().filter(|&&p| peers[p].holds_durably).count();
            if durable <= g.len() / 2 {
                return violation(
                    "committed entries are durable on a majority",
                    format!(
                        "index {index} ({entry:?}) committed but durable on only {durable} of the {} peers {g:?}",
                        g.len()
                    ),
                );
            }
        }
        let bound = (entry.term(), index);
        for (i, p) in peers.iter().enumerate() {
            if !p.holds && p.last >= bound {
                return violation(
                    "committed entries are stable",
                    format!(
                        "index {index} ({entry:?}) committed, but peer {i} lacks it with a log ending at {}@t{}, up to date enough to win an election",
                        p.last.1, p.last.0
                    ),
                );
            }
        }
        Ok(())
    }

    /// A peer's commit index never goes back while it runs.
    pub fn on_commit(&mut self, peer: usize, commit: LogIndex) -> Result<(), Violation> {
        if commit < self.commit[peer] {
            return violation(
                "commit never goes back",
                format!("peer {peer} commit {} -> {commit}", self.commit[peer]),
            );
        }
        self.commit[peer] = commit;
        Ok(())
    }

    /// A restarted peer's disk still holds everything it applied before the crash: it only
    /// applies what is durable.
    pub fn on_restart(
        &mut self,
        peer: usize,
        recovered: &zmq_raft_core::Recovered,
        applied_before: LogIndex,
    ) -> Result<(), Violation> {
        self.commit[peer] = LogIndex(0);
        // What a snapshot covers was applied; the log must hold the rest.
        let start = recovered.log_start.0 as usize;
        for i in start..applied_before.0 as usize {
            let got = recovered.entries.get(i - start);
            if got != self.canonical.get(i) {
                return violation(
                    "durable before applied",
                    format!(
                        "peer {peer} applied up to {applied_before} but recovered {got:?} at {}",
                        i + 1
                    ),
                );
            }
        }
        Ok(())
    }

    /// The state a snapshot holds must be the canonical history's at its index.
    pub fn check_snapshot_state(
        &self,
        peer: usize,
        index: LogIndex,
        kv: &crate::kv::KvStore,
    ) -> Result<(), Violation> {
        let Some(prefix) = self.canonical.get(..index.0 as usize) else {
            return violation(
                "snapshots hold committed state",
                format!("peer {peer} has a snapshot at {index}, past everything applied"),
            );
        };
        let mut expect = crate::kv::KvStore::default();
        for (i, e) in prefix.iter().enumerate() {
            expect.apply(LogIndex(i as u64 + 1), e);
        }
        if !expect.same_data(kv) {
            return violation(
                "snapshots hold committed state",
                format!("peer {peer}'s snapshot at {index} differs from the applied history"),
            );
        }
        Ok(())
    }

    /// A peer wrote `entry` at `index` after an entry of `prev_term`. An (index, term) pair
    /// names one entry and one predecessor term everywhere, which by induction is Log Matching:
    /// logs agreeing on an index's term agree on everything up to it.
    pub fn on_log_write(
        &mut self,
        peer: usize,
        index: LogIndex,
        entry: &Entry,
        prev_term: Term,
    ) -> Result<(), Violation> {
        match self.written.get(&(index, entry.term())) {
            Some((e, t)) if e != entry || *t != prev_term => violation(
                "log matching",
                format!(
                    "peer {peer} wrote {entry:?} after term {prev_term} at {index}, where another log holds {e:?} after term {t}"
                ),
            ),
            Some(_) => Ok(()),
            None => {
                self.written
                    .insert((index, entry.term()), (entry.clone(), prev_term));
                Ok(())
            }
        }
    }

    /// A crash lost nothing the core was told is durable: the recovered log starts with the
    /// durable log, and the term and vote are those last synced (or newer).
    pub fn on_recovery(
        &mut self,
        peer: usize,
        durable: &crate::disk::Disk,
        recovered: &zmq_raft_core::Recovered,
    ) -> Result<(), Violation> {
        // A pending write that cuts the log un-reports what it cuts: the core stopped counting
        // it as durable when it issued the write.
        let cut = durable
            .pending
            .iter()
            .filter_map(|(_, w)| match w {
                zmq_raft_core::Write::Log { first, .. } => Some(first.prev()),
                _ => None,
            })
            .min()
            .unwrap_or(LogIndex(u64::MAX));
        let reported = durable.last().1.min(cut);
        // Below the recovered start a durable snapshot stands for the entries.
        let from = durable.start.max(recovered.log_start);
        let at = |i: LogIndex| {
            let k = i.0.checked_sub(recovered.log_start.0 + 1)?;
            recovered.entries.get(k as usize)
        };
        let mut i = from.next();
        while i <= reported {
            if at(i) != durable.entry(i) {
                return violation(
                    "durable writes survive a crash",
                    format!(
                        "peer {peer} recovered {:?} at index {i} where {:?} was reported durable",
                        at(i),
                        durable.entry(i)
                    ),
                );
            }
            i = i.next();
        }
        let (was, now) = (&durable.hard_state, &recovered.hard_state);
        if now.term < was.term
            || (now.term == was.term && was.voted_for.is_some() && now.voted_for != was.voted_for)
        {
            return violation(
                "durable writes survive a crash",
                format!(
                    "peer {peer} recovered hard state {now:?} after {was:?} was reported durable"
                ),
            );
        }
        Ok(())
    }

    /// Log matching: if two logs hold the same term at an index, they are identical up to it.
    pub fn log_matching(&self, nodes: &[(usize, &Node)]) -> Result<(), Violation> {
        for (a, (pa, na)) in nodes.iter().enumerate() {
            for (pb, nb) in &nodes[a + 1..] {
                let top = na.last_index().min(nb.last_index());
                // Below either log's start a snapshot stands for the entries.
                let floor = na.log_start().max(nb.log_start());
                let mut i = top;
                while i > floor && na.term_at(i) != nb.term_at(i) {
                    i = i.prev();
                }
                let mut k = i;
                while k > floor {
                    if na.entry(k) != nb.entry(k) {
                        return violation(
                            "log matching",
                            format!(
                                "peers {pa} and {pb} agree on the term at {i} but differ at {k}: {:?} vs {:?}",
                                na.entry(k),
                                nb.entry(k)
                            ),
                        );
                    }
                    k = k.prev();
                }
            }
        }
        Ok(())
    }

    /// At the end: every acknowledged request is in the applied history where it was said to be.
    pub fn final_check(&self) -> Result<(), Violation> {
        for (rid, idx) in &self.acked {
            match self.canonical.get(idx.0 as usize - 1) {
                Some(e) if e.request_id() == *rid => {}
                other => {
                    return violation(
                        "acknowledged never lost",
                        format!(
                            "request {rid} acknowledged at {idx}, applied history has {other:?}"
                        ),
                    )
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zmq_raft_core::{EntryType, RequestId};

    fn e(term: u64, n: u32) -> Entry {
        Entry::new(
            RequestId::from_parts(1, [0; 3], 0, n),
            EntryType::State,
            Term(term),
            b"",
        )
    }

    fn peer(holds: bool, durably: bool, last: (u64, u64)) -> PeerLog {
        PeerLog {
            holds,
            holds_durably: durably,
            last: (Term(last.0), LogIndex(last.1)),
        }
    }

    #[test]
    fn figure_8_commit_is_unstable() {
        let mut c = Checker::new(3);
        // Index 2 of term 2 "committed" while peer 2 holds a term-3 entry there.
        let logs = [
            peer(true, true, (4, 3)),
            peer(true, true, (2, 2)),
            peer(false, false, (3, 2)),
        ];
        let all = [vec![0, 1, 2]];
        let v = c
            .on_new_commit(LogIndex(2), &e(2, 1), &logs, &all)
            .unwrap_err();
        assert_eq!(v.invariant, "committed entries are stable");
        // Committing the term-4 entry at 3 on a majority is fine.
        let logs = [
            peer(true, true, (4, 3)),
            peer(true, true, (4, 3)),
            peer(false, false, (3, 2)),
        ];
        assert!(c.on_new_commit(LogIndex(3), &e(4, 2), &logs, &all).is_ok());
    }

    #[test]
    fn commit_without_durable_majority_is_caught() {
        let mut c = Checker::new(3);
        let logs = [
            peer(true, true, (1, 1)),
            peer(true, false, (1, 1)),
            peer(false, false, (0, 0)),
        ];
        let v = c
            .on_new_commit(LogIndex(1), &e(1, 1), &logs, &[vec![0, 1, 2]])
            .unwrap_err();
        assert_eq!(v.invariant, "committed entries are durable on a majority");
    }

    #[test]
    fn different_entries_applied_at_one_index_are_caught() {
        let mut c = Checker::new(2);
        c.on_apply(0, LogIndex(1), &[e(1, 1)]).unwrap();
        let v = c.on_apply(1, LogIndex(1), &[e(1, 2)]).unwrap_err();
        assert_eq!(v.invariant, "state machine safety");
    }

    #[test]
    fn a_request_applied_twice_is_caught() {
        let mut c = Checker::new(1);
        c.on_apply(0, LogIndex(1), &[e(1, 1)]).unwrap();
        let v = c.on_apply(0, LogIndex(2), &[e(1, 1)]).unwrap_err();
        assert_eq!(v.invariant, "request applied once");
    }

    #[test]
    fn an_acknowledged_request_must_be_where_it_was_acknowledged() {
        let mut c = Checker::new(1);
        c.on_ack(e(1, 7).request_id(), LogIndex(1)).unwrap();
        let v = c.on_apply(0, LogIndex(1), &[e(1, 8)]);
        assert!(
            v.is_ok(),
            "a different entry may sit there until the ack is checked"
        );
        assert_eq!(
            c.final_check().unwrap_err().invariant,
            "acknowledged never lost"
        );
    }
}
