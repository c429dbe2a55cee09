//! Rule-by-rule tests of the node, on the in-memory cluster of `testkit`.

use crate::testkit::Cluster;
use crate::*;

fn entry(term: u64) -> Entry {
    Entry::new(RequestId::ZERO, EntryType::State, Term(term), b"x")
}

fn entries(terms: &[u64]) -> Vec<Entry> {
    terms.iter().map(|&t| entry(t)).collect()
}

fn recovered(term: u64, terms: &[u64]) -> Recovered {
    Recovered {
        hard_state: HardState {
            term: Term(term),
            voted_for: None,
        },
        entries: entries(terms),
        ..Default::default()
    }
}

fn committed(c: &Cluster, i: usize) -> LogIndex {
    c.node(i).commit_index()
}

/// Sends `msg` to `node` and returns what it emits (the node's outputs, drained).
fn step_and_drain(node: &mut Node, now: Now, from: &str, msg: Message) -> Vec<Output> {
    node.step(now, &PeerId::new(from), msg);
    std::iter::from_fn(|| node.poll_output()).collect()
}

fn sends(outs: &[Output]) -> Vec<&Message> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send(_, m) => Some(m),
            _ => None,
        })
        .collect()
}

fn last_write(outs: &[Output]) -> Option<WriteId> {
    outs.iter().rev().find_map(|o| match o {
        Output::Write(w, _) => Some(*w),
        _ => None,
    })
}

/// A time past a fresh node's quiet period, when it may vote.
fn after_quiet() -> Now {
    Now::new(1_000, 0)
}

fn three_node(id: &str) -> Node {
    let cfg = Config::new(PeerId::new(id), vec!["a".into(), "b".into(), "c".into()]);
    Node::new(cfg, Recovered::default(), 7, Now::new(0, 1_700_000_000))
}

#[test]
fn single_node_elects_itself_and_commits_its_checkpoint() {
    let mut c = Cluster::new(1);
    let leader = c.elect();
    assert_eq!(leader, c.id(0));
    assert_eq!(c.node(0).term(), Term(1));
    assert_eq!(c.node(0).last_index(), LogIndex(1));
    assert_eq!(committed(&c, 0), LogIndex(1));
    assert_eq!(
        c.node(0).entry(LogIndex(1)).unwrap().kind(),
        EntryType::Checkpoint
    );
}

#[test]
fn three_nodes_elect_one_leader_and_replicate() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    for n in 0..100 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, format!("v{n}").as_bytes());
    }
    c.advance(100);
    for i in 0..3 {
        assert_eq!(committed(&c, i), LogIndex(101), "peer {i}");
        assert_eq!(c.applied[&c.id(i)].len(), 101);
    }
    let first = &c.applied[&c.id(0)];
    for i in 1..3 {
        assert_eq!(
            &c.applied[&c.id(i)],
            first,
            "peer {i} applied other entries"
        );
    }
    let done = c
        .replies
        .iter()
        .filter(|(_, _, r)| matches!(r, ClientResult::Committed { .. }))
        .count();
    assert_eq!(done, 100);
    assert_eq!(c.leaders().len(), 1);
}

#[test]
fn follower_refuses_proposals_naming_the_leader() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let follower = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    let rid = c.request_id(1);
    c.propose(&follower, rid, b"x");
    let (_, id, res) = c.replies.last().unwrap();
    assert_eq!(*id, rid);
    assert_eq!(
        *res,
        ClientResult::NotLeader {
            leader: Some(leader)
        }
    );
}

#[test]
fn a_repeated_request_id_is_appended_once() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let rid = c.request_id(9);
    c.auto_sync = false;
    c.propose(&leader, rid, b"once");
    let first_index = c.nodes[&leader].last_index();
    // Retried before it commits: answered with the first copy's index, nothing appended.
    c.propose(&leader, rid, b"once");
    assert_eq!(c.nodes[&leader].last_index(), first_index);
    assert_eq!(
        c.replies.last().unwrap().2,
        ClientResult::Accepted { index: first_index }
    );
    c.auto_sync = true;
    c.advance(100);
    // Retried after it committed: the committed index of the first copy.
    c.propose(&leader, rid, b"once");
    assert_eq!(c.nodes[&leader].last_index(), first_index);
    assert_eq!(
        c.replies.last().unwrap().2,
        ClientResult::Committed { index: first_index }
    );
    let copies = c.applied[&leader]
        .iter()
        .filter(|e| e.request_id() == rid)
        .count();
    assert_eq!(copies, 1);
}

#[test]
fn a_new_leader_still_deduplicates_ids_it_learnt_as_follower() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let rid = c.request_id(5);
    c.propose(&leader, rid, b"x");
    c.advance(100);
    let index = c.nodes[&leader].last_index();
    c.crash(&leader);
    let new_leader = c.elect();
    assert_ne!(new_leader, leader);
    c.propose(&new_leader, rid, b"x");
    assert_eq!(
        c.replies.last().unwrap().2,
        ClientResult::Committed { index }
    );
}

#[test]
fn request_ids_expire_by_their_timestamp() {
    let mut c = Cluster::new(1);
    let leader = c.elect();
    let rid = c.request_id(1);
    c.propose(&leader, rid, b"x");
    c.advance(10);
    assert_eq!(c.nodes[&leader].remembered_request_ids(), 1);
    let ttl = c.nodes[&leader].config().request_id_ttl_secs;
    c.unix_secs += ttl + 1;
    c.advance(100);
    // Forgotten, and a retry is refused rather than applied twice.
    assert_eq!(c.nodes[&leader].remembered_request_ids(), 0);
    c.propose(&leader, rid, b"x");
    assert_eq!(c.replies.last().unwrap().2, ClientResult::Expired);
    let future = RequestId::from_parts((c.unix_secs + 2 * 3600) as u32, [0; 3], 1, 1);
    c.propose(&leader, future, b"x");
    assert_eq!(c.replies.last().unwrap().2, ClientResult::InFuture);
}

#[test]
fn oversized_proposals_are_refused() {
    let mut c = Cluster::with_config(1, |cfg| cfg.max_entry_bytes = 10);
    let leader = c.elect();
    let rid = c.request_id(1);
    c.propose(&leader, rid, &[0; 11]);
    assert_eq!(
        c.replies.last().unwrap().2,
        ClientResult::TooLarge { size: 11, max: 10 }
    );
}

#[test]
fn pre_vote_keeps_a_partitioned_peer_from_inflating_terms() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let term = c.nodes[&leader].term();
    let loner = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    c.isolate(&loner);
    c.advance(5_000);
    // Many election timeouts passed, yet the loner never raised its term.
    assert_eq!(c.nodes[&loner].term(), term);
    assert_eq!(c.nodes[&loner].role(), Role::PreCandidate);
    c.heal();
    c.advance(1_000);
    assert_eq!(c.leaders(), vec![leader.clone()]);
    assert_eq!(
        c.nodes[&leader].term(),
        term,
        "the healthy leader was deposed"
    );
    assert_eq!(c.nodes[&loner].leader(), Some(&leader));
}

#[test]
fn a_vote_request_inside_the_leader_lease_is_ignored() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let follower = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    let other = c
        .ids
        .iter()
        .find(|p| **p != leader && **p != follower)
        .unwrap()
        .clone();
    let term = c.nodes[&leader].term();
    let rv = RequestVote {
        term: Term(term.0 + 5),
        last_log_index: LogIndex(100),
        last_log_term: Term(term.0 + 4),
        pre_vote: false,
        transfer: false,
    };
    c.deliver(other, follower.clone(), Message::RequestVote(rv));
    assert_eq!(c.nodes[&follower].term(), term);
    assert_eq!(c.nodes[&follower].leader(), Some(&leader));
}

#[test]
fn check_quorum_makes_an_isolated_leader_step_down() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    c.isolate(&leader);
    c.advance(1_000);
    assert_ne!(c.nodes[&leader].role(), Role::Leader);
    let others: Vec<_> = c.leaders();
    assert_eq!(others.len(), 1);
    assert_ne!(others[0], leader);
}

#[test]
fn a_stale_leader_steps_down_and_loses_its_uncommitted_entries() {
    let mut c = Cluster::with_config(3, |cfg| {
        // Keep the old leader in place long enough to take a doomed proposal.
        cfg.election_timeout_min_ms = 1_000;
        cfg.election_timeout_max_ms = 2_000;
    });
    let old = c.elect();
    let old_term = c.nodes[&old].term();
    c.isolate(&old);
    let rid = c.request_id(77);
    c.propose(&old, rid, b"doomed");
    let doomed_index = c.nodes[&old].last_index();
    // The other two elect a leader of a higher term.
    let others: Vec<PeerId> = c.ids.iter().filter(|p| **p != old).cloned().collect();
    for _ in 0..100 {
        c.advance(100);
        if others.iter().any(|p| c.nodes[p].role() == Role::Leader) {
            break;
        }
    }
    let new = others
        .iter()
        .find(|p| c.nodes[*p].role() == Role::Leader)
        .expect("a new leader")
        .clone();
    assert!(c.nodes[&new].term() > old_term);
    let rid2 = c.request_id(78);
    c.propose(&new, rid2, b"kept");
    c.advance(100);
    c.heal();
    c.advance(500);
    assert_eq!(c.leaders(), vec![new.clone()]);
    let e = c.nodes[&old].entry(doomed_index).unwrap();
    assert_ne!(e.request_id(), rid, "the uncommitted entry survived");
    assert!(c.applied[&old].iter().any(|e| e.request_id() == rid2));
    assert!(!c.applied[&old].iter().any(|e| e.request_id() == rid));
}

#[test]
fn a_candidate_with_a_shorter_log_is_denied() {
    let cfg = Config::new(PeerId::new("a"), vec!["a".into(), "b".into(), "c".into()]);
    let mut node = Node::new(cfg, recovered(2, &[1, 2, 2]), 1, Now::new(0, 0));
    let shorter = RequestVote {
        term: Term(3),
        last_log_index: LogIndex(2),
        last_log_term: Term(2),
        pre_vote: false,
        transfer: false,
    };
    let outs = step_and_drain(&mut node, after_quiet(), "b", Message::RequestVote(shorter));
    // The term is adopted (a write), the vote refused.
    let w = last_write(&outs).expect("term persisted");
    node.persisted(w);
    let outs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    let msgs = sends(&outs);
    assert!(matches!(
        msgs[..],
        [Message::VoteResponse(VoteResponse { granted: false, .. })]
    ));
    assert_eq!(node.term(), Term(3));
    assert_eq!(node.voted_for(), None);
    // A lower last term loses even with a longer log.
    let older = RequestVote {
        term: Term(3),
        last_log_index: LogIndex(10),
        last_log_term: Term(1),
        pre_vote: false,
        transfer: false,
    };
    let outs = step_and_drain(&mut node, after_quiet(), "c", Message::RequestVote(older));
    assert!(matches!(
        sends(&outs)[..],
        [Message::VoteResponse(VoteResponse { granted: false, .. })]
    ));
    // An up-to-date candidate wins the vote, once, and only after the vote is durable.
    let good = RequestVote {
        term: Term(3),
        last_log_index: LogIndex(3),
        last_log_term: Term(2),
        pre_vote: false,
        transfer: false,
    };
    let outs = step_and_drain(
        &mut node,
        after_quiet(),
        "c",
        Message::RequestVote(good.clone()),
    );
    assert!(sends(&outs).is_empty(), "vote left before it was durable");
    node.persisted(last_write(&outs).unwrap());
    let outs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    assert!(matches!(
        sends(&outs)[..],
        [Message::VoteResponse(VoteResponse { granted: true, .. })]
    ));
    let outs = step_and_drain(&mut node, after_quiet(), "b", Message::RequestVote(good));
    assert!(
        matches!(
            sends(&outs)[..],
            [Message::VoteResponse(VoteResponse { granted: false, .. })]
        ),
        "two votes in one term"
    );
    assert_eq!(node.voted_for(), Some(&PeerId::new("c")));
}

#[test]
fn an_append_is_acknowledged_only_once_durable() {
    let mut node = three_node("b");
    let ae = AppendEntries {
        term: Term(1),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        leader_commit: LogIndex(0),
        entries: entries(&[1, 1]),
        read_seq: 0,
    };
    let outs = step_and_drain(&mut node, Now::new(0, 0), "a", Message::AppendEntries(ae));
    assert!(sends(&outs).is_empty(), "acknowledged before durable");
    let writes: Vec<_> = outs
        .iter()
        .filter(|o| matches!(o, Output::Write(..)))
        .collect();
    assert_eq!(writes.len(), 2, "hard state and log");
    node.persisted(last_write(&outs).unwrap());
    let outs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    assert_eq!(
        sends(&outs),
        vec![&Message::AppendResponse(AppendResponse {
            term: Term(1),
            outcome: AppendOutcome::Success {
                match_index: LogIndex(2)
            },
            read_seq: 0,
        })]
    );
}

#[test]
fn a_leader_counts_its_own_entry_only_once_durable() {
    let mut c = Cluster::new(1);
    let leader = c.elect();
    c.auto_sync = false;
    let rid = c.request_id(1);
    c.propose(&leader, rid, b"x");
    c.advance(10);
    assert_eq!(c.nodes[&leader].commit_index(), LogIndex(1));
    c.sync(&leader);
    assert_eq!(c.nodes[&leader].commit_index(), LogIndex(2));
}

#[test]
fn a_candidate_counts_its_own_vote_only_once_durable() {
    let mut c = Cluster::new(1);
    c.auto_sync = false;
    c.advance(1_000);
    let id = c.id(0);
    assert_eq!(c.nodes[&id].role(), Role::Candidate);
    c.sync(&id);
    assert_eq!(c.nodes[&id].role(), Role::Leader);
}

#[test]
fn conflict_hint_names_the_conflicting_term_and_its_first_index() {
    let cfg = Config::new(PeerId::new("b"), vec!["a".into(), "b".into(), "c".into()]);
    let mut node = Node::new(cfg, recovered(3, &[1, 2, 2, 2, 3]), 1, Now::new(0, 0));
    let probe = |prev: u64, prev_term: u64| {
        Message::AppendEntries(AppendEntries {
            term: Term(4),
            prev_log_index: LogIndex(prev),
            prev_log_term: Term(prev_term),
            leader_commit: LogIndex(0),
            entries: vec![],
            read_seq: 0,
        })
    };
    let mut answer = |msg| {
        let outs = step_and_drain(&mut node, Now::new(0, 0), "a", msg);
        if let Some(w) = last_write(&outs) {
            node.persisted(w);
        }
        let outs: Vec<Output> = outs
            .into_iter()
            .chain(std::iter::from_fn(|| node.poll_output()))
            .collect();
        match sends(&outs)[..] {
            [Message::AppendResponse(r)] => r.outcome.clone(),
            ref other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        answer(probe(4, 4)),
        AppendOutcome::Conflict {
            rejected: LogIndex(4),
            hint_term: Term(2),
            hint_index: LogIndex(2)
        }
    );
    assert_eq!(
        answer(probe(9, 4)),
        AppendOutcome::Conflict {
            rejected: LogIndex(9),
            hint_term: Term(0),
            hint_index: LogIndex(6)
        }
    );
    assert_eq!(
        answer(probe(5, 3)),
        AppendOutcome::Success {
            match_index: LogIndex(5)
        }
    );
}

#[test]
fn a_stale_append_never_truncates_a_longer_matching_log() {
    let mut node = three_node("b");
    let ae = |n: usize| {
        Message::AppendEntries(AppendEntries {
            term: Term(1),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            leader_commit: LogIndex(0),
            entries: entries(&vec![1; n]),
            read_seq: 0,
        })
    };
    let outs = step_and_drain(&mut node, Now::new(0, 0), "a", ae(3));
    node.persisted(last_write(&outs).unwrap());
    while node.poll_output().is_some() {}
    // A delayed copy of an earlier, shorter append arrives late.
    let outs = step_and_drain(&mut node, Now::new(0, 0), "a", ae(1));
    assert_eq!(node.last_index(), LogIndex(3));
    assert!(matches!(
        sends(&outs)[..],
        [Message::AppendResponse(AppendResponse {
            outcome: AppendOutcome::Success {
                match_index: LogIndex(1)
            },
            ..
        })]
    ));
}

#[test]
fn election_messages_from_non_members_are_dropped() {
    let mut node = three_node("b");
    let rv = RequestVote {
        term: Term(9),
        last_log_index: LogIndex(9),
        last_log_term: Term(9),
        pre_vote: false,
        transfer: true,
    };
    let outs = step_and_drain(
        &mut node,
        after_quiet(),
        "stranger",
        Message::RequestVote(rv),
    );
    assert!(outs.is_empty());
    assert_eq!(node.term(), Term(0));
    assert_eq!(node.voted_for(), None);
    let outs = step_and_drain(
        &mut node,
        after_quiet(),
        "stranger",
        Message::TimeoutNow { term: Term(0) },
    );
    assert!(outs.is_empty());
    assert_eq!(node.role(), Role::Follower);
}

#[test]
fn a_learner_never_campaigns() {
    let cfg = Config::new(PeerId::new("d"), vec!["a".into(), "b".into(), "c".into()]);
    let mut node = Node::new(cfg, Recovered::default(), 1, Now::new(0, 0));
    for t in 1..100 {
        node.tick(Now::new(t * 1000, 0));
        while let Some(o) = node.poll_output() {
            assert!(!matches!(o, Output::Send(..)), "learner sent {o:?}");
        }
    }
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.term(), Term(0));
}

#[test]
fn split_votes_resolve() {
    let mut c = Cluster::new(4);
    // Put p1 and p2 into candidacy for the same term before anyone hears from the other.
    let (p1, p2, p3, p4) = (c.id(0), c.id(1), c.id(2), c.id(3));
    c.now_ms = 1_000;
    let now = c.now();
    for p in [&p1, &p2] {
        c.nodes.get_mut(p).unwrap().tick(now);
        c.drain(p);
    }
    // Pre-votes granted all round, making both candidates in term 1.
    while let Some((from, to, msg)) = c.net.pop_front() {
        if matches!(&msg, Message::RequestVote(rv) if !rv.pre_vote) {
            c.net.push_front((from, to, msg));
            break;
        }
        c.deliver(from, to, msg);
    }
    assert_eq!(c.nodes[&p1].role(), Role::Candidate);
    assert_eq!(c.nodes[&p2].role(), Role::Candidate);
    // p3 hears p1 first, p4 hears p2 first: two votes each, no majority of four.
    let mut msgs: Vec<_> = c.net.drain(..).collect();
    msgs.sort_by_key(|(from, to, _)| {
        let first = (from == &p1 && to == &p3) || (from == &p2 && to == &p4);
        !first
    });
    for (from, to, msg) in msgs {
        c.deliver(from, to, msg);
    }
    c.deliver_all();
    assert!(c.leaders().is_empty(), "the vote was meant to split");
    assert_eq!(c.nodes[&p3].voted_for(), Some(&p1));
    assert_eq!(c.nodes[&p4].voted_for(), Some(&p2));
    // Randomized timeouts break the tie.
    let leader = c.elect();
    assert!(c.nodes[&leader].term() >= Term(2));
}

/// Figure 7 of the Raft paper: a leader of term 8 and six followers with missing, extra and
/// conflicting entries. After replication every log equals the leader's.
#[test]
fn figure_7_logs_converge_to_the_leaders() {
    let logs: [&[u64]; 7] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6],       // leader
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],          // a: missing one
        &[1, 1, 1, 4],                         // b: missing many
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],    // c: one extra
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // d: extra of a later term
        &[1, 1, 1, 4, 4, 4, 4],                // e: conflicting term 4 run
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],    // f: conflicting terms 2 and 3
    ];
    let mut c = Cluster::new(7);
    for (i, log) in logs.iter().enumerate() {
        let id = c.id(i);
        c.crash(&id);
        let disk = c.disks.get_mut(&id).unwrap();
        disk.log = entries(log);
        disk.hard_state.term = Term(7);
        c.restart(&id);
    }
    // Only the leader's timer fires; everyone else just answers.
    let leader = c.id(0);
    let mut rounds = 0;
    while c.nodes[&leader].role() != Role::Leader {
        rounds += 1;
        assert!(rounds < 50, "leader not elected");
        c.now_ms = c.nodes[&leader].next_deadline().0;
        let now = c.now();
        c.nodes.get_mut(&leader).unwrap().tick(now);
        c.deliver_all();
    }
    assert_eq!(c.nodes[&leader].term(), Term(8));
    // Replicate with heartbeats driven by the leader alone.
    for _ in 0..20 {
        c.now_ms = c.nodes[&leader].next_deadline().0;
        let now = c.now();
        c.nodes.get_mut(&leader).unwrap().tick(now);
        c.deliver_all();
    }
    let expect: Vec<Term> = (1..=11)
        .map(|i| c.nodes[&leader].term_at(LogIndex(i)).unwrap())
        .collect();
    assert_eq!(expect.last(), Some(&Term(8)), "checkpoint of term 8");
    for i in 1..7 {
        let n = c.node(i);
        let got: Vec<Term> = (1..=n.last_index().0)
            .map(|k| n.term_at(LogIndex(k)).unwrap())
            .collect();
        assert_eq!(got, expect, "follower {i}");
        assert_eq!(n.commit_index(), LogIndex(11));
    }
}

/// Figure 8: an entry of an earlier term replicated on a majority must not be committed by
/// counting replicas; only the commit of a current-term entry commits it.
#[test]
fn figure_8_old_term_entries_commit_only_through_a_current_term_entry() {
    let mut c = Cluster::with_config(5, |cfg| cfg.max_batch_entries = 1);
    let logs: [&[u64]; 5] = [&[1, 2], &[1, 2], &[1], &[1], &[1, 3]];
    for (i, log) in logs.iter().enumerate() {
        let id = c.id(i);
        c.crash(&id);
        let disk = c.disks.get_mut(&id).unwrap();
        disk.log = entries(log);
        disk.hard_state.term = Term(3);
        c.restart(&id);
    }
    // Only s1's timer fires; the check runs after every single delivery, from the election on.
    let s1 = c.id(0);
    let mut saw_old_entry_on_majority = false;
    for _ in 0..40 {
        c.now_ms = c.nodes[&s1].next_deadline().0;
        let now = c.now();
        c.nodes.get_mut(&s1).unwrap().tick(now);
        c.drain_all();
        while let Some((f, t, m)) = c.net.pop_front() {
            c.deliver(f, t, m);
            let holding = |idx: u64, term: u64| {
                c.nodes
                    .values()
                    .filter(|n| {
                        n.durable_index() >= LogIndex(idx)
                            && n.term_at(LogIndex(idx)) == Some(Term(term))
                    })
                    .count()
            };
            let commit = c.nodes[&s1].commit_index();
            if holding(2, 2) >= 3 && holding(3, 4) < 3 {
                saw_old_entry_on_majority = true;
                assert!(
                    commit < LogIndex(2),
                    "committed an old-term entry by counting replicas"
                );
            }
            if commit >= LogIndex(2) {
                assert!(holding(3, 4) >= 3);
            }
        }
    }
    assert_eq!(c.nodes[&s1].term(), Term(4));
    assert!(saw_old_entry_on_majority, "scenario did not arise");
    assert_eq!(c.nodes[&s1].commit_index(), LogIndex(3));
}

#[test]
fn a_restarted_peer_recovers_its_term_vote_and_log() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    for n in 0..10 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, b"v");
    }
    c.advance(100);
    let term = c.nodes[&leader].term();
    c.crash(&leader);
    c.restart(&leader);
    let n = &c.nodes[&leader];
    assert_eq!(n.term(), term);
    assert_eq!(n.voted_for(), Some(&leader));
    assert_eq!(n.last_index(), LogIndex(11));
    assert_eq!(n.remembered_request_ids(), 10);
    // It re-applies everything once it learns the commit index again.
    c.elect();
    c.advance(200);
    assert_eq!(c.applied[&leader].len(), 11 + c.leaders().len() - 1 + 1);
}

#[test]
fn same_seed_same_outputs() {
    let run = || {
        let mut c = Cluster::new(5);
        let leader = c.elect();
        for n in 0..20 {
            let rid = c.request_id(n);
            c.propose(&leader, rid, b"v");
        }
        c.advance(500);
        (
            leader,
            c.delivered,
            c.nodes[&c.id(0)].term(),
            c.replies.len(),
        )
    };
    assert_eq!(run(), run());
}

#[test]
fn proposals_between_drains_make_one_write_and_one_append_per_follower() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let now = c.now();
    let node = c.nodes.get_mut(&leader).unwrap();
    for n in 0..50 {
        let rid = RequestId::from_parts(1_700_000_000, [9; 3], 1, n);
        node.propose(now, rid, b"batched");
    }
    let outs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    let writes: Vec<usize> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Write(_, Write::Log { entries, .. }) => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(writes, vec![50]);
    let appends: Vec<usize> = sends(&outs)
        .iter()
        .filter_map(|m| match m {
            Message::AppendEntries(ae) => Some(ae.entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(appends, vec![50, 50]);
}

#[test]
fn heartbeats_keep_an_idle_leader_in_place() {
    let mut c = Cluster::new(5);
    let leader = c.elect();
    let term = c.nodes[&leader].term();
    c.advance(30_000);
    assert_eq!(c.leaders(), vec![leader.clone()]);
    assert_eq!(c.nodes[&leader].term(), term);
    for n in c.nodes.values() {
        assert_eq!(n.leader(), Some(&leader));
        assert_eq!(n.commit_index(), c.nodes[&leader].commit_index());
    }
}

#[test]
fn a_slow_follower_is_bounded_by_the_inflight_window() {
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.max_inflight_msgs = 2;
        cfg.max_batch_entries = 1;
    });
    let leader = c.elect();
    let slow = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    // Twenty proposals while nothing is delivered: each drain may send, but never more than
    // the window of unacknowledged appends to one follower.
    for n in 0..20 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, b"x");
    }
    let in_flight = |c: &Cluster| {
        c.net
            .iter()
            .filter(|(_, to, m)| {
                *to == slow && matches!(m, Message::AppendEntries(ae) if !ae.entries.is_empty())
            })
            .count()
    };
    assert_eq!(in_flight(&c), 2);
    assert!(c.nodes[&leader].inflight_bytes(&slow).unwrap() <= 2 * 64);
    c.advance(2_000);
    assert_eq!(
        c.nodes[&slow].commit_index(),
        c.nodes[&leader].commit_index()
    );
    assert_eq!(c.nodes[&slow].last_index(), LogIndex(21));
}

#[test]
fn a_freshly_started_peer_grants_no_vote_for_an_election_timeout() {
    let cfg = Config::new(PeerId::new("a"), vec!["a".into(), "b".into(), "c".into()]);
    let mut node = Node::new(cfg, Recovered::default(), 1, Now::new(0, 0));
    let rv = RequestVote {
        term: Term(1),
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        pre_vote: false,
        transfer: false,
    };
    // A leader's lease might still run: a vote now could let a second leader overlap it.
    let outs = step_and_drain(
        &mut node,
        Now::new(10, 0),
        "b",
        Message::RequestVote(rv.clone()),
    );
    assert_eq!(node.term(), Term(0));
    assert!(matches!(
        sends(&outs)[..],
        [Message::VoteResponse(VoteResponse { granted: false, .. })]
    ));
    let outs = step_and_drain(&mut node, after_quiet(), "b", Message::RequestVote(rv));
    node.persisted(last_write(&outs).unwrap());
    let outs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    assert!(matches!(
        sends(&outs)[..],
        [Message::VoteResponse(VoteResponse { granted: true, .. })]
    ));
}

fn reads_ready(c: &Cluster, id: ReadId) -> Option<ReadResult> {
    c.reads
        .iter()
        .rev()
        .find(|(_, r, _)| *r == id)
        .map(|(_, _, res)| res.clone())
}

#[test]
fn a_leader_read_waits_for_a_heartbeat_round() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let now = c.now();
    c.nodes.get_mut(&leader).unwrap().read(now, ReadId(1));
    c.drain(&leader);
    assert_eq!(reads_ready(&c, ReadId(1)), None, "served before the round");
    let round: Vec<_> = c
        .net
        .iter()
        .filter(|(f, _, m)| *f == leader && matches!(m, Message::AppendEntries(_)))
        .collect();
    assert_eq!(round.len(), 2, "one heartbeat per follower");
    c.deliver_all();
    assert_eq!(reads_ready(&c, ReadId(1)), Some(ReadResult::Ready));
}

#[test]
fn an_isolated_leader_never_serves_a_read() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    c.isolate(&leader);
    let now = c.now();
    c.nodes.get_mut(&leader).unwrap().read(now, ReadId(7));
    c.drain(&leader);
    c.advance(2_000);
    assert_eq!(
        reads_ready(&c, ReadId(7)),
        Some(ReadResult::NotLeader { leader: None }),
        "the read must fail when the leader steps down, never be served"
    );
}

#[test]
fn a_follower_read_is_forwarded_and_waits_for_its_own_apply() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let follower = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    let rid = c.request_id(1);
    c.propose(&leader, rid, b"w");
    // The write commits on the leader; the follower has not heard the new commit index yet.
    c.deliver_all();
    let commit = c.nodes[&leader].commit_index();
    let now = c.now();
    c.nodes.get_mut(&follower).unwrap().read(now, ReadId(3));
    c.drain(&follower);
    c.deliver_all();
    c.advance(200);
    assert_eq!(reads_ready(&c, ReadId(3)), Some(ReadResult::Ready));
    assert!(c.nodes[&follower].applied_index() >= commit);
}

#[test]
fn a_lease_read_skips_the_round_only_while_the_lease_holds() {
    let mut c = Cluster::with_config(3, |cfg| {
        cfg.lease_reads = true;
        cfg.max_clock_drift_ppm = 10_000;
    });
    let leader = c.elect();
    c.advance(100); // heartbeats answered: the lease runs
    let now = c.now();
    c.nodes.get_mut(&leader).unwrap().read(now, ReadId(1));
    c.drain(&leader);
    assert_eq!(
        reads_ready(&c, ReadId(1)),
        Some(ReadResult::Ready),
        "no round needed"
    );
    // Cut off, the lease runs out and reads need a round that cannot complete.
    c.isolate(&leader);
    c.advance(190);
    let now = c.now();
    c.nodes.get_mut(&leader).unwrap().read(now, ReadId(2));
    c.drain(&leader);
    assert_eq!(reads_ready(&c, ReadId(2)), None);
}

#[test]
fn leadership_moves_to_the_named_peer() {
    let mut c = Cluster::new(3);
    let old = c.elect();
    let target = c.ids.iter().find(|p| **p != old).unwrap().clone();
    let term = c.nodes[&old].term();
    let now = c.now();
    c.nodes
        .get_mut(&old)
        .unwrap()
        .transfer_leadership(now, &target)
        .unwrap();
    c.drain(&old);
    // While handing over, the old leader takes no proposals.
    let rid = c.request_id(1);
    c.propose(&old, rid, b"x");
    assert_eq!(
        c.replies.last().unwrap().2,
        ClientResult::NotLeader { leader: None }
    );
    c.deliver_all();
    assert_eq!(c.leaders(), vec![target.clone()]);
    assert_eq!(c.nodes[&target].term(), term.next());
    assert_eq!(c.nodes[&old].leader(), Some(&target));
}

#[test]
fn a_transfer_to_an_unreachable_peer_is_abandoned() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let target = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    c.isolate(&target);
    let now = c.now();
    c.nodes
        .get_mut(&leader)
        .unwrap()
        .transfer_leadership(now, &target)
        .unwrap();
    c.advance(1_000);
    assert_eq!(c.leaders(), vec![leader.clone()]);
    let rid = c.request_id(2);
    c.propose(&leader, rid, b"x");
    assert!(matches!(
        c.replies.last().unwrap().2,
        ClientResult::Accepted { .. }
    ));
}

#[test]
fn transfers_are_refused_when_they_make_no_sense() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let follower = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    let now = c.now();
    let n = c.nodes.get_mut(&leader).unwrap();
    assert_eq!(
        n.transfer_leadership(now, &leader),
        Err(TransferError::BadTarget(leader.clone()))
    );
    assert!(n
        .transfer_leadership(now, &PeerId::new("stranger"))
        .is_err());
    let f = c.nodes.get_mut(&follower).unwrap();
    assert_eq!(
        f.transfer_leadership(now, &leader),
        Err(TransferError::NotLeader)
    );
}

fn members(c: &Cluster, idx: &[usize]) -> Vec<Member> {
    idx.iter()
        .map(|&i| Member {
            id: c.id(i),
            url: format!("tcp://127.0.0.1:{}", 8047 + 100 * i),
        })
        .collect()
}

fn change(c: &mut Cluster, on: &PeerId, rid: RequestId, new: Vec<Member>) -> ClientResult {
    let now = c.now();
    c.nodes
        .get_mut(on)
        .unwrap()
        .change_membership(now, rid, new);
    c.drain(on);
    c.replies
        .iter()
        .rev()
        .find(|(_, r, _)| *r == rid)
        .unwrap()
        .2
        .clone()
}

#[test]
fn a_learner_catches_up_then_joins_by_joint_consensus() {
    let mut c = Cluster::with_learners(3, 1);
    let leader = c.elect();
    let learner = c.id(3);
    for n in 0..20 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, b"x");
    }
    c.advance(200);
    // The learner has the log but never campaigned and counts for nothing.
    assert_eq!(
        c.nodes[&learner].commit_index(),
        c.nodes[&leader].commit_index()
    );
    assert!(!c.nodes[&learner].is_voter());
    let rid = c.request_id(100);
    let new = members(&c, &[0, 1, 2, 3]);
    assert!(matches!(
        change(&mut c, &leader, rid, new.clone()),
        ClientResult::Accepted { .. }
    ));
    // One change at a time.
    let other = c.request_id(101);
    let smaller = members(&c, &[0, 1]);
    assert_eq!(change(&mut c, &leader, other, smaller), ClientResult::Busy);
    c.advance(300);
    assert!(c
        .replies
        .iter()
        .any(|(_, r, res)| *r == rid && matches!(res, ClientResult::Committed { .. })));
    for n in c.nodes.values() {
        assert_eq!(
            n.membership(),
            &Membership::simple(new.clone()),
            "{}",
            n.id()
        );
    }
    assert!(c.nodes[&learner].is_voter());
    // The same request again is answered, not applied twice.
    let again = change(&mut c, &leader, rid, new.clone());
    assert!(matches!(again, ClientResult::Committed { .. }));
    let configs = c.applied[&leader]
        .iter()
        .filter(|e| e.kind() == EntryType::Config)
        .count();
    assert_eq!(configs, 2, "one joint and one final entry");
}

#[test]
fn a_leader_removed_from_the_configuration_steps_down() {
    let mut c = Cluster::new(4);
    let leader = c.elect();
    let keep: Vec<usize> = (0..4).filter(|&i| c.id(i) != leader).collect();
    let rid = c.request_id(7);
    let new = members(&c, &keep);
    assert!(matches!(
        change(&mut c, &leader, rid, new.clone()),
        ClientResult::Accepted { .. }
    ));
    c.advance(2_000);
    assert_ne!(c.nodes[&leader].role(), Role::Leader);
    let leaders = c.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], leader);
    // The removed peer never disrupts the new configuration.
    let term = c.nodes[&leaders[0]].term();
    c.advance(3_000);
    assert_eq!(c.nodes[&leaders[0]].term(), term);
    assert!(!c.nodes[&leader].is_voter());
}

#[test]
fn bad_configurations_are_refused() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    let rid = c.request_id(1);
    assert!(matches!(
        change(&mut c, &leader, rid, vec![]),
        ClientResult::InvalidConfig(_)
    ));
    let mut twice = members(&c, &[0, 1]);
    twice.push(twice[0].clone());
    let rid = c.request_id(2);
    assert!(matches!(
        change(&mut c, &leader, rid, twice),
        ClientResult::InvalidConfig(_)
    ));
    let follower = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    let rid = c.request_id(3);
    let new = members(&c, &[0, 1]);
    assert!(matches!(
        change(&mut c, &follower, rid, new),
        ClientResult::NotLeader { .. }
    ));
}

#[test]
fn replacing_several_peers_at_once_works() {
    let mut c = Cluster::with_learners(3, 2);
    let leader = c.elect();
    c.advance(100);
    // Keep the leader, swap the two others for the two learners.
    let li = c.ids.iter().position(|p| *p == leader).unwrap();
    let rid = c.request_id(9);
    let new = members(&c, &[li, 3, 4]);
    assert!(matches!(
        change(&mut c, &leader, rid, new.clone()),
        ClientResult::Accepted { .. }
    ));
    c.advance(500);
    assert_eq!(c.nodes[&leader].membership(), &Membership::simple(new));
    let rid = c.request_id(10);
    c.propose(&leader, rid, b"after");
    c.advance(200);
    assert!(c.applied[&c.id(3)].iter().any(|e| e.request_id() == rid));
}

fn snapshot_meta(c: &Cluster, on: &PeerId) -> SnapshotMeta {
    let n = &c.nodes[on];
    let index = n.applied_index();
    SnapshotMeta {
        index,
        term: n.term_at(index).unwrap(),
        membership: n.membership().clone(),
    }
}

/// A cluster whose request ids expire after 5 s, with tiny batches and snapshot chunks.
fn compacting_cluster() -> Cluster {
    Cluster::with_config(3, |cfg| {
        cfg.request_id_ttl_secs = 5;
        cfg.max_batch_bytes = 16;
    })
}

#[test]
fn compaction_stops_at_the_prune_index_and_the_commit_index() {
    let mut c = Cluster::new(3);
    let leader = c.elect();
    for n in 0..10 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, b"x");
    }
    c.advance(100);
    let meta = snapshot_meta(&c, &leader);
    let now = c.now();
    let upto = c
        .nodes
        .get_mut(&leader)
        .unwrap()
        .snapshot_taken(now, meta, vec![1u8; 10].into());
    // Every request id is still fresh: compacting past the first would forget it.
    assert_eq!(upto, LogIndex(1));
    assert_eq!(c.nodes[&leader].log_start(), LogIndex(1));
    // The same request is still recognised.
    let rid = c.request_id(0);
    c.propose(&leader, rid, b"x");
    assert_eq!(
        c.replies.last().unwrap().2,
        ClientResult::Committed { index: LogIndex(2) }
    );
}

#[test]
fn a_lagging_follower_catches_up_by_a_snapshot_sent_in_chunks() {
    let mut c = compacting_cluster();
    let leader = c.elect();
    let lagging = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    c.isolate(&lagging);
    for n in 0..30 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, b"payload");
    }
    c.advance(100);
    c.unix_secs += 60; // every request id expires
    c.advance(100);
    let meta = snapshot_meta(&c, &leader);
    let data: Vec<u8> = (0..100).collect();
    let now = c.now();
    let upto =
        c.nodes
            .get_mut(&leader)
            .unwrap()
            .snapshot_taken(now, meta.clone(), data.clone().into());
    assert_eq!(upto, meta.index);
    assert_eq!(c.nodes[&leader].log_start(), upto);
    c.heal();
    c.advance(3_000);
    let f = &c.nodes[&lagging];
    assert_eq!(f.log_start(), upto);
    assert_eq!(f.commit_index(), c.nodes[&leader].commit_index());
    assert_eq!(c.installed, vec![(lagging.clone(), upto, data)]);
    // And it keeps replicating normally afterwards.
    let rid = c.request_id(99);
    c.propose(&leader, rid, b"after");
    c.advance(200);
    assert!(c.applied[&lagging].iter().any(|e| e.request_id() == rid));
}

#[test]
fn a_lost_snapshot_chunk_resumes_where_it_stopped() {
    let mut c = compacting_cluster();
    let leader = c.elect();
    let lagging = c.ids.iter().find(|p| **p != leader).unwrap().clone();
    c.isolate(&lagging);
    for n in 0..10 {
        let rid = c.request_id(n);
        c.propose(&leader, rid, b"payload");
    }
    c.advance(100);
    c.unix_secs += 60;
    c.advance(100);
    let meta = snapshot_meta(&c, &leader);
    let data: Vec<u8> = (0..64).collect();
    let now = c.now();
    c.nodes
        .get_mut(&leader)
        .unwrap()
        .snapshot_taken(now, meta, data.clone().into());
    c.heal();
    let mut offsets = Vec::new();
    let mut dropped = false;
    for _ in 0..100 {
        c.drain_all();
        while let Some((from, to, msg)) = c.net.pop_front() {
            if let Message::InstallSnapshot(m) = &msg {
                offsets.push(m.offset);
                if m.offset == 32 && !dropped {
                    dropped = true;
                    continue; // lost on the way
                }
            }
            c.deliver(from, to, msg);
        }
        // Time passes without the testkit delivering for us.
        c.now_ms += 20;
        let now = c.now();
        for id in c.ids.clone() {
            let n = c.nodes.get_mut(&id).unwrap();
            if n.next_deadline().0 <= c.now_ms {
                n.tick(now);
            }
        }
        if !c.installed.is_empty() {
            break;
        }
    }
    assert!(dropped);
    assert_eq!(c.installed, vec![(lagging.clone(), c.installed[0].1, data)]);
    assert_eq!(
        offsets.iter().filter(|&&o| o == 0).count(),
        1,
        "restarted from 0: {offsets:?}"
    );
    assert!(
        offsets.iter().filter(|&&o| o == 32).count() >= 2,
        "{offsets:?}"
    );
}
